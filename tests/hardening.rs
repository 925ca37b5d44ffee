//! The server's protections, each on real sockets: connection limits, idle timeout,
//! backpressure, graceful drain, abrupt clients and descriptor exhaustion.

#[macro_use]
mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use clap::Parser;
use common::{read_to_end, roundtrip, up, TestServer, Upcased, PATIENCE};
use upcase::server::{Config, Driver, Server, ServerArgs};

/// Whether the server closed this connection without sending anything: the first read
/// sees EOF, or a reset.
fn closed_without_data(c: &mut TcpStream) -> bool {
    let mut buf = [0u8; 16];
    match c.read(&mut buf) {
        Ok(0) => true,
        Err(e) => e.kind() == ErrorKind::ConnectionReset,
        Ok(_) => false,
    }
}

fn connect_from(local: &str, to: SocketAddr) -> TcpStream {
    let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    s.bind(&local.parse::<SocketAddr>().unwrap().into())
        .unwrap();
    s.connect(&to.into()).unwrap();
    let s = TcpStream::from(s);
    s.set_read_timeout(Some(PATIENCE)).unwrap();
    s
}

per_driver! {
    fn connections_over_the_limit_are_closed_at_once_and_counted() {
        let srv = TestServer::start(Config {
            max_connections: 2,
            ..Config::default()
        });
        let mut a = srv.connect();
        let mut b = srv.connect();
        assert_eq!(roundtrip(&mut a, b"a\n", 2), b"A\n");
        assert_eq!(roundtrip(&mut b, b"b\n", 2), b"B\n");
        let mut over = srv.connect();
        assert!(
            closed_without_data(&mut over),
            "over the limit gets EOF, no data"
        );
        assert_eq!(srv.server.stats().rejected_over_limit, 1);
        // The two served ones are untouched, and a freed slot is reused.
        assert_eq!(roundtrip(&mut a, b"still\n", 6), b"STILL\n");
        drop(b);
        srv.wait_for("the freed slot", |s| s.active == 1);
        let mut c = srv.connect();
        assert_eq!(roundtrip(&mut c, b"reused\n", 7), b"REUSED\n");
    }
}

per_driver! {
    fn per_address_limit_counts_each_ip_apart() {
        let srv = TestServer::start(Config {
            max_connections_per_ip: Some(1),
            ..Config::default()
        });
        let mut first = connect_from("127.0.0.1:0", srv.addr);
        assert_eq!(roundtrip(&mut first, b"one\n", 4), b"ONE\n");
        let mut second = connect_from("127.0.0.1:0", srv.addr);
        assert!(closed_without_data(&mut second));
        assert_eq!(srv.server.stats().rejected_per_ip, 1);
        // Another loopback address is another client.
        let mut other = connect_from("127.0.0.2:0", srv.addr);
        assert_eq!(roundtrip(&mut other, b"two\n", 4), b"TWO\n");
        drop(first);
        srv.wait_for("the slot of 127.0.0.1", |s| s.active == 1);
        let mut again = connect_from("127.0.0.1:0", srv.addr);
        assert_eq!(roundtrip(&mut again, b"three\n", 6), b"THREE\n");
    }
}

