//! `upcase`: connecting to a capitalisation server and talking to it.
//!
//! Four ways to talk, each generic over its input and output so that tests need no
//! terminal:
//!
//! - [`pipe`]: a full-duplex, binary-safe stream from a reader through the server to a
//!   writer, as `nc` does it;
//! - [`send`]: one message, one reply;
//! - [`interactive`]: a line-by-line session that reconnects when the server has closed an
//!   idle connection, and whose wait for a reply Ctrl-C cancels ([`interrupt`]);
//! - over UDP, [`UdpClient`] with [`pipe_udp`] and [`interactive_udp`]: one datagram per
//!   message.
//!
//! Over TLS (`--tls`, [`TlsClient`]), `send`, the session and the banner ([`read_banner`])
//! are the same code on a TLS stream: each is generic over a [`Connection`], a socket or
//! TLS on one. Pipe mode over TLS is [`pipe_tls`], on a runtime of its own, since a TLS
//! connection cannot be split into a socket per direction.
//!
//! Every address goes through [`crate::units::parse_host_port`], the rule `upcased` uses
//! for `--listen`, and every connection through [`connect_each`] (or its async twin
//! [`connect_each_async`], which `upcase bench` uses), so that all of them try the same
//! addresses and report the same error.
//!
//! The client uses plain blocking sockets and at most two threads: there is one
//! connection, and blocking I/O with large buffers is as fast as it gets for that. (Pipe
//! mode over TLS is the exception: one current-thread runtime, both directions in it.)

mod banner;
mod connection;
pub mod history;
mod interactive;
pub mod interrupt;
mod pipe;
mod tls;
mod udp;

use std::future::Future;
use std::io;
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

pub use banner::{read_banner, MAX_BANNER_LINE};
pub use connection::Connection;
pub use interactive::{interactive, interactive_session, Editor, LineSource, Session};
pub use pipe::{pipe, PipeStats};
pub use tls::{pipe_tls, TlsClient, TlsOptions};
pub use udp::{interactive_udp, pipe_udp, UdpClient};

use crate::limits::MAX_REPLY;
use crate::transform::MAX_EXPANSION;
use crate::units::{human_size, parse_host_port};

/// How often a wait for the server wakes up to look at the Ctrl-C flag. A tenth of a
/// second feels immediate to a person and costs nothing.
const CANCEL_TICK: Duration = Duration::from_millis(100);

/// Bytes of a partial reply quoted in an error message: enough to recognise it.
const QUOTED: usize = 60;

