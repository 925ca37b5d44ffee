//! Rate-limited warnings, for events that could flood the log (connections refused at a
//! limit, accept failures, UDP datagrams over the rate).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use crate::limits;

/// A warning that is written at most once per [`limits::LOG_INTERVAL`], with the number of
/// occurrences suppressed since the last one.
#[derive(Debug, Default)]
pub(crate) struct RateLimitedLog {
    last: Mutex<Option<Instant>>,
    suppressed: AtomicU64,
}

impl RateLimitedLog {
    /// Calls `log` with the count suppressed since the last line, unless a line was written
    /// less than an interval ago (then it only counts).
    pub(crate) fn warn(&self, log: impl FnOnce(u64)) {
        let now = Instant::now();
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        match *last {
            Some(t) if now.duration_since(t) < limits::LOG_INTERVAL => {
                self.suppressed.fetch_add(1, Ordering::Relaxed);
            }
            _ => {
                *last = Some(now);
                drop(last);
                log(self.suppressed.swap(0, Ordering::Relaxed));
            }
        }
    }
}
