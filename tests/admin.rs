//! The admin port on real sockets: every endpoint, the status codes, readiness flipping,
//! the metrics page, and the port's own limits.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use upcase::admin::{AdminConfig, AdminServer, Readiness, Snapshot};

/// Long enough never to fire on a working server, short enough that a hung test fails.
const IO_TIMEOUT: Duration = Duration::from_secs(10);

struct Admin {
    server: AdminServer,
    readiness: Readiness,
    snapshot: Arc<Mutex<Snapshot>>,
}

fn start_with(config: AdminConfig) -> Admin {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let snapshot = Arc::new(Mutex::new(Snapshot::default()));
    let readiness = Readiness::new();
    let source = snapshot.clone();
    let server = AdminServer::start(
        listener,
        Arc::new(move || *source.lock().unwrap()),
        readiness.clone(),
        config,
    )
    .unwrap();
    Admin {
        server,
        readiness,
        snapshot,
    }
}

fn start() -> Admin {
    start_with(AdminConfig::default())
}

fn connect(addr: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    stream
}

struct Reply {
    status: u16,
    head: String,
    body: String,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().find_map(|line| {
            let (key, value) = line.split_once(':')?;
            key.eq_ignore_ascii_case(name).then(|| value.trim())
        })
    }
}

fn parse(raw: &[u8]) -> Reply {
    let raw = String::from_utf8(raw.to_vec()).unwrap();
    let (head, body) = raw
        .split_once("\r\n\r\n")
        .expect("a complete response head");
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    Reply {
        status,
        head: head.to_owned(),
        body: body.to_owned(),
    }
}

/// One request on a fresh connection that the client asks to close.
fn request(addr: SocketAddr, method: &str, path: &str) -> Reply {
    let mut stream = connect(addr);
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: admin\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).unwrap();
    parse(&raw)
}

fn get(admin: &Admin, path: &str) -> Reply {
    request(admin.server.local_addr(), "GET", path)
}

#[test]
fn livez_is_200() {
    let admin = start();
    let reply = get(&admin, "/livez");
    assert_eq!(reply.status, 200);
    assert_eq!(reply.body, "ok\n");
    assert_eq!(reply.header("cache-control"), Some("no-store"));
}

#[test]
fn readyz_turns_503_when_readiness_is_cleared() {
    let admin = start();
    assert_eq!(get(&admin, "/readyz").status, 200);
    admin.readiness.set_ready(false);
    let reply = get(&admin, "/readyz");
    assert_eq!(reply.status, 503);
    assert!(reply.body.contains("draining"), "{}", reply.body);
    // Liveness is not readiness.
    assert_eq!(get(&admin, "/livez").status, 200);
    admin.readiness.set_ready(true);
    assert_eq!(get(&admin, "/readyz").status, 200);
}

#[test]
fn head_gets_the_status_and_headers_without_a_body() {
    let admin = start();
    for path in ["/livez", "/readyz", "/metrics"] {
        let reply = request(admin.server.local_addr(), "HEAD", path);
        assert_eq!(reply.status, 200, "{path}");
        assert_eq!(reply.body, "", "{path}");
    }
    admin.readiness.set_ready(false);
    assert_eq!(
        request(admin.server.local_addr(), "HEAD", "/readyz").status,
        503
    );
}

#[test]
fn other_paths_are_404() {
    let admin = start();
    for path in ["/", "/health", "/livez/", "/metrics/x", "/LIVEZ"] {
        assert_eq!(get(&admin, path).status, 404, "{path}");
    }
    // The query string is not part of the path.
    assert_eq!(get(&admin, "/livez?verbose=1").status, 200);
}

#[test]
fn other_methods_are_405_with_allow() {
    let admin = start();
    for method in ["POST", "PUT", "DELETE", "OPTIONS", "PATCH"] {
        for path in ["/livez", "/metrics", "/nowhere"] {
            let reply = request(admin.server.local_addr(), method, path);
            assert_eq!(reply.status, 405, "{method} {path}");
            assert_eq!(reply.header("allow"), Some("GET, HEAD"));
        }
    }
}

