//! What the readiness driver needs from a byte stream: the seam beneath it.
//!
//! [`Transport`] is implemented for [`tokio::net::TcpStream`] here. A TLS transport (a
//! rustls connection over a `TcpStream`) implements it too and the driver runs unchanged:
//! its `poll_read` yields plaintext, its readiness is "plaintext buffered, or the socket
//! readable", its `poll_flush` pushes out pending records and its `poll_shutdown` sends
//! `close_notify` before FIN.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// A connected byte stream as the readiness driver uses it: wait for input without a
/// buffer, read and write without waiting, shut down the write side.
///
/// Every `poll_*` method registers `cx`'s waker when it returns `Poll::Pending`, as tokio's
/// I/O types do.
pub trait Transport {
    /// Resolves when a read may make progress. Holds no buffer: an idle connection waits
    /// here, which is why it costs no buffer memory.
    fn poll_read_ready(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>>;

    /// Reads what is there into `buf`; `Ok(0)` is the end of input (FIN). `Pending` when
    /// nothing is there. A read shorter than `buf` should clear the readiness, so that the
    /// driver does not make one more read only to learn that it would block.
    fn poll_read(&mut self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>>;

    /// Writes some of `buf`; `Pending` when the peer's window is full.
    fn poll_write(&mut self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>>;

    /// Pushes out anything written but still held by the transport (TLS records). Plain
    /// TCP holds nothing.
    fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let _ = cx;
        Poll::Ready(Ok(()))
    }

    /// Shuts down the write side (FIN; for TLS, `close_notify` first).
    fn poll_shutdown(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>>;

    /// Whether input has arrived that the readiness has not reported yet, asked without
    /// waiting: the idle timeout asks before it closes, because after the process was
    /// stopped (SIGSTOP, a VM pause) its timer can fire before the reactor has looked at the
    /// socket. End of input counts as input.
    fn input_waiting(&self) -> io::Result<bool>;
}

impl Transport for TcpStream {
    #[inline]
    fn poll_read_ready(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // `poll_read_ready` keeps the task's waker in the stream's one reader slot; a
        // `readable()` future links itself into the stream's waiter list and unlinks on drop,
        // which cost ~400 instructions more per message.
        TcpStream::poll_read_ready(self, cx)
    }

    #[inline]
    fn poll_read(&mut self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        // Through `AsyncRead::poll_read` rather than `try_read`: a short read there also
        // clears the cached readiness.
        let mut rb = ReadBuf::new(buf);
        match AsyncRead::poll_read(Pin::new(self), cx, &mut rb) {
            Poll::Ready(Ok(())) => Poll::Ready(Ok(rb.filled().len())),
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => Poll::Pending,
        }
    }

    #[inline]
    fn poll_write(&mut self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        AsyncWrite::poll_write(Pin::new(self), cx, buf)
    }

    fn poll_shutdown(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        AsyncWrite::poll_shutdown(Pin::new(self), cx)
    }

    fn input_waiting(&self) -> io::Result<bool> {
        // `try_read` and `poll_read` trust the cached readiness and would not even ask the
        // kernel; a peek with MSG_DONTWAIT does.
        let mut byte = [std::mem::MaybeUninit::<u8>::uninit()];
        match socket2::SockRef::from(self)
            .recv_with_flags(&mut byte, libc::MSG_PEEK | libc::MSG_DONTWAIT)
        {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(false),
            Err(e) => Err(e),
        }
    }
}
