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
            ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr_with_hz(REFRESH_HZ));
        // The whole line is one message, set at once, so that a redraw never shows half of
        // an update (a new phase with the old figures).
        bar.set_style(
            ProgressStyle::with_template("{msg}").unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        Progress { bar }
    }

    /// While connections are being opened.
    pub(super) fn connecting(&self, done: u64, total: u64) {
        let line = format!(
            "{:>10} {} {done}/{total}",
            "connecting",
            gauge(done as f64 / total.max(1) as f64)
        );
        self.bar.set_message(line);
    }

    /// During the warm-up.
    pub(super) fn warming(&self, elapsed: Duration, warmup: Duration, rate: f64, errors: u64) {
        self.timed("warm-up", elapsed, warmup, rate, errors);
    }

    /// During the timed window.
    pub(super) fn measuring(&self, elapsed: Duration, duration: Duration, rate: f64, errors: u64) {
        self.timed("measuring", elapsed, duration, rate, errors);
    }

    fn timed(&self, phase: &str, elapsed: Duration, total: Duration, rate: f64, errors: u64) {
        let (elapsed, total) = (elapsed.as_secs_f64(), total.as_secs_f64());
        self.bar.set_message(format!(
            "{phase:>10} {} {elapsed:.1}/{total:.1} s  {rate:.0} msgs/s  {errors} errors",
            gauge(if total > 0.0 { elapsed / total } else { 1.0 }),
        ));
    }

    /// Erases the line.
    pub(super) fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

/// A 30-column gauge, `[=====>      ]`, for a fraction between 0 and 1.
fn gauge(fraction: f64) -> String {
    const WIDTH: usize = 30;
    let filled = ((fraction.clamp(0.0, 1.0) * WIDTH as f64) as usize).min(WIDTH);
    let mut s = String::with_capacity(WIDTH + 2);
    s.push('[');
    s.push_str(&"=".repeat(filled.saturating_sub(1)));
    if filled > 0 {
        s.push(if filled == WIDTH { '=' } else { '>' });
    }
    s.push_str(&" ".repeat(WIDTH - filled));
    s.push(']');
    s
}

#[cfg(test)]
mod tests {
    use super::gauge;

    #[test]
    fn gauges_fill_in_proportion() {
        assert_eq!(gauge(0.0), format!("[{}]", " ".repeat(30)));
        assert_eq!(
            gauge(0.5),
            format!("[{}>{}]", "=".repeat(14), " ".repeat(15))
        );
        assert_eq!(gauge(1.0), format!("[{}]", "=".repeat(30)));
        assert_eq!(gauge(7.0), gauge(1.0));
    }
}
