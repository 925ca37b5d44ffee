//! The epoll driver's sockets: a listener that accepts without registering what it accepts,
//! and [`Tcp`], a TCP stream registered for urgent data (`EPOLLPRI`) as well as for reading
//! and writing.
//!
//! Why not tokio's `TcpStream`: its reads trust a short read to mean "nothing is left" and
//! clear the readiness, which saves one system call per message, and so do [`Tcp`]'s. But a
//! TCP read also stops short at the urgent mark (a byte sent with `MSG_OOB`), and when the
//! bytes after the urgent byte had already arrived with it, edge-triggered epoll reports no
//! new edge for them: the connection would stall until the client sent more. tokio
//! registers its streams for reading and writing only, so the reactor never learns of
//! urgent data. [`Tcp`] is registered through [`AsyncFd`] with [`Interest::PRIORITY`] too,
//! and a short read is trusted only when no urgent data was reported since the last one;
//! otherwise the driver reads once more. Without urgent data that costs nothing.
//!
//! TLS connections run over [`Tcp`] too (rustls reads from it through its `AsyncRead`), so an
//! urgent byte between two records does not stall them either. An urgent byte taken out of a
//! record leaves the record short, and what follows fails its authentication: the
//! connection closes with an alert, as for any corrupt record.

use std::io::{self, IoSlice, Read, Write};
use std::net::SocketAddr;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncRead, AsyncWrite, Interest, ReadBuf};

use super::conn::Transport;

/// A listening socket on the current runtime's reactor. What it accepts is not registered:
/// the caller makes a [`Tcp`] of it.
#[derive(Debug)]
pub(crate) struct Acceptor {
    fd: AsyncFd<mio::net::TcpListener>,
}

impl Acceptor {
    /// Registers `listener` (which must be non-blocking) with the current runtime.
    pub(crate) fn new(listener: std::net::TcpListener) -> io::Result<Acceptor> {
        let listener = mio::net::TcpListener::from_std(listener);
        // SAFETY: the descriptor is owned by `listener`, which moves into the `AsyncFd` and
        // is closed only when the `AsyncFd` drops, after it has deregistered; its
        // `as_raw_fd` always returns that one descriptor.
        let fd = unsafe { AsyncFd::register_with_interest(listener, Interest::READABLE) }
            .map_err(|e| e.into_parts().1)?;
        Ok(Acceptor { fd })
    }

    /// The address it listens on.
    pub(crate) fn local_addr(&self) -> io::Result<SocketAddr> {
        self.fd.get_ref().local_addr()
    }

    /// The next connection, non-blocking and close-on-exec (one `accept4`).
    pub(crate) async fn accept(&self) -> io::Result<(std::net::TcpStream, SocketAddr)> {
        loop {
            let mut guard = self.fd.readable().await?;
            if let Ok(r) = guard.try_io(|l| l.get_ref().accept()) {
                return r.map(|(s, peer)| (s.into(), peer));
            }
        }
    }
}

/// An accepted connection, registered with the reactor, and whether its listener serves TLS
/// (the handshake comes first) or plain text.
#[derive(Debug)]
pub(crate) enum Accepted {
    Plain(Tcp),
    Tls(Tcp),
}

impl Accepted {
    /// Registers a connection accepted on a listener with `tls` (or without).
    pub(crate) fn register(stream: std::net::TcpStream, tls: bool) -> io::Result<Accepted> {
        let tcp = Tcp::new(stream)?;
        Ok(if tls {
            Accepted::Tls(tcp)
        } else {
            Accepted::Plain(tcp)
        })
    }
}

/// A TCP connection as the readiness driver uses it (see the module doc): directly for plain
/// text, beneath rustls on a TLS listener.
#[derive(Debug)]
pub(crate) struct Tcp {
    fd: AsyncFd<std::net::TcpStream>,
}

