//! `upcase --banner`: reading the one line a server started with `upcased --banner` sends
//! before any reply, so that it is shown (on stderr) and not taken for the first reply.

use std::io::{self, Read};
use std::net::TcpStream;
use std::time::Duration;

use super::{is_wait, peer, ClientError, Deadline};
use crate::limits::MAX_BANNER;
use crate::tls::BlockingStream;

/// The longest banner line read: `upcased`'s [`MAX_BANNER`] for the fixed text, plus two
/// socket addresses of at most 47 bytes each for `{server}` and `{client}`.
pub const MAX_BANNER_LINE: usize = MAX_BANNER + 2 * 47;

/// Reads the banner line, LF included, within `timeout`. Reads one byte at a time so that
/// nothing after the LF (a reply) is consumed; the line is short and read once per
/// connection. Fails with [`ClientError::NoBanner`] when no whole line arrives in time
/// (a server without `--banner` sends none), [`ClientError::Closed`] or
/// [`ClientError::ClosedEarly`] when the server closes first, and
/// [`ClientError::BannerTooLong`].
pub fn read_banner(stream: &mut TcpStream, timeout: Duration) -> Result<Vec<u8>, ClientError> {
    let addr = peer(stream);
    read_line(stream, (addr, false), timeout, |s, t| s.set_read_timeout(t))
}

/// [`read_banner`] over TLS (`upcase --tls --banner send`): the banner is the first line
/// inside TLS.
pub fn read_banner_tls(
    stream: &mut BlockingStream,
    timeout: Duration,
) -> Result<Vec<u8>, ClientError> {
    let addr = peer(&stream.sock);
    read_line(stream, (addr, true), timeout, |s, t| {
        s.sock.set_read_timeout(t)
    })
}

/// Reads the banner line from `stream`, whose socket's read timeout `set_timeout` sets.
fn read_line<S: Read>(
    stream: &mut S,
    (addr, tls): (std::net::SocketAddr, bool),
    timeout: Duration,
    set_timeout: impl Fn(&mut S, Option<Duration>) -> io::Result<()>,
) -> Result<Vec<u8>, ClientError> {
    let io = |source: io::Error| ClientError::Io { addr, source };
    let deadline = Deadline::after(timeout);
    let mut line = Vec::with_capacity(128);
    let mut byte = [0u8; 1];
    while line.last() != Some(&b'\n') {
        if line.len() >= MAX_BANNER_LINE {
            return Err(ClientError::BannerTooLong {
                addr,
                max: MAX_BANNER_LINE,
            });
        }
        let left = deadline.left().ok_or_else(|| ClientError::NoBanner {
            addr,
            after: timeout,
            got: line.clone(),
        })?;
        set_timeout(stream, Some(left)).map_err(io)?;
        match stream.read(&mut byte) {
            Ok(0) if line.is_empty() => return Err(ClientError::Closed { addr, tls }),
            Ok(0) => {
                return Err(ClientError::ClosedEarly {
                    addr,
                    got: line,
                    want_lines: 1,
                })
            }
            Ok(_) => line.push(byte[0]),
            Err(e) if is_wait(&e) => {}
            Err(e) => return Err(io(e)),
        }
    }
    set_timeout(stream, None).map_err(io)?;
    Ok(line)
}
