//! The checker's side of the wire: connections that send bytes, wait for exactly the
//! bytes the reference transform predicts, and turn whatever goes wrong into a
//! [`Failure`] that says what was sent, expected and got.
//!
//! Every wait is bounded by the case's deadline. A reply is compared as it arrives, so a
//! wrong byte fails the case at once instead of after the deadline.
//!
//! Under `--tls` each connection shakes hands first (within the case's deadline) and the
//! cases run unchanged on the TLS stream: a half-close is `close_notify` and FIN, and the
//! server's end of the stream must be its `close_notify` (a bare FIN could be a truncation,
//! and is reported as the error it is).

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::{timeout_at, Instant};

use super::report::{first_difference, Detail};
use crate::transform::Mode;

/// Bytes read from the server at a time.
const READ_BUFFER: usize = 64 * 1024;

/// Why a case failed: one short line, and the bytes when they tell the story.
#[derive(Debug, Clone)]
pub struct Failure {
    /// One line, e.g. "no reply within 5s".
    pub reason: String,
    /// What was sent, expected and got in the step that failed.
    pub detail: Option<Box<Detail>>,
    /// The flaw the failure itself shows, when it does ("the server upper-cases ASCII
    /// only"): it overrides the diagnosis as the case's hint.
    pub cause: Option<&'static str>,
}

impl Failure {
    /// A failure that bytes would not explain.
    pub fn new(reason: impl Into<String>) -> Failure {
        Failure {
            reason: reason.into(),
            detail: None,
            cause: None,
        }
    }

    /// A failure of a step that sent `sent`, expected `expected` and got `got`.
    pub fn with_bytes(
        reason: impl Into<String>,
        sent: &[u8],
        expected: &[u8],
        got: &[u8],
    ) -> Failure {
        Failure {
            reason: reason.into(),
            detail: Some(Box::new(Detail::new(sent, expected, got))),
            cause: None,
        }
    }

    /// Names the flaw this failure shows (see [`Failure::cause`]).
    pub fn because(mut self, cause: Option<&'static str>) -> Failure {
        self.cause = cause;
        self
    }

    /// Puts `context` (say, "second client: ") in front of the reason.
    pub fn context(mut self, context: impl std::fmt::Display) -> Failure {
        self.reason = format!("{context}{}", self.reason);
        self
    }
}

/// What a case needs to know: where the server is, how to compute expectations, and when
/// the case must be over.
#[derive(Debug, Clone)]
pub struct Ctx {
    /// The server's address.
    pub addr: SocketAddr,
    /// `--tls`: the configuration and server name each connection shakes hands with.
    pub tls: Option<crate::client::TlsClient>,
    /// The transform the expectations are computed with.
    pub mode: Mode,
    /// When the case fails if it has not finished.
    pub deadline: Instant,
    /// The whole case's time limit, for messages.
    pub timeout: Duration,
}

impl Ctx {
    /// What the server should send back for `sent`, by the reference transform.
    pub fn expect(&self, sent: &[u8]) -> Vec<u8> {
        crate::transform::upcase(sent, self.mode)
    }

    /// Opens a connection (and shakes hands, under `--tls`), bounded by the deadline.
    pub async fn connect(&self) -> Result<Conn, Failure> {
        match timeout_at(self.deadline, TcpStream::connect(self.addr)).await {
            Ok(Ok(stream)) => {
                let _ = stream.set_nodelay(true);
                let stream = match &self.tls {
                    None => Stream::Plain(stream),
                    Some(tls) => Stream::Tls(Box::new(self.handshake(tls, stream).await?)),
                };
                Ok(Conn {
                    stream,
                    inbox: Vec::new(),
                    eof: false,
                    ctx: self.clone(),
                })
            }
            Ok(Err(e)) => Err(Failure::new(format!(
                "could not connect: {}{}",
                describe(&e),
                if e.kind() == io::ErrorKind::ConnectionRefused {
                    " (has the server exited?)"
                } else {
                    ""
                }
            ))),
            Err(_) => Err(Failure::new(format!(
                "could not connect within {} (is the server still accepting?)",
                self.timeout_text()
            ))),
        }
    }

    /// The TLS handshake on a new connection, within what is left of the deadline.
    async fn handshake(
        &self,
        tls: &crate::client::TlsClient,
        tcp: TcpStream,
    ) -> Result<tokio_rustls::client::TlsStream<TcpStream>, Failure> {
        let left = self.deadline.saturating_duration_since(Instant::now());
        crate::tls::connect(tcp, tls.config(), tls.name().clone(), left)
            .await
            .map_err(|e| Failure::new(e.to_string()))
    }

