//! `upcased --proxy-protocol v2 --admin … --banner '{id} saw {client}'` behind a real HAProxy
//! on loopback (`send-proxy-v2`, `check-send-proxy`, a `/readyz` check), when `haproxy` is on
//! PATH: the banner and the log name the real client, `/metrics` counts it, and after
//! SIGTERM `/readyz` says 503 and HAProxy takes the server out of rotation. And HAProxy in
//! TLS passthrough (`mode tcp`, `send-proxy-v2` to a TLS listener): the PROXY header comes
//! before the client's handshake, and the banner inside TLS names the client. And a rolling
//! drain of one of two instances under `upcase bench --reconnect` loses no line.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{Upcased, PATIENCE};

struct Haproxy(Child);

impl Drop for Haproxy {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn haproxy_on_path() -> bool {
    Command::new("haproxy")
        .arg("-v")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Starts HAProxy on a configuration of `global` (`maxconn`, logging at `log_level` to
/// stderr), TCP `defaults` with the tests' timeouts, and `proxies` (the frontends and
/// backends); returns it with the file its stderr goes to.
fn start_haproxy(
    dir: &std::path::Path,
    maxconn: u32,
    log_level: &str,
    proxies: &str,
) -> (Haproxy, std::path::PathBuf) {
    let cfg = dir.join("haproxy.cfg");
    std::fs::write(
        &cfg,
        format!(
            "global
    maxconn {maxconn}
    log stderr format short local0 {log_level}
defaults
    mode tcp
    log global
    timeout connect 2s
    timeout client 20s
    timeout server 20s
    timeout check 1s
{proxies}"
        ),
    )
    .unwrap();
    let log = dir.join("haproxy.log");
    let haproxy = Haproxy(
        Command::new("haproxy")
            .arg("-f")
            .arg(&cfg)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap(),
    );
    (haproxy, log)
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn http_get(addr: SocketAddr, path: &str) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(PATIENCE)).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: upcased\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut reply = String::new();
    s.read_to_string(&mut reply).unwrap();
    reply
}

/// Polls `path` on the admin port until its status line starts with `want`, or fails the
/// test after [`PATIENCE`] saying what it stayed.
fn wait_for_status(admin: SocketAddr, path: &str, want: &str) {
    let end = Instant::now() + PATIENCE;
    loop {
        let reply = http_get(admin, path);
        if reply.starts_with(want) {
            return;
        }
        let status = reply.lines().next().unwrap_or("").to_string();
        assert!(
            Instant::now() < end,
            "{path} stays {status:?}, not {want:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The admin address from `upcased`'s log (its line follows the "listening on" lines).
fn admin_addr(u: &Upcased) -> SocketAddr {
    let end = Instant::now() + PATIENCE;
    loop {
        let log = u.log();
        if let Some(i) = log.find("admin port on http://") {
            let rest = &log[i + 21..];
            return rest[..rest.find('/').unwrap()].parse().unwrap();
        }
        assert!(Instant::now() < end, "no admin line in:\n{log}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// One connection through HAProxy: the banner line and the reply, or `None` if HAProxy
/// closed it (no server up yet).
fn through(front: SocketAddr) -> Option<(SocketAddr, String)> {
    let mut s = TcpStream::connect(front).ok()?;
    s.set_read_timeout(Some(PATIENCE)).unwrap();
    let me = s.local_addr().unwrap();
    s.write_all(b"hello through haproxy\n").ok()?;
    s.shutdown(std::net::Shutdown::Write).ok()?;
    let mut got = String::new();
    s.read_to_string(&mut got).ok()?;
    (!got.is_empty()).then_some((me, got))
}

#[test]
fn behind_haproxy_the_banner_and_log_name_the_real_client_and_readyz_takes_it_out() {
    if !haproxy_on_path() {
        eprintln!("skipped: haproxy not found");
        return;
    }
    let mut u = Upcased::spawn(&[
        "--proxy-protocol",
        "v2",
        "--admin",
        "127.0.0.1:0",
        "--banner",
        "{id} saw {client}",
        "--instance-id",
        "edge-1",
        "--drain-delay",
        "1h",
        "-v",
    ]);
    let admin = admin_addr(&u);
    let front: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (_haproxy, log) = start_haproxy(
        dir.path(),
        64,
        "info",
        &format!(
            r#"frontend upcase
    bind {front}
    default_backend upcased
backend upcased
    option tcp-check
    tcp-check connect port {admin_port} linger
    tcp-check send "GET /readyz HTTP/1.1\r\nHost: upcased\r\nConnection: close\r\n\r\n"
    tcp-check expect rstring "^HTTP/1\.[01] 200"
    tcp-check connect default linger
    tcp-check send "ping\n"
    tcp-check expect string PING
    server u1 {backend} send-proxy-v2 check check-send-proxy inter 200ms fall 1 rise 1
"#,
            admin_port = admin.port(),
            backend = u.addr,
        ),
    );

    let end = Instant::now() + PATIENCE;
    let (me, got) = loop {
        if let Some(done) = through(front) {
            break done;
        }
        assert!(Instant::now() < end, "nothing through haproxy");
        std::thread::sleep(Duration::from_millis(50));
    };
    // HAProxy's own socket reached upcased; the banner names the client behind it.
    assert_eq!(got, format!("edge-1 saw {me}\nHELLO THROUGH HAPROXY\n"));
    let end = Instant::now() + PATIENCE;
    while !u.log().contains(&format!("conn{{peer={me}}}")) {
        assert!(
            Instant::now() < end,
            "the log never named {me}:\n{}",
            u.log()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let metrics = http_get(admin, "/metrics");
    assert!(
        metrics.contains("upcased_connections_rejected_total{reason=\"proxy_header\"} 0"),
        "{metrics}"
    );
    assert!(!metrics.contains("upcased_connections_accepted_total 0\n"));
    // check-send-proxy's LOCAL headers were served too.
    assert!(u.log().contains("local=true"), "{}", u.log());

    u.signal("TERM");
    // The signal is handled asynchronously: /readyz turns soon after, not at kill(2)'s return.
    wait_for_status(admin, "/readyz", "HTTP/1.1 503");
    let end = Instant::now() + PATIENCE;
    loop {
        let said = std::fs::read_to_string(&log).unwrap();
        if said.contains("is DOWN") {
            break;
        }
        assert!(Instant::now() < end, "haproxy kept the server up:\n{said}");
        std::thread::sleep(Duration::from_millis(50));
    }
    // Out of rotation, but still serving a client that reaches it directly.
    let mut direct = TcpStream::connect(u.addr).unwrap();
    direct.set_read_timeout(Some(PATIENCE)).unwrap();
    direct
        .write_all(&upcase::proxy::v2_header(None, &[], false))
        .unwrap();
    direct.write_all(b"direct\n").unwrap();
    let mut reply = [0u8; 64];
    let mut n = 0;
    while !reply[..n].ends_with(b"DIRECT\n") {
        let k = direct.read(&mut reply[n..]).unwrap();
        assert!(k > 0, "closed: {:?}", &reply[..n]);
        n += k;
    }
    u.signal("TERM");
    assert!(u.wait().success());
}

/// The TLS listener's address from `upcased`'s log (its line follows the plain one).
fn tls_addr(u: &Upcased) -> SocketAddr {
    let end = Instant::now() + PATIENCE;
    loop {
        let log = u.log();
        if let Some(line) = log.lines().find(|l| l.contains(" (tls")) {
            let addr = line.rsplit("listening on ").next().unwrap();
            return addr.split(" (tls").next().unwrap().parse().unwrap();
        }
        assert!(Instant::now() < end, "no TLS listener in:\n{log}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn haproxy_in_tls_passthrough_sends_the_proxy_header_before_the_client_s_handshake() {
    if !haproxy_on_path() {
        eprintln!("skipped: haproxy not installed");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    let mut u = Upcased::spawn(&[
        "--tls-listen",
        "127.0.0.1:0",
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
    let backend = tls_addr(&u);
    let front: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    // Passthrough: HAProxy relays the TLS bytes untouched, after a PROXY v2 header of its own.
    let (_haproxy, log) = start_haproxy(
        dir.path(),
        64,
        "info",
        &format!(
            r#"frontend tls_passthrough
    bind {front}
    default_backend upcased_tls
backend upcased_tls
    option tcp-check
    tcp-check connect ssl send-proxy linger
    tcp-check send "ping\n"
    tcp-check expect string PING
    server u1 {backend} send-proxy-v2 check check-send-proxy check-ssl verify none inter 200ms fall 1 rise 1
"#
        ),
    );

    let config = upcase::tls::client_config(Some(&ca), false).unwrap();
    let name = upcase::tls::server_name("localhost", None).unwrap();
    // One connection through HAProxy, once it listens and has the server up.
    let exchange = || -> Result<(SocketAddr, String), String> {
        let tcp = TcpStream::connect(front).map_err(|e| e.to_string())?;
        let me = tcp.local_addr().unwrap();
        let mut s = upcase::tls::connect_blocking(tcp, &config, name.clone(), PATIENCE)
            .map_err(|e| e.to_string())?;
        s.sock.set_read_timeout(Some(PATIENCE)).unwrap();
        s.write_all(b"hello through haproxy\n")
            .and_then(|()| s.flush())
            .and_then(|()| upcase::tls::close_write(&mut s))
            .map_err(|e| e.to_string())?;
        let mut got = String::new();
        s.read_to_string(&mut got).map_err(|e| e.to_string())?;
        Ok((me, got))
    };
    let end = Instant::now() + PATIENCE;
    let (me, got) = loop {
        match exchange() {
            Ok(done) => break done,
            Err(e) => assert!(
                Instant::now() < end,
                "nothing through haproxy: {e}\nupcased:\n{}\nhaproxy:\n{}",
                u.log(),
                std::fs::read_to_string(&log).unwrap_or_default()
            ),
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    // The banner came inside TLS (the handshake would have failed on it otherwise) and
    // names the client behind HAProxy, not HAProxy's own socket; the reply ended with
    // close_notify (read_to_string fails on a bare FIN).
    assert_eq!(got, format!("edge-1 saw {me}\nHELLO THROUGH HAPROXY\n"));
    // HAProxy's health checks over TLS, each after a PROXY v2 LOCAL header, are served.
    let end = Instant::now() + PATIENCE;
    while !u.log().contains("local=true") {
        assert!(Instant::now() < end, "no LOCAL check served:\n{}", u.log());
        std::thread::sleep(Duration::from_millis(20));
    }
    let said = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(!said.contains("is DOWN"), "{said}");
    let end = Instant::now() + PATIENCE;
    while !u.log().contains(&format!("conn{{peer={me}}}")) {
        assert!(
            Instant::now() < end,
            "the log never named {me}:\n{}",
            u.log()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(!u.log().contains("TLS handshake failed"), "{}", u.log());
    u.signal("TERM");
    assert!(u.wait().success());
}

#[test]
fn a_rolling_drain_behind_haproxy_loses_no_line_under_bench_reconnect() {
    // Two instances, as deploy/haproxy.cfg has three: each on its own loopback address,
    // the same data and admin ports on both. SIGTERM of one in the middle of a closed-loop
    // run: HAProxy takes it out on /readyz, then its drain closes each connection at a line
    // boundary, most with bench's next line already on its way; bench reconnects and sends
    // that line again. Every line sent must be answered, right, with no error of any kind.
    if !haproxy_on_path() {
        eprintln!("skipped: haproxy not found");
        return;
    }
    let upcased = || Command::new(env!("CARGO_BIN_EXE_upcased"));
    let args = |ip: &str, admin: &str, id: &str| -> Vec<String> {
        [
            "--proxy-protocol",
            "v2",
            "--admin",
            &format!("{ip}:{admin}"),
            "--banner",
            "{id} saw {client}",
            "--instance-id",
            id,
            "--drain-delay",
            "1500ms",
        ]
        .map(String::from)
        .to_vec()
    };
    let a_args = args("127.0.2.1", "0", "a");
    let mut a = Upcased::spawn_listening(
        upcased(),
        "127.0.2.1:0",
        &a_args.iter().map(String::as_str).collect::<Vec<_>>(),
    );
    let admin_port = admin_addr(&a).port();
    let data_port = a.addr.port();
    let b_args = args("127.0.2.2", &admin_port.to_string(), "b");
    let mut b = Upcased::spawn_listening(
        upcased(),
        &format!("127.0.2.2:{data_port}"),
        &b_args.iter().map(String::as_str).collect::<Vec<_>>(),
    );
    let front: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (_haproxy, log) = start_haproxy(
        dir.path(),
        256,
        "notice",
        &format!(
            r#"frontend upcase
    bind {front}
    default_backend upcased
backend upcased
    balance leastconn
    option tcp-check
    tcp-check connect port {admin_port} linger
    tcp-check send "GET /readyz HTTP/1.1\r\nHost: upcased\r\nConnection: close\r\n\r\n"
    tcp-check expect rstring "^HTTP/1\.[01] 200"
    tcp-check connect default linger
    tcp-check send "ping\n"
    tcp-check expect string PING
    default-server send-proxy-v2 check check-send-proxy inter 200ms fall 1 rise 1
    server a {a}
    server b {b}
"#,
            a = a.addr,
            b = b.addr,
        ),
    );
    let end = Instant::now() + PATIENCE;
    while through(front).is_none() {
        assert!(Instant::now() < end, "nothing through haproxy");
        std::thread::sleep(Duration::from_millis(50));
    }

    let bench = Command::new(env!("CARGO_BIN_EXE_upcase"))
        .args(["--connect", &front.to_string(), "--timeout", "10s", "bench"])
        .args(["--banner", "--reconnect", "--connections", "30"])
        .args(["--duration", "4s", "--warmup", "0", "--json"])
        .env_remove("RUST_LOG")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(1));
    a.signal("TERM");
    assert!(a.wait().success(), "{}", a.log());
    let out = bench.wait_with_output().unwrap();
    b.signal("TERM");
    assert!(b.wait().success());
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let said = std::fs::read_to_string(&log).unwrap();
    assert!(said.contains("upcased/a is DOWN"), "{said}");
    for e in [
        "wrong_replies",
        "resets",
        "timeouts",
        "connect_failures",
        "refused",
    ] {
        assert_eq!(r["errors"][e], 0, "{e}: {r}");
    }
    let count = |id: &str| -> u64 {
        let banners = r["banners"].as_object().unwrap();
        let prefix = format!("{id} saw ");
        banners
            .iter()
            .filter(|(k, _)| k.starts_with(&prefix))
            .map(|(_, v)| v.as_u64().unwrap())
            .sum()
    };
    let (held, reconnects) = (count("a"), r["reconnects"].as_u64().unwrap());
    assert!(held > 0 && count("b") > 0, "both served: {r}");
    assert!(
        reconnects > 0 && reconnects <= held,
        "a's connections moved: {r}"
    );
    assert!(r["retried"].as_u64().unwrap() <= reconnects, "{r}");
    assert!(out.status.success(), "{r}");
    assert!(!a.log().contains("cut a line"), "{}", a.log());
}
