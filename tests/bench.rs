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
const FIELDS: [(&str, &str); 27] = [
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
    ("schedule", "object|null"),
    ("replies_outstanding", "integer"),
    ("first_wrong_reply", "object|null"),
    ("first_connect_error", "string|null"),
    ("reconnects", "integer"),
    ("retried", "integer"),
    ("banners", "object|null"),
    ("interrupted", "bool"),
    ("errors", "object"),
];

fn has_type(v: &Value, ty: &str) -> bool {
    ty.split('|').any(|t| match t {
        "string" => v.is_string(),
        "integer" => v.is_u64(),
        "number" => v.is_number(),
        "object" => v.is_object(),
        "null" => v.is_null(),
        "bool" => v.is_boolean(),
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
        [
            "connect_failures",
            "refused",
            "resets",
            "silent",
            "timeouts",
            "wrong_replies"
        ]
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
    let e = &r.errors;
    assert_eq!(e.connect_failures + e.resets + e.refused, 19, "{r:?}");
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
        &["--udp", "--banner"],
        &["--udp", "--reconnect"],
        &["--rate", "1e-19"],
        &["--rate", "1e13"],
        &["--rate", "NaN"],
        &["--duration", "8days"],
        &["--duration", "18446744073709551615"],
        &["--warmup", "18446744073709551615"],
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

/// Reads everything and answers only when the client has closed its side, as
/// `socat TCP-LISTEN:P,fork SYSTEM:'tr a-z A-Z'` does (`tr` buffers until its input ends).
fn buffering_until_eof(mut stream: TcpStream) {
    let mut all = Vec::new();
    if stream.read_to_end(&mut all).is_ok() {
        let _ = stream.write_all(&transform::upcase(&all, Mode::Unicode));
    }
}

/// A short window with a timeout longer than it: the run must still end with the
/// replies owed counted.
fn owed_args(connections: u32) -> BenchArgs {
    BenchArgs {
        duration: Duration::from_millis(300),
        warmup: Duration::ZERO,
        ..short(connections)
    }
}

#[test]
fn a_silent_server_fails_the_run_with_every_reply_owed_counted() {
    // `nc -l`: reads, never answers. The window (300 ms) is shorter than the timeout.
    let addr = tcp_fixture(silent);
    let r = bench::run(
        &addr.to_string(),
        Duration::from_millis(500),
        &owed_args(3),
        None,
    )
    .unwrap();
    assert_eq!(r.messages, 0, "{r:?}");
    assert_eq!(r.replies_outstanding, 3, "{r:?}");
    assert_eq!(r.errors.timeouts, 3, "{r:?}");
    assert_eq!(r.errors.silent, 3, "{r:?}");
    assert_eq!(r.exit_code(), 1);
}

#[test]
fn a_server_that_buffers_until_the_client_closes_fails_the_run() {
    let addr = tcp_fixture(buffering_until_eof);
    let r = bench::run(
        &addr.to_string(),
        Duration::from_millis(500),
        &owed_args(2),
        None,
    )
    .unwrap();
    assert_eq!((r.messages, r.errors.silent), (0, 2), "{r:?}");
    assert!(r.errors.timeouts >= 2, "{r:?}");
    assert!(!r.passed());
    let out = upcase_bench(addr)
        .args(["--timeout", "500ms", "--connections", "2"])
        .assert()
        .code(1)
        .get_output()
        .stdout
        .clone();
    let table = String::from_utf8(out).unwrap();
    assert!(table.contains("2 connections received nothing"), "{table}");
    assert!(table.contains("did not come within --timeout"), "{table}");
}

/// Answers each line, but only after `delay`.
fn slow_upcaser(stream: TcpStream, delay: Duration) {
    use std::io::BufRead;
    let mut reader = std::io::BufReader::new(stream.try_clone().unwrap());
    let mut writer = stream;
    let mut line = Vec::new();
    while matches!(reader.read_until(b'\n', &mut line), Ok(n) if n > 0) {
        std::thread::sleep(delay);
        if writer
            .write_all(&transform::upcase(&line, Mode::Unicode))
            .is_err()
        {
            return;
        }
        line.clear();
    }
}

#[test]
fn replies_owed_when_the_window_closes_are_awaited_and_checked() {
    // Every reply takes 200 ms: one is always owed when the 300 ms window closes. It is
    // awaited (the timeout is long), checked, and the run passes.
    let addr = tcp_fixture(|s| slow_upcaser(s, Duration::from_millis(200)));
    let r = bench::run(&addr.to_string(), TIMEOUT, &owed_args(2), None).unwrap();
    assert_eq!(r.replies_outstanding, 2, "{r:?}");
    assert_eq!(r.errors.total(), 0, "{r:?}");
    assert!(r.passed(), "{r:?}");
}

#[test]
fn a_server_that_stalls_shows_in_open_loop_latency_from_the_schedule() {
    // One connection, 100 messages a second. The server answers the first five at once,
    // then stops for 400 ms, then answers the rest. Every message scheduled during the
    // stall waits for its end: measured from its scheduled time, at least 30% of the
    // second's messages took more than 100 ms, so p90 does. (Measured from the previous
    // reply instead, only one message would look slow.)
    fn stalling(stream: TcpStream) {
        use std::io::BufRead;
        let mut reader = std::io::BufReader::new(stream.try_clone().unwrap());
        let mut writer = stream;
        let mut line = Vec::new();
        let mut n = 0;
        while matches!(reader.read_until(b'\n', &mut line), Ok(k) if k > 0) {
            n += 1;
            if n == 5 {
                std::thread::sleep(Duration::from_millis(400));
            }
            if writer
                .write_all(&transform::upcase(&line, Mode::Unicode))
                .is_err()
            {
                return;
            }
            line.clear();
        }
    }
    let addr = tcp_fixture(stalling);
    let args = BenchArgs {
        rate: Some(100.0),
        duration: Duration::from_secs(1),
        warmup: Duration::ZERO,
        ..short(1)
    };
    let r = bench::run(&addr.to_string(), TIMEOUT, &args, None).unwrap();
    assert_eq!(r.errors.total(), 0, "{r:?}");
    let l = r.latency_us.expect("latency");
    assert!(l.p90 >= 100_000.0, "p90 {} µs: {r:?}", l.p90);
    assert!(l.max >= 300_000.0, "max {} µs: {r:?}", l.max);
}

#[test]
fn an_absurd_rate_is_counted_not_queued_and_fails_the_run() {
    let server = InProcessServer::start();
    for rate in [1e8, bench::options::MAX_RATE] {
        let args = BenchArgs {
            rate: Some(rate),
            ..owed_args(2)
        };
        let r = bench::run(&server.addr.to_string(), TIMEOUT, &args, None).unwrap();
        let s = r.schedule.expect("open loop reports its schedule");
        assert_eq!(s.asked_per_s, rate);
        assert!(s.due > 1_000_000, "{s:?}");
        assert!(s.never_sent > s.due / 2, "{s:?}");
        assert!(s.slipped && s.slip > bench::MAX_SCHEDULE_SLIP, "{s:?}");
        assert_eq!(r.errors.wrong_replies, 0, "{r:?}");
        // Every message that was begun is bounded by the reply memory: nothing queued.
        assert!(
            s.due - s.never_sent <= r.messages + bench::MAX_IN_FLIGHT * 4,
            "{s:?}"
        );
        assert!(!r.passed());
        assert_eq!(r.exit_code(), 1);
    }
}

#[test]
fn a_kept_schedule_is_reported_and_passes() {
    let server = InProcessServer::start();
    let args = BenchArgs {
        rate: Some(200.0),
        ..owed_args(2)
    };
    let r = bench::run(&server.addr.to_string(), TIMEOUT, &args, None).unwrap();
    let s = r.schedule.expect("open loop reports its schedule");
    assert!(s.due > 0 && s.due - s.never_sent > 0, "{s:?}");
    assert_eq!(r.errors.total(), 0, "{r:?}");
    let closed = bench::run(&server.addr.to_string(), TIMEOUT, &short(1), None).unwrap();
    assert_eq!(closed.schedule, None);
}

#[test]
fn connections_refused_at_the_server_limit_never_count_as_open() {
    let server = upcase::net::bind_tcp("127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = server.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let thread = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let config = Config {
            max_connections: 5,
            ..Config::default()
        };
        rt.block_on(Server::new(config).run(vec![server], async {
            let _ = stopped.await;
        }))
        .unwrap();
    });
    let r = bench::run(&addr.to_string(), TIMEOUT, &short(10), None).unwrap();
    let _ = stop.send(());
    thread.join().unwrap();
    assert_eq!(r.errors.refused, 5, "{r:?}");
    assert_eq!(r.errors.resets, 0, "{r:?}");
    assert_eq!(r.connections_open, 5, "{r:?}");
    assert!(r.messages > 0, "{r:?}");
    assert_eq!(r.exit_code(), 1);
    let mut table = Vec::new();
    bench::export::write_table(&r, &mut table).unwrap();
    let table = String::from_utf8(table).unwrap();
    assert!(table.contains("5 open of 10"), "{table}");
    assert!(table.contains("connection limit"), "{table}");
}

#[test]
fn the_first_wrong_reply_is_shown_escaped() {
    let addr = tcp_fixture(plain_echo);
    let r = bench::run(&addr.to_string(), TIMEOUT, &owed_args(1), None).unwrap();
    let d = r.first_wrong_reply.clone().expect("a wrong reply is kept");
    assert_eq!(d.sent.text, d.got.text, "an echo sends back what it got");
    assert_ne!(d.expected.text, d.got.text);
    assert_eq!(d.expected.text[..10], d.got.text[..10].to_uppercase());
    assert!(d.got.text.ends_with("\\n"), "LF is escaped: {}", d.got.text);
    assert_eq!(d.got.len, 64);
    let mut table = Vec::new();
    bench::export::write_table(&r, &mut table).unwrap();
    let table = String::from_utf8(table).unwrap();
    assert!(table.contains("first wrong reply"), "{table}");
    assert!(
        table.contains(&format!("got        \"{}", &d.got.text[..10])),
        "{table}"
    );

    let out = upcase_bench(addr)
        .args(["--connections", "1", "--json"])
        .assert()
        .code(1)
        .get_output()
        .stdout
        .clone();
    let v: Value = serde_json::from_slice(&out).unwrap();
    let got = v["first_wrong_reply"]["got"]["text"].as_str().unwrap();
    assert!(got.starts_with(|c: char| c.is_ascii_lowercase()), "{v}");
}

#[test]
fn a_server_that_answers_nothing_is_not_passed_over_udp() {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = socket.local_addr().unwrap();
    // Answers the probe only.
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 65_536];
        if let Ok((n, from)) = socket.recv_from(&mut buf) {
            let _ = socket.send_to(&transform::upcase(&buf[..n], Mode::Unicode), from);
        }
        while socket.recv_from(&mut buf).is_ok() {}
    });
    let args = BenchArgs {
        udp: true,
        ..owed_args(2)
    };
    let r = bench::run(&addr.to_string(), Duration::from_millis(300), &args, None).unwrap();
    assert_eq!(r.errors.silent, 2, "{r:?}");
    assert!(r.errors.timeouts >= 2, "{r:?}");
    assert_eq!(r.exit_code(), 1);
}