    /// The time limit as a user writes it.
    pub fn timeout_text(&self) -> String {
        humantime::format_duration(self.timeout).to_string()
    }
}

/// How a wait for bytes ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Filled {
    /// The bytes wanted are in.
    Yes,
    /// The server closed its side first.
    Eof,
    /// The time ran out first.
    TimedOut,
}

/// A connection to the server under test: plain TCP, or TLS on it (`--tls`).
#[derive(Debug)]
enum Stream {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

impl Stream {
    /// The socket underneath.
    fn tcp(&self) -> &TcpStream {
        match self {
            Stream::Plain(s) => s,
            Stream::Tls(s) => s.get_ref().0,
        }
    }
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
}

/// One connection to the server under test, with the bytes received and not yet matched.
#[derive(Debug)]
pub struct Conn {
    stream: Stream,
    /// Received, not yet matched against an expectation.
    inbox: Vec<u8>,
    /// The server has closed its sending side.
    eof: bool,
    ctx: Ctx,
}

impl Conn {
    /// Sends all of `bytes` (over TLS, every record of them: rustls holds what the socket
    /// did not take until flushed).
    pub async fn send(&mut self, bytes: &[u8]) -> Result<(), Failure> {
        let stream = &mut self.stream;
        let write = async {
            stream.write_all(bytes).await?;
            stream.flush().await
        };
        match timeout_at(self.ctx.deadline, write).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(Failure::new(format!(
                "sending failed: {} (the server closed the connection)",
                describe(&e)
            ))),
            Err(_) => Err(Failure::new(format!(
                "sending blocked for {}: the server stopped reading",
                self.ctx.timeout_text()
            ))),
        }
    }

    /// Half-closes: the server reads EOF and owes the rest of its reply, then its FIN.
    pub async fn half_close(&mut self) -> Result<(), Failure> {
        self.stream
            .shutdown()
            .await
            .map_err(|e| Failure::new(format!("half-closing failed: {}", describe(&e))))
    }

    /// Reads until the inbox holds `want` bytes, the server closes, or `until`.
    pub async fn fill(&mut self, want: usize, until: Instant) -> io::Result<Filled> {
        let mut buf = vec![0u8; READ_BUFFER];
        while self.inbox.len() < want {
            if self.eof {
                return Ok(Filled::Eof);
            }
            match timeout_at(until, self.stream.read(&mut buf)).await {
                Ok(Ok(0)) => self.eof = true,
                Ok(Ok(n)) => self.inbox.extend_from_slice(&buf[..n]),
                Ok(Err(e)) => return Err(e),
                Err(_) => return Ok(Filled::TimedOut),
            }
        }
        Ok(Filled::Yes)
    }

    /// Waits for exactly `expected` (the reply to `sent`) and consumes it. Fails at the
    /// first wrong byte, at EOF or an error before the reply is complete, or at the deadline.
    pub async fn expect(&mut self, sent: &[u8], expected: &[u8]) -> Result<(), Failure> {
        let mut buf = vec![0u8; READ_BUFFER];
        loop {
            let have = self.inbox.len().min(expected.len());
            if self.inbox[..have] != expected[..have] {
                let at = first_difference(expected, &self.inbox);
                let (note, cause) = self.hint(sent, expected);
                return Err(self
                    .fail(
                        format!("reply differs from byte {at}{note}"),
                        sent,
                        expected,
                    )
                    .because(cause));
            }
            if have == expected.len() {
                self.inbox.drain(..expected.len());
                return Ok(());
            }
            if self.eof {
                return Err(self.fail(self.closed_after(expected), sent, expected));
            }
            match timeout_at(self.ctx.deadline, self.stream.read(&mut buf)).await {
                Ok(Ok(0)) => self.eof = true,
                Ok(Ok(n)) => self.inbox.extend_from_slice(&buf[..n]),
                Ok(Err(e)) => {
                    let reason = format!(
                        "{} after {} of {} bytes of the reply",
                        describe(&e),
                        self.inbox.len(),
                        expected.len()
                    );
                    return Err(self.fail(reason, sent, expected));
                }
                Err(_) => {
                    let reason = if self.inbox.is_empty() {
                        format!("no reply within {}", self.ctx.timeout_text())
                    } else {
                        format!(
                            "reply stopped after {} of {} bytes (waited {})",
                            self.inbox.len(),
                            expected.len(),
                            self.ctx.timeout_text()
                        )
                    };
                    return Err(self.fail(reason, sent, expected));
                }
            }
        }
    }

