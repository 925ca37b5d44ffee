//! `upcase bench` against real servers on loopback: the project's own server, servers that
//! answer wrongly or in dribbles, and a UDP upcaser; through the library and as a command.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::thread::JoinHandle;
use std::time::Duration;

use assert_cmd::Command;
use serde_json::Value;
use upcase::bench::{self, BenchArgs, LoopMode, Text, Transport};
use upcase::server::{Config, Server};
use upcase::transform::{self, Mode};

/// Generous: the machine is shared and noisy; a healthy reply takes microseconds.
const TIMEOUT: Duration = Duration::from_secs(10);

/// The project's server on an ephemeral port, on its own thread; stopped on drop.
struct InProcessServer {
    addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl InProcessServer {
    fn start() -> InProcessServer {
        let listener = upcase::net::bind_tcp("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(Server::new(Config::default()).run(vec![listener], async {
                let _ = stopped.await;
            }))
            .unwrap();
        });
        InProcessServer {
            addr,
            stop: Some(stop),
            thread: Some(thread),
        }
    }
}

impl Drop for InProcessServer {
    fn drop(&mut self) {
        let _ = self.stop.take().unwrap().send(());
        let _ = self.thread.take().unwrap().join();
    }
}

/// A TCP fixture: a thread per connection running `serve`. Its threads end with the test
/// process; the listener is never closed, which is harmless for an ephemeral port.
fn tcp_fixture(serve: fn(TcpStream)) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            std::thread::spawn(move || serve(stream));
        }
    });
    addr
}

/// Echoes bytes unchanged: not a capitalisation server.
fn plain_echo(mut stream: TcpStream) {
    let mut buf = [0u8; 16 * 1024];
    while let Ok(n) = stream.read(&mut buf) {
        if n == 0 || stream.write_all(&buf[..n]).is_err() {
            return;
        }
    }
}

/// Upper-cases correctly but writes the reply back in small pieces of varying size, each
/// its own segment, so replies arrive split at arbitrary points.
fn dribbling_upcaser(mut stream: TcpStream) {
    stream.set_nodelay(true).unwrap();
    let mut buf = [0u8; 16 * 1024];
    let mut piece = 1usize;
    while let Ok(n) = stream.read(&mut buf) {
        if n == 0 {
            return;
        }
        buf[..n].make_ascii_uppercase();
        let mut rest = &buf[..n];
        while !rest.is_empty() {
            piece = piece * 7 % 4093 + 1;
            let take = piece.min(rest.len());
            if stream.write_all(&rest[..take]).is_err() {
                return;
            }
            rest = &rest[take..];
        }
    }
}

/// Reads everything and never answers.
fn silent(mut stream: TcpStream) {
    let mut buf = [0u8; 16 * 1024];
    while matches!(stream.read(&mut buf), Ok(n) if n > 0) {}
}

/// A UDP upcaser: each datagram upper-cased and sent back.
fn udp_fixture() -> SocketAddr {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = socket.local_addr().unwrap();
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 65_536];
        while let Ok((n, from)) = socket.recv_from(&mut buf) {
            let reply = transform::upcase(&buf[..n], Mode::Unicode);
            let _ = socket.send_to(&reply, from);
        }
    });
    addr
}

/// A port on which nothing listens (bound, then released).
fn closed_port() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

fn short(connections: u32) -> BenchArgs {
    BenchArgs {
        connections,
        duration: Duration::from_millis(500),
        warmup: Duration::from_millis(100),
        ..BenchArgs::default()
    }
}

