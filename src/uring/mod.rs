//! The io_uring driver for the connection core (`upcased --io uring`, and `--io auto` where
//! the kernel has what it needs): one ring per worker thread, running the same
//! [`Connection`](crate::server::conn::Connection) state machine as the readiness driver, so
//! every promise (streaming, held-back bytes, backpressure, the idle timeout, the
//! line-aware drain, lingering close) comes from the same policy code; the limits, counters
//! and logs are the server's (`server/ring.rs` starts the rings and is their host). This
//! driver only moves bytes and keeps timers.
//!
//! # How it works
//!
//! `run` owns one ring, built on the calling thread with `IORING_SETUP_SINGLE_ISSUER` and
//! `DEFER_TASKRUN` (else `COOP_TASKRUN`, else neither, as the kernel allows). Each loop turn
//! is one `io_uring_enter` that submits everything queued since the last and waits for at
//! least one completion or the nearest deadline. On it:
//!
//! - a multishot accept per listener; EMFILE/ENFILE/ENOMEM end it, and it is re-armed at the
//!   next close or after a back-off (10 ms doubling to 1 s), whichever comes first; the
//!   server's limits (`--max-connections` across all workers, `--max-connections-per-ip`,
//!   the per-IP one after a `getpeername`) are applied to each accepted socket;
//! - a multishot receive per connection, into the worker's provided-buffer ring
//!   (`bufring.rs`): buffers belong to the ring, an idle connection holds none;
//! - before the stream, the preambles: a PROXY header is fed to the sans-I/O
//!   [`Decoder`](crate::proxy::Decoder) from the received buffers (with its timeout, then the
//!   per-IP limit on the header's address), and the banner is the first reply;
//! - a received buffer is handed to `Connection::received`, which upper-cases in place; when
//!   the reply has the input's length it is sent from that very buffer, which returns to the
//!   ring when the send completes; otherwise it is sent from the connection's spill buffer
//!   and the ring buffer returns at once;
//! - one send in flight per connection, which keeps replies in order; buffers that arrive
//!   meanwhile wait in the connection's queue, and the next send gathers the replies of all
//!   that are queued (up to 32, with one `sendmsg`) as the C reference does; a reply that
//!   had to go to the spill buffer ends a gathering, and during a drain each send carries
//!   one buffer's reply, as the readiness driver's;
//! - deadlines (idle, PROXY header, drain, linger, accept back-off) in a min-heap whose
//!   nearest entry is the wait's timeout; entries are lazy: a firing the machine answers
//!   with `Timer::Wait` is set again for the new deadline;
//! - the drain, in the server's two steps: a first eventfd every ring polls says stop
//!   accepting: the accepts are cancelled and the listeners closed, and a ring whose accepts
//!   have all ended tells the server; once every listener of the server is closed, a second
//!   eventfd says drain, and each connection closes at its line boundary or the deadline. A
//!   client that reconnects on the drain's FIN so finds the port closed, never an accept
//!   queue about to be closed (which the kernel would reset).
//!
//! TLS listeners are not served here (`--io auto` picks epoll for a server that has any;
//! `--io uring` with them is refused), and UDP sockets stay on a tokio task beside the
//! rings: one datagram per `recvmsg` gains nothing from a ring.
//!
//! # The ring's size, and why
//!
//! Per worker: [`URING_SQ_ENTRIES`](crate::limits::URING_SQ_ENTRIES) (1024) submission and
//! [`URING_CQ_ENTRIES`](crate::limits::URING_CQ_ENTRIES) (16 Ki) completion entries, since
//! multishot operations post many completions per submission; and a buffer pool of
//! [`URING_POOL_BYTES`](crate::limits::URING_POOL_BYTES) of address space: `POOL / read_limit`
//! buffers of `--read-buffer` bytes (1024 × 64 KiB by default), a power of two between 16
//! and 4096, so that a thousand busy connections can each have one in flight. Only buffers
//! actually used become resident: the ring is kept about twice as full as a batch of
//! completions takes and refilled hottest-first, so a quiet worker touches a few dozen
//! buffers, and ten thousand idle connections hold none.
//!
//! # A client that never reads, and the buffer pool
//!
//! A connection may hold at most [`URING_QUEUE_BYTES`](crate::limits::URING_QUEUE_BYTES)
//! (256 KiB, at least 2 buffers) of received, unanswered input, queued or in the reply being
//! sent; past that its receive is cancelled and re-armed once it holds less. While fewer
//! than a quarter of the pool's buffers are free, every connection is held to one. So a
//! client that never reads holds at most that bound of buffers, and the kernel's
//! socket buffers take the rest until its sends stop, until the idle timeout closes it;
//! others keep being served. A receive that finds the ring empty (ENOBUFS) waits until
//! buffers come back.
//!
//! # The crate
//!
//! The raw [`io_uring`] crate (tokio-rs/io-uring), under this small loop: it is maintained
//! with the kernel, exposes multishot accept and receive, provided-buffer rings and the
//! setup flags directly, and adds no runtime. compio 0.19 would bring a second async
//! runtime and executor beside tokio for a loop that needs neither, with releases that break
//! often; tokio-uring is unmaintained; monoio and glommio have only the legacy
//! provided-buffers call, not buffer rings.
//!
//! # Not done (yet)
//!
//! Accepted sockets are ordinary descriptors, not direct ones (the C reference's
//! `accept_direct`): the idle-timeout probe, `getpeername` and `shutdown` use them as plain
//! sockets. Each is registered in the ring's sparse file table as well
//! ([`URING_FILE_TABLE`](crate::limits::URING_FILE_TABLE) slots), and receives and sends
//! name it there, which saves the kernel's descriptor lookup per operation (`fget`, 2% of
//! the CPU at 1000 connections) for two `io_uring_register` calls per connection. No byte
//! cap on multishot receives (Linux 6.17's `optlen`): the queue bound above does that job
//! with a cancel.

