//! A [`CheckReport`] as text for people (a table), for programs (JSON) and for CI systems
//! (JUnit XML). Each function returns the text; the binary decides where it goes.

use std::fmt::Write as _;

use super::report::{CaseReport, CheckReport, Kind, Status};

/// The report as a table: the header, one line per case (status, name, short reason), the
/// hint and the bytes of each failure, the diagnosis, then a summary line.
///
/// [`LiveTable`] writes the same text piece by piece as the cases finish.
pub fn table(report: &CheckReport) -> String {
    let width = name_width(report.cases.iter().map(|c| c.name));
    let mut out = header(report);
    for case in &report.cases {
        out.push_str(&case_line(case, width));
    }
    out.push_str(&footer(report));
    out
}

/// The width of the name column for these case names.
pub fn name_width<'a>(names: impl IntoIterator<Item = &'a str>) -> usize {
    names.into_iter().map(str::len).max().unwrap_or(0)
}

/// The table's first line and a blank line. Needs only the run's settings, so that it can
/// be printed before the first case.
pub fn header(report: &CheckReport) -> String {
    let per_case = humantime::format_duration(std::time::Duration::from_millis(report.timeout_ms));
    match report.kind {
        Kind::Server => {
            let mut resolved = if report.resolved == report.server {
                String::new()
            } else {
                format!("{}, ", report.resolved)
            };
            if let Some(tls) = &report.tls {
                resolved.push_str(&format!("{} {}, ", tls.version, tls.cipher_suite));
            }
            let started = match &report.command {
                Some(cmd) => format!(", started as `{cmd}`"),
                None => String::new(),
            };
            format!(
                "upcase check {} ({resolved}{} upper-casing, {per_case} per case{started})\n\n",
                report.server, report.mode
            )
        }
        Kind::Client => format!(
            "upcase check-client `{}` (scripted server on {}, {per_case} per case)\n\n",
            report.command.as_deref().unwrap_or(""),
            report.server
        ),
    }
}

/// One case's line: `PASS  name  reason`, `FAIL  …`, or `info  …` for a case not counted.
pub fn case_line(case: &CaseReport, width: usize) -> String {
    let label = match (case.counted, case.status) {
        (true, Status::Pass) => "PASS",
        (true, Status::Fail) => "FAIL",
        (false, _) => "info",
    };
    let reason = if case.counted {
        case.reason.clone()
    } else {
        format!("not counted: {}", informational(case))
    };
    format!("{label}  {:width$}  {reason}\n", case.name)
}

/// What follows the case lines: each counted failure's hint, bytes and output, the
/// diagnosis, and the summary line.
pub fn footer(report: &CheckReport) -> String {
    let mut out = String::new();
    let pad = " ".repeat(6);
    for case in report
        .cases
        .iter()
        .filter(|c| c.counted && c.status == Status::Fail)
    {
        let _ = writeln!(out, "\n{}:", case.name);
        let _ = writeln!(out, "{pad}flaw?     {}", case.hint);
        if let Some(d) = &case.detail {
            let _ = writeln!(out, "{pad}sent      {}", d.sent);
            let _ = writeln!(out, "{pad}expected  {}", d.expected);
            let _ = writeln!(out, "{pad}got       {}", d.got);
        }
        if let Some(o) = &case.output {
            let _ = writeln!(out, "{pad}exit      {}", o.exit);
            let _ = writeln!(out, "{pad}stdout    {}", o.stdout);
            let _ = writeln!(out, "{pad}stderr    {}", o.stderr);
        }
    }
    out.push('\n');
    if let Some(exit) = &report.server_exit {
        let _ = writeln!(out, "server:    {exit}");
    }
    if let Some(d) = &report.diagnosis {
        let _ = writeln!(out, "diagnosis: {d}");
    }
    let _ = writeln!(out, "{}", summary(report));
    out
}

/// What an informational case showed, in words.
fn informational(case: &CaseReport) -> String {
    match (case.unicode, case.status) {
        (true, Status::Pass) => format!(
            "(--ascii) the server handles Unicode here too ({})",
            case.reason
        ),
        (true, Status::Fail) => format!("(--ascii) {}", case.reason),
        (false, Status::Pass) => format!("passed ({})", case.reason),
        (false, Status::Fail) => format!("failed ({})", case.reason),
    }
}