#[test]
fn against_the_server_figures_are_positive_and_errors_zero() {
    let server = InProcessServer::start();
    let r = bench::run(&server.addr.to_string(), TIMEOUT, &short(8), None).unwrap();
    assert_eq!(r.errors.total(), 0, "{r:?}");
    assert!(r.passed());
    assert_eq!(r.exit_code(), 0);
    assert_eq!(r.connections_open, 8);
    assert_eq!((r.transport, r.mode), (Transport::Tcp, LoopMode::Closed));
    assert!(
        r.messages > 0 && r.msgs_per_s > 0.0 && r.mib_per_s > 0.0,
        "{r:?}"
    );
    assert_eq!(r.bytes, r.messages * 64);
    assert!(r.duration_s >= 0.45 && r.duration_s < 5.0, "{r:?}");
    let l = r.latency_us.expect("latency figures");
    assert!(l.min > 0.0);
    assert!(l.min <= l.p50 && l.p50 <= l.p90 && l.p90 <= l.p99);
    assert!(l.p99 <= l.p999 && l.p999 <= l.max, "{l:?}");
}

#[test]
fn unicode_text_with_a_deep_pipeline_is_verified_right() {
    let server = InProcessServer::start();
    let args = BenchArgs {
        text: Text::Unicode,
        pipeline: 16,
        size: 300,
        ..short(4)
    };
    let r = bench::run(&server.addr.to_string(), TIMEOUT, &args, None).unwrap();
    assert_eq!(r.errors.total(), 0, "{r:?}");
    assert!(r.messages > 0);
}

#[test]
fn a_plain_echo_is_caught_as_wrong_replies() {
    let addr = tcp_fixture(plain_echo);
    let r = bench::run(&addr.to_string(), TIMEOUT, &short(2), None).unwrap();
    assert!(r.errors.wrong_replies > 0, "{r:?}");
    assert!(!r.passed());
    assert_eq!(r.exit_code(), 1);
}

#[test]
fn a_server_that_never_answers_is_counted_as_timeouts() {
    let addr = tcp_fixture(silent);
    let args = BenchArgs {
        duration: Duration::from_millis(800),
        warmup: Duration::ZERO,
        ..short(3)
    };
    let r = bench::run(&addr.to_string(), Duration::from_millis(200), &args, None).unwrap();
    assert_eq!(r.errors.timeouts, 3, "{r:?}");
    assert_eq!(r.messages, 0);
    assert_eq!(r.latency_us, None);
    assert_eq!(r.exit_code(), 1);
}

#[test]
fn large_messages_are_reassembled_across_partial_reads() {
    let addr = tcp_fixture(dribbling_upcaser);
    let args = BenchArgs {
        size: 64 * 1024,
        pipeline: 2,
        ..short(2)
    };
    let r = bench::run(&addr.to_string(), TIMEOUT, &args, None).unwrap();
    assert_eq!(r.errors.total(), 0, "{r:?}");
    assert!(r.messages > 0, "{r:?}");
    assert_eq!(r.bytes, r.messages * 64 * 1024);
}

#[test]
fn large_messages_against_the_server_are_right() {
    let server = InProcessServer::start();
    let args = BenchArgs {
        size: 64 * 1024,
        pipeline: 4,
        ..short(4)
    };
    let r = bench::run(&server.addr.to_string(), TIMEOUT, &args, None).unwrap();
    assert_eq!(r.errors.total(), 0, "{r:?}");
    assert!(r.messages > 0);
}

#[test]
fn open_loop_keeps_to_the_requested_rate() {
    let server = InProcessServer::start();
    let args = BenchArgs {
        rate: Some(2000.0),
        duration: Duration::from_secs(1),
        warmup: Duration::from_millis(200),
        ..short(10)
    };
    let r = bench::run(&server.addr.to_string(), TIMEOUT, &args, None).unwrap();
    assert_eq!(r.errors.total(), 0, "{r:?}");
    assert_eq!(r.mode, LoopMode::Open);
    assert_eq!(r.pipeline, None);
    let off = (r.msgs_per_s - 2000.0).abs() / 2000.0;
    assert!(off <= 0.10, "{} msgs/s for 2000 asked", r.msgs_per_s);
}