/// Every series of the table, as the page must show it from the start.
const EVERY_SERIES_AT_ZERO: &[&str] = &[
    "upcased_connections_accepted_total 0",
    "upcased_connections_active 0",
    "upcased_connections_rejected_total{reason=\"max_connections\"} 0",
    "upcased_connections_rejected_total{reason=\"max_connections_per_ip\"} 0",
    "upcased_connections_rejected_total{reason=\"proxy_header\"} 0",
    "upcased_connections_closed_total{reason=\"client\"} 0",
    "upcased_connections_closed_total{reason=\"idle\"} 0",
    "upcased_connections_closed_total{reason=\"drain\"} 0",
    "upcased_connections_closed_total{reason=\"error\"} 0",
    "upcased_bytes_received_total 0",
    "upcased_bytes_sent_total 0",
    "upcased_accept_errors_total 0",
    "upcased_udp_datagrams_total{outcome=\"replied\"} 0",
    "upcased_udp_datagrams_total{outcome=\"privileged_port\"} 0",
    "upcased_udp_datagrams_total{outcome=\"would_amplify\"} 0",
    "upcased_udp_datagrams_total{outcome=\"rate_limited\"} 0",
    "upcased_draining 0",
    "upcased_tls_handshake_failures_total{reason=\"timeout\"} 0",
    "upcased_tls_handshake_failures_total{reason=\"not_tls\"} 0",
    "upcased_tls_handshake_failures_total{reason=\"protocol\"} 0",
    "upcased_tls_handshake_failures_total{reason=\"rejected\"} 0",
    "upcased_tls_handshake_failures_total{reason=\"closed\"} 0",
    "upcased_tls_handshake_failures_total{reason=\"io\"} 0",
];

const TYPES: &[&str] = &[
    "# TYPE upcased_connections_accepted_total counter",
    "# TYPE upcased_connections_active gauge",
    "# TYPE upcased_connections_rejected_total counter",
    "# TYPE upcased_connections_closed_total counter",
    "# TYPE upcased_bytes_received_total counter",
    "# TYPE upcased_bytes_sent_total counter",
    "# TYPE upcased_accept_errors_total counter",
    "# TYPE upcased_udp_datagrams_total counter",
    "# TYPE upcased_tls_handshake_failures_total counter",
    "# TYPE upcased_draining gauge",
    "# TYPE upcased_build_info gauge",
];

