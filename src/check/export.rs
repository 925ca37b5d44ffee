//! A [`CheckReport`] as text for people (a table), for programs (JSON) and for CI systems
//! (JUnit XML). Each function returns the text; the binary decides where it goes.

use std::fmt::Write as _;

use super::report::{CaseReport, CheckReport, Status};

/// The report as a table: one line per case (status, name, short reason), the flaw and the
/// bytes under each failure, then a summary line.
pub fn table(report: &CheckReport) -> String {
    let mut out = String::new();
    let width = report.cases.iter().map(|c| c.name.len()).max().unwrap_or(0);
    let resolved = if report.resolved == report.server {
        String::new()
    } else {
        format!("{}, ", report.resolved)
    };
    let _ = writeln!(
        out,
        "upcase check {} ({resolved}{} upper-casing, {} per case)\n",
        report.server,
        report.mode,
        humantime::format_duration(std::time::Duration::from_millis(report.timeout_ms))
    );
    for case in &report.cases {
        let label = match (case.counted, case.status) {
            (true, Status::Pass) => "PASS",
            (true, Status::Fail) => "FAIL",
            (false, _) => "info",
        };
        let reason = if case.counted {
            case.reason.clone()
        } else {
            format!("not counted under --ascii: {}", informational(case))
        };
        let _ = writeln!(out, "{label}  {:width$}  {reason}", case.name);
        if case.counted && case.status == Status::Fail {
            let pad = " ".repeat(6);
            let _ = writeln!(out, "{pad}flaw?     {}", case.flaw);
            if let Some(d) = &case.detail {
                let _ = writeln!(out, "{pad}sent      {}", d.sent);
                let _ = writeln!(out, "{pad}expected  {}", d.expected);
                let _ = writeln!(out, "{pad}got       {}", d.got);
            }
        }
    }
    let _ = writeln!(out, "\n{}", summary(report));
    out
}

/// What an informational case showed, in words.
fn informational(case: &CaseReport) -> String {
    match case.status {
        Status::Pass => format!("the server handles Unicode here too ({})", case.reason),
        Status::Fail => case.reason.clone(),
    }
}

/// One line: counts, time, verdict.
pub fn summary(report: &CheckReport) -> String {
    let mut s = format!("{} passed, {} failed", report.passed, report.failed);
    if report.informational > 0 {
        let _ = write!(s, ", {} informational", report.informational);
    }
    let _ = write!(
        s,
        " ({} cases in {:.2}s): {}",
        report.cases.len(),
        report.duration_ms / 1e3,
        if report.success() {
            "the server conforms"
        } else {
            "the server does not conform"
        }
    );
    s
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
    let suite = format!("upcase check {}", report.server);
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
            "    <testcase classname=\"upcase.check\" name=\"{}\" time=\"{}\"",
            xml_escape(case.name),
            secs(case.duration_ms)
        );
        match (case.counted, case.status) {
            (true, Status::Pass) => x.push_str("/>\n"),
            (true, Status::Fail) => {
                let mut body = format!("flaw?     {}\n", case.flaw);
                if let Some(d) = &case.detail {
                    let _ = write!(
                        body,
                        "sent      {}\nexpected  {}\ngot       {}\n",
                        d.sent, d.expected, d.got
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
                    xml_escape(&format!(
                        "informational under --ascii: {}",
                        informational(case)
                    ))
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
