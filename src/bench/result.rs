//! What a run measured: the documented, serialisable result that `--json` prints and the
//! table is drawn from. Field names are part of the interface (see `docs/bench.md`).

use serde::Serialize;

use super::options::Text;

/// The outcome of one `upcase bench` run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BenchResult {
    /// The address as given with `--connect`.
    pub target: String,
    /// The socket address every connection went to.
    pub peer: String,
    /// `"tcp"` or `"udp"`.
    pub transport: Transport,
    /// Over TLS (`--tls`): the version and cipher suite negotiated; `null` otherwise.
    pub tls: Option<crate::tls::SessionInfo>,
    /// `"closed"` (each connection keeps `pipeline` messages in flight) or `"open"`
    /// (messages sent on a fixed schedule of `rate` per second).
    pub mode: LoopMode,
    /// Connections asked for.
    pub connections: u32,
    /// Connections that opened (the rest are counted in `errors.connect_failures`).
    pub connections_open: u32,
    /// Bytes per message, and per reply.
    pub size: u32,
    /// Messages in flight per connection (closed loop); `null` in open loop.
    pub pipeline: Option<u32>,
    /// Messages per second asked for (open loop); `null` in closed loop.
    pub rate: Option<f64>,
    /// `"ascii"` or `"unicode"`.
    pub text: Text,
    /// Seconds of load before the timed window.
    pub warmup_s: f64,
    /// Seconds the timed window actually lasted.
    pub duration_s: f64,
    /// Replies received complete within the timed window.
    pub messages: u64,
    /// Reply bytes received within the timed window (`messages × size`).
    pub bytes: u64,
    /// `messages / duration_s`.
    pub msgs_per_s: f64,
    /// `bytes / duration_s`, in MiB (2^20 bytes) per second.
    pub mib_per_s: f64,
    /// Latency of the replies in the timed window; `null` when none completed.
    pub latency_us: Option<Latency>,
    /// Everything that went wrong, over the whole run (warm-up included).
    pub errors: Errors,
}

/// Which transport carried the messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    /// One TCP connection per `--connections`, replies reassembled across reads.
    Tcp,
    /// One connected UDP socket per `--connections`, one datagram per message.
    Udp,
}

/// How load was offered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LoopMode {
    /// A new message as soon as a reply frees a slot.
    Closed,
    /// Messages on a fixed schedule, whatever the replies do.
    Open,
}

/// Reply latency in microseconds, from the HDR histogram (3 significant digits). Closed
/// loop: from the first byte of the message written to the last byte of its reply read.
/// Open loop: from the message's scheduled send time, so stalls are not hidden.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Latency {
    /// Fastest reply.
    pub min: f64,
    /// Arithmetic mean.
    pub mean: f64,
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// 99.9th percentile.
    pub p999: f64,
    /// Slowest reply.
    pub max: f64,
}

/// What went wrong. Any non-zero count makes `upcase bench` exit with status 1.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Errors {
    /// Replies with at least one byte that differs from the expected upper-case (TCP), or
    /// datagrams of the wrong length or content (UDP), or bytes nobody asked for.
    pub wrong_replies: u64,
    /// Connections the server reset or closed during the run.
    pub resets: u64,
    /// Replies that did not complete within `--timeout`. A TCP connection that times out
    /// is abandoned; a UDP datagram that times out is counted lost and replaced.
    pub timeouts: u64,
    /// Connections that could not be opened.
    pub connect_failures: u64,
}

impl Errors {
    /// The sum of every count.
    pub fn total(&self) -> u64 {
        self.wrong_replies + self.resets + self.timeouts + self.connect_failures
    }
}

impl BenchResult {
    /// Whether the server passed: every reply right, every connection opened and kept.
    pub fn passed(&self) -> bool {
        self.errors.total() == 0
    }

    /// The exit status `upcase bench` ends with for this result: 0 passed, 1 otherwise.
    pub fn exit_code(&self) -> u8 {
        if self.passed() {
            0
        } else {
            1
        }
    }
}
