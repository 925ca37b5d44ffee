//! `upcase`: connecting to a capitalisation server and talking to it.
//!
//! Three ways to talk, each generic over its input and output so that tests need no
//! terminal:
//!
//! - [`pipe`]: a full-duplex, binary-safe stream from a reader through the server to a
//!   writer, as `nc` does it;
//! - [`send`]: one message, one reply;
//! - [`interactive`]: a line-by-line session that reconnects when the server has closed an
//!   idle connection;
//! - over UDP, [`UdpClient`] with [`pipe_udp`] and [`interactive_udp`]: one datagram per
//!   message.
//!
//! The client uses plain blocking sockets and at most two threads: there is one
//! connection, and blocking I/O with large buffers is as fast as it gets for that.

mod interactive;
mod pipe;
mod tls;
mod udp;

use std::io::{self, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream, ToSocketAddrs};
use std::time::Duration;

pub use interactive::{interactive, Editor, LineSource};
pub use pipe::{pipe, PipeStats};
pub use tls::{interactive_tls, pipe_tls, send_tls, TlsClient, TlsOptions};
pub use udp::{interactive_udp, pipe_udp, UdpClient};

use crate::limits::DEFAULT_PORT;

/// What can go wrong talking to a server. Each variant names the address, so the
/// binaries can print it as one line.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The address could not be resolved or parsed.
    #[error("cannot resolve {addr}: {source}")]
    Resolve {
        /// The address as the user gave it.
        addr: String,
        /// Why resolution failed.
        source: io::Error,
    },
    /// No resolved address accepted the connection.
    #[error("could not connect to {addr}: {}{}", describe(source), hint(source))]
    Connect {
        /// The address as the user gave it.
        addr: String,
        /// The error from the last address tried.
        source: io::Error,
    },
    /// The server did not answer in time.
    #[error("no reply from {addr} within {}", humantime::format_duration(*after))]
    Timeout {
        /// The server's address.
        addr: SocketAddr,
        /// How long the client waited.
        after: Duration,
    },
    /// The server closed the connection before replying in full.
    #[error("{addr} closed the connection before replying")]
    Closed {
        /// The server's address.
        addr: SocketAddr,
    },
    /// The server closed the connection before the client had sent all its input.
    #[error(
        "{addr} closed the connection before all input was sent; replies to the rest are missing"
    )]
    ClosedEarly {
        /// The server's address.
        addr: SocketAddr,
    },
    /// Any other I/O failure on the connection.
    #[error("connection to {addr} failed: {}", describe(source))]
    Io {
        /// The server's address.
        addr: SocketAddr,
        /// What failed.
        source: io::Error,
    },
    /// No reply datagram arrived in time.
    #[error("no reply from {addr} over UDP within {} — is upcased running there with --udp?", humantime::format_duration(*after))]
    UdpNoReply {
        /// The server's address.
        addr: SocketAddr,
        /// How long the client waited.
        after: Duration,
    },
    /// The server's host answered with ICMP "port unreachable".
    #[error(
        "{addr} refused the datagram (port unreachable) — is upcased running there with --udp?"
    )]
    UdpRefused {
        /// The server's address.
        addr: SocketAddr,
    },
    /// A message does not fit in one datagram.
    #[error("a message of {len} bytes does not fit in one UDP datagram (at most {max} bytes); use TCP for long lines")]
    TooLong {
        /// The message's length.
        len: usize,
        /// The largest datagram payload.
        max: usize,
    },
    /// TLS could not be set up, or the handshake failed (an untrusted certificate, a name
    /// mismatch, a plain-text server): one line naming the address and the reason.
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
    /// The server closed a TLS connection without `close_notify` in the middle of a reply:
    /// the reply may be cut short.
    #[error("{addr} closed the TLS connection without close_notify: the reply may be truncated")]
    Truncated {
        /// The server's address.
        addr: SocketAddr,
    },
    /// Reading the user's input or writing the output failed.
    #[error("{what}: {source}")]
    Local {
        /// What was being done.
        what: &'static str,
        /// What failed.
        source: io::Error,
    },
}

impl ClientError {
    /// Whether this is the reader of our output going away (`upcase ... | head -1`), which
    /// is not an error worth reporting.
    pub fn is_broken_pipe(&self) -> bool {
        matches!(self, ClientError::Local { source, .. } if source.kind() == io::ErrorKind::BrokenPipe)
    }
}

