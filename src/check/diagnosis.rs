//! The tutor: from the pattern of failed cases, the student's most likely mistake and its
//! fix, in C terms.
//!
//! Each known flaw is data: the cases a program with that one flaw fails (the README's
//! "typical student servers" and "typical student clients" tables, which the tests check
//! against real flawed programs), the cause in the student's words, and the fix. A run's
//! failures are explained by the fewest known flaws that fit them (a greedy set cover:
//! largest pattern first), and every failure the chosen flaws explain gets that flaw as
//! its hint, so that the hints under the cases tell one story instead of one guess each.

use std::collections::BTreeSet;

use super::report::{CaseReport, Status};

/// One mistake students make, and the cases it fails.
#[derive(Debug, Clone, Copy)]
pub struct KnownFlaw {
    /// A short name, for tests and the docs.
    pub name: &'static str,
    /// Every case a program with only this flaw fails.
    pub fails: &'static [&'static str],
    /// What is wrong, addressed to the student ("your server reads once and closes").
    pub cause: &'static str,
    /// What to change, in C terms.
    pub fix: &'static str,
    /// The flaw as a per-case hint ("the server reads once, replies and closes").
    pub hint: &'static str,
}

/// The typical student servers (`upcase check`).
pub const SERVER_FLAWS: &[KnownFlaw] = &[
    KnownFlaw {
        name: "read-once",
        fails: &[
            "sequential",
            "pipelined",
            "empty-line",
            "streams-before-newline",
            "concurrent-idle",
            "large-message",
            "split-character",
            "split-letter",
        ],
        cause: "your server reads once, replies and closes",
        fix: "loop on `recv` until it returns 0, and `send` all that each call returned \
              before reading again",
        hint: "the server reads once, replies and closes",
    },
    KnownFlaw {
        name: "one-client-at-a-time",
        fails: &["concurrent-idle", "many-clients"],
        cause: "your server serves one client at a time",
        fix: "`fork()` (or start a thread) for each connection `accept` returns, and go \
              straight back to `accept`",
        hint: "the server serves one client at a time",
    },
    KnownFlaw {
        name: "ignores-partial-writes",
        fails: &["large-message"],
        cause: "your server ignores partial writes",
        fix: "`send` returns how many bytes it took, which may be fewer than you asked: \
              loop until every byte is sent",
        hint: "the server ignores partial writes (an unchecked `send` count)",
    },
    KnownFlaw {
        name: "lossy-per-read",
        fails: &[
            "incomplete-at-eof",
            "invalid-utf8",
            "split-character",
            "split-letter",
        ],
        cause: "your server decodes each read as text and replaces what is not valid UTF-8",
        fix: "work on bytes: change letters, pass every other byte through unchanged, and \
              keep an unfinished character's bytes for the next read",
        hint: "the server decodes each read on its own and replaces bytes with U+FFFD",
    },
    KnownFlaw {
        name: "ascii-only",
        fails: &["unicode-letters", "unicode-special-casing", "split-letter"],
        cause: "your server upper-cases ASCII only (C's `toupper`)",
        fix: "that is what the tutorial asks for: grade it with `--ascii`; to pass these \
              cases too, upper-case Unicode letters (full case mapping)",
        hint: "the server upper-cases ASCII only",
    },
    KnownFlaw {
        name: "simple-case-mapping",
        // `split-letter` too: it holds an `ß`.
        fails: &["unicode-special-casing", "split-letter"],
        cause: "your server maps each character to one (`towupper`), so `ß` stays `ß`",
        fix: "use full case mapping (`ß` → `SS`), e.g. ICU's `u_strToUpper`",
        hint: "the server maps one character to one (simple case mapping, `towupper`)",
    },
    KnownFlaw {
        name: "stateless-per-read",
        fails: &["split-letter"],
        cause: "your server upper-cases each read on its own, so a letter split between \
                two reads is missed",
        fix: "keep the first bytes of an unfinished character and put them in front of \
              the next read",
        hint: "the server upper-cases each read on its own",
    },
    KnownFlaw {
        name: "line-buffered",
        fails: &[
            "streams-before-newline",
            "half-close-no-newline",
            "incomplete-at-eof",
        ],
        cause: "your server replies line by line and drops the unfinished line at the end",
        fix: "send back what each `recv` returned at once instead of waiting for `\\n`, and \
              when `recv` returns 0 send what you still hold before closing",
        hint: "the server waits for whole lines and drops the last, unfinished one",
    },
    KnownFlaw {
        name: "never-closes",
        fails: &[
            "half-close-no-newline",
            "incomplete-at-eof",
            "serves-after-half-close",
        ],
        cause: "your server does not close the connection when the client has finished",
        fix: "when `recv` returns 0 the client has finished sending: `close` the socket and \
              end that client's loop",
        hint: "the server never closes after the client half-closes",
    },
    KnownFlaw {
        name: "dies-on-reset",
        fails: &["abrupt-disconnect"],
        cause: "your server dies when a client resets the connection",
        fix: "ignore SIGPIPE (`signal(SIGPIPE, SIG_IGN)`, or `send` with `MSG_NOSIGNAL`), and \
              when `recv` or `send` fails, close that one client and carry on",
        hint: "the server dies on a reset or a broken pipe (SIGPIPE, an unhandled error)",
    },
];

