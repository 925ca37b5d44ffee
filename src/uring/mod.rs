//! The io_uring driver for the connection core: one ring per worker thread, running the same
//! [`Connection`] state machine as the readiness driver, so every promise (streaming,
//! held-back bytes, backpressure, the idle timeout, the line-aware drain, lingering close)
//! comes from the same policy code. This driver only moves bytes and keeps timers.
//!
//! # How it works
//!
//! [`run`] owns one ring, built on the calling thread with `IORING_SETUP_SINGLE_ISSUER` and
//! `DEFER_TASKRUN` (else `COOP_TASKRUN`, else neither, as the kernel allows). Each loop turn
//! is one `io_uring_enter` that submits everything queued since the last and waits for at
//! least one completion or the nearest deadline. On it:
//!
//! - a multishot accept per listener; EMFILE/ENFILE/ENOMEM end it, and it is re-armed at the
//!   next close or after a back-off (10 ms doubling to 1 s), whichever comes first;
//! - a multishot receive per connection, into the worker's provided-buffer ring
//!   ([`bufring`]): buffers belong to the ring, an idle connection holds none;
//! - a received buffer is handed to [`Connection::received`], which upper-cases in place; when
//!   the reply has the input's length it is sent from that very buffer, which returns to the
//!   ring when the send completes; otherwise it is sent from the connection's spill buffer
//!   and the ring buffer returns at once;
//! - one reply in flight per connection (the machine's rule); buffers that arrive meanwhile
//!   wait in the connection's queue, in order;
//! - deadlines (idle, drain, linger, accept back-off) in a min-heap whose nearest entry is
//!   the wait's timeout; entries are lazy: a firing the machine answers with
//!   [`Timer::Wait`] is set again for the new deadline.
//!
//! # Backpressure and the buffer pool
//!
//! The pool is [`POOL_BYTES`] of address space per worker: `POOL_BYTES / read_limit` buffers
//! of `read_limit` bytes (1024 × 64 KiB by default), a power of two between 16 and 4096.
//! Only buffers actually used become resident (see [`bufring`]). A connection may hold at
//! most [`QUEUE_BYTES`] of received, unanswered input (at least 2 buffers); past that its
//! receive is cancelled and re-armed once its queue is short again. While fewer than a
//! quarter of the pool's buffers are free every connection is held to one, so that peers
//! that do not read cannot starve the rest: a client that never reads holds at most its
//! queue plus the buffer its stalled reply is sent from, until the idle timeout closes it.
//! A receive that finds the ring empty (ENOBUFS) waits until buffers come back.
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
//! `accept_direct`): the idle-timeout probe and `shutdown` use them as plain sockets. No
//! `sendmsg` gathering of several queued replies, no byte cap on multishot receives (Linux
//! 6.17's `optlen`): the queue bound above does that job with a cancel.

pub(crate) mod bufring;
mod probe;
mod worker;

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::time::Instant;

pub use crate::server::conn::{Connection, End, Next, Policy, Timer};
pub use probe::{probe, Unavailable};
pub use worker::run;

/// Address space for one worker's receive buffers. 64 MiB gives 1024 buffers of the default
/// 64 KiB read size: enough for hundreds of busy connections at once, and only touched
/// buffers cost memory.
pub const POOL_BYTES: usize = 64 * 1024 * 1024;

/// Received input a connection may hold unanswered before its receive is paused: the same
/// 256 KiB the C reference caps each multishot receive at. Without such a cap one fast
/// sender whose peer never reads would take the whole pool.
pub const QUEUE_BYTES: usize = 256 * 1024;

/// Submission queue entries per ring. A loop turn rarely queues more; when it does, the
/// queue is submitted early and filling goes on.
pub const SUBMISSION_ENTRIES: u32 = 1024;

/// Completion queue entries per ring: multishot receives post many completions per
/// submission (the kernel keeps overflow, but that path is slow).
pub const COMPLETION_ENTRIES: u32 = 16 * 1024;

