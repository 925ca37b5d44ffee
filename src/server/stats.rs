//! Counters of what the server has done: kept per worker, so that nothing on the
//! per-message path touches memory another worker writes, and summed when read.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};

use super::conn::End;
use crate::tls::HandshakeFailure;

/// One worker's counters. Only that worker's tasks add to them (a relaxed add on a line no
/// other core writes); [`Stats`] sums every worker's when asked. The admin port's metrics
/// (a later issue) sum them the same way at scrape time.
#[derive(Debug, Default)]
pub(crate) struct WorkerStats {
    pub(crate) served: AtomicU64,
    pub(crate) rejected_over_limit: AtomicU64,
    pub(crate) rejected_per_ip: AtomicU64,
    pub(crate) rejected_proxy_header: AtomicU64,
    pub(crate) accept_resource_errors: AtomicU64,
    pub(crate) closed_client: AtomicU64,
    pub(crate) closed_idle: AtomicU64,
    pub(crate) closed_drain: AtomicU64,
    pub(crate) closed_error: AtomicU64,
    pub(crate) drain_cut: AtomicU64,
    pub(crate) bytes_received: AtomicU64,
    pub(crate) bytes_sent: AtomicU64,
    pub(crate) udp_replied: AtomicU64,
    pub(crate) udp_privileged_port: AtomicU64,
    pub(crate) udp_would_amplify: AtomicU64,
    pub(crate) udp_rate_limited: AtomicU64,
    pub(crate) tls_handshakes: AtomicU64,
    /// By [`HandshakeFailure::ALL`]'s order.
    pub(crate) tls_handshake_failures: [AtomicU64; HandshakeFailure::ALL.len()],
}

/// Adds one to a counter.
pub(crate) fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

impl WorkerStats {
    /// Counts bytes moved, once per batch of reads rather than per read.
    #[inline]
    pub(crate) fn add_bytes(&self, received: u64, sent: u64) {
        if received != 0 {
            self.bytes_received.fetch_add(received, Ordering::Relaxed);
        }
        if sent != 0 {
            self.bytes_sent.fetch_add(sent, Ordering::Relaxed);
        }
    }

    /// Counts a connection's end by its reason.
    pub(crate) fn closed(&self, end: End) {
        bump(match end {
            End::Client => &self.closed_client,
            End::Idle => &self.closed_idle,
            End::Drained => &self.closed_drain,
            End::DrainDeadline => {
                bump(&self.drain_cut);
                &self.closed_drain
            }
            End::Error => &self.closed_error,
        });
    }

    /// Counts a failed TLS handshake by its reason.
    pub(crate) fn tls_failed(&self, reason: HandshakeFailure) {
        bump(&self.tls_handshake_failures[failure_index(reason)]);
    }

    /// Adds this worker's counters into `s`.
    pub(crate) fn add_to(&self, s: &mut Stats) {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        s.served += get(&self.served);
        s.rejected_over_limit += get(&self.rejected_over_limit);
        s.rejected_per_ip += get(&self.rejected_per_ip);
        s.rejected_proxy_header += get(&self.rejected_proxy_header);
        s.accept_resource_errors += get(&self.accept_resource_errors);
        s.closed_client += get(&self.closed_client);
        s.idle_closed += get(&self.closed_idle);
        s.closed_drain += get(&self.closed_drain);
        s.closed_error += get(&self.closed_error);
        s.drain_deadline_closed += get(&self.drain_cut);
        s.bytes_received += get(&self.bytes_received);
        s.bytes_sent += get(&self.bytes_sent);
        s.udp_replied += get(&self.udp_replied);
        s.udp_privileged_port += get(&self.udp_privileged_port);
        s.udp_would_amplify += get(&self.udp_would_amplify);
        s.udp_rate_limited += get(&self.udp_rate_limited);
        s.tls_handshakes += get(&self.tls_handshakes);
        for (sum, c) in s
            .tls_handshake_failures
            .iter_mut()
            .zip(&self.tls_handshake_failures)
        {
            *sum += get(c);
        }
    }
}

