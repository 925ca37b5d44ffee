//! `upcase bench`: a load generator for capitalisation servers that verifies every reply.
//!
//! It opens all its connections before the clock starts, then either keeps `--pipeline`
//! messages in flight on each (closed loop) or sends `--rate` messages per second on a
//! fixed schedule and measures latency from the scheduled time, so that a stalled server
//! cannot hide its stalls by slowing the load down (open loop). Replies are reassembled
//! across reads and checked byte for byte against [`crate::transform::upcase`]. It runs
//! on one thread, so it costs one core at most.
//!
//! Laid out by concern, as hyperfine is:
//!
//! | module | job |
//! | --- | --- |
//! | [`options`] | the flags ([`BenchArgs`]), their defaults and bounds |
//! | `payload` | the message and the reply it must get |
//! | `run` | opening connections, the timed window, the per-connection drivers |
//! | [`result`] | the documented, serialisable [`BenchResult`] |
//! | [`export`] | the table and the JSON |
//! | [`progress`] | the live progress line |

pub mod export;
pub mod options;
mod payload;
pub mod progress;
pub mod result;
mod run;

use std::io;

pub use options::{BenchArgs, Text};
pub use payload::Payload;
pub use progress::Progress;
pub use result::{
    BenchResult, Errors, Latency, LoopMode, ScheduleReport, Transport, EXIT_INTERRUPTED,
    MAX_SCHEDULE_SLIP,
};
pub use run::{run, run_until, LATE_SEND, MAX_IN_FLIGHT};

use crate::client::ClientError;

/// Why a run could not start. Each is one line for the user; the exit status is
/// [`BenchError::exit_code`].
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// A flag, or a combination of flags, that cannot work.
    #[error("{0}")]
    Usage(String),
    /// The address could not be resolved, or the first connection failed.
    #[error(transparent)]
    Connect(#[from] ClientError),
    /// `--tls`: the first connection's handshake failed (a certificate not trusted, a name
    /// that does not match, a server that speaks no TLS). One line naming the address and
    /// the reason.
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
    /// `--banner`: the first connection got no banner line.
    #[error("no banner from {addr}: {reason} (is the server run with --banner?)")]
    NoBanner {
        /// The address as the user gave it.
        addr: String,
        /// What arrived instead.
        reason: String,
    },
    /// `--udp`: the probe datagram got no reply.
    #[error("could not reach {addr} over UDP: {reason}")]
    UdpUnreachable {
        /// The address as the user gave it.
        addr: String,
        /// What happened to the probe.
        reason: String,
    },
    /// The descriptor limit is too low for `--connections` and could not be raised.
    #[error(
        "--connections {connections} needs about {needed} open files, but the limit is {limit}; \
         raise it with `ulimit -n {needed}` (beyond the hard limit: `nofile` in \
         /etc/security/limits.conf), or use fewer connections"
    )]
    DescriptorLimit {
        /// Connections asked for.
        connections: u32,
        /// Descriptors needed.
        needed: u64,
        /// The soft limit, after trying to raise it.
        limit: u64,
    },
    /// A local resource failed (the runtime could not start).
    #[error("{what}: {source}")]
    Local {
        /// What was being done.
        what: &'static str,
        /// What failed.
        source: io::Error,
    },
}

impl BenchError {
    /// 2 for usage and connect errors (nothing was measured because of how it was asked),
    /// 1 for local failures and a failed TLS handshake (as for every client mode: the
    /// server was reached, and failed to prove who it is).
    pub fn exit_code(&self) -> u8 {
        match self {
            BenchError::Local { .. } | BenchError::Tls(_) => 1,
            _ => 2,
        }
    }
}