/// Runs `client` against a server with `config`. On epoll, both share one current-thread
/// runtime with paused time: whenever every task waits, the clock jumps to the next timer, so
/// timeouts of minutes or days pass at once and deterministically. (Should a jump ever come
/// while a request is in flight on loopback, the server's idle check finds the input waiting
/// and serves it: that is the behaviour under test elsewhere, not a source of flakes here.)
/// The io_uring driver keeps real time in its ring, so there the runtime runs in real time
/// and the tests scale their durations by [`unit`].
fn with_paused_server<F: std::future::Future>(
    mut config: Config,
    client: impl FnOnce(SocketAddr) -> F,
) -> F::Output {
    let paused = common::driver() != Driver::Uring;
    if common::driver() != Driver::Auto {
        config.io = common::driver();
    }
    let rt = if paused {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .start_paused(true)
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
    }
    .unwrap();
    rt.block_on(async {
        let listener = upcase::net::bind_tcp("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = listener.local_addr().unwrap();
        let server = Server::new(config);
        tokio::spawn(async move { server.run(vec![listener], std::future::pending()).await });
        client(addr).await
    })
}

/// The time unit of the idle tests: a second of paused time on epoll, 20 ms of real time on
/// io_uring.
fn unit() -> Duration {
    match common::driver() {
        Driver::Uring => Duration::from_millis(20),
        _ => Duration::from_secs(1),
    }
}

/// Sends `msg` and reads as many bytes back; `None` if the connection was closed.
async fn exchange(c: &mut tokio::net::TcpStream, msg: &[u8]) -> Option<Vec<u8>> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    c.write_all(msg).await.ok()?;
    let mut buf = vec![0u8; msg.len()];
    c.read_exact(&mut buf).await.ok()?;
    Some(buf)
}

per_driver! {
    fn an_idle_connection_is_closed_after_the_idle_timeout() {
        use tokio::io::AsyncReadExt;
        let idle = 300 * unit();
        let config = Config {
            idle_timeout: Some(idle),
            ..Config::default()
        };
        let (waited, rest) = with_paused_server(config, |addr| async move {
            let mut c = tokio::net::TcpStream::connect(addr).await.unwrap();
            // From before the send: the server's idle clock starts when the input arrives,
            // which is after this but before the reply reaches the client.
            let t = tokio::time::Instant::now();
            assert_eq!(exchange(&mut c, b"hi\n").await.unwrap(), b"HI\n");
            let mut rest = Vec::new();
            c.read_to_end(&mut rest).await.expect("FIN, not a reset");
            (t.elapsed(), rest)
        });
        assert_eq!(rest, b"", "FIN after the timeout, nothing else");
        assert!(waited >= idle, "closed after {waited:?}");
    }
}

per_driver! {
    fn activity_keeps_a_connection_open_past_the_idle_timeout() {
        let idle = 60 * unit();
        let config = Config {
            idle_timeout: Some(idle),
            ..Config::default()
        };
        with_paused_server(config, |addr| async move {
            let mut c = tokio::net::TcpStream::connect(addr).await.unwrap();
            // Ten idle timeouts' worth of time, one message every half of one.
            for _ in 0..20 {
                assert_eq!(exchange(&mut c, b"tick\n").await.unwrap(), b"TICK\n");
                tokio::time::sleep(idle / 2).await;
            }
        });
    }
}

/// Whether a connection made with `upcased ARGS`'s configuration is still served after
/// `silence`: with any idle timeout shorter than that the server's timer fires first and
/// closes; with none, only the client's own sleep is pending.
fn served_after_silence(args: &[&str], silence: Duration) -> bool {
    let config = ServerArgs::try_parse_from(std::iter::once("upcased").chain(args.iter().copied()))
        .unwrap()
        .config();
    with_paused_server(config, |addr| async move {
        let mut c = tokio::net::TcpStream::connect(addr).await.unwrap();
        assert_eq!(exchange(&mut c, b"hi\n").await.unwrap(), b"HI\n");
        tokio::time::sleep(silence).await;
        exchange(&mut c, b"still here\n").await.as_deref() == Some(b"STILL HERE\n")
    })
}

#[test]
fn zero_idle_timeout_never_closes() {
    // Six (virtual) days of silence, on the paused clock only epoll runs on.
    common::with_driver(Driver::Epoll, || {
        let week = Duration::from_secs(6 * 24 * 3600);
        assert!(served_after_silence(&["--idle-timeout", "0"], week));
        // The control: the default timeout (and any other) does close, so the case above is
        // "off", not merely "long".
        assert!(!served_after_silence(&[], week));
        assert!(!served_after_silence(&["--idle-timeout", "5d"], week));
    });
}