#[test]
fn json_numbers_are_rounded_and_warmup_is_as_asked() {
    let server = InProcessServer::start();
    let out = Command::cargo_bin("upcase")
        .unwrap()
        .args([
            "-c",
            &server.addr.to_string(),
            "bench",
            "--duration",
            "300ms",
        ])
        .args(["--connections", "2", "--warmup", "100ms", "--json"])
        .timeout(Duration::from_secs(60))
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let v: Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(v["warmup_s"], 0.1);
    let decimals = |x: &Value| {
        let s = x.to_string();
        s.split_once('.').map_or(0, |(_, d)| d.len())
    };
    assert!(decimals(&v["duration_s"]) <= 3, "{}", v["duration_s"]);
    assert!(decimals(&v["msgs_per_s"]) <= 1, "{}", v["msgs_per_s"]);
    assert!(decimals(&v["mib_per_s"]) <= 3, "{}", v["mib_per_s"]);
    for x in v["latency_us"].as_object().unwrap().values() {
        assert!(decimals(x) <= 1, "{x}");
    }
}

#[test]
fn connections_that_fail_to_open_print_no_log_lines() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        drop(listener);
        dribbling_upcaser(stream);
    });
    let out = upcase_bench(addr)
        .args(["--connections", "20"])
        .assert()
        .code(1)
        .get_output()
        .clone();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(!stderr.contains("WARN"), "{stderr}");
    assert_eq!(stderr, "", "the table says it all");
    let table = String::from_utf8(out.stdout).unwrap();
    assert!(table.contains("upcase bench: "), "{table}");
}

