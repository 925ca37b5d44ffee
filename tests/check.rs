//! `upcase check` against real servers on ephemeral loopback ports: the library's own
//! server passes every case, and each flawed server fails exactly the cases of its flaw.

#[path = "support/flawed.rs"]
mod flawed;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

use assert_cmd::prelude::*;
use upcase::check::diagnosis::SERVER_FLAWS;
use upcase::check::{self, CheckError, CheckOptions, CheckReport, Status};
use upcase::server::{Config, Server};
use upcase::transform::Mode;

/// The case deadline in these tests. A case against a conforming loopback server takes
/// milliseconds; cases that must time out against a flawed one take this long, so it is
/// as short as a loaded machine allows.
const TIMEOUT: Duration = Duration::from_secs(2);

/// Starts the library's server in-process on its own thread and runtime.
fn upcased(mode: Mode) -> SocketAddr {
    let listener = upcase::net::bind_tcp("127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let server = Server::new(Config {
            mode,
            ..Config::default()
        });
        rt.block_on(server.run(vec![listener], std::future::pending()))
            .unwrap();
    });
    addr
}

fn grade(addr: SocketAddr, mode: Mode) -> CheckReport {
    check::run(&CheckOptions {
        target: addr.to_string(),
        mode,
        timeout: TIMEOUT,
        only: Vec::new(),
        command: None,
        tls: None,
    })
    .unwrap()
}

/// The counted cases that failed.
fn failed(report: &CheckReport) -> BTreeSet<&'static str> {
    report
        .cases
        .iter()
        .filter(|c| c.counted && c.status == Status::Fail)
        .map(|c| c.name)
        .collect()
}