#[test]
fn zero_idle_timeout_never_closes_on_uring() {
    // The same in real time: three seconds of silence, against a one-second control.
    common::with_driver(Driver::Uring, || {
        let silence = Duration::from_secs(3);
        assert!(served_after_silence(&["--idle-timeout", "0"], silence));
        assert!(!served_after_silence(&["--idle-timeout", "1s"], silence));
    });
}

per_driver! {
    fn a_client_that_sends_but_never_reads_is_closed_once_stalled() {
        let srv = TestServer::start(Config {
            idle_timeout: Some(Duration::from_millis(500)),
            ..Config::default()
        });
        let mut c = srv.connect();
        c.set_write_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let chunk = vec![b'x'; 64 * 1024];
        let end = Instant::now() + PATIENCE;
        // Write until the server stops taking input (its replies are not being read), then
        // keep trying until it gives up on us.
        loop {
            assert!(Instant::now() < end, "server never closed a stalled sender");
            match c.write(&chunk) {
                Ok(_) => {}
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                Err(_) => break, // reset or broken pipe: the server closed
            }
            if srv.server.stats().idle_closed == 1 {
                break;
            }
        }
        srv.wait_for("the stalled connection to be closed", |s| {
            s.idle_closed == 1 && s.active == 0
        });
    }
}

/// The socket buffer sizes the kernel granted (it doubles what is asked, for overhead).
fn buffers(s: &socket2::Socket) -> usize {
    s.recv_buffer_size().unwrap() + s.send_buffer_size().unwrap()
}

