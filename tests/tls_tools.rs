//! `upcase bench --tls` and `upcase check --tls` on real loopback sockets: against `upcased
//! --tls-listen --tls-self-signed` run as a user runs it, against a TLS fixture that closes
//! cleanly, and with a CA that did not sign the server's certificate (made here with rcgen).

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use assert_cmd::Command as Cmd;
use common::{Upcased, PATIENCE};
use serde_json::Value;
use upcase::bench::{self, BenchArgs, BenchError};
use upcase::client::{TlsClient, TlsOptions};
use upcase::transform::{self, Mode};

/// `upcased` with only a TLS listener on a free port and a self-signed certificate, whose
/// CA file for clients is in `dir`.
struct TlsUpcased {
    upcased: Upcased,
    ca: PathBuf,
    _dir: tempfile::TempDir,
}

impl TlsUpcased {
    fn start() -> TlsUpcased {
        let dir = tempfile::tempdir().unwrap();
        let ca = dir.path().join("ca.pem");
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_upcased"));
        cmd.env_remove("UPCASED_TLS_LISTEN");
        // `spawn_with` adds a plain `--listen 127.0.0.1:0`; the TLS listener is logged after
        // it, with "(tls)".
        let mut u = Upcased::spawn_with(
            cmd,
            &[
                "--tls-listen",
                "127.0.0.1:0",
                "--tls-self-signed",
                ca.to_str().unwrap(),
            ],
        );
        let end = Instant::now() + PATIENCE;
        loop {
            let log = u.log();
            if let Some(line) = log.lines().find(|l| l.ends_with("(tls)")) {
                let addr = line.rsplit("listening on ").next().unwrap();
                u.addr = addr.trim_end_matches(" (tls)").parse().unwrap();
                break;
            }
            assert!(Instant::now() < end, "no TLS listener: {log}");
            std::thread::sleep(Duration::from_millis(20));
        }
        TlsUpcased {
            upcased: u,
            ca,
            _dir: dir,
        }
    }

    /// The address by name, so that the certificate's `localhost` is what is verified.
    fn target(&self) -> String {
        format!("localhost:{}", self.upcased.addr.port())
    }

    fn ca(&self) -> &str {
        self.ca.to_str().unwrap()
    }

    fn client(&self) -> TlsClient {
        TlsClient::new(
            &self.target(),
            &TlsOptions {
                ca: Some(self.ca.clone()),
                ..TlsOptions::default()
            },
        )
        .unwrap()
    }
}

/// A CA file of a CA that signed nothing the server has.
fn unrelated_ca(dir: &Path) -> PathBuf {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "some other CA");
    let path = dir.join("other-ca.pem");
    std::fs::write(&path, params.self_signed(&key).unwrap().pem()).unwrap();
    path
}

fn upcase_bin() -> Cmd {
    let mut c = Cmd::cargo_bin("upcase").unwrap();
    c.env_remove("UPCASE_ADDR")
        .timeout(Duration::from_secs(120));
    c
}

fn bench_args(connections: u32) -> BenchArgs {
    BenchArgs {
        connections,
        duration: Duration::from_millis(300),
        warmup: Duration::ZERO,
        ..BenchArgs::default()
    }
}

// ---- bench --tls ------------------------------------------------------------------------

/// Asserts that `out` exited with `code` and said one line on stderr; returns that line.
fn one_line_error(out: std::process::Output, code: i32) -> String {
    assert_eq!(out.status.code(), Some(code), "{out:?}");
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    stderr
}