#[test]
fn metrics_show_every_series_at_zero_from_the_start() {
    let admin = start();
    let reply = get(&admin, "/metrics");
    assert_eq!(reply.status, 200);
    assert_eq!(
        reply.header("content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    let lines: Vec<&str> = reply.body.lines().collect();
    for want in EVERY_SERIES_AT_ZERO.iter().chain(TYPES) {
        assert!(
            lines.contains(want),
            "{want:?} missing from\n{}",
            reply.body
        );
    }
    let build = format!(
        "upcased_build_info{{version=\"{}\"}} 1",
        env!("CARGO_PKG_VERSION")
    );
    assert!(lines.contains(&build.as_str()), "{}", reply.body);
    // Nothing but those: every sample line is one of the table's.
    let samples = lines.iter().filter(|l| !l.starts_with('#')).count();
    assert_eq!(samples, EVERY_SERIES_AT_ZERO.len() + 1, "{}", reply.body);
}

#[test]
fn metrics_reflect_the_source_at_each_scrape() {
    let admin = start();
    {
        let mut s = admin.snapshot.lock().unwrap();
        s.accepted = 12;
        s.active = 3;
        s.rejected.max_connections = 1;
        s.rejected.max_connections_per_ip = 2;
        s.rejected.proxy_header = 4;
        s.closed.client = 5;
        s.closed.idle = 6;
        s.closed.drain = 7;
        s.closed.error = 8;
        s.bytes_received = 1 << 40;
        s.bytes_sent = u64::MAX;
        s.accept_errors = 9;
        s.udp.replied = 10;
        s.udp.privileged_port = 11;
        s.udp.would_amplify = 13;
        s.udp.rate_limited = 14;
        s.draining = true;
    }
    let body = get(&admin, "/metrics").body;
    let lines: Vec<&str> = body.lines().collect();
    for want in [
        "upcased_connections_accepted_total 12",
        "upcased_connections_active 3",
        "upcased_connections_rejected_total{reason=\"max_connections\"} 1",
        "upcased_connections_rejected_total{reason=\"max_connections_per_ip\"} 2",
        "upcased_connections_rejected_total{reason=\"proxy_header\"} 4",
        "upcased_connections_closed_total{reason=\"client\"} 5",
        "upcased_connections_closed_total{reason=\"idle\"} 6",
        "upcased_connections_closed_total{reason=\"drain\"} 7",
        "upcased_connections_closed_total{reason=\"error\"} 8",
        "upcased_bytes_received_total 1099511627776",
        "upcased_bytes_sent_total 18446744073709551615",
        "upcased_accept_errors_total 9",
        "upcased_udp_datagrams_total{outcome=\"replied\"} 10",
        "upcased_udp_datagrams_total{outcome=\"privileged_port\"} 11",
        "upcased_udp_datagrams_total{outcome=\"would_amplify\"} 13",
        "upcased_udp_datagrams_total{outcome=\"rate_limited\"} 14",
        "upcased_draining 1",
    ] {
        assert!(lines.contains(&want), "{want:?} missing from\n{body}");
    }
    admin.snapshot.lock().unwrap().accepted = 13;
    let body = get(&admin, "/metrics").body;
    assert!(body
        .lines()
        .any(|l| l == "upcased_connections_accepted_total 13"));
}

#[test]
fn a_kept_alive_connection_serves_several_requests() {
    let admin = start();
    let mut stream = connect(admin.server.local_addr());
    for path in ["/livez", "/readyz", "/nowhere", "/livez"] {
        write!(stream, "GET {path} HTTP/1.1\r\nHost: admin\r\n\r\n").unwrap();
    }
    write!(
        stream,
        "GET /livez HTTP/1.1\r\nHost: admin\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = String::new();
    stream.read_to_string(&mut raw).unwrap();
    let statuses: Vec<&str> = raw
        .lines()
        .filter(|l| l.starts_with("HTTP/1.1 "))
        .map(|l| &l[9..12])
        .collect();
    assert_eq!(statuses, ["200", "200", "404", "200", "200"], "{raw}");
}

/// Reads until the server closes; true if it closed (EOF or reset) without a byte.
fn closed_unanswered(mut stream: TcpStream) -> bool {
    let mut buf = [0u8; 64];
    match stream.read(&mut buf) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => matches!(
            e.kind(),
            std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::ConnectionAborted
        ),
    }
}

#[test]
fn connections_over_the_limit_are_closed_unanswered() {
    let admin = start_with(AdminConfig {
        max_connections: 1,
        ..AdminConfig::default()
    });
    let addr = admin.server.local_addr();
    // One kept-alive connection holds the only slot (a reply shows it was accepted).
    let mut holder = connect(addr);
    write!(holder, "GET /livez HTTP/1.1\r\nHost: admin\r\n\r\n").unwrap();
    let mut buf = [0u8; 512];
    assert!(holder.read(&mut buf).unwrap() > 0);
    let mut extra = connect(addr);
    // The server may close before this write lands; either way no reply comes.
    let _ = write!(extra, "GET /livez HTTP/1.1\r\nHost: admin\r\n\r\n");
    assert!(closed_unanswered(extra));
    // Freeing the slot lets the next connection in; the server sees the close
    // asynchronously, so a few attempts may still find the slot taken.
    drop(holder);
    let served = (0..200).any(|_| {
        let mut s = connect(addr);
        if write!(
            s,
            "GET /livez HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"
        )
        .is_err()
        {
            return false;
        }
        let mut raw = Vec::new();
        s.read_to_end(&mut raw).is_ok() && raw.starts_with(b"HTTP/1.1 200")
    });
    assert!(served, "the freed slot was never reused");
}

#[test]
fn a_request_whose_headers_never_finish_is_closed() {
    let admin = start_with(AdminConfig {
        header_timeout: Duration::from_millis(200),
        ..AdminConfig::default()
    });
    let mut stream = connect(admin.server.local_addr());
    stream
        .write_all(b"GET /livez HTTP/1.1\r\nHost: ad")
        .unwrap();
    // Closed by the header timeout, well before the test's own read timeout; hyper may or
    // may not send a 408 first.
    let mut raw = Vec::new();
    let result = stream.read_to_end(&mut raw);
    assert!(
        result.is_ok()
            || result.as_ref().unwrap_err().kind() == std::io::ErrorKind::ConnectionReset,
        "{result:?}"
    );
    assert!(
        raw.is_empty() || raw.starts_with(b"HTTP/1.1 408"),
        "{raw:?}"
    );
}

#[test]
fn shutdown_stops_the_port() {
    let admin = start();
    let addr = admin.server.local_addr();
    assert_eq!(get(&admin, "/livez").status, 200);
    // An idle kept-alive connection does not hold the shutdown up.
    let mut idle = connect(addr);
    write!(idle, "GET /livez HTTP/1.1\r\nHost: admin\r\n\r\n").unwrap();
    let mut buf = [0u8; 512];
    assert!(idle.read(&mut buf).unwrap() > 0);
    admin.server.shutdown();
    assert!(TcpStream::connect(addr).is_err(), "still accepting");
    let mut rest = Vec::new();
    assert_eq!(idle.read_to_end(&mut rest).unwrap(), 0);
}

#[test]
fn zero_bounds_are_refused() {
    for config in [
        AdminConfig {
            max_connections: 0,
            ..AdminConfig::default()
        },
        AdminConfig {
            header_timeout: Duration::ZERO,
            ..AdminConfig::default()
        },
        AdminConfig {
            keep_alive: Duration::ZERO,
            ..AdminConfig::default()
        },
    ] {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let err = AdminServer::start(
            listener,
            Arc::new(Snapshot::default),
            Readiness::new(),
            config,
        )
        .unwrap_err();
        assert!(err.to_string().contains("must be more than 0"), "{err}");
    }
}
