//! A server TLS connection in the shape the connection core's readiness driver drives: wait
//! for input without a buffer, read and write without waiting, flush, shut down.
//!
//! [`ServerTransport`]'s inherent methods have the signatures of the core's `Transport`
//! trait (`src/server/conn/transport.rs`), so that the implementation there is one line
//! per method. What TLS changes beneath them:
//!
//! - **Readiness** is "plaintext already decrypted, or the socket readable": rustls holds at
//!   most one record of plaintext, and the socket's readiness says nothing about it.
//! - **A read** yields plaintext, at most one record (16 KiB) at a time. A record that
//!   carries no application data (a session ticket, a key update) makes a read return
//!   `Pending`, as an empty socket does.
//! - **End of input** is the client's `close_notify`, or a bare FIN: both read as `Ok(0)`
//!   and the server answers what it owes, as over TCP. A bare FIN is remembered
//!   ([`ServerTransport::bare_fin`]) for the debug log: with TLS it could be a truncation
//!   attack, but what the server owes is the same.
//! - **A write** takes plaintext into rustls up to its buffer limit (64 KiB of records) and
//!   pushes records to the socket; `Pending` once the socket and that limit are full, so a
//!   client that does not read stops the server writing, as over TCP. **Flush** pushes out
//!   records still held; the driver flushes after each reply.
//! - **Shutdown** sends `close_notify`, then FIN.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use std::os::fd::AsFd;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use super::server::ServerStream;

/// The socket beneath a [`ServerTransport`]: a stream that can also say when it is readable
/// without being read. `upcased` uses a socket of its own here (one that reads past TCP's
/// urgent mark); tokio's `TcpStream` is one too.
pub trait Socket: AsyncRead + AsyncWrite + AsFd + Unpin {
    /// Resolves when a read may make progress.
    fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>>;
}

impl Socket for TcpStream {
    fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        TcpStream::poll_read_ready(self, cx)
    }
}

/// An established server-side TLS connection over TCP, for the readiness driver.
#[derive(Debug)]
pub struct ServerTransport<S = TcpStream> {
    stream: ServerStream<S>,
    bare_fin: bool,
}

impl<S: Socket> ServerTransport<S> {
    /// Wraps a stream whose handshake [`accept`](super::accept) finished.
    pub fn new(stream: ServerStream<S>) -> Self {
        ServerTransport {
            stream,
            bare_fin: false,
        }
    }

    /// The TCP socket underneath (for `peer_addr`, `set_linger`).
    pub fn tcp(&self) -> &S {
        self.stream.get_ref().0.get_ref()
    }

    /// The rustls connection (for [`session_info`](super::session_info), the SNI the client
    /// sent).
    pub fn tls(&self) -> &rustls::ServerConnection {
        self.stream.get_ref().1
    }

    /// Whether bytes read with a PROXY header are still waiting to reach rustls. The
    /// handshake takes them all in practice (a client sends nothing after its hello until
    /// the server answers), but readiness must not wait on the socket for bytes in hand.
    fn early_pending(&self) -> bool {
        self.stream.get_ref().0.early_pending()
    }

    /// Whether the input ended with a bare FIN rather than the client's `close_notify`.
    pub fn bare_fin(&self) -> bool {
        self.bare_fin
    }

    /// Resolves when a read may make progress: at once if rustls holds plaintext (or the
    /// client's `close_notify`), else when the socket is readable. Holds no buffer.
    pub fn poll_read_ready(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if !self.tls().wants_read() || self.early_pending() {
            return Poll::Ready(Ok(()));
        }
        self.tcp().poll_read_ready(cx)
    }

    /// Reads plaintext into `buf`; `Ok(0)` at the end of input (`close_notify` or FIN).
    pub fn poll_read(&mut self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        let mut rb = ReadBuf::new(buf);
        match Pin::new(&mut self.stream).poll_read(cx, &mut rb) {
            Poll::Ready(Ok(())) => Poll::Ready(Ok(rb.filled().len())),
            Poll::Ready(Err(e)) if e.kind() == io::ErrorKind::UnexpectedEof => {
                self.bare_fin = true;
                Poll::Ready(Ok(0))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => Poll::Pending,
        }
    }

    /// Writes some of `buf` as TLS records; `Pending` when neither rustls's buffer nor the
    /// socket takes more.
    pub fn poll_write(&mut self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    /// Pushes out every record rustls still holds.
    pub fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    /// Sends `close_notify` (once), flushes it, then shuts the socket's write side (FIN).
    pub fn poll_shutdown(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }

    /// Whether input is waiting that readiness may not have reported yet: plaintext rustls
    /// holds, or bytes (or FIN) in the socket, asked of the kernel without waiting.
    pub fn input_waiting(&self) -> io::Result<bool> {
        if !self.tls().wants_read() || self.early_pending() {
            return Ok(true);
        }
        crate::server::conn::peek_waiting(self.tcp())
    }
}