#[test]
fn udp_datagrams_are_verified() {
    let addr = udp_fixture();
    let args = BenchArgs {
        udp: true,
        text: Text::Unicode,
        pipeline: 4,
        ..short(4)
    };
    let r = bench::run(&addr.to_string(), TIMEOUT, &args, None).unwrap();
    assert_eq!(r.transport, Transport::Udp);
    assert_eq!(r.errors.wrong_replies, 0, "{r:?}");
    assert!(r.messages > 0, "{r:?}");
}

#[test]
fn udp_to_a_closed_port_is_a_connect_error() {
    let port = UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let args = BenchArgs {
        udp: true,
        ..short(1)
    };
    let e = bench::run(&port.to_string(), TIMEOUT, &args, None).unwrap_err();
    assert_eq!(e.exit_code(), 2);
    assert!(e.to_string().contains(&port.to_string()), "{e}");
}

fn upcase_bench(addr: SocketAddr) -> Command {
    let mut cmd = Command::cargo_bin("upcase").unwrap();
    cmd.args([
        "-c",
        &addr.to_string(),
        "bench",
        "--duration",
        "300ms",
        "--warmup",
        "0",
    ])
    .timeout(Duration::from_secs(60));
    cmd
}

/// Every field `docs/bench.md` documents, with its JSON type.
const FIELDS: [(&str, &str); 19] = [
    ("target", "string"),
    ("peer", "string"),
    ("transport", "string"),
    ("tls", "object|null"),
    ("mode", "string"),
    ("connections", "integer"),
    ("connections_open", "integer"),
    ("size", "integer"),
    ("pipeline", "integer|null"),
    ("rate", "number|null"),
    ("text", "string"),
    ("warmup_s", "number"),
    ("duration_s", "number"),
    ("messages", "integer"),
    ("bytes", "integer"),
    ("msgs_per_s", "number"),
    ("mib_per_s", "number"),
    ("latency_us", "object|null"),
    ("errors", "object"),
];

fn has_type(v: &Value, ty: &str) -> bool {
    ty.split('|').any(|t| match t {
        "string" => v.is_string(),
        "integer" => v.is_u64(),
        "number" => v.is_number(),
        "object" => v.is_object(),
        "null" => v.is_null(),
        _ => false,
    })
}

#[test]
fn json_output_has_every_documented_field_and_no_other() {
    let server = InProcessServer::start();
    let out = upcase_bench(server.addr)
        .args(["--connections", "3", "--json"])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let v: Value = serde_json::from_slice(&out).expect("stdout is one JSON document");
    let obj = v.as_object().unwrap();
    for (name, ty) in FIELDS {
        assert!(
            has_type(&obj[name], ty),
            "{name} should be {ty}: {}",
            obj[name]
        );
    }
    assert_eq!(obj.len(), FIELDS.len(), "undocumented fields in {v}");
    let latency = obj["latency_us"].as_object().unwrap();
    let mut names: Vec<_> = latency.keys().map(String::as_str).collect();
    names.sort();
    assert_eq!(names, ["max", "mean", "min", "p50", "p90", "p99", "p999"]);
    assert!(latency
        .values()
        .all(|x| x.as_f64().is_some_and(|x| x > 0.0)));
    let errors = obj["errors"].as_object().unwrap();
    let mut names: Vec<_> = errors.keys().map(String::as_str).collect();
    names.sort();
    assert_eq!(
        names,
        ["connect_failures", "resets", "timeouts", "wrong_replies"]
    );
    assert!(errors.values().all(|x| x.as_u64() == Some(0)), "{v}");
    assert_eq!(obj["connections_open"], 3);
    assert_eq!(obj["transport"], "tcp");
    assert_eq!(obj["mode"], "closed");
    assert_eq!(obj["text"], "ascii");
}

#[test]
fn exits_0_with_a_table_when_every_reply_is_right() {
    let server = InProcessServer::start();
    upcase_bench(server.addr)
        .args(["--connections", "2"])
        .assert()
        .code(0)
        .stdout(predicates::str::contains("msgs/s"))
        .stdout(predicates::str::contains("p99.9"))
        .stdout(predicates::str::contains("0 wrong replies"))
        .stderr(""); // no progress line when stdout is not a terminal
}

