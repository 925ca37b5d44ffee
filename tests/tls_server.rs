//! `upcased` serving TLS, and `upcase --tls` talking to it: the server's TLS listeners on
//! real loopback sockets (in process, and the binaries as a user runs them), certificates
//! made here with rcgen.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use assert_cmd::Command as Cmd;
use common::{Upcased, PATIENCE};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use upcase::banner::Template;
use upcase::client::{self, ClientError, Session, TlsClient, TlsOptions};
use upcase::proxy::{ProxyMode, ProxySettings};
use upcase::server::{Config, Listener, ListenerSettings, Listeners, Server, Stats};
use upcase::tls::{self, BlockingStream, CertStore, HandshakeFailure};

/// A Ctrl-C flag that nobody raises.
static NO_CTRL_C: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

// ---- certificates ------------------------------------------------------------------------

struct Ca {
    issuer: Issuer<'static, KeyPair>,
    pem: String,
}

fn ca(name: &str) -> Ca {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let cert = params.self_signed(&key).unwrap();
    Ca {
        issuer: Issuer::new(params, key),
        pem: cert.pem(),
    }
}

/// A certificate for `localhost` and `127.0.0.1` signed by `ca`: (cert PEM, key PEM).
fn leaf(ca: &Ca) -> (String, String) {
    let key = KeyPair::generate().unwrap();
    let mut params =
        CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()]).unwrap();
    params
        .distinguished_name
        .push(DnType::CommonName, "localhost");
    let cert = params.signed_by(&key, &ca.issuer).unwrap();
    (cert.pem(), key.serialize_pem())
}

/// A CA, a leaf it signed, and the three PEM files in a directory of their own.
struct Pki {
    dir: tempfile::TempDir,
    ca: Ca,
}

impl Pki {
    fn new() -> Pki {
        Pki::named("upcase test CA")
    }
    /// A PKI whose CA has this name (two CAs of one name would look like one to a client).
    fn named(name: &str) -> Pki {
        let pki = Pki {
            dir: tempfile::tempdir().unwrap(),
            ca: ca(name),
        };
        pki.issue();
        std::fs::write(pki.ca_path(), &pki.ca.pem).unwrap();
        pki
    }
    /// Writes a new leaf of this CA as `cert.pem` and `key.pem`.
    fn issue(&self) {
        let (cert, key) = leaf(&self.ca);
        std::fs::write(self.cert(), cert).unwrap();
        std::fs::write(self.key(), key).unwrap();
    }
    fn cert(&self) -> PathBuf {
        self.dir.path().join("cert.pem")
    }
    fn key(&self) -> PathBuf {
        self.dir.path().join("key.pem")
    }
    fn ca_path(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }
    fn store(&self) -> Arc<CertStore> {
        CertStore::from_files(&self.cert(), &self.key()).unwrap()
    }
    fn client(&self, target: &str) -> TlsClient {
        TlsClient::new(
            target,
            &TlsOptions {
                ca: Some(self.ca_path()),
                ..TlsOptions::default()
            },
        )
        .unwrap()
    }
}

// ---- an in-process server with a TLS listener --------------------------------------------

struct TlsTestServer {
    addr: SocketAddr,
    server: Server,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<std::io::Result<()>>>,
}

impl TlsTestServer {
    fn start(pki: &Pki, config: Config) -> TlsTestServer {
        Self::start_with(pki, config, ListenerSettings::default())
    }

    /// A TLS listener with these other settings (a PROXY header before the handshake).
    fn start_with(pki: &Pki, config: Config, settings: ListenerSettings) -> TlsTestServer {
        let socket = upcase::net::bind_tcp("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = socket.local_addr().unwrap();
        let server = Server::with_tls(config, pki.store()).unwrap();
        let listeners = Listeners::from(vec![Listener::new(socket, settings.with_tls())]);
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let s = server.clone();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(s.run(listeners, async move {
                let _ = rx.await;
            }))
        });
        TlsTestServer {
            addr,
            server,
            stop: Some(tx),
            thread: Some(thread),
        }
    }

    fn target(&self) -> String {
        format!("localhost:{}", self.addr.port())
    }

    fn wait_for(&self, what: &str, f: impl Fn(&Stats) -> bool) {
        wait_for(&self.server, what, f)
    }

    fn begin_stop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
    }

    fn join(mut self) {
        self.begin_stop();
        self.thread.take().unwrap().join().unwrap().unwrap();
    }
}

impl Drop for TlsTestServer {
    fn drop(&mut self) {
        self.begin_stop();
    }
}

