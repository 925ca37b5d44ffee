//! Grading programs that run as processes: `upcase check-client` against student clients,
//! `upcase check --server-cmd` against student servers, and `--each` over a folder of
//! submissions.
//!
//! The student programs are this test binary itself: run as `grading --fixture
//! client:NAME HOST PORT` or `--fixture server:NAME PORT` it is that client or server
//! (see `support/clients.rs` and `support/flawed.rs`). That needs a `main` of our own,
//! so this target has `harness = false` and a small runner at the bottom: each test is a
//! function, run on a few threads, selected by the usual substring filter.

#[path = "support/clients.rs"]
mod clients;
#[path = "support/flawed.rs"]
mod flawed;

use std::collections::BTreeSet;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::Duration;

use upcase::check::client::{self as check_client, ClientCheckOptions};
use upcase::check::diagnosis::{self, KnownFlaw};
use upcase::check::{export, CheckReport, Status};

/// The case deadline for client runs: the least `check-client` accepts, as every case
/// that waits for a deadline waits this long.
const TIMEOUT: Duration = Duration::from_secs(2);

fn exe() -> PathBuf {
    std::env::current_exe().unwrap()
}

fn fixture_client(name: &str) -> Vec<String> {
    vec![
        exe().display().to_string(),
        "--fixture".into(),
        format!("client:{name}"),
        "{host}".into(),
        "{port}".into(),
    ]
}

fn grade_client(name: &str) -> CheckReport {
    check_client::run(&ClientCheckOptions {
        timeout: TIMEOUT,
        ..ClientCheckOptions::new(fixture_client(name))
    })
    .unwrap()
}

fn failed(report: &CheckReport) -> BTreeSet<&'static str> {
    report
        .cases
        .iter()
        .filter(|c| c.counted && c.status == Status::Fail)
        .map(|c| c.name)
        .collect()
}

fn known(table: &'static [KnownFlaw], name: &str) -> &'static KnownFlaw {
    table.iter().find(|f| f.name == name).unwrap()
}

/// The client fails exactly the cases of `flaw`'s pattern, the diagnosis names it, and
/// no failure's hint contradicts it.
fn assert_client_flaw(fixture: &str, flaw: &str) {
    let report = grade_client(fixture);
    let table = export::table(&report);
    let f = known(diagnosis::CLIENT_FLAWS, flaw);
    let want: BTreeSet<&str> = f.fails.iter().copied().collect();
    assert_eq!(failed(&report), want, "{fixture}:\n{table}");
    let d = report.diagnosis.as_deref().unwrap_or("");
    assert!(d.starts_with(f.cause), "{fixture}: {d}\n{table}");
    for case in report
        .cases
        .iter()
        .filter(|c| c.status == Status::Fail && c.counted)
    {
        let o = case
            .output
            .as_ref()
            .expect("a failure shows the client's output");
        assert!(!o.exit.is_empty());
        assert!(!case.hint.is_empty());
    }
    assert_eq!(report.cases.len(), check_client::CLIENT_CASES.len());
}

fn correct_client_passes_every_case() {
    let report = grade_client("correct");
    assert!(report.success(), "{}", export::table(&report));
    assert_eq!(report.informational, 1);
    let several = report
        .cases
        .iter()
        .find(|c| c.name == "several-lines")
        .unwrap();
    assert_eq!(several.status, Status::Pass);
    assert!(report.diagnosis.is_none());
}

fn client_that_does_not_print_the_reply() {
    assert_client_flaw("does-not-print-the-reply", "does-not-print-the-reply");
}

fn client_that_sends_a_nul() {
    assert_client_flaw("sends-extra-bytes", "sends-extra-bytes");
    let report = grade_client("sends-extra-bytes");
    let case = report
        .cases
        .iter()
        .find(|c| c.name == "sends-the-input")
        .unwrap();
    assert!(case.reason.contains("NUL"), "{}", case.reason);
    let d = case.detail.as_ref().unwrap();
    assert!(d.got.text.ends_with(r"\n\0"), "{}", d.got);
}

fn client_that_calls_recv_once() {
    assert_client_flaw("recv-once", "recv-once");
}

fn client_that_gives_up_early() {
    assert_client_flaw("gives-up-early", "gives-up-early");
}

fn client_that_cuts_long_lines() {
    assert_client_flaw("cuts-long-lines", "cuts-long-lines");
    let report = grade_client("cuts-long-lines");
    let case = report
        .cases
        .iter()
        .find(|c| c.name == "long-message")
        .unwrap();
    assert!(
        case.reason.contains("only the first 1023 of 8191 bytes"),
        "{}",
        case.reason
    );
}

fn client_that_mangles_non_ascii() {
    assert_client_flaw("mangles-non-ascii", "mangles-non-ascii");
}

fn client_that_spins_when_the_server_closes() {
    assert_client_flaw("spins-on-close", "mishandles-a-close");
    let report = grade_client("spins-on-close");
    let case = report
        .cases
        .iter()
        .find(|c| c.name == "server-closes")
        .unwrap();
    assert!(
        case.reason.starts_with("still running 2s"),
        "{}",
        case.reason
    );
    assert!(
        case.hint.contains("loops on `recv` returning 0"),
        "{}",
        case.hint
    );
    assert!(case.output.as_ref().unwrap().exit.contains("killed"));
}

fn client_that_prints_an_unfilled_buffer() {
    assert_client_flaw("prints-garbage", "mishandles-a-close");
    let report = grade_client("prints-garbage");
    let case = report
        .cases
        .iter()
        .find(|c| c.name == "server-closes")
        .unwrap();
    assert!(case.reason.contains("not text"), "{}", case.reason);
    // The excerpt shows the NULs, escaped.
    assert!(case
        .output
        .as_ref()
        .unwrap()
        .stdout
        .text
        .starts_with(r"\0\0"));
}

fn client_that_ignores_connect() {
    assert_client_flaw("ignores-connect", "ignores-connect");
}

fn client_that_loops_at_eof() {
    assert_client_flaw("loops-at-eof", "loops-at-eof");
}

fn upcase() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_upcase"));
    cmd.env_remove("UPCASE_ADDR").env_remove("RUST_LOG");
    cmd
}

