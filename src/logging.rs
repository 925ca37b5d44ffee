//! Logging set-up shared by both binaries: `tracing` to stderr, stdout stays clean.

use std::io::IsTerminal;

use clap::ValueEnum;
use tracing_subscriber::EnvFilter;

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line, for log collectors.
    Json,
}

/// Installs the global subscriber. `RUST_LOG`, when set, wins; otherwise the level is
/// `default` moved up by `verbose` and down by `quiet` steps.
pub fn init(format: LogFormat, default: tracing::Level, verbose: u8, quiet: u8) {
    const LEVELS: [&str; 6] = ["off", "error", "warn", "info", "debug", "trace"];
    let base = match default {
        tracing::Level::ERROR => 1,
        tracing::Level::WARN => 2,
        tracing::Level::INFO => 3,
        tracing::Level::DEBUG => 4,
        tracing::Level::TRACE => 5,
    };
    let level = (base + verbose as i32 - quiet as i32).clamp(0, 5) as usize;
    // rustls's own log lines (through `log`) one step quieter: what they warn of (a peer
    // that speaks no TLS, a bad alert) is already one line of ours, with the address, and
    // on a server they would bypass the once-a-second bound on handshake failure lines.
    let directives = format!(
        "{},rustls={}",
        LEVELS[level],
        LEVELS[level.saturating_sub(1)]
    );
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(directives));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        // A log line that cannot be written (stderr a pipe nobody reads any more) is dropped:
        // the default reports it with `eprintln!`, which panics on that same stderr and
        // takes the server down.
        .log_internal_errors(false);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}