/// Polls `server`'s counters until `f` holds, or fails the test after [`PATIENCE`].
fn wait_for(server: &Server, what: &str, f: impl Fn(&Stats) -> bool) {
    let end = Instant::now() + PATIENCE;
    loop {
        let st = server.stats();
        if f(&st) {
            return;
        }
        assert!(Instant::now() < end, "timed out waiting for {what}: {st:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn connect(pki: &Pki, server: &TlsTestServer) -> BlockingStream {
    let s = pki
        .client(&server.target())
        .connect(&server.target(), PATIENCE)
        .unwrap();
    s.sock.set_read_timeout(Some(PATIENCE)).unwrap();
    s
}

fn read_n(s: &mut BlockingStream, n: usize) -> Vec<u8> {
    let mut got = vec![0u8; n];
    s.read_exact(&mut got).expect("reply");
    got
}

/// Reads to the server's `close_notify`; fails on a bare FIN (`UnexpectedEof`) or a reset.
fn read_to_close_notify(s: &mut BlockingStream) -> Vec<u8> {
    let mut v = Vec::new();
    s.read_to_end(&mut v)
        .expect("the server ends with close_notify");
    v
}

/// Whether the socket under `s`, read past the `close_notify`, is at its end (FIN) with
/// nothing after the alert.
fn fin_follows(s: &mut BlockingStream) -> bool {
    let mut b = [0u8; 64];
    matches!(s.sock.read(&mut b), Ok(0))
}

fn upcase_bin() -> Cmd {
    let mut c = Cmd::cargo_bin("upcase").unwrap();
    c.env_remove("UPCASE_ADDR").timeout(PATIENCE);
    c
}

// ---- round trips in each client mode -----------------------------------------------------

#[test]
fn self_signed_send_prints_the_reply() {
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    let u = Upcased::spawn_tls(&["--tls-self-signed", ca.to_str().unwrap()]);
    upcase_bin()
        .args(["--tls", "--ca", ca.to_str().unwrap(), "-c"])
        .arg(format!("localhost:{}", u.addr.port()))
        .args(["send", "hello"])
        .assert()
        .success()
        .stdout("HELLO\n");
}

#[test]
fn pipe_mode_over_tls_is_binary_safe() {
    let pki = Pki::new();
    let server = TlsTestServer::start(&pki, Config::default());
    let mut input: Vec<u8> = (0..=255u8).cycle().take(300_000).collect();
    input.extend_from_slice("straße ǆ\n".as_bytes());
    let out = upcase_bin()
        .args(["--tls", "--ca", pki.ca_path().to_str().unwrap(), "-c"])
        .arg(server.target())
        .write_stdin(input.clone())
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    assert_eq!(out, common::up(&input));
}

#[test]
fn interactive_session_over_tls_answers_each_line() {
    let pki = Pki::new();
    let server = TlsTestServer::start(&pki, Config::default());
    let mut lines = ["hello".to_string(), "wörld".to_string()].into_iter();
    let (mut out, mut notes) = (Vec::new(), Vec::new());
    let tls = pki.client(&server.target());
    let session = Session {
        target: &server.target(),
        timeout: PATIENCE,
        tls: Some(&tls),
        banner: false,
    };
    client::interactive_session(&session, &mut lines, &mut out, &mut notes, &NO_CTRL_C).unwrap();
    assert_eq!(out, "HELLO\nWÖRLD\n".as_bytes());
    assert!(String::from_utf8_lossy(&notes).contains("over TLSv1.3"));
}

// ---- half-close and close_notify -----------------------------------------------------------

#[test]
fn close_notify_is_answered_with_what_is_owed_then_close_notify() {
    let pki = Pki::new();
    let server = TlsTestServer::start(&pki, Config::default());
    let mut s = connect(&pki, &server);
    // "ß" split across two writes: its second byte comes only with the client's end.
    s.write_all(b"abc \xc3").unwrap();
    s.flush().unwrap();
    assert_eq!(read_n(&mut s, 4), b"ABC ");
    s.write_all(b"\x9f").unwrap();
    tls::close_write(&mut s).unwrap();
    assert_eq!(read_to_close_notify(&mut s), "SS".as_bytes());
    assert!(fin_follows(&mut s), "FIN after close_notify");
    server.wait_for("the close", |st| st.closed_client == 1);
}

/// An urgent byte between two records, all in one segment (as over plain TCP in
/// `hardening.rs`): the server's read stops at the urgent mark after the first record, and
/// the second, already queued, must still be read. The urgent byte is dropped.
#[test]
fn urgent_data_between_records_is_not_part_of_the_stream() {
    let pki = Pki::new();
    let server = TlsTestServer::start(&pki, Config::default());
    let mut s = connect(&pki, &server);
    s.write_all(b"hi\n").unwrap();
    assert_eq!(read_n(&mut s, 3), b"HI\n");
    common::cork(&s.sock, true);
    s.write_all(b"ab").unwrap();
    s.flush().unwrap();
    common::send_urgent(&s.sock, b'!');
    s.write_all(b"cd\n").unwrap();
    s.flush().unwrap();
    common::cork(&s.sock, false);
    assert_eq!(read_n(&mut s, 5), b"ABCD\n", "the urgent byte is dropped");
}

#[test]
fn a_bare_fin_is_answered_too_and_ends_with_close_notify() {
    let pki = Pki::new();
    let server = TlsTestServer::start(&pki, Config::default());
    let mut s = connect(&pki, &server);
    s.write_all(b"tail without close_notify").unwrap();
    s.flush().unwrap();
    s.sock.shutdown(std::net::Shutdown::Write).unwrap();
    assert_eq!(read_to_close_notify(&mut s), b"TAIL WITHOUT CLOSE_NOTIFY");
    assert!(fin_follows(&mut s), "FIN after close_notify");
    server.wait_for("the close", |st| st.closed_client == 1);
}

// ---- handshakes that fail ------------------------------------------------------------------

#[test]
fn plain_text_on_the_tls_port_is_closed_and_tls_clients_are_served() {
    let pki = Pki::new();
    let server = TlsTestServer::start(&pki, Config::default());
    let mut tls_client = connect(&pki, &server);
    let mut plain = TcpStream::connect(server.addr).unwrap();
    plain.set_read_timeout(Some(PATIENCE)).unwrap();
    plain.write_all(b"hi\n").unwrap();
    let mut buf = [0u8; 64];
    // EOF (or a reset): never an upper-cased reply, and not only at the handshake timeout.
    match plain.read(&mut buf) {
        Ok(n) => assert_eq!(n, 0, "got {:?}", &buf[..n]),
        Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset),
    }
    server.wait_for("the failure", |st| {
        st.tls_failures(HandshakeFailure::NotTls) == 1
    });
    tls_client.write_all(b"still here\n").unwrap();
    tls_client.flush().unwrap();
    assert_eq!(read_n(&mut tls_client, 11), b"STILL HERE\n");
}

#[test]
fn a_stalled_handshake_is_closed_at_the_timeout_and_others_are_served() {
    let pki = Pki::new();
    let server = TlsTestServer::start(
        &pki,
        Config {
            tls_handshake_timeout: Duration::from_millis(200),
            max_connections: 2,
            ..Config::default()
        },
    );
    let mut stalled = TcpStream::connect(server.addr).unwrap();
    stalled.set_read_timeout(Some(PATIENCE)).unwrap();
    // While it stalls it holds one of the two slots; the other serves a TLS client.
    let mut s = connect(&pki, &server);
    s.write_all(b"served\n").unwrap();
    s.flush().unwrap();
    assert_eq!(read_n(&mut s, 7), b"SERVED\n");
    let mut buf = [0u8; 16];
    assert_eq!(
        stalled.read(&mut buf).unwrap(),
        0,
        "closed, with nothing sent"
    );
    server.wait_for("the timeout", |st| {
        st.tls_failures(HandshakeFailure::Timeout) == 1
    });
    drop(s);
}

#[test]
fn a_handshake_in_progress_counts_against_the_connection_limit() {
    let pki = Pki::new();
    let server = TlsTestServer::start(
        &pki,
        Config {
            max_connections: 1,
            ..Config::default()
        },
    );
    let _stalled = TcpStream::connect(server.addr).unwrap();
    server.wait_for("the first connection", |st| st.active == 1);
    let err = pki
        .client(&server.target())
        .connect(&server.target(), PATIENCE)
        .unwrap_err();
    assert!(matches!(err, ClientError::Tls(_)), "{err}");
    server.wait_for("the refusal", |st| st.rejected_over_limit == 1);
}

#[test]
fn a_wrong_ca_is_one_line_and_exit_1() {
    let pki = Pki::new();
    let other = Pki::named("another CA");
    let server = TlsTestServer::start(&pki, Config::default());
    let out = upcase_bin()
        .args(["--tls", "--ca", other.ca_path().to_str().unwrap(), "-c"])
        .arg(server.target())
        .args(["send", "hello"])
        .assert()
        .code(1)
        .get_output()
        .clone();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains(&server.addr.to_string()), "{stderr}");
    assert!(stderr.contains("unknown issuer"), "{stderr}");
    assert!(out.stdout.is_empty());
    server.wait_for("the rejection", |st| {
        st.tls_failures(HandshakeFailure::Rejected) == 1
    });
}