    /// After a half-close and the whole reply: the server must close its side, with no
    /// more bytes.
    pub async fn expect_eof(&mut self, sent: &[u8], expected: &[u8]) -> Result<(), Failure> {
        let extra = |conn: &Conn| {
            let mut got = expected.to_vec();
            got.extend_from_slice(&conn.inbox);
            Failure::with_bytes(
                format!("{} unexpected bytes after the reply", conn.inbox.len()),
                sent,
                expected,
                &got,
            )
        };
        match self.fill(1, self.ctx.deadline).await {
            Ok(Filled::Eof) if self.inbox.is_empty() => Ok(()),
            Ok(Filled::Yes | Filled::Eof) => Err(extra(self)),
            Ok(Filled::TimedOut) => Err(Failure::new(format!(
                "the reply came, but the server did not close the connection within {} \
                 after the client half-closed",
                self.ctx.timeout_text()
            ))),
            // A reset once everything has arrived loses nothing: the close is what counts.
            Err(e) if e.kind() == io::ErrorKind::ConnectionReset => Ok(()),
            Err(e) => Err(Failure::new(format!(
                "waiting for the server to close: {}",
                describe(&e)
            ))),
        }
    }

    /// Sends `parts` as separate writes, so that the server reads a character in two
    /// pieces, then waits for the reply to all of them.
    ///
    /// After each part but the last it waits (at most `echo_wait`) for the bytes a
    /// streaming server sends back for what is complete so far: that proves the server
    /// has read the part before the next one arrives, with no guessing at sleep lengths.
    /// A server that waits for a newline sends nothing back early; for it the remaining
    /// parts go out without waiting.
    pub async fn send_split(
        &mut self,
        parts: &[&[u8]],
        echo_wait: Duration,
    ) -> Result<(), Failure> {
        let sent: Vec<u8> = parts.concat();
        let expected = self.ctx.expect(&sent);
        let mut up = crate::transform::Upcaser::new(self.ctx.mode);
        let mut echo = Vec::new();
        let mut streaming = true;
        for (i, part) in parts.iter().enumerate() {
            self.send(part)
                .await
                .map_err(|f| f.context(format!("part {} of {}: ", i + 1, parts.len())))?;
            up.push(part, &mut echo);
            if !streaming || i + 1 == parts.len() {
                continue;
            }
            let until = self.ctx.deadline.min(Instant::now() + echo_wait);
            match self.fill(echo.len(), until).await {
                Ok(Filled::Yes) => {}
                Ok(Filled::TimedOut) => streaming = false,
                Ok(Filled::Eof) => {
                    let reason = format!(
                        "the server closed the connection after part {} of {}",
                        i + 1,
                        parts.len()
                    );
                    return Err(self.fail(reason, &sent, &expected));
                }
                Err(e) => {
                    let reason =
                        format!("{} after part {} of {}", describe(&e), i + 1, parts.len());
                    return Err(self.fail(reason, &sent, &expected));
                }
            }
        }
        self.expect(&sent, &expected).await
    }

    /// Sends `sent` while reading the reply, as a client of a large message must: a server
    /// that writes back as it reads stops reading when nobody reads its replies.
    pub async fn exchange_large(&mut self, sent: &[u8], chunk: usize) -> Result<(), Failure> {
        let expected = self.ctx.expect(sent);
        let mut got = Vec::with_capacity(expected.len());
        let mut write_error = None;
        let deadline = self.ctx.deadline;
        let outcome = {
            // One task polls both halves in turn, so the split's lock is never contended.
            let (mut rd, mut wr) = tokio::io::split(&mut self.stream);
            let writer = async {
                for piece in sent.chunks(chunk) {
                    wr.write_all(piece).await?;
                }
                wr.flush().await
            };
            let got = &mut got;
            let reader = async {
                let mut buf = vec![0u8; READ_BUFFER];
                loop {
                    if got.len() >= expected.len() {
                        return Ok(LargeEnd::Complete);
                    }
                    let n = rd.read(&mut buf).await?;
                    if n == 0 {
                        return Ok(LargeEnd::Eof);
                    }
                    let start = got.len();
                    got.extend_from_slice(&buf[..n]);
                    let end = got.len().min(expected.len());
                    if got[start..end] != expected[start..end] || got.len() > expected.len() {
                        return Ok(LargeEnd::Wrong);
                    }
                }
            };
            tokio::pin!(writer, reader);
            let both = async {
                let mut writing = true;
                loop {
                    tokio::select! {
                        w = &mut writer, if writing => {
                            writing = false;
                            if let Err(e) = w {
                                write_error = Some(e);
                            }
                        }
                        r = &mut reader => break r,
                    }
                }
            };
            timeout_at(deadline, both).await
        };
        let total = expected.len();
        let reason = match outcome {
            Ok(Ok(LargeEnd::Complete)) => return Ok(()),
            Ok(Ok(LargeEnd::Wrong)) => {
                let at = first_difference(&expected, &got);
                format!("reply differs from byte {at} of {total}: bytes were lost or changed")
            }
            Ok(Ok(LargeEnd::Eof)) => format!(
                "the server closed the connection after {} of {total} bytes of the reply{}",
                got.len(),
                sent_note(&write_error)
            ),
            Ok(Err(e)) => format!(
                "{} after {} of {total} bytes of the reply{}",
                describe(&e),
                got.len(),
                sent_note(&write_error)
            ),
            Err(_) => format!(
                "reply stopped after {} of {total} bytes (waited {})",
                got.len(),
                self.ctx.timeout_text()
            ),
        };
        Err(Failure::with_bytes(reason, sent, &expected, &got))
    }

