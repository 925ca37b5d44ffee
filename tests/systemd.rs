//! Socket activation and readiness notification, on real descriptors and a real notify socket.
//!
//! The activation tests run this test binary again as a child process (the `activation_probe`
//! test, ignored in a normal run) with descriptors from 3 on and the `LISTEN_*` variables
//! set, either by a small launcher here (`sh` supplies `LISTEN_PID=$$` before `exec`, so the
//! pid is the child's own) or by systemd's `systemd-socket-activate`. The probe adopts what
//! it was given, serves one connection or datagram on each socket to show that it is the
//! socket the parent bound, and prints one `PROBE {json}` line that the parent reads.

#[path = "support/activation.rs"]
mod activation;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::fd::{AsRawFd, RawFd};
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr as UnixAddr, UnixDatagram, UnixListener};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::{json, Value};

use activation::activation_command;
use tokio_util::sync::CancellationToken;
use upcase::systemd::{is_cloexec, take_listen_fds, InheritedSocket, Notifier};

/// Bound on every wait for a child or a socket here, so that a broken case fails instead of
/// hanging the suite.
const WAIT: Duration = Duration::from_secs(30);

fn unique(tag: &str) -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    format!(
        "upcase-test-{tag}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// A notify socket of the test's own, in the abstract namespace (`@name`).
fn abstract_notify_socket() -> (String, UnixDatagram) {
    let name = unique("notify");
    let addr = UnixAddr::from_abstract_name(name.as_bytes()).unwrap();
    let sock = UnixDatagram::bind_addr(&addr).unwrap();
    sock.set_read_timeout(Some(WAIT)).unwrap();
    (format!("@{name}"), sock)
}

fn recv_text(sock: &UnixDatagram) -> String {
    let mut buf = [0u8; 4096];
    let n = sock.recv(&mut buf).expect("a notification");
    String::from_utf8(buf[..n].to_vec()).unwrap()
}

// ---- readiness ---------------------------------------------------------------------------

#[test]
fn ready_stopping_and_status_reach_a_path_socket() {
    let dir = std::env::temp_dir().join(unique("dir"));
    std::fs::create_dir(&dir).unwrap();
    let path = dir.join("notify");
    let sock = UnixDatagram::bind(&path).unwrap();
    sock.set_read_timeout(Some(WAIT)).unwrap();
    let n = Notifier::from_values(Some(path.to_str().unwrap()), None, None, 1).unwrap();
    assert!(n.is_enabled());

    n.ready("serving on 127.0.0.1:2277").unwrap();
    assert_eq!(
        recv_text(&sock),
        "READY=1\nSTATUS=serving on 127.0.0.1:2277\n"
    );
    n.status("3 connections").unwrap();
    assert_eq!(recv_text(&sock), "STATUS=3 connections\n");
    n.stopping("draining 3 connections").unwrap();
    assert_eq!(
        recv_text(&sock),
        "STOPPING=1\nSTATUS=draining 3 connections\n"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn notifications_reach_an_abstract_socket() {
    let (name, sock) = abstract_notify_socket();
    let n = Notifier::from_values(Some(&name), None, None, 1).unwrap();
    n.ready("up").unwrap();
    assert_eq!(recv_text(&sock), "READY=1\nSTATUS=up\n");
}

#[test]
fn a_missing_notify_socket_is_a_send_error_not_a_panic() {
    let n = Notifier::from_values(Some("/nonexistent/upcase/notify"), None, None, 1).unwrap();
    let e = n.ready("up").unwrap_err();
    assert!(e.to_string().contains("/nonexistent/upcase/notify"), "{e}");
}

#[tokio::test(start_paused = true)]
async fn the_watchdog_pings_at_half_the_timeout_until_stopped() {
    let (name, sock) = abstract_notify_socket();
    sock.set_nonblocking(true).unwrap();
    // WATCHDOG_USEC=2s: a ping every second, the first at once.
    let n = Notifier::from_values(Some(&name), Some("2000000"), None, 1).unwrap();
    let stop = CancellationToken::new();
    let task = tokio::spawn(n.run_watchdog(stop.clone()));
    tokio::time::sleep(Duration::from_millis(3500)).await; // pings at 0, 1, 2 and 3 s
    stop.cancel();
    task.await.unwrap();
    tokio::time::sleep(Duration::from_secs(10)).await; // none after the stop
    let mut pings = 0;
    let mut buf = [0u8; 64];
    while let Ok(len) = sock.recv(&mut buf) {
        assert_eq!(&buf[..len], b"WATCHDOG=1\n");
        pings += 1;
    }
    assert_eq!(pings, 4);
}

#[tokio::test(start_paused = true)]
async fn a_watchdog_meant_for_another_process_never_pings() {
    let (name, sock) = abstract_notify_socket();
    sock.set_nonblocking(true).unwrap();
    let n = Notifier::from_values(Some(&name), Some("2000000"), Some("1"), 2).unwrap();
    // Returns at once without being stopped.
    n.run_watchdog(CancellationToken::new()).await;
    assert!(sock.recv(&mut [0u8; 64]).is_err());
}

// ---- activation: the child side ----------------------------------------------------------

/// Runs only in a child process started by the tests below (marked by
/// `UPCASE_ACTIVATION_PROBE`); in a plain `--ignored` run it does nothing.
#[test]
#[ignore = "a child-process probe for the activation tests"]
fn activation_probe() {
    if std::env::var_os("UPCASE_ACTIVATION_PROBE").is_none() {
        return;
    }
    let notifier = Notifier::from_env().unwrap();
    let result = take_listen_fds();
    let left: Vec<&str> = ["LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"]
        .into_iter()
        .filter(|k| std::env::var_os(k).is_some())
        .collect();
    let report = match result {
        Err(e) => json!({ "error": format!("{e:?}"), "message": e.to_string(), "env_left": left }),
        Ok(inherited) => {
            let mut sockets = Vec::new();
            for i in &inherited {
                let (cloexec, nonblocking) = match &i.socket {
                    InheritedSocket::Tcp(l) => (is_cloexec(l).unwrap(), nonblocking(l)),
                    InheritedSocket::Udp(s) => (is_cloexec(s).unwrap(), nonblocking(s)),
                };
                sockets.push(json!({
                    "fd": i.fd, "name": i.name, "kind": i.kind(),
                    "addr": i.local_addr().unwrap().to_string(),
                    "cloexec": cloexec, "nonblocking": nonblocking,
                }));
            }
            for i in inherited {
                serve_one(i.name, i.socket);
            }
            notifier.ready("probe adopted its sockets").unwrap();
            json!({ "sockets": sockets, "env_left": left })
        }
    };
    // libtest has written "test activation_probe ... " on this line already.
    println!("PROBE {report}");
}

fn nonblocking(fd: &impl AsRawFd) -> bool {
    // SAFETY: F_GETFL only reads the status flags of a descriptor we hold.
    let flags = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GETFL) };
    flags >= 0 && flags & libc::O_NONBLOCK != 0
}

/// Answers one TCP connection or one datagram with `served by NAME`.
fn serve_one(name: String, socket: InheritedSocket) {
    match socket {
        InheritedSocket::Tcp(l) => {
            l.set_nonblocking(false).unwrap();
            let (mut c, _) = l.accept().unwrap();
            writeln!(c, "served by {name}").unwrap();
        }
        InheritedSocket::Udp(s) => {
            s.set_nonblocking(false).unwrap();
            s.set_read_timeout(Some(WAIT)).unwrap();
            let mut buf = [0u8; 64];
            let (_, from) = s.recv_from(&mut buf).unwrap();
            s.send_to(format!("served by {name}\n").as_bytes(), from)
                .unwrap();
        }
    }
}

fn probe_args() -> [&'static str; 5] {
    [
        "activation_probe",
        "--exact",
        "--ignored",
        "--nocapture",
        "--test-threads=1",
    ]
}

fn parse_probe(stdout: &str, stderr: &str) -> Value {
    let line = stdout
        .lines()
        .find_map(|l| l.split_once("PROBE ").map(|(_, json)| json))
        .unwrap_or_else(|| panic!("no PROBE line\nstdout:\n{stdout}\nstderr:\n{stderr}"));
    serde_json::from_str(line).unwrap()
}

// ---- activation: a launcher of our own ----------------------------------------------------

/// Starts the probe with `fds` at 3, 4, … and `LISTEN_FDS`, `LISTEN_FDNAMES` and
/// `LISTEN_PID` set; returns its report.
fn launch(fds: &[RawFd], names: Option<&str>, notify: Option<&str>) -> Value {
    let (mut cmd, high) = activation_command(std::env::current_exe().unwrap(), fds);
    cmd.args(probe_args())
        .env("UPCASE_ACTIVATION_PROBE", "1")
        .stdin(Stdio::null());
    if let Some(names) = names {
        cmd.env("LISTEN_FDNAMES", names);
    }
    if let Some(notify) = notify {
        cmd.env("NOTIFY_SOCKET", notify);
    }
    let out = cmd.output().unwrap();
    drop(high);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "probe failed\n{stdout}\n{stderr}");
    parse_probe(&stdout, &stderr)
}

