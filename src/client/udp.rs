//! The client's UDP mode: one datagram per message, one reply datagram each.
//!
//! The socket is connected to the server, so that replies from anyone else are filtered
//! out by the kernel and an ICMP "port unreachable" comes back as an error instead of
//! silence.

use std::io::{self, BufRead, Write};
use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

use super::{resolve, ClientError, LineSource, PipeStats};
use crate::limits::{UDP_MAX_DATAGRAM, UDP_MAX_PAYLOAD};

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
        let socket = socket_for(addrs[0], timeout)?;
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
    /// resolved address (`localhost` may name both `::1` and `127.0.0.1`).
    pub fn exchange(&mut self, message: &[u8]) -> Result<&[u8], ClientError> {
        if message.len() > UDP_MAX_PAYLOAD {
            return Err(ClientError::TooLong {
                len: message.len(),
                max: UDP_MAX_PAYLOAD,
            });
        }
        loop {
            let addr = self.peer();
            let outcome = self
                .socket
                .send(message)
                .and_then(|_| self.socket.recv(&mut self.buf));
            match outcome {
                Ok(n) => {
                    self.answered = true;
                    return Ok(&self.buf[..n]);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
                    if self.answered || self.current + 1 == self.addrs.len() {
                        return Err(ClientError::UdpRefused { addr });
                    }
                    self.current += 1;
                    self.socket = socket_for(self.peer(), self.timeout)?;
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    return Err(ClientError::UdpNoReply {
                        addr,
                        after: self.timeout,
                    });
                }
                Err(source) => return Err(ClientError::Io { addr, source }),
            }
        }
    }
}

fn socket_for(addr: SocketAddr, timeout: Duration) -> Result<UdpSocket, ClientError> {
    let io = |source| ClientError::Io { addr, source };
    let local: SocketAddr = if addr.is_ipv6() {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    } else {
        (std::net::Ipv4Addr::UNSPECIFIED, 0).into()
    };
    let socket = UdpSocket::bind(local).map_err(io)?;
    socket.connect(addr).map_err(io)?;
    socket.set_read_timeout(Some(timeout)).map_err(io)?;
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

/// The interactive session over UDP: one datagram per typed line.
pub fn interactive_udp<L, W>(
    client: &mut UdpClient,
    lines: &mut L,
    out: &mut W,
) -> Result<(), ClientError>
where
    L: LineSource + ?Sized,
    W: Write + ?Sized,
{
    while let Some(line) = lines.next_line().map_err(|source| ClientError::Local {
        what: "reading input",
        source,
    })? {
        let reply = client.exchange(line.as_bytes())?;
        out.write_all(reply)
            .and_then(|()| out.write_all(b"\n"))
            .and_then(|()| out.flush())
            .map_err(|source| ClientError::Local {
                what: "writing output",
                source,
            })?;
    }
    Ok(())
}
