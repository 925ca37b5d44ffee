//! The admin port wired to the server: every metric moves when its event happens (in
//! process, scraped over HTTP), and `upcased --admin` with `/readyz` turning 503 at SIGTERM,
//! `--drain-delay` keeping the listeners serving, and the drain showing on `/metrics`.

#[macro_use]
mod common;

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream, UdpSocket};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{read_n, TestServer, Upcased, PATIENCE};
use upcase::admin::{AdminConfig, AdminServer, Readiness};
use upcase::proxy::{v2_header, ProxyMode, ProxySettings};
use upcase::server::{Config, Listener, ListenerSettings, Listeners};

/// `GET path` on the admin port: the status code and the body.
fn get(admin: SocketAddr, path: &str) -> (u16, String) {
    let mut s = TcpStream::connect(admin).unwrap();
    s.set_read_timeout(Some(PATIENCE)).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: upcased\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut reply = String::new();
    s.read_to_string(&mut reply).unwrap();
    let status = reply
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP reply: {reply:?}"));
    let body = reply.split_once("\r\n\r\n").map(|x| x.1).unwrap_or("");
    (status, body.to_owned())
}

/// The value of one series (`name` with its labels, as written) in a scrape.
fn value(scrape: &str, series: &str) -> f64 {
    scrape
        .lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no {series} in:\n{scrape}"))
        .trim()
        .parse()
        .unwrap()
}