#[test]
fn ctrl_c_prints_the_figures_so_far_and_exits_130() {
    // A server that answers, and says when the first message arrived (by then the run's
    // Ctrl-C handler is in place: it is set before the first connection).
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let tx = tx.clone();
            std::thread::spawn(move || {
                let mut s = stream;
                let mut buf = [0u8; 4096];
                while let Ok(n) = s.read(&mut buf) {
                    if n == 0 {
                        return;
                    }
                    let _ = tx.send(());
                    if s.write_all(&transform::upcase(&buf[..n], Mode::Unicode))
                        .is_err()
                    {
                        return;
                    }
                }
            });
        }
    });
    let child = std::process::Command::new(assert_cmd::cargo::cargo_bin("upcase"))
        .args([
            "-c",
            &addr.to_string(),
            "bench",
            "--duration",
            "60s",
            "--warmup",
            "0",
        ])
        .args(["--connections", "2"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    rx.recv_timeout(Duration::from_secs(30))
        .expect("the run started");
    let pid = child.id() as libc::pid_t;
    // SAFETY: kill with a valid signal number on our own child; no memory is involved.
    let sent = unsafe { libc::kill(pid, libc::SIGINT) };
    assert_eq!(sent, 0);
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert_eq!(out.status.code(), Some(130), "{stdout}");
    assert!(stdout.contains("msgs/s"), "{stdout}");
    assert!(stdout.contains("interrupted"), "{stdout}");
}

/// Sends a banner line first, `instance-a` or `instance-b\r` by turns, in the same segment
/// as nothing else; then upper-cases like the dribbling server.
fn banner_fixture() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for (i, stream) in listener.incoming().flatten().enumerate() {
            std::thread::spawn(move || {
                let mut s = stream;
                let banner: &[u8] = if i % 2 == 0 {
                    b"instance-a\n"
                } else {
                    b"instance-b \xe2\x9c\x93\r\n"
                };
                if s.write_all(banner).is_ok() {
                    dribbling_upcaser(s);
                }
            });
        }
    });
    addr
}

