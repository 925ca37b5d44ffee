//! The real `upcased` binary under a service manager and beside itself: sockets passed by
//! socket activation (a launcher of ours, and systemd's `systemd-socket-activate`),
//! readiness and stop notifications on a notify socket of the test's own, and two processes
//! sharing one port with `--reuse-port`.

#[path = "support/activation.rs"]
mod activation;
#[macro_use]
mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::fd::{AsRawFd, RawFd};
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr as UnixAddr, UnixDatagram, UnixListener};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use activation::activation_command;
use common::Upcased;

/// Bound on every wait here, so that a broken case fails instead of hanging the suite.
const WAIT: Duration = Duration::from_secs(30);

const UPCASED: &str = env!("CARGO_BIN_EXE_upcased");

/// A notify socket of the test's own, in the abstract namespace (`@name`).
fn notify_socket() -> (String, UnixDatagram) {
    static N: AtomicUsize = AtomicUsize::new(0);
    let name = format!(
        "upcase-scale-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    );
    let addr = UnixAddr::from_abstract_name(name.as_bytes()).unwrap();
    let sock = UnixDatagram::bind_addr(&addr).unwrap();
    sock.set_read_timeout(Some(WAIT)).unwrap();
    (format!("@{name}"), sock)
}

/// Reads notifications until one holds `line` as a line of its own; returns every message
/// read, in order.
fn expect_notification(sock: &UnixDatagram, line: &str) -> Vec<String> {
    let mut seen = Vec::new();
    loop {
        let mut buf = [0u8; 4096];
        let n = sock
            .recv(&mut buf)
            .unwrap_or_else(|e| panic!("no {line} (got {seen:?}): {e}"));
        let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
        let found = msg.lines().any(|l| l == line);
        seen.push(msg);
        if found {
            return seen;
        }
    }
}

/// `--io DRIVER` for the driver the test runs on ([`per_driver!`]), if it is one.
fn io_args() -> Vec<&'static str> {
    match common::driver() {
        upcase::server::Driver::Auto => Vec::new(),
        d => vec!["--io", d.as_str()],
    }
}

/// Starts upcased with `fds` at 3, 4, … and `LISTEN_FDS`, `LISTEN_FDNAMES` and
/// `LISTEN_PID` set, as a service manager does.
fn activate(fds: &[RawFd], names: &str, notify: Option<&str>, args: &[&str]) -> Child {
    let (mut cmd, high) = activation_command(UPCASED, fds);
    cmd.args(io_args())
        .args(args)
        .env("LISTEN_FDNAMES", names)
        .env_remove("UPCASED_LISTEN")
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    if let Some(notify) = notify {
        cmd.env("NOTIFY_SOCKET", notify);
    }
    let child = cmd.spawn().unwrap();
    drop(high);
    child
}

