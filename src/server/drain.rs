//! The graceful drain: a signal every worker and connection watches, and the one deadline by
//! which every connection is closed.

use std::sync::OnceLock;
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::{CancellationToken, WaitForCancellationFuture};

/// When the drain began, and the deadline it set.
#[derive(Debug)]
pub(crate) struct Drain {
    token: CancellationToken,
    deadline: OnceLock<Instant>,
    timeout: Duration,
}

impl Drain {
    /// A drain not yet begun, whose connections get `timeout` to finish once it does.
    pub(crate) fn new(timeout: Duration) -> Self {
        Drain {
            token: CancellationToken::new(),
            deadline: OnceLock::new(),
            timeout,
        }
    }

    /// Begins the drain (once; later calls change nothing). Returns whether this call began it.
    pub(crate) fn begin(&self) -> bool {
        let now = Instant::now();
        // `Config::validate` bounds the timeout to a week; the fallback is for a clock near
        // its end of range.
        let deadline = now
            .checked_add(self.timeout)
            .or_else(|| now.checked_add(crate::limits::MAX_DURATION))
            .unwrap_or(now);
        let first = self.deadline.set(deadline).is_ok();
        self.token.cancel();
        first
    }

    /// Resolves when the drain begins.
    pub(crate) fn cancelled(&self) -> WaitForCancellationFuture<'_> {
        self.token.cancelled()
    }

    /// The instant by which every connection must be closed, once the drain has begun.
    pub(crate) fn deadline(&self) -> Option<Instant> {
        if !self.token.is_cancelled() {
            return None;
        }
        self.deadline.get().copied()
    }
}