#[test]
fn banners_are_read_before_the_window_and_counted() {
    let addr = banner_fixture();
    let args = BenchArgs {
        banner: true,
        ..owed_args(6)
    };
    let r = bench::run(&addr.to_string(), TIMEOUT, &args, None).unwrap();
    assert_eq!(r.errors.total(), 0, "{r:?}");
    assert!(r.messages > 0, "{r:?}");
    let banners = r.banners.clone().expect("banners counted");
    assert_eq!(banners.len(), 2, "{banners:?}");
    assert_eq!(banners["instance-a"], 3, "{banners:?}");
    assert_eq!(banners["instance-b ✓"], 3, "{banners:?}");
    let mut table = Vec::new();
    bench::export::write_table(&r, &mut table).unwrap();
    let table = String::from_utf8(table).unwrap();
    assert!(
        table.contains("banners      2 distinct over 6 connections"),
        "{table}"
    );
    assert!(table.contains("3  \"instance-a\""), "{table}");

    let out = upcase_bench(addr)
        .args(["--connections", "4", "--banner", "--json"])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let v: Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(v["banners"]["instance-a"], 2, "{v}");
    assert_eq!(v["banners"]["instance-b ✓"], 2, "{v}");

    // Without --banner the banner bytes are a reply to no message: wrong.
    let r = bench::run(&addr.to_string(), TIMEOUT, &owed_args(2), None).unwrap();
    assert!(r.errors.wrong_replies > 0, "{r:?}");
    assert_eq!(r.banners, None);
}

#[test]
fn banner_from_a_server_that_sends_none_is_a_connect_error() {
    let server = InProcessServer::start();
    let out = upcase_bench(server.addr)
        .args(["--timeout", "300ms", "--banner"])
        .assert()
        .code(2)
        .get_output()
        .clone();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("no banner"), "{stderr}");
}