per_driver! {
    fn backpressure_bounds_what_a_non_reader_can_push_and_loses_nothing() {
        // The kernel's buffers are part of what a client can push before it is stopped, and
        // autotuning grows them to several MiB. Set them small and fixed on both sides (an
        // accepted socket inherits the listener's; setting them turns autotuning off), read
        // back what was granted, and the bound left is the server's documented one.
        const ASK: usize = 16 * 1024;
        let listener = upcase::net::bind_tcp("127.0.0.1:0".parse().unwrap()).unwrap();
        let l = socket2::SockRef::from(&listener);
        l.set_recv_buffer_size(ASK).unwrap();
        l.set_send_buffer_size(ASK).unwrap();
        let server_side = buffers(&socket2::Socket::from(listener.try_clone().unwrap()));
        let srv = TestServer::start_with(listener, Config::default());
        let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        s.set_recv_buffer_size(ASK).unwrap();
        s.set_send_buffer_size(ASK).unwrap();
        s.connect(&srv.addr.into()).unwrap();
        let client_side = buffers(&s);
        let c = TcpStream::from(s);
        let mut w = c.try_clone().unwrap();
        w.set_nonblocking(true).unwrap();
        // Push as much as the path takes while nobody reads the replies.
        let unit = "grüße ωμέγα ".repeat(2000).into_bytes();
        let mut sent = Vec::new();
        let mut stalled_since: Option<Instant> = None;
        loop {
            match w.write(&unit) {
                Ok(n) => {
                    sent.extend_from_slice(&unit[..n]);
                    stalled_since = None;
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => {
                    let since = *stalled_since.get_or_insert_with(Instant::now);
                    if since.elapsed() > Duration::from_millis(500) {
                        break;
                    }
                    thread::sleep(Duration::from_millis(10));
                }
                Err(e) => panic!("write failed: {e}"),
            }
            assert!(
                sent.len() < 512 << 20,
                "the server kept reading without bound"
            );
        }
        // Both sides' buffers, the server's documented bound (this text upper-cases in place,
        // so it holds one read buffer; the bound allows the spill too), and one 64 KiB segment
        // per buffer that the kernel may queue past its limit.
        let bound =
            server_side + client_side + upcase::limits::MAX_BUFFERED_PER_CONNECTION + 4 * 64 * 1024;
        assert!(
            sent.len() <= bound,
            "took {} bytes; bound {bound} (socket buffers {server_side} + {client_side})",
            sent.len()
        );
        // Now read: every byte comes back, correct.
        w.set_nonblocking(false).unwrap();
        w.shutdown(Shutdown::Write).unwrap();
        let mut r = c;
        assert!(read_to_end(&mut r) == up(&sent));
    }
}

per_driver! {
    fn resets_mid_stream_and_connect_floods_leave_others_served_and_leak_nothing() {
        let srv = TestServer::start(Config::default());
        let mut good = srv.connect();
        let addr = srv.addr;
        let flood: Vec<_> = (0..4)
            .map(|k| {
                thread::spawn(move || {
                    for i in 0..150 {
                        let s = TcpStream::connect(addr).unwrap();
                        match (i + k) % 3 {
                            0 => drop(s), // connect and close
                            1 => {
                                // reset in the middle of a stream
                                let mut s = s;
                                let _ = s.write_all(&[b'z'; 100_000]);
                                let s = socket2::Socket::from(s);
                                s.set_linger(Some(Duration::ZERO)).unwrap();
                            }
                            _ => {
                                // vanish mid-line without reading the reply
                                let mut s = s;
                                let _ = s.write_all(b"half a li");
                            }
                        }
                    }
                })
            })
            .collect();
        for i in 0..50 {
            let msg = format!("good client {i}\n");
            assert_eq!(
                roundtrip(&mut good, msg.as_bytes(), msg.len()),
                up(msg.as_bytes())
            );
        }
        for f in flood {
            f.join().unwrap();
        }
        srv.wait_for("every flooded connection to be released", |s| s.active == 1);
        assert_eq!(roundtrip(&mut good, b"done\n", 5), b"DONE\n");
    }
}

per_driver! {
    fn drain_closes_idle_connections_at_once_and_refuses_new_ones() {
        let mut srv = TestServer::start(Config::default());
        let mut idle = srv.connect();
        assert_eq!(roundtrip(&mut idle, b"ready\n", 6), b"READY\n");
        let addr = srv.addr;
        let t = Instant::now();
        srv.begin_stop();
        assert_eq!(read_to_end(&mut idle), b"", "FIN at a line boundary");
        assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
        srv.join().unwrap();
        assert!(TcpStream::connect(addr).is_err(), "listener closed");
    }
}

per_driver! {
    fn drain_lets_a_line_in_progress_finish_then_closes() {
        let mut srv = TestServer::start(Config::default());
        let mut c = srv.connect();
        c.write_all(b"first half ").unwrap();
        assert_eq!(common::read_n(&mut c, 11), b"FIRST HALF ");
        srv.begin_stop();
        thread::sleep(Duration::from_millis(200));
        c.write_all(b"second half\nnext line\n").unwrap();
        assert_eq!(
            read_to_end(&mut c),
            b"SECOND HALF\n",
            "up to and including the LF"
        );
        srv.join().unwrap();
    }
}

per_driver! {
    fn shutdown_timeout_bounds_the_drain() {
        let mut srv = TestServer::start(Config {
            shutdown_timeout: Duration::from_millis(500),
            ..Config::default()
        });
        let mut c = srv.connect();
        c.write_all(b"never finished").unwrap();
        assert_eq!(common::read_n(&mut c, 14), b"NEVER FINISHED");
        let t = Instant::now();
        srv.begin_stop();
        srv.join().unwrap();
        assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
        let mut buf = [0u8; 8];
        assert!(
            !matches!(c.read(&mut buf), Ok(n) if n > 0),
            "nothing after the cut-off"
        );
    }
}

per_driver! {
    fn drain_under_load_gives_every_client_complete_correct_lines() {
        let mut srv = Upcased::spawn(&["--shutdown-timeout", "5s"]);
        let addr = srv.addr;
        let stop_sending = Arc::new(AtomicBool::new(false));
        let served = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let clients: Vec<_> = (0..40)
            .map(|i| {
                let stop = stop_sending.clone();
                let served = served.clone();
                thread::spawn(move || {
                    let c = TcpStream::connect(addr).unwrap();
                    c.set_read_timeout(Some(PATIENCE)).unwrap();
                    let mut w = c.try_clone().unwrap();
                    let writer = thread::spawn(move || {
                        let mut sent = Vec::new();
                        let mut j = 0;
                        // Lines are written in pieces so that a drain often finds one half-sent.
                        while !stop.load(Ordering::Relaxed) && j < 100_000 {
                            let line = format!("client {i} line {j} ünïcödé\n").into_bytes();
                            let (a, b) = line.split_at(line.len() / 2);
                            if w.write_all(a).is_err() || w.write_all(b).is_err() {
                                break;
                            }
                            sent.extend_from_slice(&line);
                            j += 1;
                        }
                        sent
                    });
                    let mut got = vec![0u8; 4096];
                    let mut r = c;
                    let n = r.read(&mut got).expect("a first reply");
                    got.truncate(n);
                    served.fetch_add(1, Ordering::SeqCst);
                    // The server must end with FIN, never a reset.
                    r.read_to_end(&mut got).expect("clean EOF, no reset");
                    let sent = writer.join().unwrap();
                    (sent, got)
                })
            })
            .collect();
        // Every client is in full flow before the signal.
        let end = Instant::now() + PATIENCE;
        while served.load(Ordering::SeqCst) < 40 {
            assert!(Instant::now() < end, "clients never got going");
            thread::sleep(Duration::from_millis(10));
        }
        thread::sleep(Duration::from_millis(200));
        srv.signal("TERM");
        let status = srv.wait();
        stop_sending.store(true, Ordering::Relaxed);
        assert!(status.success(), "{status:?}");
        for c in clients {
            let (sent, got) = c.join().unwrap();
            assert!(!got.is_empty());
            assert_eq!(got.last(), Some(&b'\n'), "a reply was cut mid-line");
            assert!(got.len() <= up(&sent).len());
            assert!(
                up(&sent).starts_with(&got),
                "replies differ from the upper-cased input"
            );
        }
    }
}

per_driver! {
    fn a_second_signal_exits_at_once() {
        let mut srv = Upcased::spawn(&["--shutdown-timeout", "60s"]);
        let mut c = srv.connect();
        c.write_all(b"mid-line, so the drain waits").unwrap();
        let mut buf = [0u8; 28];
        c.read_exact(&mut buf).unwrap();
        srv.signal("TERM");
        thread::sleep(Duration::from_millis(300));
        assert!(srv.child.try_wait().unwrap().is_none(), "still draining");
        let t = Instant::now();
        srv.signal("INT");
        let st = srv.wait();
        assert!(st.success(), "{st:?}");
        assert!(t.elapsed() < Duration::from_secs(3));
    }
}

/// CPU time (user + system) a process has used, from /proc.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let rest: Vec<&str> = stat
        .rsplit_once(')')
        .unwrap()
        .1
        .split_whitespace()
        .collect();
    let ticks: f64 = rest[11].parse::<f64>().unwrap() + rest[12].parse::<f64>().unwrap();
    ticks / 100.0
}