pub(crate) mod bufring;
mod probe;
mod worker;

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::{Arc, Mutex};

use tokio::time::Instant;

use crate::server::conn::{Connection, End, Next, Policy, Timer};
pub use probe::{probe, Unavailable};
pub(crate) use worker::run;

/// Errors that stop a worker.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Error {
    /// Setting up the ring, its buffers or the wake-up descriptor failed.
    #[error("io_uring setup failed at {0}: {1}")]
    Setup(&'static str, std::io::Error),
    /// `io_uring_enter` failed.
    #[error("io_uring_enter failed: {0}")]
    Enter(std::io::Error),
}

/// How another thread tells the workers of the drain's two steps (see
/// [`Drain`](crate::server::drain)): stop accepting and close the listeners; then, once every
/// listener of the server is closed, drain the connections. Each step is an eventfd every
/// worker polls (a poll, not a read, so one write wakes every worker).
#[derive(Debug, Clone)]
pub(crate) struct Handle(Arc<Signal>);

#[derive(Debug)]
struct Signal {
    stop: OwnedFd,
    drain: OwnedFd,
    deadline: Mutex<Option<Instant>>,
}

/// Which of a [`Handle`]'s two signals.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    StopAccepting,
    Drain,
}

fn eventfd() -> std::io::Result<OwnedFd> {
    // SAFETY: eventfd takes no pointers; the result is checked before it is owned.
    let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: `fd` is a fresh descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Makes `fd` readable for good: nobody reads the counter, so every worker's poll completes.
fn signal(fd: &OwnedFd) {
    let one = 1u64.to_ne_bytes();
    // SAFETY: writes 8 bytes from a local array to a descriptor the caller owns.
    unsafe { libc::write(fd.as_raw_fd(), one.as_ptr().cast(), 8) };
}

impl Handle {
    /// A handle for one or more workers (each polls the same eventfds).
    pub(crate) fn new() -> std::io::Result<Handle> {
        Ok(Handle(Arc::new(Signal {
            stop: eventfd()?,
            drain: eventfd()?,
            deadline: Mutex::new(None),
        })))
    }

    /// The drain's first step: the workers stop accepting and close their listeners (each
    /// tells the server's drain when it has).
    pub(crate) fn stop_accepting(&self) {
        signal(&self.0.stop);
    }

    /// The drain's second step (the first call sets the deadline; later ones change
    /// nothing): the workers close each connection at its next line boundary or at
    /// `deadline`, and return from `run` when none is left. Implies the first step.
    pub(crate) fn drain(&self, deadline: Instant) {
        {
            let mut d = self.0.deadline.lock().unwrap_or_else(|e| e.into_inner());
            if d.is_none() {
                *d = Some(deadline);
            }
        }
        signal(&self.0.stop);
        signal(&self.0.drain);
    }

    fn drain_deadline(&self) -> Option<Instant> {
        *self.0.deadline.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn wake_fd(&self, step: Step) -> i32 {
        match step {
            Step::StopAccepting => self.0.stop.as_raw_fd(),
            Step::Drain => self.0.drain.as_raw_fd(),
        }
    }
}