/// Answers the first `replies` lines of `reader` on `writer`; false if the client closed
/// or a write failed first.
fn answer_lines(
    reader: &mut impl std::io::BufRead,
    writer: &mut impl Write,
    replies: usize,
) -> bool {
    let mut line = Vec::new();
    for _ in 0..replies {
        line.clear();
        if !matches!(reader.read_until(b'\n', &mut line), Ok(n) if n > 0) {
            return false;
        }
        if writer
            .write_all(&transform::upcase(&line, Mode::Unicode))
            .is_err()
        {
            return false;
        }
    }
    true
}

/// Answers `replies` lines, then closes: cleanly (FIN) right after the last reply, or, with
/// `owe_one`, after reading one more line that it does not answer.
fn closing_after(stream: TcpStream, replies: usize, owe_one: bool) {
    use std::io::BufRead;
    let mut reader = std::io::BufReader::new(stream.try_clone().unwrap());
    let mut writer = stream;
    if !answer_lines(&mut reader, &mut writer, replies) {
        return;
    }
    let mut line = Vec::new();
    if owe_one {
        line.clear();
        let _ = reader.read_until(b'\n', &mut line);
    }
    let _ = writer.shutdown(std::net::Shutdown::Both);
}

#[test]
fn reconnect_reopens_a_connection_closed_cleanly_between_messages() {
    // Open loop, 40 messages a second on one connection: the server closes after every
    // third reply, 25 ms before the next message is due, so nothing is owed at its FIN.
    let addr = tcp_fixture(|s| closing_after(s, 3, false));
    let args = BenchArgs {
        rate: Some(40.0),
        duration: Duration::from_millis(500),
        warmup: Duration::ZERO,
        reconnect: true,
        ..short(1)
    };
    let r = bench::run(&addr.to_string(), TIMEOUT, &args, None).unwrap();
    assert!(r.reconnects >= 1, "{r:?}");
    assert_eq!(r.errors.total(), 0, "{r:?}");
    assert!(r.messages > 3, "served across connections: {r:?}");
    let mut table = Vec::new();
    bench::export::write_table(&r, &mut table).unwrap();
    let table = String::from_utf8(table).unwrap();
    assert!(
        table.contains(&format!("{} reconnects", r.reconnects)),
        "{table}"
    );

    // Without the flag the same close is an error, as before.
    let args = BenchArgs {
        reconnect: false,
        ..args
    };
    let r = bench::run(&addr.to_string(), TIMEOUT, &args, None).unwrap();
    assert_eq!((r.reconnects, r.errors.resets), (0, 1), "{r:?}");
}

/// As upcased's drain does at a line boundary with the next message already sent: answers
/// `replies` lines, waits for the next one, then sends FIN and reads (and discards)
/// whatever still comes until the client closes: the messages in flight at the FIN are
/// read and never answered.
fn answering_then_draining(stream: TcpStream, replies: usize) {
    use std::io::BufRead;
    let mut reader = std::io::BufReader::new(stream.try_clone().unwrap());
    let mut writer = stream;
    if !answer_lines(&mut reader, &mut writer, replies) {
        return;
    }
    let mut line = Vec::new();
    line.clear();
    let _ = reader.read_until(b'\n', &mut line);
    let _ = writer.shutdown(std::net::Shutdown::Write);
    let _ = std::io::copy(&mut reader, &mut std::io::sink());
}

#[test]
fn reconnect_sends_again_a_message_the_server_closed_without_answering() {
    // Closed loop: the next message is on its way when the FIN comes, every time.
    let addr = tcp_fixture(|s| closing_after(s, 2, true));
    let args = BenchArgs {
        reconnect: true,
        ..owed_args(1)
    };
    let r = bench::run(&addr.to_string(), TIMEOUT, &args, None).unwrap();
    assert_eq!(r.errors.total(), 0, "{r:?}");
    assert!(r.retried >= 1, "{r:?}");
    assert_eq!(
        r.retried, r.reconnects,
        "one message owed at each close: {r:?}"
    );
    assert!(r.messages > 2, "served across connections: {r:?}");
    let mut table = Vec::new();
    bench::export::write_table(&r, &mut table).unwrap();
    let table = String::from_utf8(table).unwrap();
    assert!(
        table.contains(&format!(
            "{} messages it closed without answering sent again",
            r.retried
        )),
        "{table}"
    );

    // Without the flag that close is an error, as before.
    let args = BenchArgs {
        reconnect: false,
        ..args
    };
    let r = bench::run(&addr.to_string(), TIMEOUT, &args, None).unwrap();
    assert_eq!(
        (r.reconnects, r.retried, r.errors.resets),
        (0, 0, 1),
        "{r:?}"
    );
}