fn failure_index(reason: HandshakeFailure) -> usize {
    HandshakeFailure::ALL
        .iter()
        .position(|&r| r == reason)
        .unwrap_or(0)
}

/// Counters of what the server has done, summed over its workers, for logs and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Connections accepted and served (behind a PROXY header, once the header was read).
    pub served: u64,
    /// Connections being served now.
    pub active: usize,
    /// Connections closed at once because `max_connections` was reached.
    pub rejected_over_limit: u64,
    /// Connections closed at once because their address had `max_connections_per_ip`.
    pub rejected_per_ip: u64,
    /// Connections closed unanswered because their PROXY protocol header was missing,
    /// malformed, oversized, of a version not accepted, incomplete or late.
    pub rejected_proxy_header: u64,
    /// Connections that ended because the client half-closed.
    pub closed_client: u64,
    /// Connections closed by the idle timeout.
    pub idle_closed: u64,
    /// Connections closed by the drain (at a line boundary, or at its deadline).
    pub closed_drain: u64,
    /// Of `closed_drain`, those the drain deadline closed while still busy.
    pub drain_deadline_closed: u64,
    /// Connections ended by a socket error (a reset, for one).
    pub closed_error: u64,
    /// Bytes received on TCP connections.
    pub bytes_received: u64,
    /// Bytes sent on TCP connections.
    pub bytes_sent: u64,
    /// `accept` failures for lack of descriptors or memory, each followed by a back-off.
    pub accept_resource_errors: u64,
    /// UDP datagrams answered.
    pub udp_replied: u64,
    /// UDP datagrams ignored because they came from a port below 1024.
    pub udp_privileged_port: u64,
    /// UDP datagrams dropped because their reply would have been larger.
    pub udp_would_amplify: u64,
    /// UDP datagrams dropped by `udp_rate`.
    pub udp_rate_limited: u64,
    /// TLS handshakes completed.
    pub tls_handshakes: u64,
    /// TLS handshakes failed, by reason, in [`HandshakeFailure::ALL`]'s order (see
    /// [`Stats::tls_failures`]).
    pub tls_handshake_failures: [u64; HandshakeFailure::ALL.len()],
}

impl Stats {
    /// TLS handshakes that failed for `reason`.
    pub fn tls_failures(&self, reason: HandshakeFailure) -> u64 {
        self.tls_handshake_failures[failure_index(reason)]
    }

    /// Every reason with its count, for the admin port's
    /// `upcased_tls_handshake_failures_total{reason}`.
    pub fn tls_failures_by_reason(&self) -> impl Iterator<Item = (HandshakeFailure, u64)> + '_ {
        HandshakeFailure::ALL
            .iter()
            .zip(self.tls_handshake_failures)
            .map(|(&r, n)| (r, n))
    }
}

impl fmt::Display for Stats {
    /// One line, for the log: `served 12, active 3, refused 0, closed (client 5, idle 2,
    /// drain 0, error 0), bytes in 1234 out 1240, accept errors 0` and the UDP figures when
    /// there are any.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "served {}, active {}, refused {}, closed (client {}, idle {}, drain {}, error {}), \
             bytes in {} out {}, accept errors {}",
            self.served,
            self.active,
            self.rejected_over_limit + self.rejected_per_ip + self.rejected_proxy_header,
            self.closed_client,
            self.idle_closed,
            self.closed_drain,
            self.closed_error,
            self.bytes_received,
            self.bytes_sent,
            self.accept_resource_errors
        )?;
        let dropped = self.udp_privileged_port + self.udp_would_amplify + self.udp_rate_limited;
        if self.udp_replied + dropped > 0 {
            write!(f, ", udp replied {} dropped {dropped}", self.udp_replied)?;
        }
        let failed: u64 = self.tls_handshake_failures.iter().sum();
        if self.tls_handshakes + failed > 0 {
            write!(
                f,
                ", tls handshakes {} failed {failed}",
                self.tls_handshakes
            )?;
        }
        Ok(())
    }
}
