//! The live progress line: one line on stderr, redrawn while a run goes on, erased at the
//! end so that the table or JSON on stdout stands alone.
//!
//! The library draws it only when the caller hands [`run`](super::run) a [`Progress`];
//! `upcase bench` does that when stdout is a terminal.

use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Redraws per second: enough to look live, few enough to cost nothing.
const REFRESH_HZ: u8 = 10;

/// The longest progress line, in characters: one less than the narrowest common terminal
/// (80 columns), so that the line never wraps (a wrapped line cannot be erased).
pub const MAX_LINE: usize = 79;

/// Width of the gauge between its brackets.
const GAUGE: usize = 20;

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
        self.bar.set_message(connecting_line(done, total));
    }

    /// While TLS handshakes are done (`--tls`), after the connections opened.
    pub(super) fn handshaking(&self, done: u64, total: u64) {
        self.bar.set_message(fit(format!(
            "{:>9} {} {done}/{total}",
            "handshake",
            gauge(done as f64 / total.max(1) as f64)
        )));
    }

    /// During the warm-up.
    pub(super) fn warming(&self, elapsed: Duration, warmup: Duration, rate: f64, errors: u64) {
        self.bar
            .set_message(timed_line("warm-up", elapsed, warmup, rate, errors));
    }

    /// During the timed window.
    pub(super) fn measuring(&self, elapsed: Duration, duration: Duration, rate: f64, errors: u64) {
        self.bar
            .set_message(timed_line("measuring", elapsed, duration, rate, errors));
    }

    /// After the window, while replies still owed are awaited.
    pub(super) fn draining(&self, owed: u64, errors: u64) {
        self.bar.set_message(fit(format!(
            "{:>9} {owed} replies owed, waiting up to --timeout  {errors} errors",
            "draining"
        )));
    }

    /// Erases the line.
    pub(super) fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

fn connecting_line(done: u64, total: u64) -> String {
    fit(format!(
        "{:>9} {} {done}/{total}",
        "opening",
        gauge(done as f64 / total.max(1) as f64)
    ))
}

fn timed_line(phase: &str, elapsed: Duration, total: Duration, rate: f64, errors: u64) -> String {
    let (elapsed, total) = (elapsed.as_secs_f64(), total.as_secs_f64());
    fit(format!(
        "{phase:>9} {} {}/{} s {} msgs/s {errors} errors",
        gauge(if total > 0.0 { elapsed / total } else { 1.0 }),
        short(elapsed),
        short(total),
        short(rate),
    ))
}

/// A number in at most 6 characters: `12.3`, `4567`, `123.4k`, `12.3M`.
fn short(x: f64) -> String {
    match x {
        x if x < 100.0 => format!("{x:.1}"),
        x if x < 10_000.0 => format!("{x:.0}"),
        x if x < 10_000_000.0 => format!("{:.1}k", x / 1e3),
        x if x < 1e10 => format!("{:.1}M", x / 1e6),
        x => format!("{:.0}G", (x / 1e9).min(999_999.0)),
    }
}

/// The line cut to [`MAX_LINE`] characters, whatever the figures in it.
fn fit(mut line: String) -> String {
    if let Some((i, _)) = line.char_indices().nth(MAX_LINE) {
        line.truncate(i);
    }
    line
}

/// A gauge of [`GAUGE`] columns, `[=====>      ]`, for a fraction between 0 and 1.
fn gauge(fraction: f64) -> String {
    let filled = ((fraction.clamp(0.0, 1.0) * GAUGE as f64) as usize).min(GAUGE);
    let mut s = String::with_capacity(GAUGE + 2);
    s.push('[');
    s.push_str(&"=".repeat(filled.saturating_sub(1)));
    if filled > 0 {
        s.push(if filled == GAUGE { '=' } else { '>' });
    }
    s.push_str(&" ".repeat(GAUGE - filled));
    s.push(']');
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gauges_fill_in_proportion() {
        assert_eq!(gauge(0.0), format!("[{}]", " ".repeat(20)));
        assert_eq!(
            gauge(0.5),
            format!("[{}>{}]", "=".repeat(9), " ".repeat(10))
        );
        assert_eq!(gauge(1.0), format!("[{}]", "=".repeat(20)));
        assert_eq!(gauge(7.0), gauge(1.0));
    }

    #[test]
    fn no_line_wraps_on_80_columns_whatever_the_figures() {
        let week = crate::limits::MAX_DURATION;
        let lines = [
            connecting_line(999_999, 1_000_000),
            connecting_line(u64::MAX, u64::MAX),
            timed_line("measuring", week, week, 1e12, u64::MAX),
            timed_line("warm-up", week / 2, week, 123_456_789.0, 1_000_000),
            timed_line(
                "measuring",
                Duration::from_millis(300),
                Duration::from_secs(1),
                0.0,
                0,
            ),
            fit(format!("{:>9} {} replies owed", "draining", u64::MAX)),
        ];
        for line in &lines {
            assert!(
                line.chars().count() <= MAX_LINE,
                "{} chars: {line}",
                line.chars().count()
            );
        }
        // The usual case is not cut.
        assert!(lines[4].ends_with("0 errors"), "{}", lines[4]);
    }

    #[test]
    fn short_numbers_stay_short() {
        for x in [
            0.0, 99.9, 100.0, 9_999.0, 10_000.0, 9.99e6, 1e7, 1e9, 1e12, 1e300,
        ] {
            assert!(short(x).len() <= 7, "{x}: {}", short(x));
        }
        assert_eq!(short(153_231.0), "153.2k");
    }
}