#[test]
fn reconnect_sends_again_every_message_of_a_pipeline_in_order() {
    // Four in flight; the server answers eight per connection, takes the ninth, then
    // drains: up to four owed at each FIN, sent again in order, every reply checked.
    let addr = tcp_fixture(|s| answering_then_draining(s, 8));
    let args = BenchArgs {
        reconnect: true,
        pipeline: 4,
        ..owed_args(2)
    };
    let r = bench::run(&addr.to_string(), TIMEOUT, &args, None).unwrap();
    assert_eq!(r.errors.total(), 0, "{r:?}");
    assert!(r.reconnects >= 2, "{r:?}");
    assert!(
        r.retried > r.reconnects,
        "more than one owed per close: {r:?}"
    );
    assert!(r.retried <= 4 * r.reconnects, "{r:?}");
}

#[test]
fn reconnect_does_not_forgive_a_reply_cut_short() {
    // Two replies, then half of the third, then FIN: the server stopped inside a reply.
    fn half_reply(stream: TcpStream) {
        use std::io::BufRead;
        let mut reader = std::io::BufReader::new(stream.try_clone().unwrap());
        let mut writer = stream;
        let mut line = Vec::new();
        for i in 0..3 {
            line.clear();
            if !matches!(reader.read_until(b'\n', &mut line), Ok(n) if n > 0) {
                return;
            }
            let reply = transform::upcase(&line, Mode::Unicode);
            let cut = if i == 2 { reply.len() / 2 } else { reply.len() };
            if writer.write_all(&reply[..cut]).is_err() {
                return;
            }
        }
        let _ = writer.shutdown(std::net::Shutdown::Write);
        let _ = std::io::copy(&mut reader, &mut std::io::sink());
    }
    let addr = tcp_fixture(half_reply);
    let args = BenchArgs {
        reconnect: true,
        ..owed_args(1)
    };
    let r = bench::run(&addr.to_string(), TIMEOUT, &args, None).unwrap();
    assert_eq!((r.reconnects, r.retried), (0, 0), "{r:?}");
    assert_eq!(r.errors.resets, 1, "{r:?}");
    assert_eq!(r.exit_code(), 1);
}

#[test]
fn reconnect_does_not_send_again_on_a_connection_that_answered_nothing() {
    // Takes the first message and closes: a fresh connection closed unanswered is not a
    // server going away after serving, and sending again would loop.
    let addr = tcp_fixture(|s| answering_then_draining(s, 0));
    let args = BenchArgs {
        reconnect: true,
        ..owed_args(1)
    };
    let r = bench::run(&addr.to_string(), TIMEOUT, &args, None).unwrap();
    assert_eq!((r.reconnects, r.retried), (0, 0), "{r:?}");
    assert_eq!(r.errors.refused, 1, "{r:?}");
    assert_eq!(r.exit_code(), 1);
}

#[test]
fn reconnect_does_not_send_a_message_a_third_time() {
    // The first connection answers two and drains the third; every later one takes that
    // message again and closes unanswered: the retry failed, and is not retried.
    static FIRST: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(true);
    fn first_then_nothing(stream: TcpStream) {
        let first = FIRST.swap(false, std::sync::atomic::Ordering::SeqCst);
        answering_then_draining(stream, if first { 2 } else { 0 });
    }
    let addr = tcp_fixture(first_then_nothing);
    let args = BenchArgs {
        reconnect: true,
        ..owed_args(1)
    };
    let r = bench::run(&addr.to_string(), TIMEOUT, &args, None).unwrap();
    assert_eq!((r.reconnects, r.retried), (1, 1), "{r:?}");
    assert_eq!(r.errors.resets, 1, "{r:?}");
    assert_eq!(r.exit_code(), 1);
}