fn text(out: &[u8]) -> String {
    String::from_utf8_lossy(out).into_owned()
}

fn cli_check_client_reports_and_exits_by_the_verdict() {
    let mut args: Vec<String> = vec![
        "check-client".into(),
        "--timeout".into(),
        "2s".into(),
        "--only".into(),
        "basic,unicode".into(),
        "--".into(),
    ];
    args.extend(fixture_client("mangles-non-ascii"));
    let out = upcase().args(&args).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let stdout = text(&out.stdout);
    assert!(stdout.starts_with("upcase check-client `"), "{stdout}");
    assert!(stdout.contains("PASS  basic"), "{stdout}");
    assert!(stdout.contains("FAIL  unicode"), "{stdout}");
    assert!(
        stdout.contains(r#"stdout    "GR??SSE, ??????\n""#),
        "{stdout}"
    );
    assert!(
        stdout.contains("diagnosis: your client changes bytes above 0x7F"),
        "{stdout}"
    );
    assert!(
        stdout.contains("1 passed, 1 failed (2 cases in"),
        "{stdout}"
    );

    // JSON, and the environment: a client that reads UPCASE_ADDR (our own pipe mode).
    let out = upcase()
        .args([
            "check-client",
            "--json",
            "--only",
            "basic,sends-the-input,refused",
            "--",
        ])
        .arg(env!("CARGO_BIN_EXE_upcase"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["kind"], "client");
    assert_eq!(v["passed"], 3);
    assert!(v["command"].as_str().unwrap().ends_with("upcase"));
    assert!(v["diagnosis"].is_null());
}

fn cli_check_client_usage_errors_exit_2() {
    for args in [
        vec!["check-client"],
        vec!["check-client", "--timeout", "1s", "--", "true"],
        vec![
            "check-client",
            "--timeout",
            "18446744073709551615",
            "--",
            "true",
        ],
        vec!["check-client", "--only", "nonsense", "--", "true"],
    ] {
        let out = upcase().args(&args).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}: {out:?}");
    }
    let out = upcase()
        .args(["check-client", "--", "/nonexistent/client"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("cannot start `/nonexistent/client`"),
        "{stderr}"
    );
}

fn fixture_server_cmd(name: &str) -> String {
    format!("{} --fixture server:{name} {{port}}", exe().display())
}

fn check_server_cmd(cmd: &str, extra: &[&str]) -> Output {
    upcase()
        .args(["check", "--timeout", "2s", "--server-cmd", cmd])
        .args(extra)
        .output()
        .unwrap()
}

fn server_cmd_starts_grades_and_stops_the_server() {
    let cmd = fixture_server_cmd("correct");
    let out = check_server_cmd(&cmd, &["--only", "basic,many-clients"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let stdout = text(&out.stdout);
    assert!(stdout.contains("started as `"), "{stdout}");
    assert!(!stdout.contains("\nserver:    "), "{stdout}");
}

fn server_cmd_reports_a_crash_as_such() {
    let out = check_server_cmd(&fixture_server_cmd("crashes-on-reset"), &[]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let stdout = text(&out.stdout);
    // Killed by SIGABRT, seen directly or through the shell that ran it (status 134).
    let line = stdout
        .lines()
        .find(|l| l.starts_with("server:    the server "))
        .unwrap_or("");
    assert!(line.contains("signal 6 (SIGABRT"), "{stdout}");
    assert!(
        stdout.contains("by the end of `abrupt-disconnect`"),
        "{stdout}"
    );
    assert!(stdout.contains("FAIL  abrupt-disconnect"), "{stdout}");
}

fn server_cmd_that_never_accepts_is_an_error() {
    let out = check_server_cmd("echo no such port >&2; exit 3", &[]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("the server exited with status 3 before accepting connections"),
        "{stderr}"
    );
    assert!(stderr.contains(r#""no such port\n""#), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
}

/// A folder of submissions: `name → program` where program is a fixture name, or `None`
/// for a submission without the executable.
fn class(kind: &str, students: &[(&str, Option<&str>)]) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "upcase-grading-{kind}-{}-{}",
        std::process::id(),
        students.len()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    for (student, fixture) in students {
        let d = dir.join(student);
        std::fs::create_dir_all(&d).unwrap();
        if let Some(f) = fixture {
            let path = d.join(kind);
            std::fs::write(
                &path,
                format!(
                    "#!/bin/sh\nexec '{}' --fixture {kind}:{f} \"$@\"\n",
                    exe().display()
                ),
            )
            .unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
    }
    dir
}

fn each_grades_a_folder_of_servers_into_a_sheet() {
    let dir = class(
        "server",
        &[
            ("alice", Some("correct")),
            ("bob", Some("one-client-at-a-time")),
            ("carol", None),
            ("dave", Some("ascii-only")),
        ],
    );
    let sheet = dir.join("grades.csv");
    let out = upcase()
        .args(["check", "--timeout", "2s", "--each"])
        .arg(&dir)
        .arg("--sheet")
        .arg(&sheet)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let stdout = text(&out.stdout);
    assert!(stdout.contains("PASS   alice"), "{stdout}");
    assert!(
        stdout
            .contains("FAIL   bob    16 passed, 2 failed: your server serves one client at a time"),
        "{stdout}"
    );
    assert!(
        stdout.contains("ERROR  carol  no executable `server`"),
        "{stdout}"
    );
    assert!(stdout.contains("1 of 4 submissions conform"), "{stdout}");
    let csv = std::fs::read_to_string(&sheet).unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 5, "{csv}");
    assert!(lines[0].starts_with("student,status,passed,failed"));
    assert!(
        lines[1].starts_with("alice,conforms,18,0,0,,true,"),
        "{csv}"
    );
    assert!(
        lines[2].starts_with("bob,fails,16,2,0,concurrent-idle;many-clients,false,"),
        "{csv}"
    );
    assert!(lines[3].starts_with("carol,error,"), "{csv}");
    // An ASCII server conforms under --ascii rules, and the sheet says so.
    assert!(lines[4].starts_with("dave,fails,15,3,0,"), "{csv}");
    assert!(lines[4].contains(",true,"), "{csv}");
    std::fs::remove_dir_all(&dir).unwrap();
}

fn each_grades_a_folder_of_clients_as_json() {
    let dir = class(
        "client",
        &[("ann", Some("correct")), ("ben", Some("recv-once"))],
    );
    let out = upcase()
        .args(["check-client", "--timeout", "2s", "--json", "--each"])
        .arg(&dir)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["kind"], "client");
    assert_eq!(v["submissions"], 2);
    assert_eq!(v["conforming"], 1);
    let rows = v["rows"].as_array().unwrap();
    assert_eq!(rows[0]["student"], "ann");
    assert_eq!(rows[0]["status"], "conforms");
    assert_eq!(rows[1]["student"], "ben");
    assert_eq!(rows[1]["status"], "fails");
    assert_eq!(
        rows[1]["failed_cases"],
        serde_json::json!(["reply-in-pieces", "long-message"])
    );
    assert!(rows[1]["diagnosis"]
        .as_str()
        .unwrap()
        .contains("`recv` once"));
    assert_eq!(rows[1]["report"]["kind"], "client");
    std::fs::remove_dir_all(&dir).unwrap();
}

fn each_of_an_empty_or_missing_folder_is_a_usage_error() {
    let out = upcase()
        .args(["check", "--each", "/nonexistent/class"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let dir = class("server", &[]);
    std::fs::create_dir_all(&dir).unwrap();
    let out = upcase()
        .args(["check", "--each"])
        .arg(&dir)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(text(&out.stderr).contains("holds no submissions"));
    std::fs::remove_dir_all(&dir).unwrap();
}

const TESTS: &[(&str, fn())] = &[
    (
        "correct_client_passes_every_case",
        correct_client_passes_every_case,
    ),
    (
        "client_that_does_not_print_the_reply",
        client_that_does_not_print_the_reply,
    ),
    ("client_that_sends_a_nul", client_that_sends_a_nul),
    ("client_that_calls_recv_once", client_that_calls_recv_once),
    ("client_that_gives_up_early", client_that_gives_up_early),
    ("client_that_cuts_long_lines", client_that_cuts_long_lines),
    (
        "client_that_mangles_non_ascii",
        client_that_mangles_non_ascii,
    ),
    (
        "client_that_spins_when_the_server_closes",
        client_that_spins_when_the_server_closes,
    ),
    (
        "client_that_prints_an_unfilled_buffer",
        client_that_prints_an_unfilled_buffer,
    ),
    ("client_that_ignores_connect", client_that_ignores_connect),
    ("client_that_loops_at_eof", client_that_loops_at_eof),
    (
        "cli_check_client_reports_and_exits_by_the_verdict",
        cli_check_client_reports_and_exits_by_the_verdict,
    ),
    (
        "cli_check_client_usage_errors_exit_2",
        cli_check_client_usage_errors_exit_2,
    ),
    (
        "server_cmd_starts_grades_and_stops_the_server",
        server_cmd_starts_grades_and_stops_the_server,
    ),
    (
        "server_cmd_reports_a_crash_as_such",
        server_cmd_reports_a_crash_as_such,
    ),
    (
        "server_cmd_that_never_accepts_is_an_error",
        server_cmd_that_never_accepts_is_an_error,
    ),
    (
        "each_grades_a_folder_of_servers_into_a_sheet",
        each_grades_a_folder_of_servers_into_a_sheet,
    ),
    (
        "each_grades_a_folder_of_clients_as_json",
        each_grades_a_folder_of_clients_as_json,
    ),
    (
        "each_of_an_empty_or_missing_folder_is_a_usage_error",
        each_of_an_empty_or_missing_folder_is_a_usage_error,
    ),
];

/// Tests run at once: most of their time is spent waiting for deadlines, not computing.
const THREADS: usize = 4;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("--fixture") {
        std::process::exit(fixture(&args[2..]));
    }
    let filters: Vec<&str> = args[1..]
        .iter()
        .map(String::as_str)
        .filter(|a| !a.starts_with('-'))
        .collect();
    if args.iter().any(|a| a == "--list") {
        for (name, _) in TESTS {
            println!("{name}: test");
        }
        return;
    }
    let selected: Vec<&(&str, fn())> = TESTS
        .iter()
        .filter(|(name, _)| filters.is_empty() || filters.iter().any(|f| name.contains(f)))
        .collect();
    println!("\nrunning {} tests", selected.len());
    let next = std::sync::atomic::AtomicUsize::new(0);
    let failures = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..THREADS {
            s.spawn(|| loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let Some((name, test)) = selected.get(i) else {
                    return;
                };
                let ok = std::panic::catch_unwind(test).is_ok();
                println!("test {name} ... {}", if ok { "ok" } else { "FAILED" });
                if !ok {
                    failures.lock().unwrap().push(*name);
                }
            });
        }
    });
    let failures = failures.into_inner().unwrap();
    println!(
        "\ntest result: {}. {} passed; {} failed\n",
        if failures.is_empty() { "ok" } else { "FAILED" },
        selected.len() - failures.len(),
        failures.len()
    );
    if !failures.is_empty() {
        println!("failures: {}", failures.join(", "));
        std::process::exit(101);
    }
}

/// `client:NAME HOST PORT` or `server:NAME PORT`: be that program.
fn fixture(args: &[String]) -> i32 {
    let (kind, name) = args
        .first()
        .and_then(|a| a.split_once(':'))
        .unwrap_or(("", ""));
    match kind {
        "client" => clients::run(name, &args[1..]).unwrap_or(2),
        "server" => {
            let Some(start) = flawed::by_name(name) else {
                return 2;
            };
            let port = args.get(1).and_then(|p| p.parse().ok()).unwrap_or(0);
            flawed::set_port(port);
            start();
            loop {
                std::thread::park();
            }
        }
        _ => 2,
    }
}