#[test]
fn inherited_tcp_and_udp_sockets_are_adopted_by_type_with_their_names() {
    let tcp = TcpListener::bind("127.0.0.1:0").unwrap();
    let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
    let (tcp_addr, udp_addr) = (tcp.local_addr().unwrap(), udp.local_addr().unwrap());
    // Queued before the child starts: it answers each, proving the sockets are these.
    let mut conn = TcpStream::connect(tcp_addr).unwrap();
    conn.set_read_timeout(Some(WAIT)).unwrap();
    let client = UdpSocket::bind("127.0.0.1:0").unwrap();
    client.set_read_timeout(Some(WAIT)).unwrap();
    client.send_to(b"hello\n", udp_addr).unwrap();
    let (notify_name, notify) = abstract_notify_socket();

    // Datagram first, to show the order is the manager's and the type is read, not assumed.
    let report = launch(
        &[udp.as_raw_fd(), tcp.as_raw_fd()],
        Some("dgram:stream"),
        Some(&notify_name),
    );

    let s = report["sockets"].as_array().unwrap();
    assert_eq!(s.len(), 2, "{report}");
    assert_eq!(s[0]["fd"], 3);
    assert_eq!(s[0]["name"], "dgram");
    assert_eq!(s[0]["kind"], "udp");
    assert_eq!(s[0]["addr"], udp_addr.to_string());
    assert_eq!(s[1]["fd"], 4);
    assert_eq!(s[1]["name"], "stream");
    assert_eq!(s[1]["kind"], "tcp");
    assert_eq!(s[1]["addr"], tcp_addr.to_string());
    for sock in s {
        assert_eq!(sock["cloexec"], true, "{sock}");
        assert_eq!(sock["nonblocking"], true, "{sock}");
    }
    assert_eq!(report["env_left"], json!([]), "the variables must be unset");

    let mut line = String::new();
    BufReader::new(&mut conn).read_line(&mut line).unwrap();
    assert_eq!(line, "served by stream\n");
    let mut buf = [0u8; 64];
    let n = client.recv(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"served by dgram\n");
    assert_eq!(
        recv_text(&notify),
        "READY=1\nSTATUS=probe adopted its sockets\n"
    );
}