fn signal(pid: u32, sig: &str) {
    let ok = Command::new("kill")
        .args([&format!("-{sig}"), &pid.to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill -{sig} {pid}");
}

/// Waits for `child` to exit (killing it after [`WAIT`]) and returns its status and stderr.
fn finish(mut child: Child) -> (std::process::ExitStatus, String) {
    let pid = child.id();
    let killer = std::thread::spawn(move || {
        std::thread::sleep(WAIT);
        // A stuck child fails the test rather than hanging it (the pid may be gone: fine).
        let _ = Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .status();
    });
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    let status = child.wait().unwrap();
    drop(killer);
    (status, err)
}

fn roundtrip_tcp(addr: SocketAddr, msg: &str) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(WAIT)).unwrap();
    s.write_all(msg.as_bytes()).unwrap();
    s.shutdown(std::net::Shutdown::Write).unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

per_driver! {
    fn inherited_tcp_and_udp_are_served_and_the_manager_hears_ready_then_stopping() {
        let tcp = TcpListener::bind("127.0.0.1:0").unwrap();
        let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
        let (tcp_addr, udp_addr) = (tcp.local_addr().unwrap(), udp.local_addr().unwrap());
        let (notify_name, notify) = notify_socket();
        // No --udp: an inherited datagram socket is served as UDP all the same.
        let child = activate(
            &[tcp.as_raw_fd(), udp.as_raw_fd()],
            "web:dgram",
            Some(&notify_name),
            &["--workers", "2"],
        );
        drop((tcp, udp));

        let ready = expect_notification(&notify, "READY=1");
        let last = ready.last().unwrap();
        assert!(
            last.contains("STATUS=serving 2 listeners on"),
            "READY=1 comes with a status line: {last:?}"
        );

        assert_eq!(roundtrip_tcp(tcp_addr, "straße\n"), "STRASSE\n");
        let client = UdpSocket::bind("127.0.0.1:0").unwrap();
        client.set_read_timeout(Some(WAIT)).unwrap();
        client.send_to(b"hello", udp_addr).unwrap();
        let mut buf = [0u8; 64];
        let (n, from) = client.recv_from(&mut buf).unwrap();
        assert_eq!((&buf[..n], from), (&b"HELLO"[..], udp_addr));

        signal(child.id(), "TERM");
        expect_notification(&notify, "STOPPING=1");
        expect_notification(&notify, "STATUS=stopped");
        let (status, err) = finish(child);
        assert!(status.success(), "{status}\n{err}");
        for want in [
            "fd=3 name=web kind=tcp",
            "fd=4 name=dgram kind=udp",
            &format!("listening on {udp_addr} (udp)"),
        ] {
            assert!(err.contains(want), "log lacks {want:?}:\n{err}");
        }
    }
}

#[test]
fn listen_with_inherited_sockets_is_a_usage_error() {
    let tcp = TcpListener::bind("127.0.0.1:0").unwrap();
    let child = activate(
        &[tcp.as_raw_fd()],
        "web",
        None,
        &["--listen", "127.0.0.1:0"],
    );
    let (status, err) = finish(child);
    assert_eq!(status.code(), Some(2), "{err}");
    assert!(err.contains("--listen cannot be used"), "{err}");
}

#[test]
fn an_inherited_unix_socket_is_a_clear_error_and_status_1() {
    let dir = tempfile::tempdir().unwrap();
    let unix = UnixListener::bind(dir.path().join("sock")).unwrap();
    let child = activate(&[unix.as_raw_fd()], "local", None, &[]);
    let (status, err) = finish(child);
    assert_eq!(status.code(), Some(1), "{err}");
    let first = err.lines().next().unwrap_or_default();
    assert!(
        first.starts_with("upcased: error: socket activation:") && first.contains("AF_UNIX"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "one line, no backtrace: {err}");
}

fn find_program(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|d| PathBuf::from(d).join(name))
        .find(|p| p.is_file())
}

/// Fixed ports for `systemd-socket-activate`, which binds by address itself (no port 0:
/// it does not say which port it got). Kept apart from tests/systemd.rs's range.
const ACTIVATE_PORTS: std::ops::Range<u16> = 38950..39000;

#[test]
fn systemd_socket_activate_starts_upcased_on_its_socket() {
    let Some(tool) = find_program("systemd-socket-activate") else {
        eprintln!("skipped: systemd-socket-activate not found (apt-get install systemd)");
        return;
    };
    let (notify_name, notify) = notify_socket();
    for port in ACTIVATE_PORTS {
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let mut child = Command::new(&tool)
            .arg(format!("--listen={addr}"))
            .arg("--fdname=upcased")
            .arg(format!("--setenv=NOTIFY_SOCKET={notify_name}"))
            .arg("--")
            .arg(UPCASED)
            .env_remove("UPCASED_LISTEN")
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // The tool says "Listening on ADDR as 3." and waits for a connection before it
        // executes upcased (same pid, same stderr from then on).
        let mut stderr = BufReader::new(child.stderr.take().unwrap());
        let mut first = String::new();
        stderr.read_line(&mut first).unwrap();
        if !first.contains("Listening on") {
            let mut rest = String::new();
            stderr.read_to_string(&mut rest).unwrap();
            child.wait().unwrap();
            if (first.clone() + &rest).contains("in use") {
                continue;
            }
            panic!("systemd-socket-activate failed: {first}{rest}");
        }
        // This first connection is what starts upcased; it waits in the backlog meanwhile.
        assert_eq!(roundtrip_tcp(addr, "activated\n"), "ACTIVATED\n");
        expect_notification(&notify, "READY=1");
        assert_eq!(roundtrip_tcp(addr, "again\n"), "AGAIN\n");
        signal(child.id(), "TERM");
        expect_notification(&notify, "STOPPING=1");
        child.stderr = Some(stderr.into_inner());
        let (status, err) = finish(child);
        assert!(status.success(), "{status}\n{err}");
        assert!(err.contains("fd=3 name=upcased kind=tcp"), "{err}");
        return;
    }
    panic!("every port in {ACTIVATE_PORTS:?} was in use");
}

/// Spawns upcased on exactly `addr` with `args`; returns the child once it listens (or its
/// exit status and log, when it exits first).
// The child is returned to the caller, who waits for it (or kills it by dropping).
#[allow(clippy::zombie_processes)]
fn spawn_on(addr: SocketAddr, args: &[&str]) -> Result<Child, (std::process::ExitStatus, String)> {
    let mut child = Command::new(UPCASED)
        .arg("--listen")
        .arg(addr.to_string())
        .args(io_args())
        .args(args)
        .env_remove("UPCASED_LISTEN")
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap());
    let mut seen = String::new();
    loop {
        let mut line = String::new();
        if lines.read_line(&mut line).unwrap() == 0 {
            child.stderr = None;
            return Err((child.wait().unwrap(), seen));
        }
        seen.push_str(&line);
        if line.contains("listening on ") {
            // Keep draining stderr so that the child never blocks on a full pipe.
            std::thread::spawn(move || std::io::copy(&mut lines, &mut std::io::sink()));
            return Ok(child);
        }
    }
}

