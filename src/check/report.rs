//! What a check run found: one [`CaseReport`] per case, gathered in a [`CheckReport`], and
//! the escaped, shortened [`Excerpt`]s of bytes that a failure shows.
//!
//! These are plain `serde::Serialize` structs; [`super::export`] turns them into a table,
//! JSON or JUnit XML. The field names are the JSON format, documented in `docs/check.md`.

use std::fmt;

use serde::Serialize;

/// Raw bytes shown in one excerpt, before escaping. Enough to recognise a line of text,
/// short enough that sent, expected and got fit on one terminal line each.
pub const EXCERPT_BYTES: usize = 64;

/// Bytes shown before the first difference, so the reader sees where the reply went wrong.
const EXCERPT_LEAD: usize = 16;

/// The outcome of a whole run.
#[derive(Debug, Clone, Serialize)]
pub struct CheckReport {
    /// What was graded: a server (`upcase check`) or a client (`upcase check-client`).
    pub kind: Kind,
    /// The address as the user gave it; for `check-client`, the scripted server's address.
    pub server: String,
    /// The address that was checked, after resolution.
    pub resolved: String,
    /// `--tls`: the version and cipher suite the server negotiated with the checker (its
    /// first connection's); `None` without TLS.
    pub tls: Option<crate::tls::SessionInfo>,
    /// `"unicode"`, or `"ascii"` under `--ascii`.
    pub mode: &'static str,
    /// The deadline of each case, in milliseconds.
    pub timeout_ms: u64,
    /// Counted cases that passed.
    pub passed: usize,
    /// Counted cases that failed.
    pub failed: usize,
    /// Cases run but not counted (the Unicode cases under `--ascii`).
    pub informational: usize,
    /// Wall-clock time of the whole run, in milliseconds.
    pub duration_ms: f64,
    /// The most likely cause of the failures and its fix, from their pattern
    /// (see [`super::diagnosis`]); `None` when nothing failed or no known flaw fits.
    pub diagnosis: Option<String>,
    /// Whether every counted case that is not a Unicode case passed: the server would
    /// conform under `--ascii` rules.
    pub ascii_conforming: bool,
    /// The run was stopped (Ctrl-C) before every case had run.
    pub interrupted: bool,
    /// The graded client's command line (`check-client`), or the server's (`--server-cmd`).
    pub command: Option<String>,
    /// How the server started with `--server-cmd` ended: `None` when it was still running
    /// at the end (and was stopped by the checker), or when there was no `--server-cmd`.
    pub server_exit: Option<String>,
    /// Every case run, in order.
    pub cases: Vec<CaseReport>,
}

impl CheckReport {
    /// Whether every counted case passed: the run's exit status is 0.
    pub fn success(&self) -> bool {
        self.failed == 0 && !self.interrupted
    }
}

/// What a report grades.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// A server, graded by `upcase check`.
    Server,
    /// A client, graded by `upcase check-client`.
    Client,
}

/// Milliseconds rounded to microseconds, so that JSON shows `6.179`, not `6.178781000000001`.
pub fn round_ms(ms: f64) -> f64 {
    (ms * 1e3).round() / 1e3
}

/// Pass or fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// The server did what the protocol says.
    Pass,
    /// It did not; the report says how.
    Fail,
}

/// The outcome of one case.
#[derive(Debug, Clone, Serialize)]
pub struct CaseReport {
    /// The case's name, as `--only` takes it.
    pub name: &'static str,
    /// What the case does, in one sentence.
    pub description: &'static str,
    /// The flaw that makes a server (or client) fail this case, in general.
    pub flaw: &'static str,
    /// On a failure, the flaw most likely behind it in this run: the one the reply itself
    /// shows, else the one the diagnosis found, else [`CaseReport::flaw`]. Empty on a pass.
    pub hint: String,
    /// Whether this is one of the Unicode cases (informational under `--ascii`).
    pub unicode: bool,
    /// Whether the result counts towards the exit status.
    pub counted: bool,
    /// Pass or fail.
    pub status: Status,
    /// One short line: what passed, or what went wrong.
    pub reason: String,
    /// How long the case took, in milliseconds.
    pub duration_ms: f64,
    /// On failure, the bytes that show it; `None` when bytes say nothing (a refused
    /// connection, say).
    pub detail: Option<Detail>,
    /// For `check-client`, on a failure: how the client ended and what it printed.
    pub output: Option<ProcessOutput>,
}

/// How a graded program ended and what it wrote, each stream an escaped excerpt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProcessOutput {
    /// "exited with status 0", "killed by signal 13 (SIGPIPE)", "still running after 5s".
    pub exit: String,
    /// The start of what it wrote to stdout.
    pub stdout: Excerpt,
    /// The start of what it wrote to stderr.
    pub stderr: Excerpt,
}

/// The bytes behind a failure, each an escaped excerpt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Detail {
    /// What the checker sent in the step that failed.
    pub sent: Excerpt,
    /// What the reference transform says should have come back.
    pub expected: Excerpt,
    /// What came back.
    pub got: Excerpt,
}

impl Detail {
    /// Excerpts of a step's bytes, each cut around the first byte where `got` differs from
    /// `expected`.
    pub fn new(sent: &[u8], expected: &[u8], got: &[u8]) -> Detail {
        let diff = first_difference(expected, got);
        let from = diff.saturating_sub(EXCERPT_LEAD);
        // The sent bytes line up with the reply only when upper-casing kept every length.
        let sent_from = if sent.len() == expected.len() {
            from
        } else {
            0
        };
        Detail {
            sent: Excerpt::new(sent, sent_from),
            expected: Excerpt::new(expected, from),
            got: Excerpt::new(got, from),
        }
    }
}

