//! The client's library core, driven without a terminal: the interactive session through
//! an iterator of lines, pipe mode through in-memory readers and writers.

mod common;

use std::io::Cursor;
use std::net::TcpListener;
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