#[test]
fn without_names_every_socket_is_unknown() {
    let tcp = TcpListener::bind("127.0.0.1:0").unwrap();
    let mut conn = TcpStream::connect(tcp.local_addr().unwrap()).unwrap();
    let report = launch(&[tcp.as_raw_fd()], None, None);
    assert_eq!(report["sockets"][0]["name"], "unknown", "{report}");
    conn.read_to_end(&mut Vec::new()).unwrap();
}

fn expect_error(report: &Value, variant: &str) -> String {
    let e = report["error"].as_str().unwrap_or_default();
    assert!(e.starts_with(variant), "expected {variant}, got {report}");
    assert_eq!(report["env_left"], json!([]), "unset even on an error");
    report["message"].as_str().unwrap().to_owned()
}

#[test]
fn an_inherited_unix_socket_is_refused_with_a_clear_error() {
    let path: PathBuf = std::env::temp_dir().join(unique("unix"));
    let unix = UnixListener::bind(&path).unwrap();
    let report = launch(&[unix.as_raw_fd()], Some("local"), None);
    std::fs::remove_file(&path).unwrap();
    let msg = expect_error(&report, "NotInet");
    assert!(msg.contains("AF_UNIX") && msg.contains("(local)"), "{msg}");
}

#[test]
fn an_inherited_connection_is_refused_as_not_listening() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let conn = TcpStream::connect(l.local_addr().unwrap()).unwrap();
    let report = launch(&[conn.as_raw_fd()], None, None);
    let msg = expect_error(&report, "NotListening");
    assert!(msg.contains("Accept=no"), "{msg}");
}

