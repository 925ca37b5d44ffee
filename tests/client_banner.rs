//! `upcase --banner` against `upcased --banner`: the banner line goes to stderr in `send`,
//! pipe and interactive mode (reconnections included), and the replies are unchanged.

mod common;

use std::sync::atomic::AtomicBool;
use std::time::Duration;

use assert_cmd::Command;
use common::TestServer;
use upcase::banner::Template;
use upcase::client::{self, ClientError};
use upcase::server::Config;

const T: Duration = Duration::from_secs(10);
static NO_CTRL_C: AtomicBool = AtomicBool::new(false);

fn bannered(config: Config) -> TestServer {
    let banner = Template::parse("{id} saw {client}")
        .unwrap()
        .bind("edge-1", "h")
        .unwrap();
    TestServer::start(Config {
        banner: Some(banner),
        ..config
    })
}

#[test]
fn read_banner_takes_the_line_and_leaves_the_reply() {
    let srv = bannered(Config::default());
    let mut s = client::connect(&srv.addr.to_string(), T).unwrap();
    let me = s.local_addr().unwrap();
    let line = client::read_banner(&mut s, T).unwrap();
    assert_eq!(line, format!("edge-1 saw {me}\n").as_bytes());
    let reply = client::send(&mut s, b"hello\n", T).unwrap();
    assert_eq!(reply.line, b"HELLO\n");
}

#[test]
fn read_banner_from_a_server_without_one_times_out_naming_the_flag() {
    let srv = TestServer::start(Config::default());
    let mut s = client::connect(&srv.addr.to_string(), T).unwrap();
    let e = client::read_banner(&mut s, Duration::from_millis(200)).unwrap_err();
    assert!(matches!(e, ClientError::NoBanner { .. }), "{e:?}");
    assert!(e.to_string().contains("--banner"), "{e}");
}

#[test]
fn send_prints_the_banner_on_stderr_and_the_reply_on_stdout() {
    let srv = bannered(Config::default());
    let out = Command::cargo_bin("upcase")
        .unwrap()
        .args(["send", "--banner", "-c", &srv.addr.to_string(), "grüße"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(out.stdout, "GRÜSSE\n".as_bytes());
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.starts_with("edge-1 saw 127.0.0.1:"), "{err}");
}

#[test]
fn pipe_mode_prints_the_banner_on_stderr_and_pipes_the_rest() {
    let srv = bannered(Config::default());
    let out = Command::cargo_bin("upcase")
        .unwrap()
        .args(["--banner", "-c", &srv.addr.to_string()])
        .write_stdin("one\ntwo\n")
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(out.stdout, b"ONE\nTWO\n");
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.starts_with("edge-1 saw 127.0.0.1:"), "{err}");
}

#[test]
fn without_the_flag_the_banner_is_part_of_the_reply() {
    // What --banner is for: a client that does not expect the line takes it for data.
    let srv = bannered(Config::default());
    let out = Command::cargo_bin("upcase")
        .unwrap()
        .args(["-c", &srv.addr.to_string()])
        .write_stdin("one\n")
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("edge-1 saw "));
}

#[test]
fn the_interactive_session_shows_each_connections_banner() {
    let srv = bannered(Config {
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
    let target = srv.addr.to_string();
    let session = client::Session {
        target: &target,
        timeout: T,
        tls: None,
        banner: true,
    };
    client::interactive_session(&session, &mut lines, &mut out, &mut notes, &NO_CTRL_C).unwrap();
    assert_eq!(out, b"BEFORE\nAFTER\n");
    let notes = String::from_utf8(notes).unwrap();
    assert_eq!(notes.matches("edge-1 saw 127.0.0.1:").count(), 2, "{notes}");
    assert!(notes.contains("reconnected"), "{notes}");
}

#[test]
fn banner_and_udp_do_not_go_together() {
    let out = Command::cargo_bin("upcase")
        .unwrap()
        .args(["--banner", "--udp", "send", "x"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}
