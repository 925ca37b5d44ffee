//! `/metrics`: the server's figures in the Prometheus text format (version 0.0.4).
//!
//! Nothing here counts. The server keeps its own counters (per worker, so the per-message
//! path shares no atomic), and at each scrape the [`MetricsSource`] it gave adds them up
//! into a [`Snapshot`]; a prometheus-client collector writes that out. Every series is
//! written at every scrape, so each appears from the start, at 0.

use std::fmt;
use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

use crate::tls::HandshakeFailure;

/// The `Content-Type` of a `/metrics` reply.
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// TCP connections refused at accept, by reason (`upcased_connections_rejected_total`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Rejected {
    /// At `--max-connections`.
    pub max_connections: u64,
    /// At `--max-connections-per-ip` (counted on the proxied address where there is one).
    pub max_connections_per_ip: u64,
    /// A PROXY header that was missing, malformed, oversized, of the wrong version or late.
    pub proxy_header: u64,
}

/// TCP connections ended after being served, by reason (`upcased_connections_closed_total`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Closed {
    /// The client closed (FIN), and everything owed was sent.
    pub client: u64,
    /// `--idle-timeout` expired.
    pub idle: u64,
    /// Closed by the drain.
    pub drain: u64,
    /// A socket error (a reset, a failed write).
    pub error: u64,
}

/// UDP datagrams by outcome (`upcased_udp_datagrams_total`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Udp {
    /// Answered.
    pub replied: u64,
    /// Dropped: from a privileged source port (a reflection attempt).
    pub privileged_port: u64,
    /// Dropped: the reply would be larger than the request.
    pub would_amplify: u64,
    /// Dropped by the per-source rate limit.
    pub rate_limited: u64,
}

/// The server's figures at one instant: totals since start, plus two levels.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// TCP connections accepted (`upcased_connections_accepted_total`).
    pub accepted: u64,
    /// TCP connections open now (`upcased_connections_active`).
    pub active: u64,
    /// Connections refused, by reason.
    pub rejected: Rejected,
    /// Connections ended, by reason.
    pub closed: Closed,
    /// Bytes read from TCP clients, PROXY headers excluded (`upcased_bytes_received_total`).
    pub bytes_received: u64,
    /// Bytes written to TCP clients, banners included (`upcased_bytes_sent_total`).
    pub bytes_sent: u64,
    /// `accept` calls that failed (`upcased_accept_errors_total`).
    pub accept_errors: u64,
    /// UDP datagrams, by outcome.
    pub udp: Udp,
    /// Whether the drain has begun (`upcased_draining`, 0 or 1).
    pub draining: bool,
    /// TLS handshakes failed, by reason in [`HandshakeFailure::ALL`]'s order
    /// (`upcased_tls_handshake_failures_total{reason}`; the server's
    /// [`Stats::tls_handshake_failures`](crate::server::Stats::tls_handshake_failures)).
    pub tls_handshake_failures: [u64; HandshakeFailure::ALL.len()],
}

/// Where `/metrics` gets its figures: called once per scrape, on the admin thread. The
/// server implements it by summing its workers' counters; a closure returning a
/// [`Snapshot`] works too.
pub trait MetricsSource: Send + Sync + 'static {
    /// The figures now.
    fn snapshot(&self) -> Snapshot;
}

impl<F> MetricsSource for F
where
    F: Fn() -> Snapshot + Send + Sync + 'static,
{
    fn snapshot(&self) -> Snapshot {
        self()
    }
}

/// Writes a snapshot out at each scrape.
struct SnapshotCollector {
    source: Arc<dyn MetricsSource>,
}

impl fmt::Debug for SnapshotCollector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SnapshotCollector").finish_non_exhaustive()
    }
}

fn counter(encoder: &mut DescriptorEncoder, name: &str, help: &str, value: u64) -> fmt::Result {
    let metric = ConstCounter::new(value);
    metric.encode(encoder.encode_descriptor(name, help, None, metric.metric_type())?)
}

fn gauge(encoder: &mut DescriptorEncoder, name: &str, help: &str, value: u64) -> fmt::Result {
    let metric = ConstGauge::new(value);
    metric.encode(encoder.encode_descriptor(name, help, None, metric.metric_type())?)
}

fn labelled(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    label: &str,
    values: &[(&str, u64)],
) -> fmt::Result {
    let mut metric = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
    for &(value, count) in values {
        let labels = [(label, value)];
        ConstCounter::new(count).encode(metric.encode_family(&labels)?)?;
    }
    Ok(())
}