#[test]
fn a_wrong_name_is_one_line_and_exit_1() {
    let pki = Pki::new();
    let server = TlsTestServer::start(&pki, Config::default());
    let out = upcase_bin()
        .args(["--tls", "--ca", pki.ca_path().to_str().unwrap()])
        .args(["--sni", "other.example", "-c"])
        .arg(server.target())
        .args(["send", "hello"])
        .assert()
        .code(1)
        .get_output()
        .clone();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("name mismatch"), "{stderr}");
    assert!(stderr.contains("other.example"), "{stderr}");
}

/// `upcase` without `--tls` against a TLS port: the server closes on the first byte, and
/// the client says that nothing was answered, in one line, with status 1.
#[test]
fn plain_text_pipe_and_send_against_a_tls_port_exit_1_saying_nothing_was_answered() {
    let pki = Pki::new();
    let server = TlsTestServer::start(&pki, Config::default());
    let addr = server.addr.to_string();
    let big: Vec<u8> = b"a line of input\n".repeat(64 * 1024);
    let inputs: [&[u8]; 3] = [b"hello\n", b"no newline", &big];
    for (i, input) in inputs.into_iter().enumerate() {
        let out = upcase_bin()
            .args(["-c", &addr])
            .write_stdin(input.to_vec())
            .assert()
            .code(1)
            .stdout("")
            .get_output()
            .clone();
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert_eq!(stderr.lines().count(), 1, "input {i}: {stderr}");
        assert!(stderr.contains(&addr), "input {i}: {stderr}");
        assert!(stderr.contains("answered nothing"), "input {i}: {stderr}");
        assert!(stderr.contains("try --tls"), "input {i}: {stderr}");
    }
    let out = upcase_bin()
        .args(["-c", &addr, "send", "hello"])
        .assert()
        .code(1)
        .stdout("")
        .get_output()
        .clone();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains(&addr) && stderr.contains("answered nothing"),
        "{stderr}"
    );
    assert!(stderr.contains("try --tls"), "{stderr}");
    server.wait_for("the failures", |st| {
        st.tls_failures(HandshakeFailure::NotTls) == 4
    });
}

#[test]
fn send_with_tls_and_banner_prints_the_banner_on_stderr_and_the_reply_on_stdout() {
    let pki = Pki::new();
    let server = TlsTestServer::start(
        &pki,
        Config {
            banner: Some(
                Template::parse("edge saw {client}")
                    .unwrap()
                    .bind("edge", "h")
                    .unwrap(),
            ),
            ..Config::default()
        },
    );
    let ca = pki.ca_path();
    let out = upcase_bin()
        .args(["--tls", "--ca", ca.to_str().unwrap(), "--banner", "-c"])
        .arg(server.target())
        .args(["send", "hello"])
        .assert()
        .success()
        .stdout("HELLO\n")
        .get_output()
        .clone();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.starts_with("edge saw 127.0.0.1:"), "{stderr}");
}

/// `upcased` serving TLS with a self-signed certificate and `--banner '{id} saw {client}'`,
/// and `args`; the CA file for the client is in the returned directory.
fn bannered_upcased(args: &[&str]) -> (Upcased, tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    let u = Upcased::spawn_tls(
        &[
            &[
                "--tls-self-signed",
                ca.to_str().unwrap(),
                "--banner",
                "{id} saw {client}",
                "--instance-id",
                "edge-1",
            ],
            args,
        ]
        .concat(),
    );
    (u, dir, ca)
}

fn tls_client(ca: &std::path::Path, target: &str) -> TlsClient {
    TlsClient::new(
        target,
        &TlsOptions {
            ca: Some(ca.to_path_buf()),
            ..TlsOptions::default()
        },
    )
    .unwrap()
}

#[test]
fn pipe_mode_with_tls_and_banner_prints_the_banner_on_stderr_and_pipes_binary_input() {
    let (u, _dir, ca) = bannered_upcased(&[]);
    // Large enough that a client which did not read while it wrote would stall the server.
    let mut input: Vec<u8> = (0..=255u8).cycle().take(8 << 20).collect();
    input.extend_from_slice("straße ǆ\n".as_bytes());
    let out = upcase_bin()
        .args(["--tls", "--ca", ca.to_str().unwrap(), "--banner", "-c"])
        .arg(format!("localhost:{}", u.addr.port()))
        .write_stdin(input.clone())
        .assert()
        .success()
        .get_output()
        .clone();
    assert!(out.stdout == common::up(&input), "the reply differs");
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.starts_with("edge-1 saw 127.0.0.1:"), "{stderr}");
}

