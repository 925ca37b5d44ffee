//! The client's library core, driven without a terminal: the interactive session through
//! an iterator of lines, pipe mode through in-memory readers and writers.

mod common;

use std::io::{Cursor, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use common::{up, TestServer};
use upcase::client::{self, ClientError};
use upcase::server::Config;

const T: Duration = Duration::from_secs(10);

/// A Ctrl-C flag that nobody raises.
static NO_CTRL_C: AtomicBool = AtomicBool::new(false);

#[test]
fn interactive_session_prints_each_reply() {
    let srv = TestServer::start(Config::default());
    let mut lines = ["hello", "grüße", ""].map(String::from).into_iter();
    let (mut out, mut notes) = (Vec::new(), Vec::new());
    client::interactive(
        &srv.addr.to_string(),
        T,
        &mut lines,
        &mut out,
        &mut notes,
        &NO_CTRL_C,
    )
    .unwrap();
    assert_eq!(out, "HELLO\nGRÜSSE\n\n".as_bytes());
    let notes = String::from_utf8(notes).unwrap();
    assert!(
        notes.contains(&format!("connected to {}", srv.addr)),
        "{notes}"
    );
}

#[test]
fn interactive_session_reconnects_after_the_server_closed_an_idle_connection() {
    let srv = TestServer::start(Config {
        idle_timeout: Some(Duration::from_millis(200)),
        ..Config::default()
    });
    let mut n = 0;
    let mut lines = std::iter::from_fn(|| {
        n += 1;
        match n {
            1 => Some("before".to_string()),
            2 => {
                // Long enough for the server's idle timeout to close the connection.
                std::thread::sleep(Duration::from_millis(900));
                Some("after".to_string())
            }
            _ => None,
        }
    });
    let (mut out, mut notes) = (Vec::new(), Vec::new());
    client::interactive(
        &srv.addr.to_string(),
        T,
        &mut lines,
        &mut out,
        &mut notes,
        &NO_CTRL_C,
    )
    .unwrap();
    assert_eq!(out, b"BEFORE\nAFTER\n");
    let notes = String::from_utf8(notes).unwrap();
    assert!(notes.contains("closed the connection"), "{notes}");
    assert!(notes.contains("reconnected to"), "{notes}");
    assert_eq!(srv.server.stats().idle_closed, 1);
}

#[test]
fn interactive_session_says_clearly_when_the_server_is_gone() {
    let srv = TestServer::start(Config::default());
    let addr = srv.addr.to_string();
    let mut srv = Some(srv);
    let mut n = 0;
    let mut lines = std::iter::from_fn(|| {
        n += 1;
        if n == 2 {
            srv.take().unwrap().stop();
        }
        (n <= 2).then(|| format!("line {n}"))
    });
    let (mut out, mut notes) = (Vec::new(), Vec::new());
    let err =
        client::interactive(&addr, T, &mut lines, &mut out, &mut notes, &NO_CTRL_C).unwrap_err();
    assert_eq!(out, b"LINE 1\n");
    assert!(matches!(err, ClientError::Connect { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(
        msg.contains(&addr) && msg.contains("is upcased running?"),
        "{msg}"
    );
    let notes = String::from_utf8(notes).unwrap();
    assert!(notes.contains("closed the connection"), "{notes}");
}

#[test]
fn pipe_streams_input_through_the_server() {
    let srv = TestServer::start(Config::default());
    let input: Vec<u8> = "ünïcode ".repeat(50_000).into_bytes();
    let stream = client::connect(&srv.addr.to_string(), T).unwrap();
    let mut out = Vec::new();
    let stats = client::pipe(stream, Cursor::new(input.clone()), &mut out, T).unwrap();
    assert_eq!(out, up(&input));
    assert_eq!(stats.sent, input.len() as u64);
    assert_eq!(stats.received, out.len() as u64);
}

#[test]
fn pipe_times_out_after_input_ends_when_the_server_is_silent() {
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let stream = client::connect(&silent.local_addr().unwrap().to_string(), T).unwrap();
    let _held = silent.accept().unwrap();
    let err = client::pipe(
        stream,
        Cursor::new(b"hello\n".to_vec()),
        &mut Vec::new(),
        Duration::from_millis(300),
    )
    .unwrap_err();
    assert!(matches!(err, ClientError::Unfinished { .. }), "{err:?}");
}

#[test]
fn send_reads_the_whole_reply_line() {
    let srv = TestServer::start(Config::default());
    let mut s = client::connect(&srv.addr.to_string(), T).unwrap();
    let msg = "long ".repeat(100_000) + "end\n";
    let reply = client::send(&mut s, msg.as_bytes(), T).unwrap();
    assert_eq!(reply.line, up(msg.as_bytes()));
    assert_eq!(reply.extra, 0);
}

#[test]
fn connect_tries_every_resolved_address() {
    // localhost resolves to ::1 and 127.0.0.1 here; only the IPv4 one listens.
    let srv = TestServer::start(Config::default());
    let target = format!("localhost:{}", srv.addr.port());
    let mut s = client::connect(&target, T).unwrap();
    assert_eq!(client::send(&mut s, b"ok\n", T).unwrap().line, b"OK\n");
}

// ---- hostile servers: each a thread on 127.0.0.1:0 that serves every connection its way

/// A server that treats each accepted connection with `serve` (on a thread of its own).
fn hostile(serve: fn(TcpStream, usize)) -> String {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        for (i, c) in l.incoming().enumerate() {
            let Ok(c) = c else { return };
            std::thread::spawn(move || serve(c, i));
        }
    });
    addr
}

/// Reads what the client sent first, so that it is not lost to a reset.
fn read_some(c: &mut TcpStream) {
    let _ = c.read(&mut [0u8; 4096]);
}

/// One byte every 200 ms, forever: never silent for long, never done.
fn drip(mut c: TcpStream, _: usize) {
    read_some(&mut c);
    while c.write_all(b"H").is_ok() {
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Accepts and never reads.
fn never_reads(c: TcpStream, _: usize) {
    std::thread::sleep(common::PATIENCE * 2);
    drop(c);
}

/// Replies `HEL` to anything, and closes.
fn hel(mut c: TcpStream, _: usize) {
    read_some(&mut c);
    let _ = c.write_all(b"HEL");
}

/// Replies with the line and one more, in one write, then waits.
fn extra(mut c: TcpStream, _: usize) {
    read_some(&mut c);
    let _ = c.write_all(b"HELLO\nEXTRA\n");
    std::thread::sleep(common::PATIENCE);
}

/// Replies without LF, then says nothing.
fn no_lf(mut c: TcpStream, _: usize) {
    read_some(&mut c);
    let _ = c.write_all(b"HELLO");
    std::thread::sleep(common::PATIENCE * 2);
}

/// Streams bytes without LF as fast as it can.
fn flood(mut c: TcpStream, _: usize) {
    read_some(&mut c);
    let block = [b'X'; 64 * 1024];
    while c.write_all(&block).is_ok() {}
}

/// Raised once [`stuck_then_echo`] has read the line it will never answer.
static STUCK_SEEN: AtomicBool = AtomicBool::new(false);

/// Holds the first connection without a word; upper-cases ASCII lines on the others.
fn stuck_then_echo(mut c: TcpStream, i: usize) {
    if i == 0 {
        read_some(&mut c);
        STUCK_SEEN.store(true, std::sync::atomic::Ordering::Relaxed);
        std::thread::sleep(common::PATIENCE * 2);
        return;
    }
    let mut buf = [0u8; 4096];
    while let Ok(n @ 1..) = c.read(&mut buf) {
        if c.write_all(&buf[..n].to_ascii_uppercase()).is_err() {
            return;
        }
    }
}

/// Runs `f` on a thread and fails the test if it has not returned within [`PATIENCE`]
/// (a client that never gives up would otherwise hang the suite).
fn within<R: Send + 'static>(what: &str, f: impl FnOnce() -> R + Send + 'static) -> R {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(common::PATIENCE)
        .unwrap_or_else(|_| panic!("{what}: still waiting after {:?}", common::PATIENCE))
}

const SHORT: Duration = Duration::from_millis(700);

fn send_to(addr: String, msg: &'static [u8]) -> Result<client::Reply, ClientError> {
    within("send", move || {
        let mut s = client::connect(&addr, T)?;
        client::send(&mut s, msg, SHORT)
    })
}

fn pipe_to<R: Read + Send + 'static>(
    addr: String,
    input: R,
) -> (Result<client::PipeStats, ClientError>, Vec<u8>) {
    within("pipe", move || {
        let s = client::connect(&addr, T).unwrap();
        let mut out = Vec::new();
        let r = client::pipe(s, input, &mut out, SHORT);
        (r, out)
    })
}

#[test]
fn send_timeout_bounds_the_whole_wait_against_a_dripping_server() {
    let err = send_to(hostile(drip), b"hello\n").unwrap_err();
    let ClientError::Timeout { got, .. } = &err else {
        panic!("{err:?}")
    };
    assert!(!got.is_empty() && got.iter().all(|&b| b == b'H'), "{got:?}");
    assert!(err.to_string().contains("without LF"), "{err}");
}

#[test]
fn send_holds_a_bounded_reply() {
    let err = send_to(hostile(flood), b"hello\n").unwrap_err();
    assert!(
        matches!(err, ClientError::ReplyTooLong { limit, .. } if limit == upcase::limits::MAX_REPLY),
        "{err:?}"
    );
}

#[test]
fn send_reports_a_short_reply_as_closed_early() {
    let err = send_to(hostile(hel), b"hello\n").unwrap_err();
    assert!(
        matches!(&err, ClientError::ClosedEarly { got, .. } if got == b"HEL"),
        "{err:?}"
    );
    assert!(
        err.to_string().contains("closed the connection early"),
        "{err}"
    );
}

#[test]
fn send_returns_the_reply_line_and_nothing_after_it() {
    let reply = send_to(hostile(extra), b"hello\n").unwrap();
    assert_eq!(reply.line, b"HELLO\n");
}

#[test]
fn send_timeout_says_what_arrived_without_lf() {
    let err = send_to(hostile(no_lf), b"hello\n").unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains(r#"got 5 bytes without LF: "HELLO""#), "{msg}");
}

#[test]
fn send_says_a_server_that_closes_at_once_may_be_at_its_limit() {
    let srv = TestServer::start(Config {
        max_connections: 1,
        ..Config::default()
    });
    let _held = srv.connect();
    srv.wait_for("the first connection", |st| st.active == 1);
    let err = send_to(srv.addr.to_string(), b"hello\n").unwrap_err();
    assert!(matches!(err, ClientError::Closed { .. }), "{err:?}");
    assert!(err.to_string().contains("connection limit"), "{err}");
    // Pipe mode says the same.
    let (r, out) = pipe_to(srv.addr.to_string(), Cursor::new(b"hello\n".to_vec()));
    let err = r.unwrap_err();
    assert!(err.to_string().contains("connection limit"), "{err:?}");
    assert!(out.is_empty());
}

#[test]
fn pipe_times_out_when_the_server_never_reads_what_we_have_to_send() {
    let input = std::io::repeat(b'a').take(200 << 20);
    let (r, _) = pipe_to(hostile(never_reads), input);
    let err = r.unwrap_err();
    assert!(matches!(err, ClientError::NotReading { .. }), "{err:?}");
}

#[test]
fn pipe_timeout_bounds_the_wait_after_input_ends_against_a_dripping_server() {
    let (r, out) = pipe_to(hostile(drip), Cursor::new(b"hello\n".to_vec()));
    assert!(matches!(r, Err(ClientError::Unfinished { .. })), "{r:?}");
    assert!(out.iter().all(|&b| b == b'H'));
}

#[test]
fn pipe_reports_a_short_reply_as_closed_early() {
    let (r, out) = pipe_to(hostile(hel), Cursor::new(b"hello\n".to_vec()));
    assert_eq!(out, b"HEL");
    let err = r.unwrap_err();
    assert!(
        matches!(
            err,
            ClientError::ShortReply {
                sent_lf: 1,
                received_lf: 0,
                ..
            }
        ),
        "{err:?}"
    );
    // A last line without LF must be answered too.
    let (r, _) = pipe_to(hostile(extra), Cursor::new(b"hello\nworld".to_vec()));
    assert!(r.is_err(), "{r:?}");
}

/// Input that never ends and never comes: `sleep 30 | upcase`. (The other end is
/// leaked, so that the read blocks for good.)
fn idle_input() -> std::os::unix::net::UnixStream {
    let (a, b) = std::os::unix::net::UnixStream::pair().unwrap();
    std::mem::forget(b);
    a
}

#[test]
fn pipe_that_sent_nothing_is_not_an_error_when_the_server_drains() {
    let mut srv = TestServer::start(Config::default());
    let addr = srv.addr.to_string();
    let pipe = std::thread::spawn(move || pipe_to(addr, idle_input()));
    srv.wait_for("the pipe's connection", |st| st.active == 1);
    srv.begin_stop();
    let (r, out) = pipe.join().unwrap();
    let stats = r.unwrap();
    assert!(stats.closed_by_server, "{stats:?}");
    assert_eq!((stats.sent, out.len()), (0, 0));
    srv.join().unwrap();
}

/// Output that the test can read while the pipe writes it.
#[derive(Clone, Default)]
struct SharedOut(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl Write for SharedOut {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn pipe_whose_lines_were_all_answered_is_not_an_error_when_the_server_drains() {
    let mut srv = TestServer::start(Config::default());
    let addr = srv.addr.to_string();
    let (mut feed, input) = std::os::unix::net::UnixStream::pair().unwrap();
    let out = SharedOut::default();
    let mut writer = out.clone();
    let pipe = std::thread::spawn(move || {
        let s = client::connect(&addr, T).unwrap();
        client::pipe(s, input, &mut writer, SHORT)
    });
    feed.write_all(b"one\ntwo\n").unwrap();
    let end = std::time::Instant::now() + common::PATIENCE;
    while *out.0.lock().unwrap() != b"ONE\nTWO\n" {
        assert!(std::time::Instant::now() < end, "no replies");
        std::thread::sleep(Duration::from_millis(10));
    }
    // The drain closes the connection at the line boundary; the input is still open.
    srv.begin_stop();
    let stats = within("pipe", move || pipe.join().unwrap()).unwrap();
    assert!(stats.closed_by_server, "{stats:?}");
    assert_eq!((stats.sent_lines, stats.received_lines), (2, 2));
    srv.join().unwrap();
    drop(feed);
}

#[test]
fn interactive_session_answers_every_line_of_a_paste_in_order() {
    let srv = TestServer::start(Config::default());
    let mut lines = ["aaa\nbbb\r\nccc", "ddd"].map(String::from).into_iter();
    let (mut out, mut notes) = (Vec::new(), Vec::new());
    client::interactive(
        &srv.addr.to_string(),
        T,
        &mut lines,
        &mut out,
        &mut notes,
        &NO_CTRL_C,
    )
    .unwrap();
    assert_eq!(out, b"AAA\nBBB\nCCC\nDDD\n");
}

#[test]
fn ctrl_c_cancels_the_wait_and_the_session_goes_on() {
    let addr = hostile(stuck_then_echo);
    static CTRL_C: AtomicBool = AtomicBool::new(false);
    let mut lines = ["stuck", "next"].map(String::from).into_iter();
    let presser = std::thread::spawn(|| {
        // The first line's reply never comes; press Ctrl-C while it is awaited.
        let end = std::time::Instant::now() + common::PATIENCE;
        while !STUCK_SEEN.load(std::sync::atomic::Ordering::Relaxed) {
            assert!(
                std::time::Instant::now() < end,
                "the line never reached the server"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        CTRL_C.store(true, std::sync::atomic::Ordering::Relaxed);
    });
    let (out, notes) = within("interactive", move || {
        let (mut out, mut notes) = (Vec::new(), Vec::new());
        // The timeout is the patience: only the cancel can end the first wait in time.
        client::interactive(
            &addr,
            common::PATIENCE * 2,
            &mut lines,
            &mut out,
            &mut notes,
            &CTRL_C,
        )
        .unwrap();
        (out, String::from_utf8(notes).unwrap())
    });
    presser.join().unwrap();
    assert_eq!(out, b"NEXT\n");
    assert!(notes.contains("cancelled"), "{notes}");
}

#[test]
fn udp_session_says_why_a_longer_upper_case_is_not_sent_and_goes_on() {
    let srv = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = srv.local_addr().unwrap().to_string();
    let echo = std::thread::spawn(move || {
        let mut buf = [0u8; 2048];
        let (n, from) = srv.recv_from(&mut buf).unwrap();
        srv.send_to(&buf[..n].to_ascii_uppercase(), from).unwrap();
        buf[..n].to_vec()
    });
    let mut udp = client::UdpClient::connect(&addr, T).unwrap();
    let mut lines = ["ŉ", "fine"].map(String::from).into_iter();
    let (mut out, mut notes) = (Vec::new(), Vec::new());
    client::interactive_udp(&mut udp, &mut lines, &mut out, &mut notes, &NO_CTRL_C).unwrap();
    assert_eq!(out, b"FINE\n");
    let notes = String::from_utf8(notes).unwrap();
    assert!(notes.contains("no amplification"), "{notes}");
    // Only the second line went out.
    assert_eq!(echo.join().unwrap(), b"fine");
    let err = udp.exchange("ŉ".as_bytes()).unwrap_err();
    assert!(
        matches!(err, ClientError::WouldAmplify { len: 2, reply: 3 }),
        "{err:?}"
    );
}

#[test]
fn interactive_session_drops_bytes_nobody_asked_for_before_the_next_line() {
    // Each reply comes with an extra line; the next line's reply must still be its own.
    fn chatty(mut c: TcpStream, _: usize) {
        let mut buf = [0u8; 4096];
        while let Ok(n @ 1..) = c.read(&mut buf) {
            let mut reply = buf[..n].to_ascii_uppercase();
            reply.extend_from_slice(b"JUNK\n");
            if c.write_all(&reply).is_err() {
                return;
            }
        }
    }
    let addr = hostile(chatty);
    let mut n = 0;
    let mut lines = std::iter::from_fn(move || {
        n += 1;
        // A pause as a person's: the junk has arrived before the next line is sent.
        std::thread::sleep(Duration::from_millis(100));
        (n <= 2).then(|| format!("line {n}"))
    });
    let (out, _) = within("interactive", move || {
        let (mut out, mut notes) = (Vec::new(), Vec::new());
        client::interactive(&addr, T, &mut lines, &mut out, &mut notes, &NO_CTRL_C).unwrap();
        (out, notes)
    });
    assert_eq!(out, b"LINE 1\nLINE 2\n");
}