/// An I/O error in the words a user reads, without the "(os error 111)" suffix.
fn describe(e: &io::Error) -> String {
    match e.kind() {
        io::ErrorKind::ConnectionRefused => "connection refused".into(),
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => "timed out".into(),
        io::ErrorKind::ConnectionReset => "connection reset by the server".into(),
        io::ErrorKind::BrokenPipe => "the server closed the connection".into(),
        _ => {
            let s = e.to_string();
            match s.find(" (os error") {
                Some(i) => s[..i].to_string(),
                None => s,
            }
        }
    }
}

fn hint(e: &io::Error) -> &'static str {
    match e.kind() {
        io::ErrorKind::ConnectionRefused => " — is upcased running?",
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => {
            " — is the address right, and is upcased running there? (--timeout waits longer)"
        }
        _ => "",
    }
}

/// Resolves `target` (`HOST:PORT`, `[V6]:PORT`, or a bare host or IP for port 2277) to
/// every address it names.
pub fn resolve(target: &str) -> Result<Vec<SocketAddr>, ClientError> {
    let err = |source| ClientError::Resolve {
        addr: target.to_string(),
        source,
    };
    let addrs: Vec<SocketAddr> = if let Ok(ip) = target.parse::<IpAddr>() {
        vec![SocketAddr::new(ip, DEFAULT_PORT)]
    } else if !target.contains(':') {
        (target, DEFAULT_PORT)
            .to_socket_addrs()
            .map_err(err)?
            .collect()
    } else {
        target.to_socket_addrs().map_err(err)?.collect()
    };
    if addrs.is_empty() {
        return Err(err(io::Error::new(
            io::ErrorKind::NotFound,
            "no addresses found",
        )));
    }
    Ok(addrs)
}

/// Connects to the first address of `target` that accepts, each attempt bounded by
/// `timeout`. `TCP_NODELAY` is set, since every message is a small write that wants its
/// reply at once.
pub fn connect(target: &str, timeout: Duration) -> Result<TcpStream, ClientError> {
    let mut last = None;
    for addr in resolve(target)? {
        match TcpStream::connect_timeout(&addr, timeout) {
            Ok(s) => {
                let _ = s.set_nodelay(true);
                return Ok(s);
            }
            Err(e) => last = Some(e),
        }
    }
    Err(ClientError::Connect {
        addr: target.to_string(),
        source: last.unwrap_or_else(|| io::Error::other("no address to try")),
    })
}

/// Sends one message and copies the reply to `out`: everything up to and including as
/// many LFs as the message holds (one, for a message that ends in LF), or up to EOF.
///
/// Returns the reply. Fails with [`ClientError::Timeout`] when no byte arrives for
/// `timeout`, and with [`ClientError::Closed`] when the server closes without replying.
pub fn send(
    stream: &mut TcpStream,
    message: &[u8],
    timeout: Duration,
) -> Result<Vec<u8>, ClientError> {
    let addr = peer(stream);
    let io_err = |source: io::Error| classify(addr, timeout, source);
    stream.write_all(message).map_err(io_err)?;
    let want_lf = message.iter().filter(|&&b| b == b'\n').count();
    stream.set_read_timeout(Some(timeout)).map_err(io_err)?;
    let mut reply = Vec::with_capacity(message.len());
    let mut buf = [0u8; 16 * 1024];
    let mut seen_lf = 0;
    loop {
        if want_lf > 0 && seen_lf >= want_lf {
            return Ok(reply);
        }
        let n = match stream.read(&mut buf) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(io_err(e)),
        };
        if n == 0 {
            return if reply.is_empty() {
                Err(ClientError::Closed { addr })
            } else {
                Ok(reply)
            };
        }
        seen_lf += buf[..n].iter().filter(|&&b| b == b'\n').count();
        reply.extend_from_slice(&buf[..n]);
    }
}

/// The peer address of a connected stream, or the unspecified address if it is gone.
fn peer(stream: &TcpStream) -> SocketAddr {
    stream
        .peer_addr()
        .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)))
}

/// Turns an I/O error on the connection into the error a user should see.
fn classify(addr: SocketAddr, timeout: Duration, source: io::Error) -> ClientError {
    match source.kind() {
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => ClientError::Timeout {
            addr,
            after: timeout,
        },
        _ => ClientError::Io { addr, source },
    }
}