per_driver! {
    fn descriptor_exhaustion_backs_off_without_spinning_and_recovers() {
        let mut cmd = std::process::Command::new("prlimit");
        cmd.args(["--nofile=48:48", "--", env!("CARGO_BIN_EXE_upcased")]);
        let srv = Upcased::spawn_with(cmd, &["--workers", "1"]);
        // Hold more connections than the server has descriptors for.
        let mut held = Vec::new();
        for _ in 0..80 {
            held.push(TcpStream::connect(srv.addr).unwrap());
        }
        thread::sleep(Duration::from_millis(300));
        let c0 = cpu_seconds(srv.child.id());
        thread::sleep(Duration::from_secs(2));
        let used = cpu_seconds(srv.child.id()) - c0;
        assert!(used < 0.5, "spinning while exhausted: {used:.2}s CPU in 2s");
        assert!(srv.log().contains("backing off"), "{}", srv.log());
        // Free the descriptors: the server resumes by itself, and serves.
        drop(held);
        let end = Instant::now() + PATIENCE;
        loop {
            let mut c = srv.connect();
            c.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
            if c.write_all(b"back\n").is_ok() {
                let mut buf = [0u8; 5];
                if c.read_exact(&mut buf).is_ok() {
                    assert_eq!(&buf, b"BACK\n");
                    break;
                }
            }
            assert!(Instant::now() < end, "never recovered: {}", srv.log());
            thread::sleep(Duration::from_millis(200));
        }
    }
}