#[test]
fn connections_that_fail_to_open_are_counted_and_exit_1() {
    // Accepts one connection, then closes the listener: the rest are refused, or reset if
    // they were already queued in the backlog.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        drop(listener);
        dribbling_upcaser(stream);
    });
    let r = bench::run(&addr.to_string(), TIMEOUT, &short(20), None).unwrap();
    assert_eq!(r.errors.connect_failures + r.errors.resets, 19, "{r:?}");
    assert_eq!(r.errors.wrong_replies, 0, "{r:?}");
    assert!(r.messages > 0, "the one connection served: {r:?}");
    assert_eq!(r.exit_code(), 1);
}

#[test]
fn exits_1_when_replies_are_wrong() {
    let addr = tcp_fixture(plain_echo);
    upcase_bench(addr)
        .args(["--connections", "2", "--json"])
        .assert()
        .code(1);
}

#[test]
fn exits_2_with_one_line_naming_an_unreachable_address() {
    let addr = closed_port();
    let out = upcase_bench(addr).assert().code(2).get_output().clone();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains(&addr.to_string()), "{stderr}");
    assert!(stderr.contains("refused"), "{stderr}");
    assert!(out.stdout.is_empty());
}

#[test]
fn exits_2_on_usage_errors() {
    let addr = closed_port();
    for args in [
        &["--pipeline", "0"][..],
        &["--rate", "0"],
        &["--rate", "100", "--pipeline", "4"],
        &["--duration", "0"],
        &["--udp", "--size", "70000"],
        &["--text", "klingon"],
    ] {
        upcase_bench(addr).args(args).assert().code(2);
    }
}

/// `upcase bench --connections N` against `addr`, run with the descriptor limit set to
/// `soft` (and the hard limit to `hard`, when given) in the child.
fn bench_with_nofile(addr: SocketAddr, connections: u32, soft: u64, hard: Option<u64>) -> Command {
    use std::os::unix::process::CommandExt;
    let mut cmd = std::process::Command::new(assert_cmd::cargo::cargo_bin("upcase"));
    cmd.args([
        "-c",
        &addr.to_string(),
        "bench",
        "--duration",
        "300ms",
        "--warmup",
        "0",
    ])
    .args(["--connections", &connections.to_string()]);
    // SAFETY: getrlimit and setrlimit are async-signal-safe and touch only the child.
    unsafe {
        cmd.pre_exec(move || {
            let mut lim = libc::rlimit {
                rlim_cur: 0,
                rlim_max: 0,
            };
            libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim);
            lim.rlim_cur = soft as libc::rlim_t;
            if let Some(hard) = hard {
                lim.rlim_max = hard as libc::rlim_t;
            }
            if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut cmd = Command::from_std(cmd);
    cmd.timeout(Duration::from_secs(60));
    cmd
}

#[test]
fn too_many_connections_for_the_descriptor_limit_says_how_to_raise_it() {
    let server = InProcessServer::start();
    let out = bench_with_nofile(server.addr, 500, 64, Some(64))
        .assert()
        .code(2);
    let stderr = String::from_utf8(out.get_output().stderr.clone()).unwrap();
    assert!(stderr.contains("ulimit -n"), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
}

#[test]
fn a_low_soft_descriptor_limit_is_raised_to_the_hard_limit() {
    let server = InProcessServer::start();
    let mut hard = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    assert_eq!(
        // SAFETY: getrlimit writes a plain struct we own.
        unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut hard) },
        0
    );
    if hard.rlim_max < 1024 {
        eprintln!(
            "skipped: the hard descriptor limit here is {}",
            hard.rlim_max
        );
        return;
    }
    bench_with_nofile(server.addr, 300, 64, None)
        .assert()
        .code(0)
        .stdout(predicates::str::contains("300 open of 300"));
}