#[test]
fn bench_over_tls_checks_every_reply_and_reports_the_version_and_suite() {
    let server = TlsUpcased::start();
    let out = upcase_bin()
        .args([
            "-c",
            &server.target(),
            "bench",
            "--tls",
            "--ca",
            server.ca(),
        ])
        .args(["--connections", "4", "--duration", "300ms", "--warmup", "0"])
        .arg("--json")
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let v: Value = serde_json::from_slice(&out).expect("stdout is one JSON document");
    assert_eq!(v["tls"]["version"], "TLSv1.3", "{v}");
    assert!(
        v["tls"]["cipher_suite"]
            .as_str()
            .is_some_and(|s| s.starts_with("TLS13_")),
        "{v}"
    );
    assert_eq!(v["transport"], "tcp");
    assert_eq!(v["connections_open"], 4);
    assert!(v["messages"].as_u64().unwrap() > 0, "{v}");
    let errors = v["errors"].as_object().unwrap();
    assert!(errors.values().all(|x| x.as_u64() == Some(0)), "{v}");
}

#[test]
fn bench_over_tls_prints_the_session_in_the_table() {
    let server = TlsUpcased::start();
    // The TLS flags before `bench` count too, as the other client flags do.
    let out = upcase_bin()
        .args([
            "--tls",
            "--ca",
            server.ca(),
            "-c",
            &server.target(),
            "bench",
        ])
        .args(["--connections", "2", "--duration", "200ms", "--warmup", "0"])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let table = String::from_utf8(out).unwrap();
    let line = table
        .lines()
        .find(|l| l.trim_start().starts_with("tls "))
        .unwrap_or_else(|| panic!("no tls line in:\n{table}"));
    assert!(line.contains("TLSv1.3 TLS13_"), "{line}");
    assert!(table.contains(" 0 wrong replies"), "{table}");
}

#[test]
fn bench_over_tls_large_pipelined_messages_are_right() {
    // 64 KiB messages span several records, 4 in flight on each connection.
    let server = TlsUpcased::start();
    let args = BenchArgs {
        size: 64 * 1024,
        pipeline: 4,
        tls: Some(server.client()),
        ..bench_args(2)
    };
    let r = bench::run(&server.target(), PATIENCE, &args, None).unwrap();
    assert!(r.messages > 0, "{r:?}");
    assert_eq!(r.errors.total(), 0, "{r:?}");
    let tls = r.tls.expect("the session is reported");
    assert_eq!(tls.version, "TLSv1.3");
}

#[test]
fn bench_over_tls_open_loop_keeps_its_schedule() {
    let server = TlsUpcased::start();
    let args = BenchArgs {
        rate: Some(200.0),
        duration: Duration::from_millis(500),
        tls: Some(server.client()),
        ..bench_args(2)
    };
    let r = bench::run(&server.target(), PATIENCE, &args, None).unwrap();
    assert!(r.passed(), "{r:?}");
    assert!(r.messages >= 50, "{r:?}");
}

#[test]
fn bench_with_a_wrong_ca_is_one_line_naming_the_address_and_exit_1() {
    let server = TlsUpcased::start();
    let dir = tempfile::tempdir().unwrap();
    let wrong = unrelated_ca(dir.path());
    let out = upcase_bin()
        .args(["-c", &server.target(), "bench", "--tls", "--ca"])
        .arg(&wrong)
        .args(["--connections", "3", "--duration", "200ms", "--warmup", "0"])
        .output()
        .unwrap();
    assert!(out.stdout.is_empty(), "{out:?}");
    let stderr = one_line_error(out, 1);
    assert!(stderr.contains("unknown issuer"), "{stderr}");
    assert!(
        stderr.contains(&server.upcased.addr.port().to_string()),
        "{stderr}"
    );
}

#[test]
fn bench_over_tls_to_a_plain_text_port_is_one_line_and_exit_1() {
    let plain = Upcased::spawn(&[]);
    let dir = tempfile::tempdir().unwrap();
    let ca = unrelated_ca(dir.path());
    let out = upcase_bin()
        .args(["-c", &format!("localhost:{}", plain.addr.port()), "bench"])
        .args(["--tls", "--ca"])
        .arg(&ca)
        .args(["--connections", "1", "--duration", "200ms", "--warmup", "0"])
        .output()
        .unwrap();
    let stderr = one_line_error(out, 1);
    assert!(stderr.contains("TLS handshake with"), "{stderr}");
}

