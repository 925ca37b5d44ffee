//! What a benchmark run is asked to do: the `upcase bench` flags, their defaults and bounds,
//! and the checks clap cannot make on its own.

use std::time::Duration;

use clap::{Args, ValueEnum};
use serde::Serialize;

use super::BenchError;
use crate::limits::MAX_DURATION;
use crate::units::parse_duration;

/// Default `--connections`: a hundred connections is the smallest count at which a
/// multi-worker server has enough concurrent work to show its throughput, and far below
/// any descriptor limit.
pub const DEFAULT_CONNECTIONS: u32 = 100;

/// Default `--size`: 64 bytes is a typical line of text, small enough that the figures
/// measure per-message cost (system calls, wake-ups) rather than copying.
pub const DEFAULT_SIZE: u32 = 64;

/// Default `--pipeline`: one message in flight, request/response as most clients use it.
pub const DEFAULT_PIPELINE: u32 = 1;

/// Default `--duration`: five seconds averages over the scheduling noise of a shared machine
/// and still gives an answer while the user waits.
pub const DEFAULT_DURATION: Duration = Duration::from_secs(5);

/// Default `--warmup`: one second lets connections reach their steady state (congestion
/// windows, server buffers, CPU frequency) before anything is counted.
pub const DEFAULT_WARMUP: Duration = Duration::from_secs(1);

/// Upper bound of `--connections`. One source address can open at most about 28 000
/// connections to one server address (the ephemeral port range); a million leaves room for
/// servers that listen on many addresses while still catching typing mistakes.
pub const MAX_CONNECTIONS: u32 = 1_000_000;

/// Upper bound of `--size`: 64 MiB. The message and its expected reply are built once and
/// shared by every connection, so this bounds memory, not per-connection cost.
pub const MAX_SIZE: u32 = 64 << 20;

/// Upper bound of `--pipeline`. Each connection keeps one send time per message in flight;
/// beyond a few thousand, the socket buffers, not the pipeline, bound what is in flight.
pub const MAX_PIPELINE: u32 = 4096;

/// The largest UDP payload over IPv4 (65 535 less the IP and UDP headers): one message is
/// one datagram, so `--udp` needs `--size` at most this.
pub const MAX_UDP_SIZE: u32 = 65_507;

/// The lowest `--rate`: one message every 1000 s. Below it a run of any sensible length
/// sends nothing, and the schedule's intervals (connections ÷ rate) would stop fitting a
/// timer.
pub const MIN_RATE: f64 = 1e-3;

/// The highest `--rate`: a trillion messages per second, a hundred thousand times what one
/// thread can send. Messages the schedule cannot send are counted, never queued, so a rate
/// this high costs no memory; the bound keeps the counts (rate × the longest run) exact in
/// a `u64`.
pub const MAX_RATE: f64 = 1e12;

/// The longest banner line `--banner` reads, LF included. A banner is one short line (an
/// instance name and addresses); a server that sends more without LF is not sending one.
pub const MAX_BANNER: usize = 4096;

/// Which text the messages carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Text {
    /// Lower-case ASCII letters, then LF.
    #[default]
    Ascii,
    /// Cyrillic, German, Greek and CJK words whose upper-case has the same UTF-8 length,
    /// separated by spaces, then LF.
    Unicode,
}

