//! What a run measured: the documented, serialisable result that `--json` prints and the
//! table is drawn from. Field names are part of the interface (see `docs/bench.md#json-output`).

use serde::Serialize;

use super::options::Text;
use crate::check::report::Detail;

/// The most the open loop's schedule may slip before the run fails: the share of the
/// messages due that were sent late or never sent. Past it the load offered is not the
/// load asked for, so the figures do not describe that load. 5% leaves room for a shared
/// machine's scheduling noise and still catches a generator or a server that cannot keep
/// up.
pub const MAX_SCHEDULE_SLIP: f64 = 0.05;

/// The exit status of a run stopped by Ctrl-C (128 + SIGINT, as shells report it).
pub const EXIT_INTERRUPTED: u8 = 130;

/// The outcome of one `upcase bench` run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BenchResult {
    /// The address as given with `--connect`.
    pub target: String,
    /// The socket address every connection went to.
    pub peer: String,
    /// `"tcp"` or `"udp"`.
    pub transport: Transport,
    /// `--tls`: the version and cipher suite the connections negotiated (the first
    /// connection's; all share one configuration and one server); `null` without TLS.
    pub tls: Option<crate::tls::SessionInfo>,
    /// `"closed"` (each connection keeps `pipeline` messages in flight) or `"open"`
    /// (messages sent on a fixed schedule of `rate` per second).
    pub mode: LoopMode,
    /// Connections asked for.
    pub connections: u32,
    /// Connections that opened and were served: connected, and not closed by the server
    /// before it sent a byte (those are `errors.refused`; the ones that did not connect are
    /// `errors.connect_failures`).
    pub connections_open: u32,
    /// Bytes per message, and per reply.
    pub size: u32,
    /// Messages in flight per connection (closed loop); `null` in open loop.
    pub pipeline: Option<u32>,
    /// Messages per second asked for (open loop); `null` in closed loop.
    pub rate: Option<f64>,
    /// `"ascii"` or `"unicode"`.
    pub text: Text,
    /// Seconds of load before the timed window, as asked with `--warmup`.
    pub warmup_s: f64,
    /// Seconds the timed window actually lasted (to the millisecond).
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
    /// Open loop: how well the schedule was kept; `null` in closed loop.
    pub schedule: Option<ScheduleReport>,
    /// Replies owed when the timed window closed: messages sent whose reply was not yet
    /// complete. No message is sent after the window; the run waits up to `--timeout` for
    /// these, checks those that come, and counts those that do not in `errors.timeouts`.
    pub replies_outstanding: u64,
    /// The first wrong reply of the run (sent, expected, got; escaped and cut around the
    /// first difference); `null` when every reply was right.
    pub first_wrong_reply: Option<Detail>,
    /// Why the first connection that failed to open failed; `null` when all opened.
    pub first_connect_error: Option<String>,
    /// `--reconnect`: connections the server closed cleanly at a message boundary (its
    /// last byte ended a reply), that were opened again (not errors). 0 without the flag.
    pub reconnects: u64,
    /// `--reconnect`: messages sent again on the reopened connection because the server
    /// closed cleanly before a byte of their reply (a drain at a line boundary crossing
    /// the next message); each is answered and checked there, or counted as an error.
    /// 0 without the flag.
    pub retried: u64,
    /// `--banner`: each distinct banner line (without its line end, invalid UTF-8 replaced)
    /// and how many connections got it; `null` without `--banner`.
    pub banners: Option<std::collections::BTreeMap<String, u64>>,
    /// Whether the run was stopped by Ctrl-C: the figures are those so far.
    pub interrupted: bool,
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

/// Reply latency in microseconds, from the HDR histogram (3 significant digits), to 0.1 µs.
/// Closed loop: from the first byte of the message written to the last byte of its reply
/// read. Open loop: from the message's scheduled send time, so stalls are not hidden; a
/// message the schedule could not send at all counts from its scheduled time to the end of
/// the window.
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

/// How well an open loop kept its schedule, over the whole run (warm-up included) but for
/// `sent_per_s`, which is over the window like `msgs_per_s`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct ScheduleReport {
    /// Messages per second asked for (`--rate`).
    pub asked_per_s: f64,
    /// Messages per second whose sending began within the window.
    pub sent_per_s: f64,
    /// Messages the schedule made due by the end of the window.
    pub due: u64,
    /// Messages sent more than [`LATE_SEND`](crate::bench::LATE_SEND) after their time.
    pub late: u64,
    /// Messages due that were never sent: the socket was full, too many replies were owed,
    /// or the connection had failed. Counted, never queued.
    pub never_sent: u64,
    /// `(late + never_sent) / due`, to 4 decimals.
    pub slip: f64,
    /// Whether `slip` exceeded [`MAX_SCHEDULE_SLIP`]: the run then exits 1.
    pub slipped: bool,
}

/// What went wrong. Any non-zero count makes `upcase bench` exit with status 1.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Errors {
    /// Replies with at least one byte that differs from the expected upper-case (TCP), or
    /// datagrams of the wrong length or content (UDP), or bytes nobody asked for.
    pub wrong_replies: u64,
    /// Connections the server reset or closed during the run, after sending something.
    pub resets: u64,
    /// Replies that did not complete within `--timeout`, one per message, including those
    /// owed at the end of the window that never came. A TCP connection that times out is
    /// abandoned; a UDP datagram that times out is counted lost and replaced.
    pub timeouts: u64,
    /// Connections that could not be opened.
    pub connect_failures: u64,
    /// Connections the server closed or reset before sending a byte, typically at once
    /// because it was at its connection limit: they never opened for service.
    pub refused: u64,
    /// Connections that stayed open and received nothing at all over the run (a server
    /// that never answers, or buffers every reply until the client closes).
    pub silent: u64,
}

impl Errors {
    /// The sum of every count.
    pub fn total(&self) -> u64 {
        self.wrong_replies
            + self.resets
            + self.timeouts
            + self.connect_failures
            + self.refused
            + self.silent
    }
}

impl BenchResult {
    /// Whether the server passed: every reply right and on time, every connection opened,
    /// served and kept, and (open loop) the schedule kept.
    pub fn passed(&self) -> bool {
        self.errors.total() == 0 && !self.schedule.is_some_and(|s| s.slipped)
    }

    /// The exit status `upcase bench` ends with for this result: 130 when interrupted,
    /// else 0 passed, 1 otherwise.
    pub fn exit_code(&self) -> u8 {
        if self.interrupted {
            EXIT_INTERRUPTED
        } else if self.passed() {
            0
        } else {
            1
        }
    }
}

/// `x` rounded to `decimals` places, so that JSON shows `6.179`, not `6.178781000000001`.
pub(super) fn round(x: f64, decimals: i32) -> f64 {
    let scale = 10f64.powi(decimals);
    (x * scale).round() / scale
}