/// Scrapes until `series` reaches `want`, or fails after [`PATIENCE`].
fn wait_metric(admin: SocketAddr, series: &str, want: f64) {
    let end = Instant::now() + PATIENCE;
    loop {
        let (_, body) = get(admin, "/metrics");
        let v = value(&body, series);
        if v == want {
            return;
        }
        assert!(Instant::now() < end, "{series} is {v}, not {want}:\n{body}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

const SERIES: [&str; 18] = [
    "upcased_connections_accepted_total",
    "upcased_connections_active",
    "upcased_connections_rejected_total{reason=\"max_connections\"}",
    "upcased_connections_rejected_total{reason=\"max_connections_per_ip\"}",
    "upcased_connections_rejected_total{reason=\"proxy_header\"}",
    "upcased_connections_closed_total{reason=\"client\"}",
    "upcased_connections_closed_total{reason=\"idle\"}",
    "upcased_connections_closed_total{reason=\"drain\"}",
    "upcased_connections_closed_total{reason=\"error\"}",
    "upcased_bytes_received_total",
    "upcased_bytes_sent_total",
    "upcased_accept_errors_total",
    "upcased_udp_datagrams_total{outcome=\"replied\"}",
    "upcased_udp_datagrams_total{outcome=\"privileged_port\"}",
    "upcased_udp_datagrams_total{outcome=\"would_amplify\"}",
    "upcased_udp_datagrams_total{outcome=\"rate_limited\"}",
    "upcased_draining",
    "upcased_build_info{version=\"0.1.0\"}",
];

fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(PATIENCE)).unwrap();
    s
}

per_driver! {
    fn every_metric_moves_when_its_event_happens() {
        // One plain TCP listener with UDP on its port, and one that requires PROXY v2.
        let plain = upcase::net::bind_tcp("127.0.0.1:0".parse().unwrap()).unwrap();
        let plain_addr = plain.local_addr().unwrap();
        let udp = upcase::net::bind_udp(plain_addr).unwrap();
        let proxied = upcase::net::bind_tcp("127.0.0.1:0".parse().unwrap()).unwrap();
        let proxied_addr = proxied.local_addr().unwrap();
        let proxy = ProxySettings {
            mode: ProxyMode::V2,
            ..ProxySettings::default()
        };
        let mut listeners = Listeners::from(vec![
            Listener::plain(plain),
            Listener::new(proxied, ListenerSettings::default().with_proxy(proxy)),
        ]);
        listeners.udp.push(udp);
        let server = TestServer::start_on_listeners(
            listeners,
            Config {
                max_connections: 3,
                max_connections_per_ip: Some(2),
                idle_timeout: Some(Duration::from_secs(3)),
                udp_rate: Some(3),
                ..Config::default()
            },
        );
        let admin = AdminServer::start(
            upcase::net::bind_tcp("127.0.0.1:0".parse().unwrap()).unwrap(),
            Arc::new(server.server.clone()),
            Readiness::new(),
            AdminConfig::default(),
        )
        .unwrap();
        let a = admin.local_addr();

        // Every series is there from the start, at 0 (build_info at 1).
        let (status, body) = get(a, "/metrics");
        assert_eq!(status, 200);
        for series in SERIES {
            let want = if series.starts_with("upcased_build_info") {
                1.0
            } else {
                0.0
            };
            assert_eq!(value(&body, series), want, "{series}");
        }

        // accepted, active, bytes, closed{client}.
        let mut c = connect(plain_addr);
        c.write_all(b"hello\n").unwrap();
        assert_eq!(read_n(&mut c, 6), b"HELLO\n");
        wait_metric(a, "upcased_connections_accepted_total", 1.0);
        wait_metric(a, "upcased_connections_active", 1.0);
        wait_metric(a, "upcased_bytes_received_total", 6.0);
        wait_metric(a, "upcased_bytes_sent_total", 6.0);
        c.shutdown(Shutdown::Write).unwrap();
        assert_eq!(common::read_to_end(&mut c), b"");
        wait_metric(
            a,
            "upcased_connections_closed_total{reason=\"client\"}",
            1.0,
        );
        wait_metric(a, "upcased_connections_active", 0.0);

        // rejected{proxy_header}.
        let mut bad = connect(proxied_addr);
        bad.write_all(b"GET / HTTP/1.0\r\n\r\n").unwrap();
        wait_metric(
            a,
            "upcased_connections_rejected_total{reason=\"proxy_header\"}",
            1.0,
        );

        // rejected{max_connections_per_ip}, on the proxied address, then {max_connections}.
        let dst: SocketAddr = "198.51.100.1:2277".parse().unwrap();
        let from = |src: &str| {
            let mut s = connect(proxied_addr);
            let src: SocketAddr = src.parse().unwrap();
            s.write_all(&v2_header(Some((src, dst)), &[], false))
                .unwrap();
            s
        };
        let held: Vec<TcpStream> = vec![from("192.0.2.1:1"), from("192.0.2.1:2")];
        wait_metric(a, "upcased_connections_accepted_total", 3.0);
        let _third = from("192.0.2.1:3");
        wait_metric(
            a,
            "upcased_connections_rejected_total{reason=\"max_connections_per_ip\"}",
            1.0,
        );
        let held_too = connect(plain_addr);
        wait_metric(a, "upcased_connections_active", 3.0);
        let _over = connect(plain_addr);
        wait_metric(
            a,
            "upcased_connections_rejected_total{reason=\"max_connections\"}",
            1.0,
        );
        drop(held);
        drop(held_too);
        wait_metric(a, "upcased_connections_active", 0.0);

        // closed{idle}: a connection that sends nothing for the idle timeout.
        let idle = connect(plain_addr);
        wait_metric(a, "upcased_connections_closed_total{reason=\"idle\"}", 1.0);
        drop(idle);

        // closed{error}: a reset.
        let before = value(
            &get(a, "/metrics").1,
            "upcased_connections_closed_total{reason=\"error\"}",
        );
        let mut reset = connect(plain_addr);
        reset.write_all(b"x").unwrap();
        assert_eq!(read_n(&mut reset, 1), b"X");
        socket2::SockRef::from(&reset)
            .set_linger(Some(Duration::ZERO))
            .unwrap();
        drop(reset);
        wait_metric(
            a,
            "upcased_connections_closed_total{reason=\"error\"}",
            before + 1.0,
        );

        // udp{replied, would_amplify, rate_limited, privileged_port}.
        let u = UdpSocket::bind("127.0.0.1:0").unwrap();
        u.set_read_timeout(Some(PATIENCE)).unwrap();
        u.send_to(b"hi", plain_addr).unwrap();
        let mut buf = [0u8; 64];
        assert_eq!(u.recv(&mut buf).unwrap(), 2);
        wait_metric(a, "upcased_udp_datagrams_total{outcome=\"replied\"}", 1.0);
        // "ŉ" (2 bytes) upper-cases to "ʼN" (3 bytes).
        u.send_to("ŉ".as_bytes(), plain_addr).unwrap();
        wait_metric(
            a,
            "upcased_udp_datagrams_total{outcome=\"would_amplify\"}",
            1.0,
        );
        for _ in 0..10 {
            u.send_to(b"burst", plain_addr).unwrap();
        }
        let end = Instant::now() + PATIENCE;
        while value(
            &get(a, "/metrics").1,
            "upcased_udp_datagrams_total{outcome=\"rate_limited\"}",
        ) == 0.0
        {
            assert!(Instant::now() < end, "no datagram was rate limited");
            std::thread::sleep(Duration::from_millis(20));
        }
        match UdpSocket::bind("127.0.0.1:1023") {
            Ok(privileged) => {
                privileged.send_to(b"hi", plain_addr).unwrap();
                wait_metric(
                    a,
                    "upcased_udp_datagrams_total{outcome=\"privileged_port\"}",
                    1.0,
                );
            }
            Err(e) => eprintln!("privileged_port not checked: cannot bind port 1023 ({e})"),
        }

        // draining, and closed{drain}: a connection mid-line when the drain begins.
        let mut mid = connect(plain_addr);
        mid.write_all(b"half").unwrap();
        assert_eq!(read_n(&mut mid, 4), b"HALF");
        server.server.begin_drain();
        wait_metric(a, "upcased_draining", 1.0);
        mid.write_all(b" a line\n").unwrap();
        assert_eq!(read_n(&mut mid, 8), b" A LINE\n");
        wait_metric(a, "upcased_connections_closed_total{reason=\"drain\"}", 1.0);
        admin.shutdown();
        server.stop();
    }
}

/// The admin address from `upcased`'s log.
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

fn wait_status(admin: SocketAddr, path: &str, want: u16) {
    let end = Instant::now() + PATIENCE;
    loop {
        let (status, _) = get(admin, path);
        if status == want {
            return;
        }
        assert!(Instant::now() < end, "{path} stays {status}, not {want}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

per_driver! {
    fn readyz_turns_503_at_sigterm_and_the_drain_delay_keeps_serving() {
        let mut u = Upcased::spawn(&["--admin", "127.0.0.1:0", "--drain-delay", "1h"]);
        let a = admin_addr(&u);
        assert_eq!(get(a, "/livez").0, 200);
        assert_eq!(get(a, "/readyz").0, 200);
        assert_eq!(get(a, "/nowhere").0, 404);
        let mut open = u.connect();
        open.write_all(b"before\n").unwrap();
        assert_eq!(read_n(&mut open, 7), b"BEFORE\n");

        u.signal("TERM");
        wait_status(a, "/readyz", 503);
        assert_eq!(get(a, "/livez").0, 200);
        // Within the delay: the listener still accepts and serves, and the drain has not begun.
        let mut late = u.connect();
        late.write_all(b"after sigterm\n").unwrap();
        assert_eq!(read_n(&mut late, 14), b"AFTER SIGTERM\n");
        open.write_all(b"still\n").unwrap();
        assert_eq!(read_n(&mut open, 6), b"STILL\n");
        assert_eq!(value(&get(a, "/metrics").1, "upcased_draining"), 0.0);
        // A second signal ends the wait at once.
        u.signal("TERM");
        assert!(u.wait().success());
    }
}

per_driver! {
    fn readyz_is_503_and_draining_1_while_the_drain_waits_for_a_line() {
        let mut u = Upcased::spawn(&["--admin", "127.0.0.1:0", "--shutdown-timeout", "1m"]);
        let a = admin_addr(&u);
        let mut mid = u.connect();
        mid.write_all(b"mid").unwrap();
        assert_eq!(read_n(&mut mid, 3), b"MID");
        u.signal("TERM");
        wait_status(a, "/readyz", 503);
        let end = Instant::now() + PATIENCE;
        while value(&get(a, "/metrics").1, "upcased_draining") != 1.0 {
            assert!(Instant::now() < end, "draining never became 1");
            std::thread::sleep(Duration::from_millis(20));
        }
        // The listener is closed now; the open connection finishes its line and is closed.
        let deadline = Instant::now() + PATIENCE;
        while TcpStream::connect(u.addr).is_ok() {
            assert!(Instant::now() < deadline, "the listener stayed open");
            std::thread::sleep(Duration::from_millis(20));
        }
        mid.write_all(b"dle\n").unwrap();
        assert_eq!(read_n(&mut mid, 4), b"DLE\n");
        assert!(u.wait().success());
        // The admin port stopped with the process.
        assert!(TcpStream::connect(a).is_err());
    }
}

per_driver! {
    fn accept_errors_count_when_descriptors_run_out() {
        // A descriptor limit of 40 (soft and hard, so upcased cannot raise it): the connections
        // beyond it fail in accept with EMFILE.
        let mut cmd = std::process::Command::new("sh");
        cmd.args([
            "-c",
            r#"ulimit -n 40 && exec "$0" "$@""#,
            env!("CARGO_BIN_EXE_upcased"),
        ]);
        let u = Upcased::spawn_with(cmd, &["--admin", "127.0.0.1:0", "--workers", "1"]);
        let a = admin_addr(&u);
        // More connections than descriptors: the kernel queues them, accept fails.
        let held: Vec<TcpStream> = (0..60).map(|_| u.connect()).collect();
        let end = Instant::now() + PATIENCE;
        while !u.log().contains("accept failed for lack of resources") {
            assert!(Instant::now() < end, "no accept failure:\n{}", u.log());
            std::thread::sleep(Duration::from_millis(20));
        }
        // Freed, so that the admin port has a descriptor to answer with.
        drop(held);
        wait_metric_at_least(a, "upcased_accept_errors_total", 1.0);
    }
}

/// Scrapes until `series` is at least `want`; tolerates scrapes that fail meanwhile.
fn wait_metric_at_least(admin: SocketAddr, series: &str, want: f64) {
    let end = Instant::now() + PATIENCE;
    loop {
        let scrape = std::panic::catch_unwind(|| get(admin, "/metrics").1);
        if let Ok(body) = &scrape {
            if value(body, series) >= want {
                return;
            }
        }
        assert!(
            Instant::now() < end,
            "{series} never reached {want}: {scrape:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}