/// What can go wrong talking to a server. Each variant names the address, so the
/// binaries can print it as one line.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The address is not one [`parse_host_port`] accepts (a bare port, an unbracketed
    /// IPv6 address with a port); the reason carries the hint.
    #[error("{reason}")]
    BadAddress {
        /// Why, with the form to write instead.
        reason: String,
    },
    /// The address could not be resolved.
    #[error("cannot resolve {addr}: {}", describe(source))]
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
    /// The server did not answer in time. `got` holds what had arrived of the reply.
    #[error("no reply from {addr} within {}{}", humantime::format_duration(*after), partial(got))]
    Timeout {
        /// The server's address.
        addr: SocketAddr,
        /// How long the client waited.
        after: Duration,
        /// The part of the reply that did arrive (empty if none did).
        got: Vec<u8>,
    },
    /// The server stopped taking input: a write made no progress for the whole timeout.
    #[error("{addr} took no input for {}: the server is not reading (is it stalled?)", humantime::format_duration(*after))]
    NotReading {
        /// The server's address.
        addr: SocketAddr,
        /// How long the client waited.
        after: Duration,
    },
    /// Pipe mode: the input has ended, and the server has not finished the reply and
    /// closed within the timeout.
    #[error("{addr} did not finish the reply within {} after the end of input", humantime::format_duration(*after))]
    Unfinished {
        /// The server's address.
        addr: SocketAddr,
        /// How long the client waited.
        after: Duration,
    },
    /// `--banner`: no whole banner line arrived in time. `got` holds what did.
    #[error("no banner line from {addr} within {}{}: is the server running with --banner?", humantime::format_duration(*after), partial(got))]
    NoBanner {
        /// The server's address.
        addr: SocketAddr,
        /// How long the client waited.
        after: Duration,
        /// The part of the line that did arrive.
        got: Vec<u8>,
    },
    /// `--banner`: the first line is longer than any banner `upcased` sends.
    #[error("{addr} sent a first line of more than {max} bytes: not a banner")]
    BannerTooLong {
        /// The server's address.
        addr: SocketAddr,
        /// The longest banner line read.
        max: usize,
    },
    /// The server closed the connection without a byte of reply. Right after accepting,
    /// that is what `upcased` does at its connection limit; and what a TLS port does with
    /// a client that speaks plain text to it.
    #[error("{addr} closed the connection and answered nothing; the server may be at its connection limit (upcased --max-connections){}", if *tls { "" } else { ", or speak TLS on that port (try --tls)" })]
    Closed {
        /// The server's address.
        addr: SocketAddr,
        /// Whether the connection was TLS (then the port does speak TLS).
        tls: bool,
    },
    /// The server closed the connection in the middle of the reply.
    #[error("{addr} closed the connection early: {}", short(got, *want_lines))]
    ClosedEarly {
        /// The server's address.
        addr: SocketAddr,
        /// What arrived before the close.
        got: Vec<u8>,
        /// The lines the reply should have held.
        want_lines: usize,
    },
    /// Pipe mode: the server closed with less of the reply than the input asked for.
    #[error("{addr} closed the connection early: {}", if received_lf < sent_lf {
        format!("the reply has {received_lf} of the input's {sent_lf} line(s); the rest is missing")
    } else {
        "the reply to the input's last line (the bytes after its last LF) is missing".to_string()
    })]
    ShortReply {
        /// The server's address.
        addr: SocketAddr,
        /// LFs sent.
        sent_lf: u64,
        /// LFs received.
        received_lf: u64,
    },
    /// The server closed the connection before the client had sent all its input.
    #[error(
        "{addr} closed the connection before all input was sent; replies to the rest are missing"
    )]
    InputRefused {
        /// The server's address.
        addr: SocketAddr,
    },
    /// The reply grew past the bound on what `send` holds without ending its line.
    #[error("{addr} sent more than {} without ending the reply line; giving up (is it an upcase server?)", human_size(*limit as u64))]
    ReplyTooLong {
        /// The server's address.
        addr: SocketAddr,
        /// The bound that was reached.
        limit: usize,
    },
    /// The user pressed Ctrl-C while waiting for the reply.
    #[error("cancelled")]
    Cancelled,
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
    /// A datagram whose upper-case is longer than itself: `upcased` never answers one
    /// (its no-amplification rule), so the client does not send it.
    #[error("not sent: its upper-case is {reply} bytes, longer than the {len} it has, and upcased never answers a datagram with more bytes than it brought (no amplification); use TCP for this line")]
    WouldAmplify {
        /// The message's length.
        len: usize,
        /// The length of its upper-case.
        reply: usize,
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

/// Bytes as a user reads them in an error: quoted, escaped, cut after [`QUOTED`] bytes.
fn quote(b: &[u8]) -> String {
    let cut = &b[..b.len().min(QUOTED)];
    let more = if b.len() > QUOTED { "…" } else { "" };
    format!("{:?}{more}", String::from_utf8_lossy(cut))
}

/// The tail of a timeout message: what arrived of the reply, if anything.
fn partial(got: &[u8]) -> String {
    if got.is_empty() {
        String::new()
    } else {
        format!(
            "; got {} byte{} without LF: {}",
            got.len(),
            if got.len() == 1 { "" } else { "s" },
            quote(got)
        )
    }
}

/// What an early close left of the reply.
fn short(got: &[u8], want_lines: usize) -> String {
    let lines = got.iter().filter(|&&b| b == b'\n').count();
    if want_lines > 1 {
        format!(
            "{lines} of {want_lines} reply lines arrived, then {} more byte(s): {}",
            got.len() - got.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1),
            quote(got)
        )
    } else {
        format!(
            "the reply stopped after {} byte(s): {}",
            got.len(),
            quote(got)
        )
    }
}

/// Resolves `target`, written as [`parse_host_port`] reads it (`HOST:PORT`, `[V6]:PORT`,
/// or a host alone for port 2277), to every address it names.
pub fn resolve(target: &str) -> Result<Vec<SocketAddr>, ClientError> {
    let hp = parse_host_port(target).map_err(|reason| ClientError::BadAddress { reason })?;
    let err = |source| ClientError::Resolve {
        addr: target.trim().to_string(),
        source,
    };
    let addrs = hp.resolve().map_err(err)?;
    if addrs.is_empty() {
        return Err(err(io::Error::new(
            io::ErrorKind::NotFound,
            "no addresses found",
        )));
    }
    Ok(addrs)
}