fn set(names: &[&'static str]) -> BTreeSet<&'static str> {
    names.iter().copied().collect()
}

/// Asserts the failures, and that every failure names its flaw in the report's words.
fn assert_fails_exactly(report: &CheckReport, expected: &[&'static str]) {
    assert_eq!(
        failed(report),
        set(expected),
        "\n{}",
        check::export::table(report)
    );
    assert_eq!(report.cases.len(), check::CASES.len());
    assert_eq!(report.failed, expected.len());
    assert_eq!(report.success(), expected.is_empty());
}

/// Asserts that the diagnosis names `flaws` (by their names in the table), in that order,
/// and that the hint under every failure is that of the flaw explaining it: one story,
/// not a guess per case.
fn assert_diagnosis(report: &CheckReport, flaws: &[&str]) {
    let table = check::export::table(report);
    let line = report.diagnosis.as_deref().expect("a diagnosis");
    let found: Vec<_> = flaws
        .iter()
        .map(|n| SERVER_FLAWS.iter().find(|f| f.name == *n).unwrap())
        .collect();
    assert!(line.starts_with(found[0].cause), "{line}\n{table}");
    for f in &found {
        assert!(line.contains(f.fix), "{}: {line}", f.name);
    }
    assert!(!line.contains("no known flaw"), "{line}");
    for case in report
        .cases
        .iter()
        .filter(|c| c.counted && c.status == Status::Fail)
    {
        let by = found.iter().find(|f| f.fails.contains(&case.name)).unwrap();
        assert_eq!(case.hint, by.hint, "{}\n{table}", case.name);
    }
    assert!(table.contains(&format!("diagnosis: {line}")), "{table}");
}

#[test]
fn upcased_passes_every_case() {
    let report = grade(upcased(Mode::Unicode), Mode::Unicode);
    assert_fails_exactly(&report, &[]);
    assert_eq!(report.passed, check::CASES.len());
    assert_eq!(report.informational, 0);
}

#[test]
fn ascii_upcased_passes_with_ascii_and_the_unicode_cases_are_informational() {
    let addr = upcased(Mode::Ascii);
    let report = grade(addr, Mode::Ascii);
    assert_fails_exactly(&report, &[]);
    let info: BTreeSet<_> = report
        .cases
        .iter()
        .filter(|c| !c.counted)
        .map(|c| c.name)
        .collect();
    assert_eq!(
        info,
        set(&["unicode-letters", "unicode-special-casing", "split-letter"])
    );
    // Reported, though not counted: an ASCII server does fail them.
    assert!(report
        .cases
        .iter()
        .filter(|c| !c.counted)
        .all(|c| c.status == Status::Fail));
    assert_eq!(report.informational, 3);
    assert_eq!(report.passed, check::CASES.len() - 3);

    // Without --ascii the same server fails exactly the Unicode cases.
    let strict = grade(addr, Mode::Unicode);
    assert_fails_exactly(
        &strict,
        &["unicode-letters", "unicode-special-casing", "split-letter"],
    );
}

#[test]
fn read_once_server_fails_every_case_that_needs_a_second_read() {
    let report = grade(flawed::read_once_reply_close(), Mode::Unicode);
    assert_fails_exactly(
        &report,
        &[
            "sequential",
            "pipelined",
            "empty-line",
            "streams-before-newline",
            "concurrent-idle",
            "large-message",
            "split-character",
            "split-letter",
        ],
    );
    assert_diagnosis(&report, &["read-once"]);
}

#[test]
fn one_client_at_a_time_fails_the_concurrency_cases() {
    let report = grade(flawed::one_client_at_a_time(), Mode::Unicode);
    assert_fails_exactly(&report, &["concurrent-idle", "many-clients"]);
    assert_diagnosis(&report, &["one-client-at-a-time"]);
    let idle = report
        .cases
        .iter()
        .find(|c| c.name == "concurrent-idle")
        .unwrap();
    assert!(idle.reason.contains("second client"), "{}", idle.reason);
    assert!(idle.flaw.contains("one client at a time"));
}

#[test]
fn ignoring_partial_writes_fails_the_large_message() {
    let report = grade(flawed::ignores_partial_writes(), Mode::Unicode);
    assert_fails_exactly(&report, &["large-message"]);
    assert_diagnosis(&report, &["ignores-partial-writes"]);
    let large = report
        .cases
        .iter()
        .find(|c| c.name == "large-message")
        .unwrap();
    // The first bytes lost are right after the first short write.
    assert!(
        large.reason.starts_with("reply differs from byte "),
        "{}",
        large.reason
    );
    let detail = large.detail.as_ref().unwrap();
    assert_eq!(detail.expected.len, check::cases::LARGE_MESSAGE);
}

#[test]
fn lossy_decoding_per_read_fails_split_and_invalid_bytes() {
    let report = grade(flawed::lossy_per_read(), Mode::Unicode);
    assert_fails_exactly(
        &report,
        &[
            "incomplete-at-eof",
            "invalid-utf8",
            "split-character",
            "split-letter",
        ],
    );
    assert_diagnosis(&report, &["lossy-per-read"]);
    let invalid = report
        .cases
        .iter()
        .find(|c| c.name == "invalid-utf8")
        .unwrap();
    assert!(invalid.reason.contains("U+FFFD"), "{}", invalid.reason);
    // The excerpt shows the replacement character the server sent.
    assert!(invalid
        .detail
        .as_ref()
        .unwrap()
        .got
        .text
        .contains(r"\u{FFFD}"));
}

#[test]
fn upcasing_each_read_alone_fails_only_the_split_letter() {
    let report = grade(flawed::stateless_per_read(), Mode::Unicode);
    assert_fails_exactly(&report, &["split-letter"]);
    assert_diagnosis(&report, &["stateless-per-read"]);
}

#[test]
fn simple_case_mapping_fails_the_cases_with_longer_upper_cases() {
    let report = grade(flawed::simple_case_mapping(), Mode::Unicode);
    assert_fails_exactly(&report, &["unicode-special-casing", "split-letter"]);
    assert_diagnosis(&report, &["simple-case-mapping"]);
    let case = report
        .cases
        .iter()
        .find(|c| c.name == "unicode-special-casing")
        .unwrap();
    // Nothing here a one-to-one mapper would change: the reply is not "ASCII only".
    assert!(!case.reason.contains("only ASCII"), "{}", case.reason);
}

#[test]
fn ascii_only_server_fails_the_unicode_cases_and_passes_with_ascii() {
    let addr = flawed::ascii_only();
    let report = grade(addr, Mode::Unicode);
    assert_fails_exactly(
        &report,
        &["unicode-letters", "unicode-special-casing", "split-letter"],
    );
    assert_diagnosis(&report, &["ascii-only"]);
    let letters = report
        .cases
        .iter()
        .find(|c| c.name == "unicode-letters")
        .unwrap();
    assert!(letters.reason.contains("only ASCII"), "{}", letters.reason);
    // The tutorial's own target: every failure is a Unicode case, so the summary says
    // it conforms under --ascii rules and how to grade it so.
    assert!(report.ascii_conforming);
    let summary = check::export::summary(&report);
    assert!(
        summary.contains("it conforms under --ascii rules (grade it with `upcase check --ascii`)"),
        "{summary}"
    );
    let lenient = grade(addr, Mode::Ascii);
    assert_fails_exactly(&lenient, &[]);
    assert_eq!(lenient.informational, 3);
}

#[test]
fn line_buffered_server_fails_the_cases_about_unfinished_lines() {
    let report = grade(flawed::drops_last_message_on_half_close(), Mode::Unicode);
    assert_fails_exactly(
        &report,
        &[
            "streams-before-newline",
            "half-close-no-newline",
            "incomplete-at-eof",
        ],
    );
    assert_diagnosis(&report, &["line-buffered"]);
}

#[test]
fn server_that_never_closes_fails_the_half_close_cases() {
    let report = grade(flawed::never_closes(), Mode::Unicode);
    assert_fails_exactly(
        &report,
        &[
            "half-close-no-newline",
            "incomplete-at-eof",
            "serves-after-half-close",
        ],
    );
    assert_diagnosis(&report, &["never-closes"]);
    assert!(!report.ascii_conforming);
}

#[test]
fn server_that_dies_on_a_reset_fails_abrupt_disconnect() {
    let report = grade(flawed::dies_on_reset(), Mode::Unicode);
    assert_fails_exactly(&report, &["abrupt-disconnect"]);
    assert_diagnosis(&report, &["dies-on-reset"]);
    let abrupt = report.cases.last().unwrap();
    assert!(
        abrupt.reason.contains("connection refused"),
        "{}",
        abrupt.reason
    );
}

#[test]
fn only_runs_the_named_cases_in_suite_order() {
    let report = check::run(&CheckOptions {
        only: vec!["split-letter".into(), "basic".into()],
        ..CheckOptions::new(upcased(Mode::Unicode).to_string())
    })
    .unwrap();
    let names: Vec<_> = report.cases.iter().map(|c| c.name).collect();
    assert_eq!(names, ["basic", "split-letter"]);
}

#[test]
fn unknown_case_and_unreachable_server_are_errors() {
    let addr = upcased(Mode::Unicode);
    let err = check::run(&CheckOptions {
        only: vec!["nonsense".into()],
        ..CheckOptions::new(addr.to_string())
    })
    .unwrap_err();
    assert!(matches!(err, CheckError::UnknownCase { .. }), "{err}");

    let closed = closed_port();
    let err = check::run(&CheckOptions::new(closed.to_string())).unwrap_err();
    assert!(matches!(err, CheckError::Unreachable(_)), "{err}");
    assert!(err.to_string().contains(&closed.to_string()), "{err}");
}

/// A loopback port with nothing listening: bound, then released.
fn closed_port() -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap()
}

fn upcase_cmd() -> Command {
    let mut cmd = Command::cargo_bin("upcase").unwrap();
    cmd.env_remove("UPCASE_ADDR").env_remove("RUST_LOG");
    cmd
}

#[test]
fn cli_exits_0_and_prints_a_table_against_upcased() {
    let addr = upcased(Mode::Unicode);
    let out = upcase_cmd()
        .args(["check", &addr.to_string()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let stdout = String::from_utf8(out.stdout).unwrap();
    for case in check::CASES {
        assert!(
            stdout
                .lines()
                .any(|l| l.starts_with("PASS") && l.contains(case.name)),
            "{}: {stdout}",
            case.name
        );
    }
    assert!(stdout.contains(&format!("{} passed, 0 failed", check::CASES.len())));
}

#[test]
fn cli_exits_1_and_shows_the_bytes_against_a_flawed_server() {
    let addr = flawed::ascii_only();
    let out = upcase_cmd()
        .args(["check", &addr.to_string(), "--only", "unicode-letters"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(stdout.contains("FAIL  unicode-letters"), "{stdout}");
    let sent = "héllo";
    let expected =
        String::from_utf8(upcase::transform::upcase(sent.as_bytes(), Mode::Unicode)).unwrap();
    let got = String::from_utf8(upcase::transform::upcase(sent.as_bytes(), Mode::Ascii)).unwrap();
    assert!(stdout.contains(&format!("sent      \"{sent}")), "{stdout}");
    assert!(
        stdout.contains(&format!("expected  \"{expected}")),
        "{stdout}"
    );
    assert!(stdout.contains(&format!("got       \"{got}")), "{stdout}");
    assert!(
        stdout.contains("0 passed, 1 failed (1 case in "),
        "{stdout}"
    );
}

#[test]
fn cli_exits_2_with_one_line_for_an_unreachable_server() {
    let closed = closed_port();
    let out = upcase_cmd()
        .args(["check", &closed.to_string()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(out.stdout.is_empty());
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains(&closed.to_string()), "{stderr}");
}

#[test]
fn cli_usage_errors_exit_2() {
    for args in [
        vec!["check"],
        vec!["check", "127.0.0.1:1", "--only", "nonsense"],
        vec!["check", "127.0.0.1:1", "--timeout", "0"],
        vec!["check", "127.0.0.1:1", "--timeout", "soon"],
        vec!["check", "127.0.0.1:1", "--timeout", "18446744073709551615"],
        vec!["check", "127.0.0.1:1", "--timeout", "2h"],
        vec!["check", "127.0.0.1:1", "--server-cmd", "true"],
        vec!["check", "--sheet", "x.csv"],
    ] {
        let out = upcase_cmd().args(&args).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}: {out:?}");
        assert!(out.stdout.is_empty());
    }
    let out = upcase_cmd()
        .args(["check", "127.0.0.1:1", "--timeout", "2h"])
        .output()
        .unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        stderr.contains("at most 1h (the range is 1ms to 1h)"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
}

/// Serves the checker's probe and `basic` (the first two connections) correctly, then
/// holds every later connection open without reading or answering.
fn answers_once_then_hangs() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for (i, stream) in listener.incoming().flatten().enumerate() {
            if i < 2 {
                std::thread::spawn(move || {
                    use std::io::{Read, Write};
                    let mut s = stream;
                    let mut buf = [0u8; 4096];
                    while let Ok(n @ 1..) = s.read(&mut buf) {
                        let up = upcase::transform::upcase(&buf[..n], Mode::Unicode);
                        if s.write_all(&up).is_err() {
                            break;
                        }
                    }
                });
            } else {
                held.push(stream);
            }
        }
    });
    addr
}

#[test]
fn ctrl_c_prints_the_cases_so_far_and_exits_130() {
    use std::io::BufRead;
    let addr = answers_once_then_hangs();
    let mut child = upcase_cmd()
        .args(["check", &addr.to_string(), "--timeout", "10s"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    // Each case's line is printed as it finishes: `basic` shows while `sequential` hangs.
    let mut seen = String::new();
    while !seen.contains("PASS  basic") {
        let mut line = String::new();
        assert!(stdout.read_line(&mut line).unwrap() > 0, "{seen}");
        seen.push_str(&line);
    }
    // SAFETY: kill is a plain system call; the pid is our unreaped child's.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGINT);
    }
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stdout, &mut rest).unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130), "{seen}{rest}");
    assert!(
        rest.contains("1 passed, 0 failed (1 case in "),
        "{seen}{rest}"
    );
    assert!(rest.contains("interrupted after 1 case"), "{rest}");
    assert!(!rest.contains("sequential"), "{rest}");
}

#[test]
fn cli_json_is_the_documented_object() {
    let addr = flawed::stateless_per_read();
    let out = upcase_cmd()
        .args([
            "check",
            &addr.to_string(),
            "--json",
            "--only",
            "basic,split-letter",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["server"], addr.to_string());
    assert_eq!(v["mode"], "unicode");
    assert_eq!(v["timeout_ms"], 5000);
    assert_eq!(v["passed"], 1);
    assert_eq!(v["failed"], 1);
    assert_eq!(v["informational"], 0);
    let cases = v["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 2);
    assert_eq!(cases[0]["name"], "basic");
    assert_eq!(cases[0]["status"], "pass");
    assert!(cases[0]["detail"].is_null());
    let split = &cases[1];
    assert_eq!(split["name"], "split-letter");
    assert_eq!(split["status"], "fail");
    assert_eq!(split["counted"], true);
    assert_eq!(split["unicode"], true);
    assert!(split["flaw"].as_str().unwrap().contains("split"));
    for field in ["sent", "expected", "got"] {
        let e = &split["detail"][field];
        assert!(e["text"].is_string(), "{field}: {e}");
        assert!(e["len"].as_u64().unwrap() > 0, "{field}: {e}");
        assert!(e["from"].is_u64() && e["to"].is_u64(), "{field}: {e}");
    }
}

#[test]
fn cli_junit_writes_one_testcase_per_case() {
    let addr = flawed::lossy_per_read();
    let dir = std::env::temp_dir().join(format!("upcase-check-junit-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("report.xml");
    let out = upcase_cmd()
        .args(["check", &addr.to_string(), "--junit"])
        .arg(&path)
        .args(["--only", "basic,invalid-utf8,non-letters"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let xml = std::fs::read_to_string(&path).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(xml.starts_with("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"));
    assert!(xml.contains("<testsuites name=\"upcase check"), "{xml}");
    assert!(xml.contains("tests=\"3\" failures=\"1\""), "{xml}");
    assert_eq!(xml.matches("<testcase ").count(), 3, "{xml}");
    assert_eq!(xml.matches("<failure ").count(), 1, "{xml}");
    assert!(xml.contains("name=\"invalid-utf8\""), "{xml}");
    assert!(xml.trim_end().ends_with("</testsuites>"));
    // Markup in the bytes shown (the `<` and `&` of non-letters, the quotes of excerpts)
    // is escaped: no raw `<` outside tags, and every `&` starts an entity.
    for piece in xml.split('<').skip(1) {
        let tag_end = piece.find('>').expect("every < opens a tag");
        assert!(!piece[tag_end + 1..].contains('>'), "stray > in {piece}");
    }
    for (i, _) in xml.match_indices('&') {
        let rest = &xml[i..];
        assert!(
            ["&amp;", "&lt;", "&gt;", "&quot;", "&apos;"]
                .iter()
                .any(|e| rest.starts_with(e)),
            "bare & at {i}: {xml}"
        );
    }
    assert!(!xml
        .chars()
        .any(|c| c.is_control() && c != '\n' && c != '\t'));
}