#[test]
fn bench_tls_flags_that_cannot_work_are_usage_errors() {
    for args in [
        &["bench", "--tls", "--udp"][..],
        &["bench", "--tls", "--banner"][..],
        &["bench", "--ca", "ca.pem"][..],
    ] {
        let out = upcase_bin()
            .args(["-c", "127.0.0.1:9"])
            .args(args)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}: {out:?}");
        assert!(!out.stderr.is_empty());
    }
    let out = upcase_bin()
        .args([
            "-c",
            "127.0.0.1:9",
            "bench",
            "--tls",
            "--ca",
            "/nonexistent/ca.pem",
        ])
        .output()
        .unwrap();
    let stderr = one_line_error(out, 2);
    assert!(stderr.contains("/nonexistent/ca.pem"), "{stderr}");
}

#[test]
fn the_library_refuses_tls_with_udp_or_banner() {
    let server = TlsUpcased::start();
    for args in [
        BenchArgs {
            udp: true,
            tls: Some(server.client()),
            ..bench_args(1)
        },
        BenchArgs {
            banner: true,
            tls: Some(server.client()),
            ..bench_args(1)
        },
    ] {
        let e = bench::run(&server.target(), PATIENCE, &args, None).unwrap_err();
        assert!(matches!(e, BenchError::Usage(_)), "{e}");
        assert_eq!(e.exit_code(), 2);
    }
}

/// A blocking TLS stream, server side, as the fixtures get it.
type ServerTls = rustls::StreamOwned<rustls::ServerConnection, std::net::TcpStream>;

/// A TLS server with a self-signed certificate on a free port, running `serve` on a thread
/// per connection; a client configuration that trusts it; the folder of its CA file.
fn tls_fixture(serve: fn(ServerTls)) -> (SocketAddr, TlsClient, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    let store = upcase::tls::self_signed(&ca).unwrap();
    let config = upcase::tls::server_config(store).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for tcp in listener.incoming() {
            let Ok(tcp) = tcp else { return };
            let conn = rustls::ServerConnection::new(Arc::clone(&config)).unwrap();
            std::thread::spawn(move || serve(rustls::StreamOwned::new(conn, tcp)));
        }
    });
    let client = TlsClient::new(
        &addr.to_string(),
        &TlsOptions {
            ca: Some(ca),
            ..TlsOptions::default()
        },
    )
    .unwrap();
    (addr, client, dir)
}

/// Answers `replies` messages of `size` bytes, then closes cleanly: the last reply and
/// `close_notify` in one write, then FIN.
fn closing_after(mut s: ServerTls, replies: usize, size: usize) {
    let mut msg = vec![0u8; size];
    for i in 0..replies {
        if s.read_exact(&mut msg).is_err() {
            return;
        }
        let reply = transform::upcase(&msg, Mode::Unicode);
        if i + 1 == replies {
            // Into rustls without I/O, so that both records leave together.
            let _ = s.conn.writer().write_all(&reply);
            s.conn.send_close_notify();
        } else {
            let _ = s.write_all(&reply);
        }
        if s.flush().is_err() {
            return;
        }
    }
    let _ = s.sock.shutdown(std::net::Shutdown::Write);
    let mut rest = Vec::new();
    let _ = s.sock.read_to_end(&mut rest);
}

#[test]
fn bench_over_tls_reconnects_with_a_new_handshake_after_a_clean_close() {
    // Open loop, 40 messages a second on one connection: the server closes after every
    // third reply, 25 ms before the next message is due, so nothing is owed at its close.
    let (addr, client, _dir) = tls_fixture(|s| closing_after(s, 3, 16));
    let args = BenchArgs {
        size: 16,
        rate: Some(40.0),
        duration: Duration::from_millis(500),
        reconnect: true,
        tls: Some(client),
        ..bench_args(1)
    };
    let r = bench::run(&addr.to_string(), PATIENCE, &args, None).unwrap();
    assert!(r.reconnects >= 1, "{r:?}");
    assert_eq!(r.errors.total(), 0, "{r:?}");
    assert!(r.messages > 3, "served across connections: {r:?}");
}