/// The typical student clients (`upcase check-client`).
pub const CLIENT_FLAWS: &[KnownFlaw] = &[
    KnownFlaw {
        name: "does-not-print-the-reply",
        fails: &[
            "basic",
            "reply-in-pieces",
            "slow-reply",
            "long-message",
            "unicode",
        ],
        cause: "your client does not print the reply",
        fix: "write every byte `recv` returned to stdout (`fwrite(buf, 1, n, stdout)`), then \
              `fflush(stdout)`",
        hint: "the client does not print the reply, or prints something else",
    },
    KnownFlaw {
        name: "sends-extra-bytes",
        fails: &["sends-the-input"],
        cause: "your client sends more than the line typed (`sizeof(buf)` bytes, the NUL \
                terminator, or stale bytes of the buffer)",
        fix: "send exactly `strlen(line)` bytes (or the count `getline` returned)",
        hint: "the client sends `sizeof(buf)` bytes, a NUL terminator or stale buffer bytes",
    },
    KnownFlaw {
        name: "recv-once",
        fails: &["reply-in-pieces", "long-message"],
        cause: "your client calls `recv` once and takes it for the whole reply",
        fix: "call `recv` in a loop, printing what each call returns, until the reply's `\\n` \
              has arrived (or `recv` returns 0)",
        hint: "the client calls `recv` once and assumes it got the whole reply",
    },
    KnownFlaw {
        name: "gives-up-early",
        fails: &["slow-reply"],
        cause: "your client gives up waiting for the reply too early",
        fix: "let `recv` block (no short `SO_RCVTIMEO`, `alarm` or non-blocking poll): a \
              server may take seconds to answer",
        hint: "the client gives up early or does not wait for the reply",
    },
    KnownFlaw {
        name: "cuts-long-lines",
        fails: &["long-message"],
        cause: "your client cuts long lines (a fixed small buffer, a truncating `fgets`, or \
                an unchecked `send` count)",
        fix: "read the whole line (`getline`, or `fgets` in a loop until the `\\n`) and loop \
              on `send` until every byte is sent",
        hint: "a fixed small buffer, a truncating `fgets`, or an unchecked `send` count",
    },
    KnownFlaw {
        name: "mangles-non-ascii",
        fails: &["unicode"],
        cause: "your client changes bytes above 0x7F",
        fix: "treat the reply as bytes and print them unchanged (`fwrite`), with no \
              per-character processing",
        hint: "the client mangles bytes above 0x7F",
    },
    KnownFlaw {
        name: "mishandles-a-close",
        fails: &["server-closes"],
        cause: "your client mishandles a server that closes without replying",
        fix: "when `recv` returns 0 the server has closed: print an error to stderr and exit \
              with a non-zero status; never print a buffer `recv` did not fill",
        hint: "the client loops on `recv` returning 0, or prints a buffer `recv` did not fill",
    },
    KnownFlaw {
        name: "ignores-connect",
        fails: &["refused"],
        cause: "your client does not check whether `connect` succeeded",
        fix: "if `connect` returns -1, `perror(\"connect\")` and `exit(1)`",
        hint: "the client ignores `connect`'s result",
    },
    KnownFlaw {
        name: "loops-at-eof",
        // `basic` too: it wants exit 0 after the reply, and such a client never exits.
        fails: &["basic", "eof-on-stdin"],
        cause: "your client does not stop at the end of its input",
        fix: "when `fgets` returns NULL (or `getline` returns -1), close the socket and exit",
        hint: "the client loops forever when `fgets` returns NULL",
    },
];

/// What the tutor concluded from a run.
#[derive(Debug, Clone, Default)]
pub struct Diagnosis {
    /// The known flaws that explain the failures, most failures first.
    pub flaws: Vec<&'static KnownFlaw>,
    /// Counted failures that no chosen flaw explains.
    pub unexplained: usize,
}

impl Diagnosis {
    /// The summary line, or `None` when there is nothing to say (no failure, or none that
    /// any known flaw fits).
    pub fn line(&self) -> Option<String> {
        let first = self.flaws.first()?;
        let mut s = format!("{}: {}", first.cause, first.fix);
        for also in &self.flaws[1..] {
            s.push_str(&format!("; also, {}: {}", also.cause, also.fix));
        }
        if self.unexplained > 0 {
            let cases = if self.unexplained == 1 {
                "1 other failing case fits".to_string()
            } else {
                format!("{} other failing cases fit", self.unexplained)
            };
            let see = if self.unexplained == 1 {
                "its hint"
            } else {
                "their hints"
            };
            s.push_str(&format!(" ({cases} no known flaw: see {see})"));
        }
        Some(s)
    }

