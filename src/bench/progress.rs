//! The live progress line: one line on stderr, redrawn while a run goes on, erased at the
//! end so that the table or JSON on stdout stands alone.
//!
//! The library draws it only when the caller hands [`run`](super::run) a [`Progress`];
//! `upcase bench` does that when stdout is a terminal.

use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Redraws per second: enough to look live, few enough to cost nothing.
const REFRESH_HZ: u8 = 10;

/// A progress line drawn on stderr.
#[derive(Debug)]
pub struct Progress {
    bar: ProgressBar,
}

impl Progress {
    /// A progress line on stderr. indicatif draws nothing when stderr is not a terminal.
    pub fn stderr() -> Progress {
        let bar =
            ProgressBar::with_draw_target(Some(1), ProgressDrawTarget::stderr_with_hz(REFRESH_HZ));
        bar.set_style(
            ProgressStyle::with_template("{prefix:>10} [{bar:30}] {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
        Progress { bar }
    }

    /// While connections are being opened.
    pub(super) fn connecting(&self, done: u64, total: u64) {
        self.bar.set_prefix("connecting");
        self.bar.set_length(total);
        self.bar.set_position(done);
        self.bar.set_message(format!("{done}/{total}"));
    }

    /// During the warm-up.
    pub(super) fn warming(&self, elapsed: Duration, warmup: Duration, rate: f64, errors: u64) {
        self.timed("warm-up", elapsed, warmup, rate, errors);
    }

    /// During the timed window.
    pub(super) fn measuring(&self, elapsed: Duration, duration: Duration, rate: f64, errors: u64) {
        self.timed("measuring", elapsed, duration, rate, errors);
    }

    fn timed(
        &self,
        phase: &'static str,
        elapsed: Duration,
        total: Duration,
        rate: f64,
        errors: u64,
    ) {
        self.bar.set_prefix(phase);
        self.bar.set_length(total.as_millis().max(1) as u64);
        self.bar.set_position(elapsed.as_millis() as u64);
        self.bar.set_message(format!(
            "{:.1}/{:.1} s  {:.0} msgs/s  {errors} errors",
            elapsed.as_secs_f64(),
            total.as_secs_f64(),
            rate
        ));
    }

    /// Erases the line.
    pub(super) fn finish(&self) {
        self.bar.finish_and_clear();
    }
}
