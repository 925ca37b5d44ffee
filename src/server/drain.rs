//! The graceful drain: a signal every worker and connection watches, and the one deadline by
//! which every connection is closed.
//!
//! It has two steps, in this order: every accept loop stops and closes its listener, and
//! only once the last one has, connections hear of the drain. A connection the drain closes
//! sends FIN, and a client that reconnects on that FIN (`upcase bench --reconnect`, any
//! client that retries) must find this process's listeners closed: refused, its balancer
//! or the kernel's `SO_REUSEPORT` group sends it to another instance. Were a listener still
//! open, its connect would land in an accept queue about to be closed, and be reset.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::{CancellationToken, WaitForCancellationFuture};

use super::Shared;

/// When the drain began, and the deadline it set.
#[derive(Debug)]
pub(crate) struct Drain {
    /// Cancelled when the drain begins: accept loops stop.
    accept: CancellationToken,
    /// Cancelled once no accept loop is left after the drain began: connections drain.
    token: CancellationToken,
    /// Accept loops still running (each holds an [`Accepting`]).
    accepting: AtomicUsize,
    deadline: OnceLock<Instant>,
    timeout: Duration,
}

/// An accept loop's registration with the drain ([`Drain::accepting`]): dropped once its
/// listener is closed, and the last one dropped after the drain began starts the
/// connections' drain. Owns the server's state, as the accept loop's task does.
#[derive(Debug)]
pub(crate) struct Accepting(Arc<Shared>);

impl Drop for Accepting {
    fn drop(&mut self) {
        if self.0.drain.listener_closed() {
            // The io_uring workers hear of it through their own signal.
            self.0.connections_drain();
        }
    }
}

impl Drain {
    /// A drain not yet begun, whose connections get `timeout` to finish once it does.
    pub(crate) fn new(timeout: Duration) -> Self {
        Drain {
            accept: CancellationToken::new(),
            token: CancellationToken::new(),
            accepting: AtomicUsize::new(0),
            deadline: OnceLock::new(),
            timeout,
        }
    }

    /// Begins the drain (once; later calls change nothing): accept loops stop now, and
    /// connections drain as soon as the last listener is closed (at once if none is open).
    /// The deadline counts from now. Returns whether this call began it.
    pub(crate) fn begin(&self) -> bool {
        let now = Instant::now();
        // `Config::validate` bounds the timeout to a week; the fallback is for a clock near
        // its end of range.
        let deadline = now
            .checked_add(self.timeout)
            .or_else(|| now.checked_add(crate::limits::MAX_DURATION))
            .unwrap_or(now);
        let first = self.deadline.set(deadline).is_ok();
        self.accept.cancel();
        // An accept loop that ends after this load cancels `token` itself (it sees
        // `accept` cancelled); one that ended before it is not counted.
        if self.accepting.load(Ordering::SeqCst) == 0 {
            self.token.cancel();
        }
        first
    }

    /// Registers an accept loop of `shared`'s server, which must hold the guard until its
    /// listener is closed.
    pub(crate) fn accepting(shared: &Arc<Shared>) -> Accepting {
        shared.drain.register();
        Accepting(shared.clone())
    }

    fn register(&self) {
        self.accepting.fetch_add(1, Ordering::SeqCst);
    }

    /// One accept loop has closed its listener: if it was the last and the drain has
    /// begun, connections drain now (and this returns `true`).
    fn listener_closed(&self) -> bool {
        if self.accepting.fetch_sub(1, Ordering::SeqCst) == 1 && self.accept.is_cancelled() {
            self.token.cancel();
            return true;
        }
        false
    }

    /// Whether the drain has begun (accept loops stop), whether or not connections drain yet.
    #[cfg(all(target_os = "linux", feature = "uring"))]
    pub(crate) fn begun(&self) -> bool {
        self.accept.is_cancelled()
    }

    /// Resolves when the drain begins: accept loops stop.
    pub(crate) fn stop_accepting(&self) -> WaitForCancellationFuture<'_> {
        self.accept.cancelled()
    }

    /// Resolves when connections drain: after the drain began and every listener closed.
    pub(crate) fn cancelled(&self) -> WaitForCancellationFuture<'_> {
        self.token.cancelled()
    }

    /// The instant by which every connection must be closed, once connections drain.
    pub(crate) fn deadline(&self) -> Option<Instant> {
        if !self.token.is_cancelled() {
            return None;
        }
        self.deadline.get().copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connections_drain_only_once_the_last_listener_is_closed() {
        let drain = Drain::new(Duration::from_secs(1));
        drain.register();
        drain.register();
        assert!(drain.begin());
        assert!(drain.accept.is_cancelled());
        assert_eq!(drain.deadline(), None, "listeners still open");
        drain.listener_closed();
        assert_eq!(drain.deadline(), None, "one listener still open");
        drain.listener_closed();
        assert!(drain.deadline().is_some());
        assert!(!drain.begin(), "begins once");
    }

    #[test]
    fn without_listeners_connections_drain_at_once() {
        let drain = Drain::new(Duration::from_secs(1));
        drain.begin();
        assert!(drain.deadline().is_some());
        // A loop that starts late sees the drain and ends; nothing changes.
        drain.register();
        drain.listener_closed();
        assert!(drain.deadline().is_some());
    }

    #[test]
    fn an_accept_loop_ending_before_the_drain_does_not_start_it() {
        let drain = Drain::new(Duration::from_secs(1));
        drain.register();
        drain.listener_closed();
        assert_eq!(drain.deadline(), None);
        assert!(!drain.token.is_cancelled());
    }
}