#[test]
fn pipe_mode_with_tls_and_banner_is_full_duplex() {
    // Each reply is read before the next line is written, and before the end of input: a
    // pipe that answered only after EOF would never show the first.
    use std::process::Stdio;
    let (u, _dir, ca) = bannered_upcased(&[]);
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_upcase"))
        .env_remove("UPCASE_ADDR")
        .args(["--tls", "--ca", ca.to_str().unwrap(), "--banner", "-c"])
        .arg(format!("localhost:{}", u.addr.port()))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut buf = [0u8; 256];
        while let Ok(n @ 1..) = stdout.read(&mut buf) {
            let _ = tx.send(buf[..n].to_vec());
        }
    });
    let mut got = Vec::new();
    for (line, want) in [("one\n", "ONE\n"), ("twö\n", "ONE\nTWÖ\n")] {
        stdin.write_all(line.as_bytes()).unwrap();
        while got != want.as_bytes() {
            let more = rx
                .recv_timeout(PATIENCE)
                .unwrap_or_else(|_| panic!("no reply to {line:?} with the input open: {got:?}"));
            got.extend_from_slice(&more);
        }
    }
    drop(stdin);
    let end = Instant::now() + PATIENCE;
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        assert!(
            Instant::now() < end,
            "upcase did not exit after the input ended"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert!(status.success(), "{status:?}: {stderr}");
    assert!(stderr.starts_with("edge-1 saw 127.0.0.1:"), "{stderr}");
}

#[test]
fn the_interactive_session_over_tls_shows_each_connection_s_banner() {
    let (u, _dir, ca) = bannered_upcased(&["--idle-timeout", "300ms"]);
    let target = format!("localhost:{}", u.addr.port());
    let tls = tls_client(&ca, &target);
    let mut n = 0;
    let mut lines = std::iter::from_fn(|| {
        n += 1;
        match n {
            1 => Some("before".to_string()),
            2 => {
                // Long enough for the server's idle timeout to close the connection (with
                // close_notify, which the session finds before it sends the next line).
                std::thread::sleep(Duration::from_millis(1200));
                Some("after".to_string())
            }
            _ => None,
        }
    });
    let (mut out, mut notes) = (Vec::new(), Vec::new());
    let session = Session {
        target: &target,
        timeout: PATIENCE,
        tls: Some(&tls),
        banner: true,
    };
    client::interactive_session(&session, &mut lines, &mut out, &mut notes, &NO_CTRL_C).unwrap();
    assert_eq!(out, b"BEFORE\nAFTER\n");
    let notes = String::from_utf8(notes).unwrap();
    assert_eq!(notes.matches("edge-1 saw 127.0.0.1:").count(), 2, "{notes}");
    assert!(notes.contains("over TLSv1.3"), "{notes}");
    assert!(notes.contains("closed the connection"), "{notes}");
    assert!(notes.contains("reconnected"), "{notes}");
}

/// With `--tls --banner`, a server that sends no banner gives the plain-TCP errors in every
/// mode: none within the timeout is "no banner line … is the server running with
/// --banner?", a close before one is "closed the connection and answered nothing".
#[test]
fn with_tls_a_missing_banner_is_one_clear_line_in_every_mode() {
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    let silent = Upcased::spawn_tls(&["--tls-self-signed", ca.to_str().unwrap()]);
    let ca2 = dir.path().join("ca2.pem");
    let closing = Upcased::spawn_tls(&[
        "--tls-self-signed",
        ca2.to_str().unwrap(),
        "--idle-timeout",
        "500ms",
    ]);
    // Timeouts with room for a handshake on a busy machine.
    let cases = [
        (&silent, &ca, "500ms", "no banner line from"),
        (
            &closing,
            &ca2,
            "10s",
            "closed the connection and answered nothing",
        ),
    ];
    for (u, ca, timeout, says) in cases {
        let wait = upcase::net::parse_duration(timeout).unwrap();
        let target = format!("localhost:{}", u.addr.port());
        let addr = u.addr.to_string();
        // Pipe mode and send, as a user runs them.
        for send in [false, true] {
            let mut cmd = upcase_bin();
            cmd.args(["--tls", "--ca", ca.to_str().unwrap(), "--banner"])
                .args(["--timeout", timeout, "-c", &target]);
            if send {
                cmd.args(["send", "hello"]);
            } else {
                cmd.write_stdin("hello\n");
            }
            let out = cmd.assert().code(1).stdout("").get_output().clone();
            let stderr = String::from_utf8(out.stderr).unwrap();
            assert_eq!(stderr.lines().count(), 1, "send={send}: {stderr}");
            assert!(stderr.contains(says), "send={send}: {stderr}");
            assert!(stderr.contains(&addr), "send={send}: {stderr}");
            // Not the plain-text hint: the port does speak TLS.
            assert!(!stderr.contains("try --tls"), "send={send}: {stderr}");
        }
        // The interactive session.
        let tls = tls_client(ca, &target);
        let session = Session {
            target: &target,
            timeout: wait,
            tls: Some(&tls),
            banner: true,
        };
        let mut lines = ["hello".to_string()].into_iter();
        let (mut out, mut notes) = (Vec::new(), Vec::new());
        let err =
            client::interactive_session(&session, &mut lines, &mut out, &mut notes, &NO_CTRL_C)
                .unwrap_err();
        assert!(out.is_empty());
        // The one line the binaries printed above is this error's.
        assert!(err.to_string().contains(says), "{err}");
        if std::ptr::eq(u, &silent) {
            assert!(matches!(err, ClientError::NoBanner { .. }), "{err:?}");
            assert!(err.to_string().contains("--banner"), "{err}");
        } else {
            assert!(
                matches!(err, ClientError::Closed { tls: true, .. }),
                "{err:?}"
            );
        }
    }
}