// ---- check --tls ------------------------------------------------------------------------

#[test]
fn check_over_tls_passes_every_case_against_upcased() {
    let server = TlsUpcased::start();
    let out = upcase_bin()
        .args(["check", "--tls", "--ca", server.ca(), "--json"])
        .arg(server.target())
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let v: Value = serde_json::from_slice(&out).expect("stdout is one JSON document");
    assert_eq!(v["failed"], 0, "{v}");
    assert_eq!(v["passed"], upcase::check::CASES.len(), "{v}");
    assert_eq!(v["tls"]["version"], "TLSv1.3", "{v}");
}

#[test]
fn check_over_tls_names_the_session_in_the_table() {
    let server = TlsUpcased::start();
    // As for bench, the TLS flags may come before the subcommand.
    let out = upcase_bin()
        .args([
            "--tls",
            "--ca",
            server.ca(),
            "check",
            &server.target(),
            "--only",
            "basic,half-close-no-newline",
        ])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let table = String::from_utf8(out).unwrap();
    let first = table.lines().next().unwrap();
    assert!(first.contains("TLSv1.3 TLS13_"), "{first}");
    assert!(table.contains("PASS  basic"), "{table}");
}

/// `upcase check --tls` of the one case `case` against `addr`, trusting `dir`'s `ca.pem`.
fn check_one_case_over_tls(
    addr: SocketAddr,
    dir: &std::path::Path,
    case: &str,
) -> upcase::check::CheckReport {
    let opts = upcase::check::CheckOptions {
        only: vec![case.into()],
        tls: Some(TlsOptions {
            ca: Some(dir.join("ca.pem")),
            ..TlsOptions::default()
        }),
        ..upcase::check::CheckOptions::new(addr.to_string())
    };
    upcase::check::run(&opts).unwrap()
}

#[test]
fn check_over_tls_fails_a_case_the_server_fails() {
    // The cases run on the TLS stream as they do over TCP: the closing_after fixture
    // closes after one reply, which `sequential` must catch.
    let (addr, _client, dir) = tls_fixture(|s| closing_after(s, 1, 14));
    let report = check_one_case_over_tls(addr, dir.path(), "sequential");
    assert_eq!(report.failed, 1, "{report:?}");
    assert!(
        report.cases[0].reason.contains("message 2 of 5"),
        "{:?}",
        report.cases[0]
    );
}

/// Reads to the client's `close_notify`, answers everything, then closes with a bare FIN:
/// no `close_notify` of its own.
fn bare_fin_after_reply(mut s: ServerTls) {
    let mut got = Vec::new();
    if s.read_to_end(&mut got).is_err() {
        return;
    }
    let _ = s.write_all(&transform::upcase(&got, Mode::Unicode));
    let _ = s.flush();
    let _ = s.sock.shutdown(std::net::Shutdown::Write);
}

#[test]
fn check_over_tls_fails_a_server_that_ends_without_close_notify() {
    let (addr, _client, dir) = tls_fixture(bare_fin_after_reply);
    let report = check_one_case_over_tls(addr, dir.path(), "half-close-no-newline");
    assert_eq!(report.failed, 1, "{report:?}");
    assert!(
        report.cases[0].reason.contains("without close_notify"),
        "{:?}",
        report.cases[0]
    );
}