#[test]
fn an_inherited_file_is_refused_as_not_a_socket() {
    let file = std::fs::File::open("/dev/null").unwrap();
    let report = launch(&[file.as_raw_fd()], None, None);
    expect_error(&report, "NotSocket");
}

#[test]
fn fewer_names_than_descriptors_is_refused() {
    let a = TcpListener::bind("127.0.0.1:0").unwrap();
    let b = TcpListener::bind("127.0.0.1:0").unwrap();
    let report = launch(&[a.as_raw_fd(), b.as_raw_fd()], Some("only-one"), None);
    expect_error(&report, "NameCount");
}

// ---- activation: systemd's own tool -------------------------------------------------------

/// Fixed ports (the tool cannot bind port 0), from this project's manual-trial range; the
/// next is tried when one is taken.
const ACTIVATE_PORTS: std::ops::Range<u16> = 38900..38950;

fn find_program(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .chain(["/usr/bin", "/usr/sbin", "/bin", "/sbin"])
        .map(|d| PathBuf::from(d).join(name))
        .find(|p| p.is_file())
}

#[test]
fn systemd_socket_activate_passes_a_named_listener_and_gets_ready() {
    let Some(tool) = find_program("systemd-socket-activate") else {
        eprintln!("skipped: systemd-socket-activate not found (apt-get install systemd)");
        return;
    };
    let (notify_name, notify) = abstract_notify_socket();
    for port in ACTIVATE_PORTS {
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let mut child = Command::new(&tool)
            .arg(format!("--listen={addr}"))
            .arg("--fdname=upcased")
            .arg("--setenv=UPCASE_ACTIVATION_PROBE=1")
            .arg(format!("--setenv=NOTIFY_SOCKET={notify_name}"))
            .arg("--")
            .arg(std::env::current_exe().unwrap())
            .args(probe_args())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let killer = kill_after(child.id(), WAIT);
        // The tool says "Listening on ADDR as 3." and then waits for a connection before it
        // executes the probe (it is the probe from then on: same pid, same stderr).
        let mut stderr = BufReader::new(child.stderr.take().unwrap());
        let mut first = String::new();
        stderr.read_line(&mut first).unwrap();
        if !first.contains("Listening on") {
            let mut rest = String::new();
            stderr.read_to_string(&mut rest).unwrap();
            child.wait().unwrap();
            killer.cancel();
            if (first.clone() + &rest).contains("in use") {
                continue;
            }
            panic!("systemd-socket-activate failed: {first}{rest}");
        }
        let mut conn = TcpStream::connect(addr).unwrap();
        conn.set_read_timeout(Some(WAIT)).unwrap();
        let mut line = String::new();
        BufReader::new(&mut conn).read_line(&mut line).unwrap();
        let out = child.wait_with_output().unwrap();
        killer.cancel();
        let mut err = first;
        stderr.read_to_string(&mut err).unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "probe failed\n{stdout}\n{err}");
        let report = parse_probe(&stdout, &err);

        assert_eq!(line, "served by upcased\n");
        let s = &report["sockets"];
        assert_eq!(s.as_array().unwrap().len(), 1, "{report}");
        assert_eq!(s[0]["fd"], 3);
        assert_eq!(s[0]["name"], "upcased");
        assert_eq!(s[0]["kind"], "tcp");
        assert_eq!(s[0]["addr"], addr.to_string());
        assert_eq!(s[0]["cloexec"], true);
        assert_eq!(report["env_left"], json!([]));
        assert_eq!(
            recv_text(&notify),
            "READY=1\nSTATUS=probe adopted its sockets\n"
        );
        return;
    }
    panic!("every port in {ACTIVATE_PORTS:?} was in use");
}

/// Kills process `pid` unless cancelled within `after`: a stuck child fails the test (its
/// output ends early) rather than hanging the suite.
fn kill_after(pid: u32, after: Duration) -> CancellationToken {
    let token = CancellationToken::new();
    let t = token.clone();
    std::thread::spawn(move || {
        let step = Duration::from_millis(50);
        let mut waited = Duration::ZERO;
        while waited < after {
            if t.is_cancelled() {
                return;
            }
            std::thread::sleep(step);
            waited += step;
        }
        // SAFETY: kill only sends a signal. The pid is our child's: the waiting side cancels
        // this token as soon as it has reaped it, so only a child stuck for the whole wait
        // (not yet reaped) is reached.
        unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
    });
    token
}