#[test]
fn tls_options_without_tls_are_usage_errors() {
    upcase_bin()
        .args(["--ca", "ca.pem", "send", "x"])
        .assert()
        .code(2);
    let mut c = Cmd::cargo_bin("upcased").unwrap();
    c.env_remove("UPCASED_TLS_LISTEN").timeout(PATIENCE);
    c.args(["--tls-listen", "127.0.0.1:0"])
        .assert()
        .code(2)
        .stderr(predicates::str::contains("--tls-self-signed"));
}

// ---- SIGHUP --------------------------------------------------------------------------------

fn send_with_ca(addr: SocketAddr, ca: &std::path::Path) -> std::process::Output {
    upcase_bin()
        .args(["--tls", "--ca", ca.to_str().unwrap(), "-c"])
        .arg(format!("localhost:{}", addr.port()))
        .args(["send", "hello"])
        .output()
        .unwrap()
}

fn wait_for_log(u: &Upcased, what: &str, times: usize) {
    let end = Instant::now() + PATIENCE;
    while u.log().matches(what).count() < times {
        assert!(Instant::now() < end, "no {what:?} in the log: {}", u.log());
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn sighup_reloads_the_certificate_for_the_next_handshake_and_keeps_a_good_one() {
    let pki = Pki::new();
    let mut u = Upcased::spawn_tls(&[
        "--tls-cert",
        pki.cert().to_str().unwrap(),
        "--tls-key",
        pki.key().to_str().unwrap(),
    ]);
    assert_eq!(send_with_ca(u.addr, &pki.ca_path()).stdout, b"HELLO\n");

    // A new pair from another CA: after SIGHUP only that CA is trusted.
    let other = ca("another CA");
    let (cert, key) = leaf(&other);
    std::fs::write(pki.cert(), cert).unwrap();
    std::fs::write(pki.key(), key).unwrap();
    let other_ca = pki.dir.path().join("other-ca.pem");
    std::fs::write(&other_ca, &other.pem).unwrap();
    u.signal("HUP");
    wait_for_log(&u, "TLS certificate reloaded", 1);
    assert_eq!(send_with_ca(u.addr, &other_ca).stdout, b"HELLO\n");
    assert_eq!(send_with_ca(u.addr, &pki.ca_path()).status.code(), Some(1));

    // A key that is not the certificate's: refused, logged, and the pair before kept.
    std::fs::write(pki.key(), KeyPair::generate().unwrap().serialize_pem()).unwrap();
    u.signal("HUP");
    wait_for_log(&u, "not reloaded; keeping the old one", 1);
    assert_eq!(send_with_ca(u.addr, &other_ca).stdout, b"HELLO\n");

    u.signal("TERM");
    assert!(u.wait().success());
}

#[test]
fn sighup_without_tls_is_logged_and_ignored() {
    let mut u = Upcased::spawn(&[]);
    u.signal("HUP");
    wait_for_log(&u, "SIGHUP: no TLS certificate to reload; ignored", 1);
    let mut s = u.connect();
    s.write_all(b"alive\n").unwrap();
    let mut got = [0u8; 6];
    s.read_exact(&mut got).unwrap();
    assert_eq!(&got, b"ALIVE\n");
    u.signal("TERM");
    assert!(u.wait().success());
}

// ---- the drain -----------------------------------------------------------------------------

#[test]
fn the_drain_lets_a_tls_line_in_progress_finish_then_sends_close_notify() {
    let pki = Pki::new();
    let mut server = TlsTestServer::start(&pki, Config::default());
    let mut busy = connect(&pki, &server);
    let mut idle = connect(&pki, &server);
    busy.write_all(b"half a ").unwrap();
    busy.flush().unwrap();
    assert_eq!(read_n(&mut busy, 7), b"HALF A ");
    idle.write_all(b"done\n").unwrap();
    idle.flush().unwrap();
    assert_eq!(read_n(&mut idle, 5), b"DONE\n");

    server.begin_stop();
    // At a line boundary: closed at once, with close_notify.
    assert_eq!(read_to_close_notify(&mut idle), b"");
    // Mid-line: served until its LF, then closed with close_notify.
    busy.write_all(b"line\nnot this").unwrap();
    busy.flush().unwrap();
    assert_eq!(read_to_close_notify(&mut busy), b"LINE\n");
    server.join();
}

// ---- idle timeout and backpressure over TLS ------------------------------------------------

#[test]
fn an_idle_tls_connection_is_closed_at_the_idle_timeout_with_what_is_owed_then_close_notify() {
    let pki = Pki::new();
    let idle = Duration::from_millis(300);
    let server = TlsTestServer::start(
        &pki,
        Config {
            idle_timeout: Some(idle),
            ..Config::default()
        },
    );
    let mut s = connect(&pki, &server);
    // The idle timeout counts from when the server read the bytes, which is after this and
    // may be before the reply reaches the client.
    let t = Instant::now();
    // The first byte of "ß": held back until the idle close, then sent as it is.
    s.write_all(b"abc \xc3").unwrap();
    s.flush().unwrap();
    assert_eq!(read_n(&mut s, 4), b"ABC ");
    assert_eq!(read_to_close_notify(&mut s), b"\xc3");
    let waited = t.elapsed();
    assert!(fin_follows(&mut s), "FIN after close_notify");
    eprintln!("closed {waited:?} after the last bytes were sent (idle timeout {idle:?})");
    assert!(
        waited >= idle,
        "closed {waited:?} after the last bytes were sent, before the idle timeout"
    );
    server.wait_for("the idle close", |st| st.idle_closed == 1 && st.active == 0);
}

/// Moves what rustls holds for the wire to a non-blocking socket and what the socket has to
/// rustls; `false` when the socket would block both ways.
fn pump_nonblocking(conn: &mut rustls::ClientConnection, sock: &mut TcpStream) -> bool {
    let mut moved = false;
    while conn.wants_write() {
        match conn.write_tls(sock) {
            Ok(_) => moved = true,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
            Err(e) => panic!("write: {e}"),
        }
    }
    if conn.wants_read() {
        match conn.read_tls(sock) {
            Ok(0) => {}
            Ok(_) => {
                conn.process_new_packets().unwrap();
                moved = true;
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) => panic!("read: {e}"),
        }
    }
    moved
}

#[test]
fn a_tls_client_that_does_not_read_stops_being_read_and_loses_nothing() {
    // As over TCP (tests/hardening.rs): small fixed socket buffers on both sides, so that
    // what the client can push before it is stopped is the server's bound plus the buffers.
    const ASK: usize = 16 * 1024;
    let pki = Pki::new();
    let socket = upcase::net::bind_tcp("127.0.0.1:0".parse().unwrap()).unwrap();
    let l = socket2::SockRef::from(&socket);
    l.set_recv_buffer_size(ASK).unwrap();
    l.set_send_buffer_size(ASK).unwrap();
    let server_side = l.recv_buffer_size().unwrap() + l.send_buffer_size().unwrap();
    let addr = socket.local_addr().unwrap();
    let server = Server::with_tls(Config::default(), pki.store()).unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let s = server.clone();
    let thread = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(
            s.run(Listeners::from(vec![Listener::tls(socket)]), async move {
                let _ = stopped.await;
            }),
        )
    });

    let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    sock.set_recv_buffer_size(ASK).unwrap();
    sock.set_send_buffer_size(ASK).unwrap();
    sock.connect(&addr.into()).unwrap();
    let client_side = sock.recv_buffer_size().unwrap() + sock.send_buffer_size().unwrap();
    let mut tcp = TcpStream::from(sock);
    let config = tls::client_config(Some(&pki.ca_path()), false).unwrap();
    let name = tls::server_name("localhost", None).unwrap();
    let mut conn = rustls::ClientConnection::new(config, name).unwrap();
    while conn.is_handshaking() {
        conn.complete_io(&mut tcp).unwrap();
    }
    tcp.set_nonblocking(true).unwrap();

    // Push plaintext as fast as the path takes it, reading nothing.
    let unit = "grüße ωμέγα ".repeat(1000).into_bytes();
    let mut sent = Vec::new();
    let mut stalled_since: Option<Instant> = None;
    loop {
        if !conn.wants_write() {
            conn.writer().write_all(&unit).unwrap();
            sent.extend_from_slice(&unit);
        }
        let before = sent.len();
        let mut wrote = false;
        while conn.wants_write() {
            match conn.write_tls(&mut tcp) {
                Ok(_) => wrote = true,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) => panic!("write failed: {e}"),
            }
        }
        if wrote || sent.len() > before {
            stalled_since = None;
        }
        if conn.wants_write() {
            let since = *stalled_since.get_or_insert_with(Instant::now);
            if since.elapsed() > Duration::from_millis(500) {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(
            sent.len() < 512 << 20,
            "the server kept reading without bound"
        );
    }
    // The buffers, the server's plaintext bound, rustls's on the server (one incoming record
    // of 18.4 KiB, 64 KiB of outgoing records), the unit still in the client's rustls, and
    // one 64 KiB segment per buffer that the kernel may queue past its limit.
    let bound = server_side
        + client_side
        + upcase::limits::MAX_BUFFERED_PER_CONNECTION
        + 19 * 1024
        + 64 * 1024
        + unit.len()
        + 4 * 64 * 1024;
    eprintln!(
        "took {} bytes before stopping; bound {bound} (socket buffers {server_side} + {client_side})",
        sent.len()
    );
    assert!(
        sent.len() <= bound,
        "took {} bytes; bound {bound}",
        sent.len()
    );
    wait_for(&server, "the connection", |st| st.active == 1);

    // Now read: every byte comes back, correct, and the close is close_notify and FIN.
    conn.send_close_notify();
    let mut got = Vec::new();
    let end = Instant::now() + PATIENCE;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        assert!(
            Instant::now() < end,
            "got {} of {} bytes",
            got.len(),
            sent.len()
        );
        let moved = pump_nonblocking(&mut conn, &mut tcp);
        match conn.reader().read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                if !moved {
                    std::thread::sleep(Duration::from_millis(2));
                }
            }
            Err(e) => panic!("no close_notify: {e}"),
        }
    }
    assert!(
        got == common::up(&sent),
        "the replies differ from the input upper-cased"
    );
    let _ = stop.send(());
    thread.join().unwrap().unwrap();
}