/// The flags of `upcase bench`. The server address and the reply timeout are the client's
/// global `--connect` and `--timeout`.
#[derive(Debug, Clone, Args)]
pub struct BenchArgs {
    /// Connections (UDP sockets with --udp), all opened before the timed window starts.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_CONNECTIONS,
          value_parser = clap::value_parser!(u32).range(1..=MAX_CONNECTIONS as i64))]
    pub connections: u32,

    /// Bytes per message: letters (or words, with --text unicode), then LF.
    #[arg(long, value_name = "BYTES", default_value_t = DEFAULT_SIZE,
          value_parser = clap::value_parser!(u32).range(1..=MAX_SIZE as i64))]
    pub size: u32,

    /// Messages each connection keeps in flight (closed loop).
    #[arg(long, value_name = "K", default_value_t = DEFAULT_PIPELINE, conflicts_with = "rate",
          value_parser = clap::value_parser!(u32).range(1..=MAX_PIPELINE as i64))]
    pub pipeline: u32,

    /// Length of the timed window (500ms, 10s, 5m; at most a week).
    // clap needs the default as text; `defaults_match_the_named_constants` keeps it in step.
    #[arg(long, value_name = "DUR", default_value = "5s", value_parser = parse_duration)]
    pub duration: Duration,

    /// Load before the timed window, not counted in the figures; 0 for none (at most a
    /// week).
    #[arg(long, value_name = "DUR", default_value = "1s", value_parser = parse_duration)]
    pub warmup: Duration,

    /// Open loop: R messages per second in total, sent on a fixed schedule whatever the
    /// replies do; latency counts from each message's scheduled time. From 0.001 to 1e12.
    #[arg(long, value_name = "R", value_parser = parse_rate)]
    pub rate: Option<f64>,

    /// Text of the messages.
    #[arg(long, value_enum, default_value_t = Text::Ascii)]
    pub text: Text,

    /// One UDP datagram per message instead of a TCP stream. Set from `upcase`'s global
    /// `--udp` flag (so `upcase bench --udp` and `upcase --udp bench` both work).
    #[arg(skip)]
    pub udp: bool,

    /// Over TLS: every connection shakes hands with this configuration before the clock
    /// starts, and the result names the version and cipher suite negotiated. Set from
    /// `upcase`'s `--tls`, `--ca`, `--sni` and `--insecure`.
    #[arg(skip)]
    pub tls: Option<crate::client::TlsClient>,

    /// Read the banner line the server sends on each connection (`upcased --banner`)
    /// before the window, and report how many connections each distinct banner got.
    #[arg(long)]
    pub banner: bool,

    /// Reopen a connection that the server closes cleanly at a message boundary (a rolling
    /// restart, a balancer), counting it in `reconnects` rather than as an error. Messages
    /// it closed without a byte of their reply are sent again on the new connection, once
    /// (`retried`); a close inside a reply stays an error.
    #[arg(long)]
    pub reconnect: bool,

    /// Print the result as one JSON object instead of a table.
    #[arg(long)]
    pub json: bool,
}

impl Default for BenchArgs {
    fn default() -> Self {
        BenchArgs {
            connections: DEFAULT_CONNECTIONS,
            size: DEFAULT_SIZE,
            pipeline: DEFAULT_PIPELINE,
            duration: DEFAULT_DURATION,
            warmup: DEFAULT_WARMUP,
            rate: None,
            text: Text::Ascii,
            udp: false,
            tls: None,
            banner: false,
            reconnect: false,
            json: false,
        }
    }
}

impl BenchArgs {
    /// The checks that need more than one flag, or that clap's parsers cannot express.
    /// Each failure is a usage error that says what to change.
    pub fn validate(&self) -> Result<(), BenchError> {
        let usage = |s: String| Err(BenchError::Usage(s));
        if self.duration.is_zero() {
            return usage("--duration must be more than zero".into());
        }
        if self.udp && self.banner {
            return usage(
                "--banner reads a line at the start of a TCP connection; it does not go \
                 with --udp"
                    .into(),
            );
        }
        if self.udp && self.tls.is_some() {
            return usage("--tls runs over TCP; it does not go with --udp".into());
        }
        if self.banner && self.tls.is_some() {
            return usage(
                "--banner reads a plain-text line before any reply, and upcased sends no \
                 banner over TLS; it does not go with --tls"
                    .into(),
            );
        }
        if self.udp && self.reconnect {
            return usage("--reconnect reopens TCP connections; it does not go with --udp".into());
        }
        if self.udp && self.size > MAX_UDP_SIZE {
            return usage(format!(
                "--size {} does not fit in one UDP datagram; with --udp use at most {MAX_UDP_SIZE}",
                self.size
            ));
        }
        if !(1..=MAX_CONNECTIONS).contains(&self.connections) {
            return usage(format!(
                "--connections must be between 1 and {MAX_CONNECTIONS}"
            ));
        }
        if !(1..=MAX_SIZE).contains(&self.size) {
            return usage(format!("--size must be between 1 and {MAX_SIZE}"));
        }
        if !(1..=MAX_PIPELINE).contains(&self.pipeline) {
            return usage(format!("--pipeline must be between 1 and {MAX_PIPELINE}"));
        }
        for (flag, d) in [("--duration", self.duration), ("--warmup", self.warmup)] {
            if d > MAX_DURATION {
                return usage(format!(
                    "{flag} {} is too long: durations go up to {}",
                    humantime::format_duration(d),
                    humantime::format_duration(MAX_DURATION)
                ));
            }
        }
        if let Some(rate) = self.rate {
            check_rate(rate).map_err(BenchError::Usage)?;
        }
        Ok(())
    }
}

