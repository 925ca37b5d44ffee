//! Pipe mode: input → server → output, full duplex and binary-safe, as `nc` does it.
//!
//! One thread copies the input to the socket and half-closes it at input EOF; the calling
//! thread copies the socket to the output until the server closes. Both use large buffers
//! and plain blocking calls, so a bulk transfer costs two system calls per buffer each way.

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use super::{classify, peer, ClientError};
use crate::limits::PIPE_BUFFER;

/// How often the reading side wakes up while the server is quiet, to check whether the
/// input has ended and the wait for the server has lasted longer than the timeout.
const TICK: Duration = Duration::from_millis(200);

/// Bytes moved by one pipe session.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PipeStats {
    /// Bytes of input sent to the server.
    pub sent: u64,
    /// Bytes of reply written to the output.
    pub received: u64,
}

/// Streams `input` through the server on `stream` into `output`, until the server closes.
///
/// The timeout bounds only the wait after the input has ended: while input may still
/// come, a quiet server is not late. Fails with [`ClientError::ClosedEarly`] when the
/// server closes before taking all the input, since the missing replies would otherwise be
/// lost without a word.
pub fn pipe<R, W>(
    stream: TcpStream,
    mut input: R,
    output: &mut W,
    timeout: Duration,
) -> Result<PipeStats, ClientError>
where
    R: Read + Send + 'static,
    W: Write + ?Sized,
{
    let addr = peer(&stream);
    let mut to_server = stream
        .try_clone()
        .map_err(|source| ClientError::Io { addr, source })?;
    let input_ended: Arc<Mutex<Option<Instant>>> = Arc::default();
    let ended = input_ended.clone();
    let sender = thread::Builder::new()
        .name("upcase-pipe-send".into())
        .spawn(move || -> Result<u64, ClientError> {
            let mut buf = vec![0u8; PIPE_BUFFER];
            let mut sent = 0u64;
            loop {
                let n = match input.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(source) => {
                        return Err(ClientError::Local {
                            what: "reading input",
                            source,
                        })
                    }
                };
                if to_server.write_all(&buf[..n]).is_err() {
                    return Err(ClientError::ClosedEarly { addr });
                }
                sent += n as u64;
            }
            *ended.lock().unwrap_or_else(|e| e.into_inner()) = Some(Instant::now());
            // FIN tells the server the input is over; it answers the rest, then closes.
            let _ = to_server.shutdown(Shutdown::Write);
            Ok(sent)
        })
        .map_err(|source| ClientError::Local {
            what: "starting the sender thread",
            source,
        })?;

    let mut from_server = stream;
    from_server
        .set_read_timeout(Some(TICK))
        .map_err(|source| ClientError::Io { addr, source })?;
    let mut buf = vec![0u8; PIPE_BUFFER];
    let mut received = 0u64;
    let mut last_byte = Instant::now();
    loop {
        match from_server.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                last_byte = Instant::now();
                received += n as u64;
                output
                    .write_all(&buf[..n])
                    .and_then(|()| output.flush())
                    .map_err(|source| ClientError::Local {
                        what: "writing output",
                        source,
                    })?;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                let ended = *input_ended.lock().unwrap_or_else(|e| e.into_inner());
                if let Some(t) = ended {
                    if Instant::now().duration_since(t.max(last_byte)) >= timeout {
                        return Err(ClientError::Timeout {
                            addr,
                            after: timeout,
                        });
                    }
                }
            }
            Err(e) => return Err(classify(addr, timeout, e)),
        }
    }
    // The server has closed. If the sender is still waiting for input, the server closed
    // first and whatever comes next would go unanswered.
    if !sender.is_finished() {
        thread::sleep(Duration::from_millis(50));
    }
    if !sender.is_finished() {
        return Err(ClientError::ClosedEarly { addr });
    }
    let sent = match sender.join() {
        Ok(r) => r?,
        Err(_) => {
            return Err(ClientError::Local {
                what: "sending input",
                source: io::Error::other("the sender thread panicked"),
            })
        }
    };
    Ok(PipeStats { sent, received })
}