// ---- the PROXY protocol before the handshake -----------------------------------------------

/// The client address the balancer names in the tests' headers.
const REAL_CLIENT: &str = "203.0.113.7:4242";
const BALANCER_FRONT: &str = "198.51.100.1:443";

/// A TLS listener that requires `mode`, with the banner `edge saw {client}`.
fn proxied_tls_server(pki: &Pki, mode: ProxyMode, config: Config) -> TlsTestServer {
    let proxy = ProxySettings {
        mode,
        header_timeout: Duration::from_millis(500),
        ..ProxySettings::default()
    };
    let config = Config {
        banner: Some(
            Template::parse("edge saw {client}")
                .unwrap()
                .bind("edge", "h")
                .unwrap(),
        ),
        ..config
    };
    TlsTestServer::start_with(pki, config, ListenerSettings::default().with_proxy(proxy))
}

fn v1(source: &str) -> Vec<u8> {
    upcase::proxy::v1_header(source.parse().unwrap(), BALANCER_FRONT.parse().unwrap()).into_bytes()
}

fn v2(source: &str) -> Vec<u8> {
    // With TLVs (an authority, an unknown type) and a CRC32C, as balancers send.
    upcase::proxy::v2_header(
        Some((source.parse().unwrap(), BALANCER_FRONT.parse().unwrap())),
        &[(0x02, b"localhost"), (0xe0, b"opaque")],
        true,
    )
}

/// How the PROXY header and the client hello reach the server.
#[derive(Clone, Copy, Debug)]
enum Arrival {
    /// In one write: the server's read of the header takes the start of the hello too.
    Together,
    /// The header alone; the hello only once the server has read the header (its
    /// `served` count says so), so that the handshake reads it all from the socket.
    Apart,
}

