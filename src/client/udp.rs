//! The client's UDP mode: one datagram per message, one reply datagram each.
//!
//! The socket is connected to the server, so that replies from anyone else are filtered
//! out by the kernel and an ICMP "port unreachable" comes back as an error instead of
//! silence.

use std::io::{self, BufRead, Write};
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use super::interactive::split_lines;
use super::{is_wait, resolve, ClientError, Deadline, LineSource, PipeStats, CANCEL_TICK};
use crate::limits::{UDP_MAX_DATAGRAM, UDP_MAX_PAYLOAD};
use crate::transform::{self, Mode};

/// A UDP conversation with one server.
#[derive(Debug)]
pub struct UdpClient {
    socket: UdpSocket,
    addrs: Vec<SocketAddr>,
    current: usize,
    answered: bool,
    timeout: Duration,
    buf: Vec<u8>,
}

impl UdpClient {
    /// Resolves `target` and prepares a socket for its first address. Nothing is sent, so
    /// nothing can fail yet but resolution and binding.
    pub fn connect(target: &str, timeout: Duration) -> Result<Self, ClientError> {
        let addrs = resolve(target)?;
        let socket = socket_for(addrs[0])?;
        Ok(UdpClient {
            socket,
            addrs,
            current: 0,
            answered: false,
            timeout,
            buf: vec![0u8; UDP_MAX_DATAGRAM],
        })
    }

    /// The server address in use.
    pub fn peer(&self) -> SocketAddr {
        self.addrs[self.current]
    }

    /// Sends `message` as one datagram and waits up to the timeout for the reply.
    ///
    /// Until a first reply arrives, an ICMP "port unreachable" moves on to the next
    /// resolved address (`localhost` may name both `::1` and `127.0.0.1`). A message whose
    /// upper-case would be longer is not sent ([`ClientError::WouldAmplify`]): the server
    /// would drop it.
    pub fn exchange(&mut self, message: &[u8]) -> Result<&[u8], ClientError> {
        self.exchange_cancellable(message, &AtomicBool::new(false))
    }

    /// [`UdpClient::exchange`], giving up with [`ClientError::Cancelled`] soon after
    /// `cancel` becomes true.
    pub fn exchange_cancellable(
        &mut self,
        message: &[u8],
        cancel: &AtomicBool,
    ) -> Result<&[u8], ClientError> {
        if message.len() > UDP_MAX_PAYLOAD {
            return Err(ClientError::TooLong {
                len: message.len(),
                max: UDP_MAX_PAYLOAD,
            });
        }
        let reply = transform::upcase(message, Mode::Unicode).len();
        if reply > message.len() {
            return Err(ClientError::WouldAmplify {
                len: message.len(),
                reply,
            });
        }
        self.drop_late_replies();
        loop {
            let addr = self.peer();
            let io = |source| ClientError::Io { addr, source };
            let deadline = Deadline::after(self.timeout);
            let mut outcome = self.socket.send(message).map(|_| 0);
            while outcome.is_ok() {
                if cancel.load(Ordering::Relaxed) {
                    return Err(ClientError::Cancelled);
                }
                let Some(left) = deadline.left() else {
                    outcome = Err(io::ErrorKind::TimedOut.into());
                    break;
                };
                self.socket
                    .set_read_timeout(Some(left.min(CANCEL_TICK)))
                    .map_err(io)?;
                match self.socket.recv(&mut self.buf) {
                    Ok(n) => {
                        self.answered = true;
                        return Ok(&self.buf[..n]);
                    }
                    Err(e) if is_wait(&e) => {}
                    Err(e) => outcome = Err(e),
                }
            }
            match outcome {
                Ok(_) => unreachable!("the loop ends only with a reply or an error"),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
                    if self.answered || self.current + 1 == self.addrs.len() {
                        return Err(ClientError::UdpRefused { addr });
                    }
                    self.current += 1;
                    self.socket = socket_for(self.peer())?;
                }
                Err(e) if e.kind() == io::ErrorKind::TimedOut => {
                    return Err(ClientError::UdpNoReply {
                        addr,
                        after: self.timeout,
                    });
                }
                Err(source) => return Err(ClientError::Io { addr, source }),
            }
        }
    }

    /// Reads and drops datagrams already waiting: replies to messages that timed out or
    /// were cancelled, which would otherwise be taken for the next reply.
    fn drop_late_replies(&mut self) {
        if self.socket.set_nonblocking(true).is_ok() {
            while self.socket.recv(&mut self.buf).is_ok() {}
            let _ = self.socket.set_nonblocking(false);
        }
    }
}

fn socket_for(addr: SocketAddr) -> Result<UdpSocket, ClientError> {
    let io = |source| ClientError::Io { addr, source };
    let socket = crate::net::connect_udp(addr).map_err(io)?;
    socket.set_nonblocking(false).map_err(io)?;
    Ok(socket)
}

/// Pipe mode over UDP: each input line (without its LF) is one datagram, and each reply is
/// written followed by LF, in order.
pub fn pipe_udp<R, W>(
    client: &mut UdpClient,
    mut input: R,
    output: &mut W,
) -> Result<PipeStats, ClientError>
where
    R: BufRead,
    W: Write + ?Sized,
{
    let mut line = Vec::new();
    let mut stats = PipeStats::default();
    loop {
        line.clear();
        let n = input
            .read_until(b'\n', &mut line)
            .map_err(|source| ClientError::Local {
                what: "reading input",
                source,
            })?;
        if n == 0 {
            return Ok(stats);
        }
        if line.last() == Some(&b'\n') {
            line.pop();
        }
        let reply = client.exchange(&line)?;
        stats.sent += line.len() as u64;
        stats.received += reply.len() as u64;
        output
            .write_all(reply)
            .and_then(|()| output.write_all(b"\n"))
            .and_then(|()| output.flush())
            .map_err(|source| ClientError::Local {
                what: "writing output",
                source,
            })?;
    }
}

/// The interactive session over UDP: one datagram per typed line (each line of a paste
/// on its own). A line the server would not answer (too long, or longer once upper-cased)
/// is not sent; the session says why in `notes` and goes on. Ctrl-C (`interrupted`)
/// cancels a wait and returns to the prompt.
pub fn interactive_udp<L, W, N>(
    client: &mut UdpClient,
    lines: &mut L,
    out: &mut W,
    notes: &mut N,
    interrupted: &AtomicBool,
) -> Result<(), ClientError>
where
    L: LineSource + ?Sized,
    W: Write + ?Sized,
    N: Write + ?Sized,
{
    while let Some(text) = lines.next_line().map_err(|source| ClientError::Local {
        what: "reading input",
        source,
    })? {
        interrupted.store(false, Ordering::Relaxed);
        for line in split_lines(&text) {
            let reply = match client.exchange_cancellable(line.as_bytes(), interrupted) {
                Ok(reply) => reply,
                Err(e @ (ClientError::WouldAmplify { .. } | ClientError::TooLong { .. })) => {
                    let _ = writeln!(notes, "{e}");
                    continue;
                }
                Err(ClientError::Cancelled) => {
                    interrupted.store(false, Ordering::Relaxed);
                    let _ = writeln!(notes, "\ncancelled");
                    break;
                }
                Err(e) => return Err(e),
            };
            out.write_all(reply)
                .and_then(|()| out.write_all(b"\n"))
                .and_then(|()| out.flush())
                .map_err(|source| ClientError::Local {
                    what: "writing output",
                    source,
                })?;
        }
    }
    Ok(())
}