    /// Makes the socket send a reset instead of FIN when closed: a client that vanishes.
    pub fn set_reset_on_close(&self) {
        let _ = socket2::SockRef::from(self.stream.tcp()).set_linger(Some(Duration::ZERO));
    }

    fn fail(&self, reason: String, sent: &[u8], expected: &[u8]) -> Failure {
        Failure::with_bytes(reason, sent, expected, &self.inbox)
    }

    fn closed_after(&self, expected: &[u8]) -> String {
        if self.inbox.is_empty() {
            "the server closed the connection without replying".to_string()
        } else {
            format!(
                "the server closed the connection after {} of {} bytes of the reply",
                self.inbox.len(),
                expected.len()
            )
        }
    }

    /// A note for the reason, and the flaw, when a wrong reply is what a common mistake
    /// would give.
    fn hint(&self, sent: &[u8], expected: &[u8]) -> (&'static str, Option<&'static str>) {
        let got = &self.inbox;
        let prefix = |v: &[u8]| {
            let n = got.len().min(v.len());
            n > 0 && v[..n] == got[..n]
        };
        // Whether a one-to-one mapper (`towupper`) would change a non-ASCII letter here:
        // only then does an ASCII-only reply show an ASCII-only server.
        let simple_changes = String::from_utf8_lossy(sent).chars().any(|c| {
            let mut up = c.to_uppercase();
            !c.is_ascii() && matches!((up.next(), up.next()), (Some(u), None) if u != c)
        });
        if self.ctx.mode == Mode::Unicode && prefix(&crate::transform::upcase(sent, Mode::Ascii)) {
            if simple_changes {
                (
                    " (only ASCII letters were upper-cased)",
                    Some("the server upper-cases ASCII only"),
                )
            } else {
                (
                    " (letters whose upper case is longer, like ß → SS, were left as they were)",
                    None,
                )
            }
        } else if prefix(sent) && !prefix(expected) {
            (
                " (sent back unchanged)",
                Some("the server sends the bytes back without upper-casing them"),
            )
        } else if got.windows(3).any(|w| w == "\u{FFFD}".as_bytes())
            && !expected.windows(3).any(|w| w == "\u{FFFD}".as_bytes())
        {
            (
                " (bytes were replaced by U+FFFD)",
                Some("the server decodes each read on its own and replaces bytes with U+FFFD"),
            )
        } else {
            ("", None)
        }
    }
}

/// How the reading half of a large exchange ended.
enum LargeEnd {
    Complete,
    Wrong,
    Eof,
}

fn sent_note(write_error: &Option<io::Error>) -> String {
    match write_error {
        Some(e) => format!(", and refused the rest of the message ({})", describe(e)),
        None => String::new(),
    }
}

/// An I/O error in a user's words, without the "(os error N)" suffix.
pub fn describe(e: &io::Error) -> String {
    match e.kind() {
        io::ErrorKind::ConnectionRefused => "connection refused".into(),
        io::ErrorKind::ConnectionReset => "connection reset by the server".into(),
        io::ErrorKind::BrokenPipe => "the server closed the connection".into(),
        io::ErrorKind::TimedOut => "timed out".into(),
        // Only a TLS stream reads this: a FIN where `close_notify` should have been.
        io::ErrorKind::UnexpectedEof => {
            "the server closed the TLS connection without close_notify".into()
        }
        _ => {
            let s = e.to_string();
            match s.find(" (os error") {
                Some(i) => s[..i].to_string(),
                None => s,
            }
        }
    }
}