/// What a worker needs besides its listeners.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// The per-connection policy the state machine applies.
    pub policy: Policy,
    /// Connections this worker serves at once; more are accepted and closed at once.
    pub max_connections: usize,
}

/// Errors that stop a worker.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Setting up the ring, its buffers or the wake-up descriptor failed.
    #[error("io_uring setup failed at {0}: {1}")]
    Setup(&'static str, std::io::Error),
    /// `io_uring_enter` failed.
    #[error("io_uring_enter failed: {0}")]
    Enter(std::io::Error),
}

/// A worker's counters, shared with whoever reports them (the admin port).
#[derive(Debug, Default)]
pub struct Stats {
    /// Connections accepted and served.
    pub served: AtomicU64,
    /// Connections refused because `max_connections` were open.
    pub rejected_over_limit: AtomicU64,
    /// Accept failures for want of descriptors or memory (each starts a back-off).
    pub accept_resource_errors: AtomicU64,
    /// Connections open now.
    pub active: AtomicU64,
    /// Closed after the client's FIN.
    pub closed_client: AtomicU64,
    /// Closed by the idle timeout.
    pub closed_idle: AtomicU64,
    /// Closed by the drain at a line boundary.
    pub closed_drain: AtomicU64,
    /// Closed by the drain deadline.
    pub closed_drain_deadline: AtomicU64,
    /// Closed by a socket error.
    pub closed_error: AtomicU64,
    /// Drain-deadline closes that cut a line in progress.
    pub drain_cut: AtomicU64,
    /// Bytes received.
    pub bytes_received: AtomicU64,
    /// Bytes sent.
    pub bytes_sent: AtomicU64,
}

impl Stats {
    fn closed(&self, end: End) {
        let c = match end {
            End::Client => &self.closed_client,
            End::Idle => &self.closed_idle,
            End::Drained => &self.closed_drain,
            End::DrainDeadline => &self.closed_drain_deadline,
            End::Error => &self.closed_error,
        };
        c.fetch_add(1, Ordering::Relaxed);
        self.active.fetch_sub(1, Ordering::Relaxed);
    }
}

/// How another thread tells a worker that the drain began: it wakes the ring through an
/// eventfd each worker polls (a poll, not a read, so one write wakes every worker).
#[derive(Debug, Clone)]
pub struct Handle(Arc<Signal>);

#[derive(Debug)]
struct Signal {
    efd: OwnedFd,
    drain: Mutex<Option<Instant>>,
}

impl Handle {
    /// A handle for one or more workers (each polls the same eventfd).
    pub fn new() -> std::io::Result<Handle> {
        // SAFETY: eventfd takes no pointers; the result is checked before it is owned.
        let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: `fd` is a fresh descriptor that nothing else owns.
        let efd = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(Handle(Arc::new(Signal {
            efd,
            drain: Mutex::new(None),
        })))
    }

    /// Begins the drain (the first call sets the deadline; later ones change nothing): the
    /// workers stop accepting, close each connection at its next line boundary or at
    /// `deadline`, and return from [`run`] when none is left.
    pub fn drain(&self, deadline: Instant) {
        {
            let mut d = self.0.drain.lock().unwrap_or_else(|e| e.into_inner());
            if d.is_none() {
                *d = Some(deadline);
            }
        }
        // Nobody reads the counter, so it stays readable: every worker's poll completes.
        let one = 1u64.to_ne_bytes();
        // SAFETY: writes 8 bytes from a local array to a descriptor this handle owns.
        unsafe { libc::write(self.0.efd.as_raw_fd(), one.as_ptr().cast(), 8) };
    }

    fn drain_deadline(&self) -> Option<Instant> {
        *self.0.drain.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn wake_fd(&self) -> i32 {
        self.0.efd.as_raw_fd()
    }
}