impl Collector for SnapshotCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> fmt::Result {
        let s = self.source.snapshot();
        let e = &mut encoder;
        // Counter names are given without `_total`: the encoder appends it.
        counter(
            e,
            "upcased_connections_accepted",
            "TCP connections accepted.",
            s.accepted,
        )?;
        gauge(
            e,
            "upcased_connections_active",
            "TCP connections open now.",
            s.active,
        )?;
        labelled(
            e,
            "upcased_connections_rejected",
            "TCP connections refused, by reason.",
            "reason",
            &[
                ("max_connections", s.rejected.max_connections),
                ("max_connections_per_ip", s.rejected.max_connections_per_ip),
                ("proxy_header", s.rejected.proxy_header),
            ],
        )?;
        labelled(
            e,
            "upcased_connections_closed",
            "TCP connections ended, by reason.",
            "reason",
            &[
                ("client", s.closed.client),
                ("idle", s.closed.idle),
                ("drain", s.closed.drain),
                ("error", s.closed.error),
            ],
        )?;
        counter(
            e,
            "upcased_bytes_received",
            "Bytes read from TCP clients, PROXY headers excluded.",
            s.bytes_received,
        )?;
        counter(
            e,
            "upcased_bytes_sent",
            "Bytes written to TCP clients.",
            s.bytes_sent,
        )?;
        counter(
            e,
            "upcased_accept_errors",
            "Failed accept calls.",
            s.accept_errors,
        )?;
        labelled(
            e,
            "upcased_udp_datagrams",
            "UDP datagrams, by outcome.",
            "outcome",
            &[
                ("replied", s.udp.replied),
                ("privileged_port", s.udp.privileged_port),
                ("would_amplify", s.udp.would_amplify),
                ("rate_limited", s.udp.rate_limited),
            ],
        )?;
        let tls: Vec<(&str, u64)> = HandshakeFailure::ALL
            .iter()
            .zip(s.tls_handshake_failures)
            .map(|(r, n)| (r.as_str(), n))
            .collect();
        labelled(
            e,
            "upcased_tls_handshake_failures",
            "TLS handshakes failed, by reason.",
            "reason",
            &tls,
        )?;
        gauge(
            e,
            "upcased_draining",
            "1 once the drain has begun, else 0.",
            u64::from(s.draining),
        )?;
        let mut info = e.encode_descriptor(
            "upcased_build_info",
            "The running build; always 1.",
            None,
            MetricType::Gauge,
        )?;
        let labels = [("version", env!("CARGO_PKG_VERSION"))];
        ConstGauge::new(1u64).encode(info.encode_family(&labels)?)
    }
}

/// The `/metrics` page: a registry holding one collector over the server's source.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
}

impl Metrics {
    /// Metrics drawn from `source` at each scrape.
    pub fn new(source: Arc<dyn MetricsSource>) -> Metrics {
        let mut registry = Registry::default();
        registry.register_collector(Box::new(SnapshotCollector { source }));
        Metrics { registry }
    }

    /// The page, in the Prometheus text format.
    pub fn encode(&self) -> String {
        let mut out = String::with_capacity(2048);
        // Writing to a String cannot fail, and the collector itself never fails.
        let _ = prometheus_client::encoding::prometheus_text::encode(&mut out, &self.registry);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_is_exactly_the_table() {
        let page = Metrics::new(Arc::new(Snapshot::default)).encode();
        let want = format!(
            "\
# HELP upcased_connections_accepted_total TCP connections accepted.
# TYPE upcased_connections_accepted_total counter
upcased_connections_accepted_total 0
# HELP upcased_connections_active TCP connections open now.
# TYPE upcased_connections_active gauge
upcased_connections_active 0
# HELP upcased_connections_rejected_total TCP connections refused, by reason.
# TYPE upcased_connections_rejected_total counter
upcased_connections_rejected_total{{reason=\"max_connections\"}} 0
upcased_connections_rejected_total{{reason=\"max_connections_per_ip\"}} 0
upcased_connections_rejected_total{{reason=\"proxy_header\"}} 0
# HELP upcased_connections_closed_total TCP connections ended, by reason.
# TYPE upcased_connections_closed_total counter
upcased_connections_closed_total{{reason=\"client\"}} 0
upcased_connections_closed_total{{reason=\"idle\"}} 0
upcased_connections_closed_total{{reason=\"drain\"}} 0
upcased_connections_closed_total{{reason=\"error\"}} 0
# HELP upcased_bytes_received_total Bytes read from TCP clients, PROXY headers excluded.
# TYPE upcased_bytes_received_total counter
upcased_bytes_received_total 0
# HELP upcased_bytes_sent_total Bytes written to TCP clients.
# TYPE upcased_bytes_sent_total counter
upcased_bytes_sent_total 0
# HELP upcased_accept_errors_total Failed accept calls.
# TYPE upcased_accept_errors_total counter
upcased_accept_errors_total 0
# HELP upcased_udp_datagrams_total UDP datagrams, by outcome.
# TYPE upcased_udp_datagrams_total counter
upcased_udp_datagrams_total{{outcome=\"replied\"}} 0
upcased_udp_datagrams_total{{outcome=\"privileged_port\"}} 0
upcased_udp_datagrams_total{{outcome=\"would_amplify\"}} 0
upcased_udp_datagrams_total{{outcome=\"rate_limited\"}} 0
# HELP upcased_tls_handshake_failures_total TLS handshakes failed, by reason.
# TYPE upcased_tls_handshake_failures_total counter
upcased_tls_handshake_failures_total{{reason=\"timeout\"}} 0
upcased_tls_handshake_failures_total{{reason=\"not_tls\"}} 0
upcased_tls_handshake_failures_total{{reason=\"protocol\"}} 0
upcased_tls_handshake_failures_total{{reason=\"rejected\"}} 0
upcased_tls_handshake_failures_total{{reason=\"closed\"}} 0
upcased_tls_handshake_failures_total{{reason=\"io\"}} 0
# HELP upcased_draining 1 once the drain has begun, else 0.
# TYPE upcased_draining gauge
upcased_draining 0
# HELP upcased_build_info The running build; always 1.
# TYPE upcased_build_info gauge
upcased_build_info{{version=\"{}\"}} 1
",
            env!("CARGO_PKG_VERSION")
        );
        assert_eq!(page, want);
    }
}