/// `n` and the noun, plural unless `n` is 1.
fn plural(n: usize, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

/// One line: counts, time, verdict.
pub fn summary(report: &CheckReport) -> String {
    let mut s = format!("{} passed, {} failed", report.passed, report.failed);
    if report.informational > 0 {
        let _ = write!(s, ", {} informational", report.informational);
    }
    let what = match report.kind {
        Kind::Server => "server",
        Kind::Client => "client",
    };
    let verdict = if report.interrupted {
        format!("interrupted after {}", plural(report.cases.len(), "case"))
    } else if report.success() {
        format!("the {what} conforms")
    } else if report.kind == Kind::Server && report.mode == "unicode" && report.ascii_conforming {
        "the server does not conform, but every failure is a Unicode case and it upper-cases \
         ASCII right: it conforms under --ascii rules (grade it with `upcase check --ascii`)"
            .to_string()
    } else {
        format!("the {what} does not conform")
    };
    let _ = write!(
        s,
        " ({} in {:.2}s): {verdict}",
        plural(report.cases.len(), "case"),
        report.duration_ms / 1e3,
    );
    s
}

/// A [`super::Observer`] that writes the table as the run goes: the header at once, each
/// case's line as it finishes; the binary writes [`footer`] at the end. Write errors are
/// kept and returned by [`LiveTable::finish`], so that a closed stdout ends the run's
/// output quietly instead of failing the run.
pub struct LiveTable<W: std::io::Write + Send> {
    out: W,
    width: usize,
    error: Option<std::io::Error>,
}

impl<W: std::io::Write + Send> LiveTable<W> {
    /// Writes to `out`, with the name column `width` wide (see [`name_width`]).
    pub fn new(out: W, width: usize) -> LiveTable<W> {
        LiveTable {
            out,
            width,
            error: None,
        }
    }

    fn write(&mut self, text: &str) {
        if self.error.is_none() {
            if let Err(e) = self
                .out
                .write_all(text.as_bytes())
                .and_then(|()| self.out.flush())
            {
                self.error = Some(e);
            }
        }
    }

    /// The footer, and the first write error if any.
    pub fn finish(mut self, report: &CheckReport) -> std::io::Result<W> {
        self.write(&footer(report));
        match self.error {
            Some(e) => Err(e),
            None => Ok(self.out),
        }
    }
}

impl<W: std::io::Write + Send> super::Observer for LiveTable<W> {
    fn started(&mut self, report: &CheckReport) {
        self.write(&header(report));
    }

    fn case_done(&mut self, case: &CaseReport) {
        let line = case_line(case, self.width);
        self.write(&line);
    }
}

/// The report as pretty-printed JSON; the fields are those of [`CheckReport`], documented
/// in `docs/check.md`.
pub fn json(report: &CheckReport) -> serde_json::Result<String> {
    serde_json::to_string_pretty(report)
}

/// The report as JUnit XML: one `<testcase>` per case, `<failure>` for a counted failure,
/// `<skipped>` for an informational case.
///
/// Written by hand: the format needs four elements and attribute escaping, which is less
/// code than a dependency's builder, and every excerpt is already free of control
/// characters (see [`super::report::escape`]); [`xml_escape`] still guards against any
/// character XML 1.0 cannot carry.
pub fn junit(report: &CheckReport) -> String {
    let secs = |ms: f64| format!("{:.3}", ms / 1e3);
    let skipped = report.informational;
    let failures = report.failed;
    let suite = match report.kind {
        Kind::Server => format!("upcase check {}", report.server),
        Kind::Client => format!(
            "upcase check-client {}",
            report.command.as_deref().unwrap_or("")
        ),
    };
    let mut x = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        x,
        "<testsuites name=\"{}\" tests=\"{}\" failures=\"{failures}\" errors=\"0\" \
         skipped=\"{skipped}\" time=\"{}\">",
        xml_escape(&suite),
        report.cases.len(),
        secs(report.duration_ms)
    );
    let _ = writeln!(
        x,
        "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{failures}\" errors=\"0\" \
         skipped=\"{skipped}\" time=\"{}\">",
        xml_escape(&suite),
        report.cases.len(),
        secs(report.duration_ms)
    );
    let _ = writeln!(
        x,
        "    <properties>\n      <property name=\"server\" value=\"{}\"/>\n      \
         <property name=\"mode\" value=\"{}\"/>\n    </properties>",
        xml_escape(&report.resolved),
        report.mode
    );
    for case in &report.cases {
        let _ = write!(
            x,
            "    <testcase classname=\"{}\" name=\"{}\" time=\"{}\"",
            match report.kind {
                Kind::Server => "upcase.check",
                Kind::Client => "upcase.check-client",
            },
            xml_escape(case.name),
            secs(case.duration_ms)
        );
        match (case.counted, case.status) {
            (true, Status::Pass) => x.push_str("/>\n"),
            (true, Status::Fail) => {
                let mut body = format!("flaw?     {}\n", case.hint);
                if let Some(d) = &case.detail {
                    let _ = write!(
                        body,
                        "sent      {}\nexpected  {}\ngot       {}\n",
                        d.sent, d.expected, d.got
                    );
                }
                if let Some(o) = &case.output {
                    let _ = write!(
                        body,
                        "exit      {}\nstdout    {}\nstderr    {}\n",
                        o.exit, o.stdout, o.stderr
                    );
                }
                let _ = write!(
                    x,
                    ">\n      <failure message=\"{}\" type=\"nonconformance\">{}</failure>\n    \
                     </testcase>\n",
                    xml_escape(&case.reason),
                    xml_escape(&body)
                );
            }
            (false, _) => {
                let _ = write!(
                    x,
                    ">\n      <skipped message=\"{}\"/>\n    </testcase>\n",
                    xml_escape(&format!("informational: {}", informational(case)))
                );
            }
        }
    }
    x.push_str("  </testsuite>\n</testsuites>\n");
    x
}

/// Escapes text for an XML attribute or element: the five markup characters, and any
/// character XML 1.0 does not allow, written as `\u{..}` text instead.
pub fn xml_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\n' => out.push('\n'),
            '\t' => out.push('\t'),
            c if allowed_in_xml(c) => out.push(c),
            c => {
                let _ = write!(out, "\\u{{{:X}}}", c as u32);
            }
        }
    }
    out
}

/// XML 1.0's `Char` production, less the whitespace controls handled by the caller.
fn allowed_in_xml(c: char) -> bool {
    matches!(c as u32, 0x20..=0xD7FF | 0xE000..=0xFFFD | 0x10000..=0x10FFFF)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xml_escape_covers_markup_and_forbidden_characters() {
        assert_eq!(
            xml_escape("a<b>&\"c'\u{0}\u{1B}\r"),
            "a&lt;b&gt;&amp;&quot;c&apos;\\u{0}\\u{1B}\\u{D}"
        );
        assert_eq!(xml_escape("ΣΑΣ\n"), "ΣΑΣ\n");
    }
}