/// A clap value parser for a server address: [`parse_host_port`]'s rule, the address
/// kept as the user wrote it (names are resolved when connecting).
pub fn parse_target(s: &str) -> Result<String, String> {
    parse_host_port(s).map(|_| s.trim().to_string())
}

/// Tries `attempt` on every address `target` resolves to, in order, and returns the first
/// success; if all fail, the error names `target` and says why the last one failed.
pub fn connect_each<T>(
    target: &str,
    mut attempt: impl FnMut(SocketAddr) -> io::Result<T>,
) -> Result<T, ClientError> {
    let mut last = None;
    for addr in resolve(target)? {
        match attempt(addr) {
            Ok(s) => return Ok(s),
            Err(e) => last = Some(e),
        }
    }
    Err(connect_failed(target, last))
}

/// [`connect_each`] for an async attempt (`upcase bench`'s connections).
pub async fn connect_each_async<T, F, Fut>(target: &str, mut attempt: F) -> Result<T, ClientError>
where
    F: FnMut(SocketAddr) -> Fut,
    Fut: Future<Output = io::Result<T>>,
{
    let mut last = None;
    for addr in resolve(target)? {
        match attempt(addr).await {
            Ok(s) => return Ok(s),
            Err(e) => last = Some(e),
        }
    }
    Err(connect_failed(target, last))
}

fn connect_failed(target: &str, last: Option<io::Error>) -> ClientError {
    ClientError::Connect {
        addr: target.trim().to_string(),
        source: last.unwrap_or_else(|| io::Error::other("no address to try")),
    }
}

/// Connects to the first address of `target` that accepts, each attempt bounded by
/// `timeout`. `TCP_NODELAY` is set, since every message is a small write that wants its
/// reply at once.
pub fn connect(target: &str, timeout: Duration) -> Result<TcpStream, ClientError> {
    connect_each(target, |addr| {
        let s = TcpStream::connect_timeout(&addr, timeout)?;
        let _ = s.set_nodelay(true);
        Ok(s)
    })
}

/// A reply to [`send`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// The reply: as many lines as the message had, each with its LF.
    pub line: Vec<u8>,
    /// Bytes that came after the reply in the same read, and were dropped. A conforming
    /// server sends none.
    pub extra: usize,
}

/// Sends one message and reads its reply: as many lines as the message holds (one, for
/// a message that ends in LF), or for a message without LF everything up to EOF (over TLS,
/// up to the server's `close_notify`).
///
/// `timeout` bounds the whole exchange, sending included: a server that trickles bytes
/// cannot stretch it. The reply held is bounded by [`MAX_REPLY`] (or three times the
/// message, if that is more: no correct reply is longer). Fails with
/// [`ClientError::Timeout`] (saying what arrived), [`ClientError::Closed`] when the server
/// closes without a byte of reply, [`ClientError::ClosedEarly`] when it closes in the
/// middle (over TLS, [`ClientError::Truncated`] when a reply read to the close ends without
/// `close_notify`), and [`ClientError::ReplyTooLong`].
pub fn send<C: Connection + ?Sized>(
    stream: &mut C,
    message: &[u8],
    timeout: Duration,
) -> Result<Reply, ClientError> {
    send_cancellable(stream, message, timeout, &AtomicBool::new(false))
}