/// The "served N" figure of a stopped upcased's last log line.
fn served(mut u: Upcased) -> u64 {
    u.signal("TERM");
    assert!(u.wait().success());
    // The reader thread may still be copying the last lines.
    let end = std::time::Instant::now() + WAIT;
    loop {
        let log = u.log();
        if let Some(i) = log.find("stopped; counters: served ") {
            let rest = &log[i + 26..];
            return rest[..rest.find(',').unwrap()].parse().unwrap();
        }
        assert!(std::time::Instant::now() < end, "no counters line:\n{log}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

per_driver! {
    fn two_processes_with_reuse_port_share_a_port_and_both_get_connections() {
        let a = Upcased::spawn(&["--reuse-port", "--workers", "2"]);
        let mut b = spawn_on(a.addr, &["--reuse-port", "--workers", "1"]).expect("second process");
        const CONNECTIONS: u64 = 64;
        for i in 0..CONNECTIONS {
            assert_eq!(roundtrip_tcp(a.addr, &format!("c{i}\n")), format!("C{i}\n"));
        }
        // b's share: what a did not serve (each connection was served once, above).
        let from_a = served(a);
        signal(b.id(), "TERM");
        assert!(b.wait().unwrap().success());
        assert!(
            from_a > 0 && from_a < CONNECTIONS,
            "the kernel spread {CONNECTIONS} connections: {from_a} to one process, the rest to the other"
        );
    }
}

per_driver! {
    fn a_drained_reuse_port_process_sends_reconnecting_clients_to_the_other_with_no_reset() {
        // The drain closes this process's listeners before it closes a connection: a client
        // that reconnects on the drain's FIN is refused by it, so the kernel hands the
        // connect to the other process. Were a listener still open (its four workers close
        // theirs one after the other), the connect could land in its accept queue and be
        // reset when that listener closed (it did in 4 of 6 runs before the fix).
        let mut a = Upcased::spawn(&["--reuse-port", "--workers", "4"]);
        let mut b = spawn_on(a.addr, &["--reuse-port", "--workers", "2"]).expect("second process");
        let bench = Command::new(env!("CARGO_BIN_EXE_upcase"))
            .args([
                "--connect",
                &a.addr.to_string(),
                "--timeout",
                "10s",
                "bench",
            ])
            .args(["--reconnect", "--connections", "100", "--duration", "3s"])
            .args(["--warmup", "0", "--json"])
            .env_remove("RUST_LOG")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(1500));
        a.signal("TERM");
        let out = bench.wait_with_output().unwrap();
        assert!(a.wait().success());
        signal(b.id(), "TERM");
        assert!(b.wait().unwrap().success());
        let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(r["errors"]["resets"], 0, "{r}");
        assert_eq!(r["errors"]["timeouts"], 0, "{r}");
        assert_eq!(r["errors"]["wrong_replies"], 0, "{r}");
        assert!(
            r["reconnects"].as_u64() > Some(0),
            "a's connections moved: {r}"
        );
        assert!(out.status.success(), "{r}");
    }
}

#[test]
fn without_reuse_port_a_second_process_on_the_port_fails_clearly() {
    let a = Upcased::spawn(&["--reuse-port"]);
    let (status, err) = spawn_on(a.addr, &[]).expect_err("the port is taken");
    assert_eq!(status.code(), Some(1), "{err}");
    assert!(
        err.contains(&format!(
            "could not listen on {}: address already in use",
            a.addr
        )),
        "{err}"
    );
    drop(a);

    let plain = Upcased::spawn(&[]);
    let (status, err) = spawn_on(plain.addr, &["--reuse-port"]).expect_err("the port is taken");
    assert_eq!(status.code(), Some(1), "{err}");
    assert!(err.contains("address already in use"), "{err}");
}

per_driver! {
    fn without_activation_upcased_binds_itself_notifies_and_pings_the_watchdog() {
        let (notify_name, notify) = notify_socket();
        let mut cmd = Command::new(UPCASED);
        cmd.env("NOTIFY_SOCKET", &notify_name)
            .env("WATCHDOG_USEC", "200000")
            .env_remove("WATCHDOG_PID")
            .env_remove("LISTEN_FDS")
            .env_remove("LISTEN_PID");
        let mut u = Upcased::spawn_with(cmd, &["--workers", "2"]);
        let seen = expect_notification(&notify, "READY=1");
        assert!(
            seen.last()
                .unwrap()
                .contains(&format!("STATUS=serving 1 listener on {}", u.addr)),
            "{seen:?}"
        );
        expect_notification(&notify, "WATCHDOG=1");
        u.signal("TERM");
        expect_notification(&notify, "STOPPING=1");
        assert!(u.wait().success());
    }
}
