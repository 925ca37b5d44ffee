//! `upcased` as a user runs it: help, version, refused flags, signals.

mod common;

use std::io::Write;
use std::time::{Duration, Instant};

use assert_cmd::Command as Cmd;
use common::{read_n, roundtrip, Upcased};
use predicates::prelude::*;

fn upcased() -> Cmd {
    let mut c = Cmd::cargo_bin("upcased").unwrap();
    c.env_remove("UPCASED_LISTEN")
        .env_remove("RUST_LOG")
        .timeout(common::PATIENCE);
    c
}

#[test]
fn help_says_what_the_server_does_and_long_help_has_examples() {
    upcased()
        .arg("-h")
        .assert()
        .success()
        .stdout(predicate::str::starts_with("The capitalisation server"))
        .stdout(predicate::str::contains("--log-format <text|json>"));
    upcased()
        .arg("--help")
        .assert()
        .success()
        .stdout(predicate::str::contains("Examples:"))
        .stdout(predicate::str::contains("upcased -l 0.0.0.0:2277"));
}

#[test]
fn version_names_the_server() {
    upcased()
        .arg("--version")
        .assert()
        .success()
        .stdout(format!("upcased {}\n", env!("CARGO_PKG_VERSION")));
}

#[test]
fn out_of_range_flags_are_one_line_usage_errors() {
    for (args, says) in [
        (&["--max-connections", "0"][..], "at least 1"),
        (&["--max-connections-per-ip", "0"], "at least 1"),
        (&["--idle-timeout", "18446744073709551615"], "too long"),
        (&["--shutdown-timeout", "8d"], "too long"),
        (&["--linger-timeout", "99999999999999999999999"], "too long"),
        (&["--read-buffer", "0"], "out of range"),
        (&["--listen", "[::ffff:127.0.0.1]:34000"], "127.0.0.1"),
    ] {
        upcased()
            .args(args)
            .assert()
            .code(2)
            .stderr(predicate::str::contains(says))
            .stderr(predicate::str::contains("panicked").not());
    }
}

#[test]
fn listen_addresses_from_the_environment_may_have_spaces_after_commas() {
    // Served until the test's timeout kills it: the log says what it bound.
    let out = upcased()
        .env("UPCASED_LISTEN", "127.0.0.1:0, 127.0.0.2:0")
        .args(["--shutdown-timeout", "0"])
        .timeout(Duration::from_secs(2))
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(log.contains("listening on 127.0.0.1:"), "{log}");
    assert!(log.contains("listening on 127.0.0.2:"), "{log}");
}

#[test]
fn sigusr1_logs_the_counters_and_sighup_is_ignored() {
    let mut srv = Upcased::spawn(&[]);
    let mut c = srv.connect();
    c.write_all(b"count me\n").unwrap();
    assert_eq!(read_n(&mut c, 9), b"COUNT ME\n");
    srv.signal("USR1");
    srv.signal("HUP");
    let end = Instant::now() + common::PATIENCE;
    while !(srv.log().contains("SIGUSR1: counters: served 1, active 1")
        && srv.log().contains("SIGHUP"))
    {
        assert!(Instant::now() < end, "{}", srv.log());
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(srv.log().contains("bytes in 9 out 9"), "{}", srv.log());
    assert!(srv.child.try_wait().unwrap().is_none(), "still running");
    c.write_all(b"still\n").unwrap();
    assert_eq!(read_n(&mut c, 6), b"STILL\n");
    srv.signal("TERM");
    assert!(srv.wait().success());
}

#[test]
fn a_stderr_nobody_reads_any_more_neither_stops_the_service_nor_the_drain() {
    // Every line after "listening on" meets EPIPE: at -v, each connection logs, and
    // SIGUSR1 logs the counters.
    let mut srv = Upcased::spawn_log_unread(&["-v"]);
    for _ in 0..3 {
        let mut c = srv.connect();
        assert_eq!(roundtrip(&mut c, b"still served\n", 13), b"STILL SERVED\n");
        srv.signal("USR1");
    }
    srv.signal("TERM");
    let status = srv.wait();
    assert!(status.success(), "{status:?}");
}