#[test]
fn check_with_a_wrong_ca_is_one_line_naming_the_address_and_exit_1() {
    let server = TlsUpcased::start();
    let dir = tempfile::tempdir().unwrap();
    let wrong = unrelated_ca(dir.path());
    let out = upcase_bin()
        .args(["check", "--tls", "--ca"])
        .arg(&wrong)
        .arg(server.target())
        .output()
        .unwrap();
    assert!(out.stdout.is_empty(), "{out:?}");
    let stderr = one_line_error(out, 1);
    assert!(stderr.contains("unknown issuer"), "{stderr}");
    assert!(
        stderr.contains(&server.upcased.addr.port().to_string()),
        "{stderr}"
    );
}

#[test]
fn check_tls_options_need_tls_and_a_readable_ca() {
    let out = upcase_bin()
        .args(["check", "--ca", "ca.pem", "127.0.0.1:9"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let out = upcase_bin()
        .args([
            "check",
            "--tls",
            "--ca",
            "/nonexistent/ca.pem",
            "127.0.0.1:9",
        ])
        .output()
        .unwrap();
    let stderr = one_line_error(out, 2);
    assert!(stderr.contains("/nonexistent/ca.pem"), "{stderr}");
}

// ---- against stunnel (OpenSSL's TLS) ------------------------------------------------------

/// stunnel4 in front of a plain upcased, with a self-signed certificate made here; killed on
/// drop. `None`, with a line saying so, when stunnel4 is not installed.
struct Stunnel {
    child: std::process::Child,
    port: u16,
    ca: PathBuf,
    _upcased: Upcased,
    _dir: tempfile::TempDir,
}

impl Stunnel {
    fn start() -> Option<Stunnel> {
        if std::process::Command::new("stunnel4")
            .arg("-version")
            .output()
            .is_err()
        {
            println!("skipped: stunnel4 is not installed (apt-get install stunnel4)");
            return None;
        }
        let upcased = Upcased::spawn(&[]);
        let dir = tempfile::tempdir().unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let params =
            rcgen::CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
                .unwrap();
        let cert = params.self_signed(&key).unwrap();
        let (cert_path, key_path) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
        std::fs::write(&cert_path, cert.pem()).unwrap();
        std::fs::write(&key_path, key.serialize_pem()).unwrap();
        // A free port, released for stunnel to bind.
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let conf = dir.path().join("stunnel.conf");
        std::fs::write(
            &conf,
            format!(
                "foreground = quiet\npid =\ndebug = warning\noutput = {}\n\n[upcase]\n\
                 accept = 127.0.0.1:{port}\nconnect = {}\ncert = {}\nkey = {}\n",
                dir.path().join("stunnel.log").display(),
                upcased.addr,
                cert_path.display(),
                key_path.display()
            ),
        )
        .unwrap();
        let child = std::process::Command::new("stunnel4")
            .arg(&conf)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let s = Stunnel {
            child,
            port,
            ca: cert_path,
            _upcased: upcased,
            _dir: dir,
        };
        let end = Instant::now() + PATIENCE;
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < end, "stunnel4 did not listen on {port}");
            std::thread::sleep(Duration::from_millis(20));
        }
        Some(s)
    }
}

impl Drop for Stunnel {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn bench_and_check_over_tls_work_against_openssl_through_stunnel() {
    let Some(stunnel) = Stunnel::start() else {
        return;
    };
    let target = format!("localhost:{}", stunnel.port);
    let ca = stunnel.ca.to_str().unwrap();
    let out = upcase_bin()
        .args(["-c", &target, "bench", "--tls", "--ca", ca])
        .args(["--connections", "3", "--duration", "300ms", "--warmup", "0"])
        .arg("--json")
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let v: Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(v["tls"]["version"], "TLSv1.3", "{v}");
    assert!(v["messages"].as_u64().unwrap() > 0, "{v}");
    // The half-close cases need stunnel's close_notify at the end of the reply, as upcased
    // sends it.
    let out = upcase_bin()
        .args(["check", "--tls", "--ca", ca, "--json", &target])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let v: Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(v["failed"], 0, "{v}");
}