    /// The hint the diagnosis gives for `case`, if one of its flaws explains it.
    pub fn hint_for(&self, case: &str) -> Option<&'static str> {
        self.flaws
            .iter()
            .find(|f| f.fails.contains(&case))
            .map(|f| f.hint)
    }
}

/// Explains the counted failures in `cases` by the known flaws of `table`.
///
/// A flaw is a candidate when every case of its pattern that ran and counted failed (cases
/// left out with `--only`, or informational under `--ascii`, do not count against it), or
/// nearly every one: at least two, and at least three quarters. A pattern depends a little
/// on the program (a read-once server with a 4 KiB buffer gets `pipelined`'s 3 KiB whole),
/// and a tutor still sees the flaw. Candidates are taken greedily, the one that explains
/// the most failures still unexplained first, ties in table order, until none explains
/// another.
pub fn diagnose(cases: &[CaseReport], table: &'static [KnownFlaw]) -> Diagnosis {
    let counted: BTreeSet<&str> = cases.iter().filter(|c| c.counted).map(|c| c.name).collect();
    let failed: BTreeSet<&str> = cases
        .iter()
        .filter(|c| c.counted && c.status == Status::Fail)
        .map(|c| c.name)
        .collect();
    let candidates: Vec<&'static KnownFlaw> = table
        .iter()
        .filter(|f| {
            let ran = f.fails.iter().filter(|c| counted.contains(*c)).count();
            let hit = f.fails.iter().filter(|c| failed.contains(*c)).count();
            ran > 0 && (hit == ran || (hit >= 2 && hit * 4 >= ran * 3))
        })
        .collect();
    let mut left = failed.clone();
    let mut flaws = Vec::new();
    loop {
        let best = candidates
            .iter()
            .map(|f| (f, f.fails.iter().filter(|c| left.contains(*c)).count()))
            .filter(|(_, n)| *n > 0)
            // max_by_key keeps the last of equals: reverse so the table's order wins ties.
            .rev()
            .max_by_key(|(_, n)| *n);
        let Some((flaw, _)) = best else { break };
        for c in flaw.fails {
            left.remove(c);
        }
        flaws.push(*flaw);
    }
    Diagnosis {
        flaws,
        unexplained: left.len(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every server case, failing those in `failed`; the Unicode ones not counted when
    /// `ascii`.
    fn run(failed: &[&str], ascii: bool) -> Vec<CaseReport> {
        crate::check::CASES
            .iter()
            .map(|c| CaseReport {
                name: c.name,
                description: c.description,
                flaw: c.flaw,
                hint: String::new(),
                unicode: c.unicode,
                counted: !(ascii && c.unicode),
                status: if failed.contains(&c.name) {
                    Status::Fail
                } else {
                    Status::Pass
                },
                reason: String::new(),
                duration_ms: 0.0,
                detail: None,
                output: None,
            })
            .collect()
    }

    #[test]
    fn a_pattern_that_nearly_fits_still_names_the_flaw() {
        // A read-once server with a buffer big enough for `pipelined`, under --ascii.
        let cases = run(
            &[
                "sequential",
                "empty-line",
                "streams-before-newline",
                "concurrent-idle",
                "large-message",
                "split-character",
            ],
            true,
        );
        let d = diagnose(&cases, SERVER_FLAWS);
        assert_eq!(d.flaws.len(), 1);
        assert_eq!(d.flaws[0].name, "read-once");
        assert_eq!(d.unexplained, 0);
        assert_eq!(d.hint_for("large-message"), Some(d.flaws[0].hint));
    }

    #[test]
    fn two_flaws_and_an_unexplained_failure() {
        let cases = run(
            &[
                "concurrent-idle",
                "many-clients",
                "abrupt-disconnect",
                "basic",
            ],
            false,
        );
        let d = diagnose(&cases, SERVER_FLAWS);
        let names: Vec<_> = d.flaws.iter().map(|f| f.name).collect();
        assert_eq!(names, ["one-client-at-a-time", "dies-on-reset"]);
        assert_eq!(d.unexplained, 1);
        let line = d.line().unwrap();
        assert!(line.contains("; also, your server dies"), "{line}");
        assert!(line.ends_with("(1 other failing case fits no known flaw: see its hint)"));
        assert!(diagnose(&run(&[], false), SERVER_FLAWS).line().is_none());
    }

    #[test]
    fn every_pattern_names_real_cases() {
        let server: Vec<_> = crate::check::cases::names();
        for f in SERVER_FLAWS {
            for c in f.fails {
                assert!(server.contains(c), "{}: {c}", f.name);
            }
        }
        let client = crate::check::client::names();
        for f in CLIENT_FLAWS {
            for c in f.fails {
                assert!(client.contains(c), "{}: {c}", f.name);
            }
        }
    }
}
