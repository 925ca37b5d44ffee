//! Both binaries, black-box, as a user runs them.

mod common;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use assert_cmd::Command as Cmd;
use common::{up, Upcased};
use predicates::prelude::*;

fn upcase() -> Cmd {
    let mut c = Cmd::cargo_bin("upcase").unwrap();
    c.env_remove("UPCASE_ADDR").timeout(common::PATIENCE);
    c
}

fn upcased() -> Cmd {
    let mut c = Cmd::cargo_bin("upcased").unwrap();
    c.env_remove("UPCASED_LISTEN").timeout(common::PATIENCE);
    c
}

/// A port that nothing listens on (bound, then released).
fn closed_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn send_prints_only_the_reply() {
    let srv = Upcased::spawn(&[]);
    upcase()
        .args(["-c", &srv.addr.to_string(), "send", "hello", "straße"])
        .assert()
        .success()
        .stdout("HELLO STRASSE\n");
}

#[test]
fn the_address_can_come_from_the_environment() {
    let srv = Upcased::spawn(&[]);
    upcase()
        .env("UPCASE_ADDR", srv.addr.to_string())
        .args(["send", "env"])
        .assert()
        .success()
        .stdout("ENV\n");
}

#[test]
fn pipe_mode_is_binary_safe() {
    let srv = Upcased::spawn(&[]);
    let mut input: Vec<u8> = (0..=255u8).collect();
    input.extend_from_slice("\nlines of text, ünïcode\nand no final newline".as_bytes());
    input.extend(std::iter::repeat_n(b'x', 300_000));
    upcase()
        .args(["-c", &srv.addr.to_string()])
        .write_stdin(input.clone())
        .assert()
        .success()
        .stdout(up(&input));
}

#[test]
fn refused_connection_is_one_line_and_exit_1() {
    let addr = format!("127.0.0.1:{}", closed_port());
    let out = upcase().args(["-c", &addr, "send", "hi"]).assert().code(1);
    let err = String::from_utf8(out.get_output().stderr.clone()).unwrap();
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains(&addr) && err.contains("connection refused"),
        "{err}"
    );
    assert!(err.contains("is upcased running?"), "{err}");
    assert!(out.get_output().stdout.is_empty());
}

#[test]
fn refused_in_pipe_mode_too() {
    let addr = format!("127.0.0.1:{}", closed_port());
    upcase()
        .args(["-c", &addr])
        .write_stdin("x\n")
        .assert()
        .code(1)
        .stderr(predicate::str::contains("is upcased running?"));
}

#[test]
fn a_silent_server_times_out_with_the_address() {
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = silent.local_addr().unwrap().to_string();
    let t = Instant::now();
    upcase()
        .args(["-c", &addr, "--timeout", "300ms", "send", "anyone?"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains(format!(
            "no reply from {addr} within 300ms"
        )));
    assert!(t.elapsed() < Duration::from_secs(10));
    drop(silent);
}

#[test]
fn bad_arguments_are_usage_errors() {
    upcase()
        .args(["--timeout", "soon", "send", "x"])
        .assert()
        .code(2);
    upcase().args(["send"]).assert().code(2);
    upcase().args(["--bogus"]).assert().code(2);
    upcased()
        .args(["--listen", "nonsense"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "invalid value 'nonsense' for '--listen <ADDR>'",
        ));
    upcased()
        .args(["--idle-timeout", "forever"])
        .assert()
        .code(2);
    upcased().args(["--workers", "0"]).assert().code(2);
}

#[test]
fn a_busy_port_is_one_line_naming_the_address_and_exit_1() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let out = upcased().args(["--listen", &addr]).assert().code(1);
    let err = String::from_utf8(out.get_output().stderr.clone()).unwrap();
    let last = err.lines().last().unwrap_or_default();
    assert!(last.contains(&addr) && last.contains("in use"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn listen_addresses_come_from_the_environment_comma_separated() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_upcased"))
        .env("UPCASED_LISTEN", "127.0.0.1:0,127.0.0.1:0")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut err = child.stderr.take().unwrap();
    let mut seen = String::new();
    let mut buf = [0u8; 4096];
    while seen.matches("listening on 127.0.0.1:").count() < 2 {
        let n = err.read(&mut buf).unwrap();
        assert!(n > 0, "exited early: {seen}");
        seen.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    assert!(
        !seen.contains("127.0.0.1:0\n"),
        "real ports are logged: {seen}"
    );
    child.kill().unwrap();
    child.wait().unwrap();
}

#[test]
fn sigterm_and_sigint_exit_0_soon() {
    for sig in ["TERM", "INT"] {
        let mut srv = Upcased::spawn(&[]);
        let t = Instant::now();
        srv.signal(sig);
        let st = srv.wait();
        assert!(st.success(), "SIG{sig}: {st:?}");
        assert!(t.elapsed() < Duration::from_secs(5));
    }
}

#[test]
fn json_logs_are_one_object_per_line() {
    let srv = Upcased::spawn(&["--log-format", "json"]);
    let log = srv.log();
    let line = log.lines().find(|l| l.contains("listening on")).unwrap();
    assert!(line.starts_with('{') && line.ends_with('}'), "{line}");
}

#[test]
fn a_closed_stdout_is_a_quiet_exit() {
    let srv = Upcased::spawn(&[]);
    let mut child = Command::new(env!("CARGO_BIN_EXE_upcase"))
        .args(["-c", &srv.addr.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut stdout = child.stdout.take().unwrap();
    stdin.write_all(b"first line\n").unwrap();
    let mut first = [0u8; 11];
    stdout.read_exact(&mut first).unwrap();
    assert_eq!(&first, b"FIRST LINE\n");
    drop(stdout); // like `| head -1`
    let writer = std::thread::spawn(move || {
        for _ in 0..1000 {
            if stdin.write_all(&[b'y'; 4096]).is_err() {
                break;
            }
        }
    });
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    assert!(out.status.success(), "{:?}", out.status);
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn nc_style_client_without_newline_gets_reply_then_eof() {
    let srv = Upcased::spawn(&["--ascii"]);
    let mut c = srv.connect();
    c.write_all("straße".as_bytes()).unwrap();
    c.shutdown(std::net::Shutdown::Write).unwrap();
    let mut got = Vec::new();
    c.read_to_end(&mut got).unwrap();
    assert_eq!(got, "STRAßE".as_bytes());
}
