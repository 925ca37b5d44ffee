//! The admin port's figures: every worker's counters summed into a [`Snapshot`] when
//! `/metrics` is scraped, so that nothing on the per-message path is shared between cores.

use crate::admin::{Closed, MetricsSource, Rejected, Snapshot, Udp};

use super::Server;

impl Server {
    /// The figures `/metrics` shows, summed over the workers now.
    pub fn snapshot(&self) -> Snapshot {
        let s = self.stats();
        Snapshot {
            accepted: s.served,
            active: s.active as u64,
            rejected: Rejected {
                max_connections: s.rejected_over_limit,
                max_connections_per_ip: s.rejected_per_ip,
                proxy_header: s.rejected_proxy_header,
            },
            closed: Closed {
                client: s.closed_client,
                idle: s.idle_closed,
                drain: s.closed_drain,
                error: s.closed_error,
            },
            bytes_received: s.bytes_received,
            bytes_sent: s.bytes_sent,
            accept_errors: s.accept_resource_errors,
            udp: Udp {
                replied: s.udp_replied,
                privileged_port: s.udp_privileged_port,
                would_amplify: s.udp_would_amplify,
                rate_limited: s.udp_rate_limited,
            },
            draining: self.draining(),
            tls_handshake_failures: s.tls_handshake_failures,
        }
    }

    /// Whether the drain has begun.
    pub fn draining(&self) -> bool {
        self.shared.drain.deadline().is_some()
    }
}

/// A server is its own metrics source: [`crate::admin::AdminServer::start`] takes it.
impl MetricsSource for Server {
    fn snapshot(&self) -> Snapshot {
        Server::snapshot(self)
    }
}