impl Tcp {
    /// Registers `stream` (which must be non-blocking) with the current runtime for reading,
    /// writing and urgent data.
    pub(crate) fn new(stream: std::net::TcpStream) -> io::Result<Tcp> {
        let interest = Interest::READABLE | Interest::WRITABLE | Interest::PRIORITY;
        // SAFETY: the descriptor is owned by `stream`, which moves into the `AsyncFd` and is
        // closed only when the `AsyncFd` drops, after it has deregistered; its `as_raw_fd`
        // always returns that one descriptor.
        let fd = unsafe { AsyncFd::register_with_interest(stream, interest) }
            .map_err(|e| e.into_parts().1)?;
        Ok(Tcp { fd })
    }

    /// Whether the reactor reported urgent data (or the end of input) since this was last
    /// asked; asking clears the report. No system call: it reads the reactor's cached
    /// readiness.
    fn urgent_reported(&self) -> bool {
        let mut reported = false;
        // The closure runs only if the readiness has PRIORITY (or READ_CLOSED) set, and its
        // WouldBlock clears what it saw, as of before the call: a newer report is kept.
        let _ = self.fd.try_io(Interest::PRIORITY, |_| {
            reported = true;
            Err::<(), _>(io::ErrorKind::WouldBlock.into())
        });
        reported
    }
}

impl AsRawFd for Tcp {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

impl AsFd for Tcp {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.get_ref().as_fd()
    }
}

impl Transport for Tcp {
    #[inline]
    fn poll_read_ready(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // The guard is dropped without clearing anything: the read that follows does.
        self.fd.poll_read_ready(cx).map_ok(drop)
    }

    #[inline]
    fn poll_read(&mut self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        loop {
            let mut guard = ready!(self.fd.poll_read_ready(cx))?;
            match guard.try_io(|s| s.get_ref().read(buf)) {
                Ok(Ok(n)) => {
                    // A short read took everything queued, unless it stopped at an urgent
                    // mark: then the next read goes on past it.
                    if 0 < n && n < buf.len() && !self.urgent_reported() {
                        guard.clear_ready();
                    }
                    return Poll::Ready(Ok(n));
                }
                Ok(Err(e)) => return Poll::Ready(Err(e)),
                // Would block: the readiness is cleared; wait for the next edge.
                Err(_) => continue,
            }
        }
    }

    #[inline]
    fn poll_write(&mut self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        loop {
            let mut guard = ready!(self.fd.poll_write_ready(cx))?;
            match guard.try_io(|s| s.get_ref().write(buf)) {
                Ok(Ok(n)) => {
                    // As tokio does: a short write means the send buffer is full.
                    if 0 < n && n < buf.len() {
                        guard.clear_ready();
                    }
                    return Poll::Ready(Ok(n));
                }
                Ok(Err(e)) => return Poll::Ready(Err(e)),
                Err(_) => continue,
            }
        }
    }

    fn poll_shutdown(&mut self, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(self.fd.get_ref().shutdown(std::net::Shutdown::Write))
    }

    fn input_waiting(&self) -> io::Result<bool> {
        super::conn::peek_waiting(self)
    }
}

/// Beneath rustls: the TLS transport waits on the socket without a buffer.
impl crate::tls::Socket for Tcp {
    fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.fd.poll_read_ready(cx).map_ok(drop)
    }
}

/// For the banner, the PROXY header and rustls, which use tokio's I/O traits.
impl AsyncRead for Tcp {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let n = ready!(Transport::poll_read(
            self.get_mut(),
            cx,
            buf.initialize_unfilled()
        ))?;
        buf.advance(n);
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for Tcp {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Transport::poll_write(self.get_mut(), cx, buf)
    }

    /// rustls hands over the records it holds at once: one `writev` for all of them.
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let fd = &self.get_mut().fd;
        loop {
            let mut guard = ready!(fd.poll_write_ready(cx))?;
            match guard.try_io(|s| s.get_ref().write_vectored(bufs)) {
                Ok(Ok(n)) => {
                    let len: usize = bufs.iter().map(|b| b.len()).sum();
                    if 0 < n && n < len {
                        guard.clear_ready();
                    }
                    return Poll::Ready(Ok(n));
                }
                Ok(Err(e)) => return Poll::Ready(Err(e)),
                Err(_) => continue,
            }
        }
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Transport::poll_shutdown(self.get_mut(), cx)
    }
}