/// Parses `--rate`: a number of messages per second from [`MIN_RATE`] to [`MAX_RATE`].
fn parse_rate(s: &str) -> Result<f64, String> {
    let rate = s.trim().parse::<f64>().map_err(|_| {
        format!("`{s}` is not a rate: expected a number of messages per second, e.g. 10000")
    })?;
    check_rate(rate)?;
    Ok(rate)
}

/// Whether `rate` lies in [`MIN_RATE`]`..=`[`MAX_RATE`] (which also rules out NaN and
/// infinities), with the range in the error.
fn check_rate(rate: f64) -> Result<(), String> {
    if (MIN_RATE..=MAX_RATE).contains(&rate) {
        Ok(())
    } else {
        Err(format!(
            "--rate {rate} is out of range: give between {MIN_RATE} and {MAX_RATE:e} messages per second"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, clap::Parser)]
    struct Cli {
        #[command(flatten)]
        args: BenchArgs,
    }

    #[test]
    fn defaults_match_the_named_constants() {
        use clap::Parser;
        let parsed = Cli::parse_from(["bench"]).args;
        let default = BenchArgs::default();
        assert_eq!(
            (parsed.connections, parsed.size, parsed.pipeline),
            (default.connections, default.size, default.pipeline)
        );
        assert_eq!(
            (parsed.duration, parsed.warmup, parsed.rate, parsed.text),
            (default.duration, default.warmup, default.rate, default.text)
        );
        assert!(!parsed.udp && !parsed.json);
    }

    #[test]
    fn rates_must_be_positive_numbers() {
        assert_eq!(parse_rate("2500").unwrap(), 2500.0);
        assert_eq!(parse_rate("0.5").unwrap(), 0.5);
        assert!(parse_rate("0").is_err());
        assert!(parse_rate("-3").is_err());
        assert!(parse_rate("inf").is_err());
        assert!(parse_rate("fast").is_err());
        assert!(parse_rate("NaN").is_err());
        assert!(parse_rate("1e-19").unwrap_err().contains("out of range"));
        assert!(parse_rate("1e13").unwrap_err().contains("out of range"));
        assert_eq!(parse_rate("1e12").unwrap(), MAX_RATE);
        assert_eq!(parse_rate("0.001").unwrap(), MIN_RATE);
    }

    #[test]
    fn the_library_refuses_what_the_flags_refuse() {
        for rate in [0.0, -1.0, 1e-19, 1e13, f64::NAN, f64::INFINITY] {
            let args = BenchArgs {
                rate: Some(rate),
                pipeline: 1,
                ..BenchArgs::default()
            };
            assert!(
                matches!(args.validate(), Err(BenchError::Usage(_))),
                "{rate}"
            );
        }
        let long = MAX_DURATION + Duration::from_secs(1);
        for args in [
            BenchArgs {
                duration: long,
                ..BenchArgs::default()
            },
            BenchArgs {
                warmup: long,
                ..BenchArgs::default()
            },
        ] {
            assert!(matches!(args.validate(), Err(BenchError::Usage(_))));
        }
    }

    #[test]
    fn udp_messages_must_fit_a_datagram() {
        let args = BenchArgs {
            udp: true,
            size: MAX_UDP_SIZE + 1,
            ..BenchArgs::default()
        };
        assert!(matches!(args.validate(), Err(BenchError::Usage(_))));
        let args = BenchArgs {
            udp: true,
            size: MAX_UDP_SIZE,
            ..BenchArgs::default()
        };
        assert!(args.validate().is_ok());
    }

    #[test]
    fn zero_duration_is_refused() {
        let args = BenchArgs {
            duration: Duration::ZERO,
            ..BenchArgs::default()
        };
        assert!(matches!(args.validate(), Err(BenchError::Usage(_))));
    }
}
