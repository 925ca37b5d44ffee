//! `upcase --banner`: reading the one line a server started with `upcased --banner` sends
//! before any reply, so that it is shown (on stderr) and not taken for the first reply.
//!
//! Over TLS the line is the first thing inside TLS, after the handshake. The blocking modes
//! read it with [`read_banner`] on any [`Connection`]; pipe mode over TLS, which is async,
//! with [`read_banner_async`]. Both read it one byte at a time, so that nothing after the LF
//! (a reply) is consumed: over TLS the rest stays in rustls's buffer for the session.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt};

use super::{is_wait, peer, ClientError, Connection, Deadline};
use crate::limits::MAX_BANNER;

/// The longest banner line read: `upcased`'s [`MAX_BANNER`] for the fixed text, plus two
/// socket addresses of at most 47 bytes each for `{server}` and `{client}`.
pub const MAX_BANNER_LINE: usize = MAX_BANNER + 2 * 47;

/// Reads the banner line, LF included, within `timeout`. The line is short and read once
/// per connection. Fails with [`ClientError::NoBanner`] when no whole line arrives in time
/// (a server without `--banner` sends none), [`ClientError::Closed`] or
/// [`ClientError::ClosedEarly`] when the server closes first (over TLS, with
/// `close_notify` or without), and [`ClientError::BannerTooLong`].
pub fn read_banner<C: Connection + ?Sized>(
    stream: &mut C,
    timeout: Duration,
) -> Result<Vec<u8>, ClientError> {
    let addr = peer(stream.socket());
    let mut line = Line::new(addr, stream.tls_version().is_some());
    let io = |source: io::Error| ClientError::Io { addr, source };
    let deadline = Deadline::after(timeout);
    let mut byte = [0u8; 1];
    loop {
        let left = deadline.left().ok_or_else(|| line.timed_out(timeout))?;
        stream.socket().set_read_timeout(Some(left)).map_err(io)?;
        if line.took(stream.read(&mut byte), byte[0])? {
            break;
        }
    }
    stream.socket().set_read_timeout(None).map_err(io)?;
    Ok(line.bytes)
}

/// [`read_banner`] on an async stream (pipe mode over TLS): the same line, the same errors.
/// `addr` and `tls` are for the errors.
pub async fn read_banner_async<S: AsyncRead + Unpin>(
    stream: &mut S,
    (addr, tls): (SocketAddr, bool),
    timeout: Duration,
) -> Result<Vec<u8>, ClientError> {
    let mut line = Line::new(addr, tls);
    let read = async {
        let mut byte = [0u8; 1];
        loop {
            let r = stream.read(&mut byte).await;
            if line.took(r, byte[0])? {
                return Ok::<(), ClientError>(());
            }
        }
    };
    let r = tokio::time::timeout(timeout, read).await;
    match r {
        Ok(r) => r.map(|()| line.bytes),
        Err(_) => Err(line.timed_out(timeout)),
    }
}

/// The banner line as it arrives, one read of one byte at a time.
struct Line {
    addr: SocketAddr,
    tls: bool,
    bytes: Vec<u8>,
}

impl Line {
    fn new(addr: SocketAddr, tls: bool) -> Line {
        Line {
            addr,
            tls,
            bytes: Vec::with_capacity(128),
        }
    }

    /// Takes the outcome of a one-byte read into `byte`: `Ok(true)` once the line is whole,
    /// `Ok(false)` to read on (a timed-out or interrupted read included: the caller looks at
    /// its clock), or the error that ends it.
    fn took(&mut self, read: io::Result<usize>, byte: u8) -> Result<bool, ClientError> {
        let addr = self.addr;
        match read {
            Ok(1..) => {
                self.bytes.push(byte);
                if byte == b'\n' {
                    return Ok(true);
                }
                if self.bytes.len() >= MAX_BANNER_LINE {
                    return Err(ClientError::BannerTooLong {
                        addr,
                        max: MAX_BANNER_LINE,
                    });
                }
                Ok(false)
            }
            Err(e) if is_wait(&e) => Ok(false),
            // The server closed: a FIN, a close_notify, or (TLS) a close without one.
            Ok(0) => Err(self.closed()),
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Err(self.closed()),
            Err(source) => Err(ClientError::Io { addr, source }),
        }
    }

    fn closed(&mut self) -> ClientError {
        if self.bytes.is_empty() {
            ClientError::Closed {
                addr: self.addr,
                tls: self.tls,
            }
        } else {
            ClientError::ClosedEarly {
                addr: self.addr,
                got: std::mem::take(&mut self.bytes),
                want_lines: 1,
            }
        }
    }

    fn timed_out(&self, after: Duration) -> ClientError {
        ClientError::NoBanner {
            addr: self.addr,
            after,
            got: self.bytes.clone(),
        }
    }
}