/// [`send`], giving up with [`ClientError::Cancelled`] soon after `cancel` becomes true
/// (Ctrl-C in an interactive session).
pub fn send_cancellable<C: Connection + ?Sized>(
    stream: &mut C,
    message: &[u8],
    timeout: Duration,
    cancel: &AtomicBool,
) -> Result<Reply, ClientError> {
    let addr = peer(stream.socket());
    let tls = stream.tls_version().is_some();
    let io = |source: io::Error| ClientError::Io { addr, source };
    let deadline = Deadline::after(timeout);
    let mut reply = Vec::with_capacity(message.len());
    // Waits one tick at most, so that Ctrl-C and the deadline are looked at in time.
    let tick = |sock: &TcpStream, reply: &Vec<u8>, write: bool| -> Result<(), ClientError> {
        if cancel.load(Ordering::Relaxed) {
            return Err(ClientError::Cancelled);
        }
        let left = deadline.left().ok_or_else(|| {
            if write {
                ClientError::NotReading {
                    addr,
                    after: timeout,
                }
            } else {
                ClientError::Timeout {
                    addr,
                    after: timeout,
                    got: reply.clone(),
                }
            }
        })?;
        let t = Some(left.min(CANCEL_TICK));
        if write {
            sock.set_write_timeout(t).map_err(io)
        } else {
            sock.set_read_timeout(t).map_err(io)
        }
    };
    let write_failed = |e: io::Error| match e.kind() {
        io::ErrorKind::BrokenPipe => ClientError::Closed { addr, tls },
        _ => io(e),
    };

    let mut sent = 0;
    while sent < message.len() {
        tick(stream.socket(), &reply, true)?;
        match stream.write(&message[sent..]) {
            Ok(0) => return Err(ClientError::InputRefused { addr }),
            Ok(n) => sent += n,
            Err(e) if is_wait(&e) => {}
            Err(e) => return Err(write_failed(e)),
        }
    }
    // Over TLS the message may still sit encrypted in rustls's buffer; on a socket this
    // does nothing.
    loop {
        tick(stream.socket(), &reply, true)?;
        match stream.flush() {
            Ok(()) => break,
            Err(e) if is_wait(&e) => {}
            Err(e) => return Err(write_failed(e)),
        }
    }

    let want_lf = message.iter().filter(|&&b| b == b'\n').count();
    let limit = MAX_REPLY.max(message.len().saturating_mul(MAX_EXPANSION));
    let mut buf = vec![0u8; 64 * 1024];
    let mut seen_lf = 0;
    loop {
        tick(stream.socket(), &reply, false)?;
        let room = (limit + 1 - reply.len()).min(buf.len());
        let n = match stream.read(&mut buf[..room]) {
            Ok(n) => n,
            Err(e) if is_wait(&e) => continue,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe
                ) && reply.is_empty() =>
            {
                return Err(ClientError::Closed { addr, tls })
            }
            // TLS: the server closed without close_notify.
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                return Err(match (reply.is_empty(), want_lf) {
                    (true, _) => ClientError::Closed { addr, tls },
                    // Read to the close: nothing tells its end from a cut.
                    (false, 0) => ClientError::Truncated { addr },
                    (false, _) => ClientError::ClosedEarly {
                        addr,
                        got: reply,
                        want_lines: want_lf,
                    },
                });
            }
            Err(e) => return Err(io(e)),
        };
        if n == 0 {
            return match (reply.is_empty(), want_lf) {
                (true, _) => Err(ClientError::Closed { addr, tls }),
                // No LF asked for: the reply is everything up to EOF.
                (false, 0) => Ok(Reply {
                    line: reply,
                    extra: 0,
                }),
                (false, _) => Err(ClientError::ClosedEarly {
                    addr,
                    got: reply,
                    want_lines: want_lf,
                }),
            };
        }
        let chunk = &buf[..n];
        if want_lf > 0 {
            // Where, if in this chunk, the last wanted LF is.
            let mut end = None;
            for (i, _) in chunk.iter().enumerate().filter(|(_, &b)| b == b'\n') {
                seen_lf += 1;
                if seen_lf == want_lf {
                    end = Some(i + 1);
                    break;
                }
            }
            if let Some(end) = end {
                reply.extend_from_slice(&chunk[..end]);
                return Ok(Reply {
                    line: reply,
                    extra: n - end,
                });
            }
        }
        reply.extend_from_slice(chunk);
        if reply.len() > limit {
            return Err(ClientError::ReplyTooLong { addr, limit });
        }
    }
}

/// A read or write that timed out or was interrupted: look at the clock and go on.
fn is_wait(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut | io::ErrorKind::Interrupted
    )
}

/// A point in time `timeout` from now. Durations from flags are bounded
/// ([`crate::limits::MAX_DURATION`]), and an unrepresentable one means "never" here, so
/// computing it cannot panic.
#[derive(Debug, Clone, Copy)]
struct Deadline(Option<Instant>);

impl Deadline {
    fn after(timeout: Duration) -> Deadline {
        Deadline(Instant::now().checked_add(timeout))
    }

    /// Time left, or `None` once it has passed.
    fn left(&self) -> Option<Duration> {
        match self.0 {
            None => Some(Duration::MAX),
            Some(t) => t
                .checked_duration_since(Instant::now())
                .filter(|d| !d.is_zero()),
        }
    }
}

/// The peer address of a connected stream, or the unspecified address if it is gone.
fn peer(stream: &TcpStream) -> SocketAddr {
    stream
        .peer_addr()
        .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)))
}
