//! What the readiness driver needs from a byte stream: the seam beneath it.
//!
//! [`Transport`] is implemented for plain TCP by `server::tcp::Tcp`. A TLS transport (a
//! rustls connection over a `TcpStream`) implements it too and the driver runs unchanged:
//! its `poll_read` yields plaintext, its readiness is "plaintext buffered, or the socket
//! readable", its `poll_flush` pushes out pending records and its `poll_shutdown` sends
//! `close_notify` before FIN.

use std::io;
use std::os::fd::AsFd;
use std::task::{Context, Poll};

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

/// Whether input (or the end of input) is waiting on `socket`, asked of the kernel with a
/// peek that does not wait: a reactor's cached readiness would not even ask it.
pub(crate) fn peek_waiting(socket: &impl AsFd) -> io::Result<bool> {
    let mut byte = [std::mem::MaybeUninit::<u8>::uninit()];
    match socket2::SockRef::from(socket)
        .recv_with_flags(&mut byte, libc::MSG_PEEK | libc::MSG_DONTWAIT)
    {
        Ok(_) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(false),
        Err(e) => Err(e),
    }
}