/// The index of the first byte where `a` and `b` differ, or the shorter length.
pub fn first_difference(a: &[u8], b: &[u8]) -> usize {
    a.iter()
        .zip(b)
        .position(|(x, y)| x != y)
        .unwrap_or(a.len().min(b.len()))
}

/// A window of at most [`EXCERPT_BYTES`] bytes of a longer byte string, escaped so that any
/// terminal or XML file shows it faithfully.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Excerpt {
    /// The bytes `from..to`, escaped as by [`escape`].
    pub text: String,
    /// Where the window starts, in bytes.
    pub from: usize,
    /// Where it ends (exclusive).
    pub to: usize,
    /// The length of the whole byte string.
    pub len: usize,
}

impl Excerpt {
    /// The window of `bytes` starting near `from`, moved off the middle of a character so
    /// that the cut does not show as invalid bytes.
    pub fn new(bytes: &[u8], from: usize) -> Excerpt {
        let mut from = from.min(bytes.len());
        while from > 0 && from < bytes.len() && is_continuation(bytes[from]) {
            from -= 1;
        }
        let mut to = (from + EXCERPT_BYTES).min(bytes.len());
        let mut back = 0;
        while to < bytes.len() && is_continuation(bytes[to]) && back < 3 {
            to -= 1;
            back += 1;
        }
        Excerpt {
            text: escape(&bytes[from..to]),
            from,
            to,
            len: bytes.len(),
        }
    }
}

impl fmt::Display for Excerpt {
    /// `"HELLO\n"`, or `…"ELLO"… (bytes 1..5 of 9)` when cut.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let lead = if self.from > 0 { "…" } else { "" };
        let trail = if self.to < self.len { "…" } else { "" };
        write!(f, "{lead}\"{}\"{trail}", self.text)?;
        if self.from > 0 || self.to < self.len {
            write!(f, " (bytes {}..{} of {})", self.from, self.to, self.len)?;
        }
        Ok(())
    }
}

fn is_continuation(b: u8) -> bool {
    b & 0xC0 == 0x80
}

/// Shows bytes as readable text: valid UTF-8 as itself, except `\n`, `\r`, `\t`, `\0`, `\\`,
/// `\"`, other control characters as `\xNN` (or `\u{NN}` above ASCII), U+FFFD as
/// `\u{FFFD}` (so that a server's replacement characters cannot pass for a font's), and
/// bytes that are not valid UTF-8 as `\xNN`.
pub fn escape(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '\n' => s.push_str("\\n"),
                '\r' => s.push_str("\\r"),
                '\t' => s.push_str("\\t"),
                '\0' => s.push_str("\\0"),
                '\\' => s.push_str("\\\\"),
                '"' => s.push_str("\\\""),
                c if (c as u32) < 0x80 && c.is_control() => {
                    s.push_str(&format!("\\x{:02X}", c as u32));
                }
                c if c.is_control() || c == char::REPLACEMENT_CHARACTER => {
                    s.push_str(&format!("\\u{{{:X}}}", c as u32));
                }
                c => s.push(c),
            }
        }
        for b in chunk.invalid() {
            s.push_str(&format!("\\x{b:02X}"));
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_shows_controls_and_invalid_bytes() {
        assert_eq!(escape(b"a\n\r\t\0\\\"\x01\x7f"), r#"a\n\r\t\0\\\"\x01\x7F"#);
        assert_eq!(escape(b"\xff\xc3("), r"\xFF\xC3(");
        assert_eq!(escape("straße\u{85}".as_bytes()), r"straße\u{85}");
        assert_eq!(escape("a\u{FFFD}".as_bytes()), r"a\u{FFFD}");
    }

    #[test]
    fn short_excerpts_are_whole() {
        let e = Excerpt::new(b"hello\n", 0);
        assert_eq!(e.to_string(), r#""hello\n""#);
    }

    #[test]
    fn long_excerpts_are_cut_with_ellipsis_and_length() {
        let bytes = vec![b'a'; 1000];
        let e = Excerpt::new(&bytes, 500);
        assert_eq!(e.from, 500);
        assert_eq!(e.to, 500 + EXCERPT_BYTES);
        assert_eq!(
            e.to_string(),
            format!(
                "…\"{}\"… (bytes 500..{} of 1000)",
                "a".repeat(EXCERPT_BYTES),
                500 + EXCERPT_BYTES
            )
        );
    }

    #[test]
    fn excerpts_do_not_cut_characters() {
        let text = "é".repeat(100);
        let e = Excerpt::new(text.as_bytes(), 3);
        assert_eq!(e.from, 2);
        assert!(!e.text.contains("\\x"), "{}", e.text);
        assert_eq!((e.to - e.from) % 2, 0);
    }

    #[test]
    fn detail_centres_on_the_first_difference() {
        let expected = vec![b'A'; 200];
        let mut got = expected.clone();
        got[100] = b'a';
        let d = Detail::new(&[b'a'; 200], &expected, &got);
        assert_eq!(d.got.from, 100 - EXCERPT_LEAD);
        assert!(d.got.text.contains('a'));
        assert_eq!(d.sent.from, d.got.from);
    }
}