/// Connects, sends `header` in plain text, then shakes hands as a TLS client for
/// `localhost` that trusts `pki`'s CA.
fn connect_after_header(
    pki: &Pki,
    server: &TlsTestServer,
    header: &[u8],
    arrival: Arrival,
) -> BlockingStream {
    let served = server.server.stats().served;
    let wait = || server.wait_for("the header", |st| st.served == served + 1);
    let apart: Option<&dyn Fn()> = match arrival {
        Arrival::Together => None,
        Arrival::Apart => Some(&wait),
    };
    tls_after_header(server.addr, &pki.ca_path(), header, apart)
}

/// Connects to `addr`, sends `header` in plain text, then shakes hands as a TLS client for
/// `localhost` that trusts `ca`. The header goes in one write with the client hello, or,
/// with `apart`, alone, and the hello once `apart` has returned.
fn tls_after_header(
    addr: SocketAddr,
    ca: &std::path::Path,
    header: &[u8],
    apart: Option<&dyn Fn()>,
) -> BlockingStream {
    let config = tls::client_config(Some(ca), false).unwrap();
    let name = tls::server_name("localhost", None).unwrap();
    let mut conn = rustls::ClientConnection::new(config, name).unwrap();
    let mut tcp = TcpStream::connect(addr).unwrap();
    tcp.set_read_timeout(Some(PATIENCE)).unwrap();
    tcp.set_nodelay(true).unwrap();
    let mut first = header.to_vec();
    match apart {
        None => {
            conn.write_tls(&mut first).unwrap(); // the client hello
            tcp.write_all(&first).unwrap();
        }
        Some(wait) => {
            tcp.write_all(&first).unwrap();
            wait();
        }
    }
    while conn.is_handshaking() {
        conn.complete_io(&mut tcp).unwrap();
    }
    rustls::StreamOwned::new(conn, tcp)
}

/// Reads one LF-terminated line over TLS.
fn read_line(s: &mut BlockingStream) -> String {
    let mut line = Vec::new();
    let mut b = [0u8; 1];
    while line.last() != Some(&b'\n') {
        match s.read(&mut b) {
            Ok(0) => panic!("closed before the end of a line: {line:?}"),
            Ok(_) => line.push(b[0]),
            Err(e) => panic!("reading a line: {e} after {line:?}"),
        }
    }
    String::from_utf8(line).unwrap()
}

/// The banner (inside TLS, naming `client`), a round trip, and the close.
fn served_as(s: &mut BlockingStream, client: &str) {
    assert_eq!(read_line(s), format!("edge saw {client}\n"));
    s.write_all(b"hello over tls\n").unwrap();
    s.flush().unwrap();
    assert_eq!(read_line(s), "HELLO OVER TLS\n");
    tls::close_write(s).unwrap();
    assert_eq!(read_to_close_notify(s), b"");
}

fn header_then_handshake(mode: ProxyMode, header: fn(&str) -> Vec<u8>) {
    let pki = Pki::new();
    let server = proxied_tls_server(&pki, mode, Config::default());
    for (i, arrival) in [Arrival::Together, Arrival::Apart].into_iter().enumerate() {
        let mut s = connect_after_header(&pki, &server, &header(REAL_CLIENT), arrival);
        served_as(&mut s, REAL_CLIENT);
        server.wait_for("the close", |st| st.closed_client == i as u64 + 1);
    }
    let st = server.server.stats();
    assert_eq!(
        (st.tls_handshakes, st.rejected_proxy_header),
        (2, 0),
        "{st:?}"
    );
    assert_eq!(st.tls_failures_by_reason().map(|(_, n)| n).sum::<u64>(), 0);
}

#[test]
fn a_proxy_v1_header_then_a_handshake_is_served_as_the_header_s_client() {
    header_then_handshake(ProxyMode::V1, v1);
}

#[test]
fn a_proxy_v2_header_then_a_handshake_is_served_as_the_header_s_client() {
    header_then_handshake(ProxyMode::V2, v2);
}

#[test]
fn any_takes_either_version_before_the_handshake_and_an_ipv6_client() {
    let pki = Pki::new();
    let server = proxied_tls_server(&pki, ProxyMode::Any, Config::default());
    let six = "[2001:db8::7]:4242";
    let header = upcase::proxy::v2_header(
        Some((six.parse().unwrap(), "[2001:db8::1]:443".parse().unwrap())),
        &[],
        false,
    );
    served_as(
        &mut connect_after_header(&pki, &server, &header, Arrival::Together),
        six,
    );
    served_as(
        &mut connect_after_header(&pki, &server, &v1(REAL_CLIENT), Arrival::Together),
        REAL_CLIENT,
    );
    // LOCAL (a balancer's own health check over TLS): the socket's own address.
    let mut s = connect_after_header(
        &pki,
        &server,
        &upcase::proxy::v2_header(None, &[], false),
        Arrival::Together,
    );
    let me = s.sock.local_addr().unwrap().to_string();
    served_as(&mut s, &me);
}

/// Whether the server closed `tcp` without sending a byte: no server hello, no alert.
fn closed_unanswered(tcp: &mut TcpStream) -> bool {
    let mut buf = [0u8; 64];
    match tcp.read(&mut buf) {
        Ok(0) => true,
        Ok(n) => panic!("the server answered: {:?}", &buf[..n]),
        Err(e) => e.kind() == std::io::ErrorKind::ConnectionReset,
    }
}