per_driver! {
    fn held_back_bytes_are_flushed_at_the_idle_timeout() {
        let srv = TestServer::start(Config {
            idle_timeout: Some(Duration::from_millis(200)),
            ..Config::default()
        });
        let mut c = srv.connect();
        c.write_all(b"abc\xe2").unwrap();
        assert_eq!(read_to_end(&mut c), b"ABC\xe2");
        assert_eq!(srv.server.stats().idle_closed, 1);
    }
}

per_driver! {
    fn held_back_bytes_are_flushed_at_the_drain_deadline() {
        let mut srv = TestServer::start(Config {
            shutdown_timeout: Duration::from_millis(300),
            ..Config::default()
        });
        let mut c = srv.connect();
        c.write_all(b"abc\xe2").unwrap();
        assert_eq!(common::read_n(&mut c, 3), b"ABC");
        srv.begin_stop();
        assert_eq!(read_to_end(&mut c), b"\xe2", "the held byte, then FIN");
        srv.join().unwrap();
    }
}

per_driver! {
    fn the_drain_ends_within_the_shutdown_timeout_with_a_stalled_writer_and_a_long_linger() {
        let mut srv = Upcased::spawn(&["--shutdown-timeout", "1s", "--linger-timeout", "8s"]);
        let mut c = srv.connect();
        c.set_write_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        // Send without LF and never read, until the server stops reading.
        let chunk = vec![b'x'; 64 * 1024];
        while c.write(&chunk).is_ok() {}
        let t = Instant::now();
        srv.signal("TERM");
        let st = srv.wait();
        assert!(st.success(), "{st:?}");
        // Before, the stalled write ignored the drain and the linger came on top: 9 s here.
        assert!(
            t.elapsed() < Duration::from_secs(4),
            "exit {:?} after SIGTERM with --shutdown-timeout 1s",
            t.elapsed()
        );
        assert!(
            srv.log().contains("cut a line in progress"),
            "{}",
            srv.log()
        );
    }
}

per_driver! {
    /// The urgent byte, and the bytes after it, all in one segment: a read stops short at the
    /// urgent mark with the rest already queued, and epoll reports no new edge for it. The
    /// client corks its socket while it writes, so that every run takes that path (before the
    /// fix, the epoll driver stalled here until its idle timeout).
    fn urgent_data_is_not_part_of_the_stream() {
        let srv = TestServer::start(Config::default());
        let mut c = srv.connect();
        assert_eq!(roundtrip(&mut c, b"hi\n", 3), b"HI\n");
        common::cork(&c, true);
        c.write_all(b"ab").unwrap();
        common::send_urgent(&c, b'!');
        c.write_all(b"cd\n").unwrap();
        common::cork(&c, false);
        assert_eq!(
            common::read_n(&mut c, 5),
            b"ABCD\n",
            "the urgent byte is dropped"
        );
        assert_eq!(roundtrip(&mut c, b"ok\n", 3), b"OK\n");
    }
}

per_driver! {
    fn input_sent_while_the_server_was_stopped_is_served_after_the_idle_timeout() {
        let srv = Upcased::spawn(&["--idle-timeout", "1s", "--workers", "1"]);
        let mut c = srv.connect();
        assert_eq!(roundtrip(&mut c, b"hi\n", 3), b"HI\n");
        srv.signal("STOP");
        c.write_all(b"hello\n").unwrap();
        // Stopped past its idle timeout: on waking, its timer and the input are both due.
        thread::sleep(Duration::from_millis(2500));
        srv.signal("CONT");
        assert_eq!(common::read_n(&mut c, 6), b"HELLO\n", "{}", srv.log());
    }
}