#[test]
fn an_invalid_header_on_a_tls_listener_is_closed_before_any_handshake_and_others_are_served() {
    let pki = Pki::new();
    let server = proxied_tls_server(&pki, ProxyMode::V2, Config::default());
    let mut served = connect_after_header(&pki, &server, &v2(REAL_CLIENT), Arrival::Together);
    assert_eq!(read_line(&mut served), format!("edge saw {REAL_CLIENT}\n"));

    // A TLS client that came straight to the port, without a header.
    let config = tls::client_config(Some(&pki.ca_path()), false).unwrap();
    let mut conn =
        rustls::ClientConnection::new(config, tls::server_name("localhost", None).unwrap())
            .unwrap();
    let mut hello = Vec::new();
    conn.write_tls(&mut hello).unwrap();
    // A header of the other version, a malformed one, and one cut short by the client.
    let mut v1_header = v1(REAL_CLIENT);
    v1_header.extend_from_slice(&hello);
    let mut bad_v2 = v2(REAL_CLIENT);
    bad_v2[12] = 0x31; // version 3
    bad_v2.extend_from_slice(&hello);
    let truncated = v2(REAL_CLIENT)[..20].to_vec();
    for (i, bytes) in [hello, v1_header, bad_v2, truncated].iter().enumerate() {
        let mut tcp = TcpStream::connect(server.addr).unwrap();
        tcp.set_read_timeout(Some(PATIENCE)).unwrap();
        tcp.write_all(bytes).unwrap();
        tcp.shutdown(std::net::Shutdown::Write).unwrap();
        assert!(closed_unanswered(&mut tcp), "case {i}");
        server.wait_for("the refusal", |st| st.rejected_proxy_header == i as u64 + 1);
    }
    served.write_all(b"still served\n").unwrap();
    served.flush().unwrap();
    assert_eq!(read_line(&mut served), "STILL SERVED\n");
    let st = server.server.stats();
    assert_eq!(
        st.tls_handshakes, 1,
        "no handshake for a refused header: {st:?}"
    );
    assert_eq!(
        st.tls_failures_by_reason().map(|(_, n)| n).sum::<u64>(),
        0,
        "{st:?}"
    );
    assert_eq!(st.served, 1, "{st:?}");
}

#[test]
fn the_header_timeout_bounds_the_header_and_the_handshake_timeout_the_handshake() {
    let pki = Pki::new();
    let server = proxied_tls_server(
        &pki,
        ProxyMode::V1,
        Config {
            tls_handshake_timeout: Duration::from_millis(300),
            max_connections: 3,
            ..Config::default()
        },
    );
    // Says nothing: closed at the header timeout (500 ms), refused for its header.
    let mut silent = TcpStream::connect(server.addr).unwrap();
    silent.set_read_timeout(Some(PATIENCE)).unwrap();
    // Sends its header, then nothing: closed at the handshake timeout.
    let mut stalled = TcpStream::connect(server.addr).unwrap();
    stalled.set_read_timeout(Some(PATIENCE)).unwrap();
    stalled.write_all(&v1(REAL_CLIENT)).unwrap();
    let t = Instant::now();
    // Each holds a slot meanwhile; the third client is served.
    let mut s = connect_after_header(&pki, &server, &v1("192.0.2.9:9"), Arrival::Together);
    served_as(&mut s, "192.0.2.9:9");
    assert!(closed_unanswered(&mut stalled));
    let stalled_for = t.elapsed();
    assert!(closed_unanswered(&mut silent));
    let silent_for = t.elapsed();
    eprintln!("closed after {stalled_for:?} (header sent) and {silent_for:?} (silent)");
    server.wait_for("both closes", |st| {
        st.rejected_proxy_header == 1
            && st.tls_failures(HandshakeFailure::Timeout) == 1
            && st.active == 0
    });
    let st = server.server.stats();
    assert_eq!((st.served, st.tls_handshakes), (2, 1), "{st:?}");
}

#[test]
fn the_per_ip_limit_over_tls_counts_the_header_s_client() {
    let pki = Pki::new();
    let server = proxied_tls_server(
        &pki,
        ProxyMode::V2,
        Config {
            max_connections_per_ip: Some(1),
            ..Config::default()
        },
    );
    // Every connection comes from 127.0.0.1 (the balancer); the header names the client.
    let mut first = connect_after_header(&pki, &server, &v2(REAL_CLIENT), Arrival::Together);
    assert_eq!(read_line(&mut first), format!("edge saw {REAL_CLIENT}\n"));
    let mut again = TcpStream::connect(server.addr).unwrap();
    again.set_read_timeout(Some(PATIENCE)).unwrap();
    again.write_all(&v2("203.0.113.7:5000")).unwrap();
    assert!(
        closed_unanswered(&mut again),
        "over the limit: closed before the handshake"
    );
    server.wait_for("the refusal", |st| st.rejected_per_ip == 1);
    let mut other = connect_after_header(&pki, &server, &v2("192.0.2.9:9"), Arrival::Together);
    served_as(&mut other, "192.0.2.9:9");
    first.write_all(b"first\n").unwrap();
    first.flush().unwrap();
    assert_eq!(read_line(&mut first), "FIRST\n");
}

#[test]
fn upcased_with_proxy_protocol_and_a_banner_on_a_tls_listener_logs_the_header_s_client() {
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    let mut u = Upcased::spawn_tls(&[
        "--tls-self-signed",
        ca.to_str().unwrap(),
        "--proxy-protocol",
        "v2",
        "--banner",
        "{id} saw {client}",
        "--instance-id",
        "edge-1",
        "-v",
    ]);
    assert!(
        u.log().contains(&format!(
            "listening on {} (tls, PROXY protocol v2 required)",
            u.addr
        )),
        "{}",
        u.log()
    );
    let mut s = tls_after_header(u.addr, &ca, &v2(REAL_CLIENT), None);
    assert_eq!(read_line(&mut s), format!("edge-1 saw {REAL_CLIENT}\n"));
    s.write_all(b"hello\n").unwrap();
    s.flush().unwrap();
    assert_eq!(read_line(&mut s), "HELLO\n");
    tls::close_write(&mut s).unwrap();
    assert_eq!(read_to_close_notify(&mut s), b"");
    wait_for_log(&u, &format!("conn{{peer={REAL_CLIENT}}}"), 1);
    // No header: refused and logged with the socket's address, no handshake.
    let mut plain = TcpStream::connect(u.addr).unwrap();
    plain.set_read_timeout(Some(PATIENCE)).unwrap();
    plain.write_all(b"\x16\x03\x01 not a header").unwrap();
    assert!(closed_unanswered(&mut plain));
    wait_for_log(&u, "connection refused", 1);
    assert!(!u.log().contains("TLS handshake failed"), "{}", u.log());
    u.signal("TERM");
    assert!(u.wait().success());
}
