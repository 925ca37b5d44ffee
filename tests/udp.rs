//! UDP mode on real sockets: one reply per datagram, and the safety rules.

#[macro_use]
mod common;

use std::net::{SocketAddr, UdpSocket};
use std::thread;
use std::time::Duration;

use assert_cmd::Command as Cmd;
use common::{roundtrip, up, TestServer, PATIENCE};
use predicates::prelude::*;
use upcase::server::Config;

fn client_socket(local: &str, to: SocketAddr, timeout: Duration) -> UdpSocket {
    let s = UdpSocket::bind(local).unwrap();
    s.connect(to).unwrap();
    s.set_read_timeout(Some(timeout)).unwrap();
    s
}

fn exchange(s: &UdpSocket, msg: &[u8]) -> std::io::Result<Vec<u8>> {
    s.send(msg)?;
    let mut buf = vec![0u8; 70_000];
    let n = s.recv(&mut buf)?;
    buf.truncate(n);
    Ok(buf)
}

per_driver! {
    fn a_datagram_gets_one_upper_cased_reply_with_tcp_alongside() {
        let srv = TestServer::start_udp("127.0.0.1", Config::default());
        let u = client_socket("127.0.0.1:0", srv.addr, PATIENCE);
        assert_eq!(
            exchange(&u, "grüße, no newline".as_bytes()).unwrap(),
            "GRÜSSE, NO NEWLINE".as_bytes()
        );
        let mut t = std::net::TcpStream::connect(srv.addr).unwrap();
        assert_eq!(roundtrip(&mut t, b"tcp too\n", 8), b"TCP TOO\n");
        // The reply is sent to the sender, from the server's port.
        let other = UdpSocket::bind("127.0.0.1:0").unwrap();
        other.set_read_timeout(Some(PATIENCE)).unwrap();
        other.send_to(b"from", srv.addr).unwrap();
        let mut buf = [0u8; 8];
        let (n, from) = other.recv_from(&mut buf).unwrap();
        assert_eq!((&buf[..n], from), (&b"FROM"[..], srv.addr));
        // The counter moves just after the send; give it a moment.
        let end = std::time::Instant::now() + PATIENCE;
        while srv.server.stats().udp_replied < 2 && std::time::Instant::now() < end {
            thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(srv.server.stats().udp_replied, 2);
    }
}

per_driver! {
    fn no_state_carries_from_one_datagram_to_the_next() {
        let srv = TestServer::start_udp("127.0.0.1", Config::default());
        let u = client_socket("127.0.0.1:0", srv.addr, PATIENCE);
        let e = "é".as_bytes();
        assert_eq!(exchange(&u, &[b'a', e[0]]).unwrap(), [b'A', e[0]]);
        assert_eq!(exchange(&u, &[e[1], b'b']).unwrap(), [e[1], b'B']);
    }
}

per_driver! {
    fn udp_is_off_by_default() {
        let srv = TestServer::start(Config::default());
        let u = client_socket("127.0.0.1:0", srv.addr, Duration::from_millis(500));
        assert!(
            exchange(&u, b"anyone?").is_err(),
            "no UDP reply without --udp"
        );
    }
}

per_driver! {
    fn privileged_source_ports_get_no_reply() {
        let srv = TestServer::start_udp("127.0.0.1", Config::default());
        let Ok(priv_sock) = UdpSocket::bind("127.0.0.1:1000") else {
            eprintln!("cannot bind a privileged port (not root); skipping");
            return;
        };
        priv_sock.connect(srv.addr).unwrap();
        priv_sock
            .set_read_timeout(Some(Duration::from_millis(500)))
            .unwrap();
        assert!(exchange(&priv_sock, b"echo loop?").is_err());
        assert_eq!(srv.server.stats().udp_privileged_port, 1);
        assert_eq!(srv.server.stats().udp_replied, 0);
    }
}

per_driver! {
    fn a_reply_is_never_larger_than_its_request() {
        let srv = TestServer::start_udp("127.0.0.1", Config::default());
        let u = client_socket("127.0.0.1:0", srv.addr, Duration::from_millis(500));
        // ŉ (2 bytes) upper-cases to ʼN (3 bytes); U+0390 (2 bytes) to 6 bytes.
        assert!(exchange(&u, "ŉ".as_bytes()).is_err());
        assert!(exchange(&u, "\u{390}".as_bytes()).is_err());
        assert_eq!(srv.server.stats().udp_would_amplify, 2);
        // Same length and shrinking mappings are answered: ß → SS, ﬁ → FI.
        assert_eq!(exchange(&u, "ßﬁ".as_bytes()).unwrap(), b"SSFI");
    }
}

per_driver! {
    fn a_maximum_size_datagram_works() {
        let srv = TestServer::start_udp("127.0.0.1", Config::default());
        let u = client_socket("127.0.0.1:0", srv.addr, PATIENCE);
        let msg: Vec<u8> = (0..65_507).map(|i| b'a' + (i % 26) as u8).collect();
        assert_eq!(exchange(&u, &msg).unwrap(), up(&msg));
    }
}

per_driver! {
    fn fifty_clients_times_a_hundred_datagrams() {
        let srv = TestServer::start_udp("127.0.0.1", Config::default());
        let addr = srv.addr;
        let clients: Vec<_> = (0..50)
            .map(|i| {
                thread::spawn(move || {
                    let u = client_socket("127.0.0.1:0", addr, Duration::from_secs(2));
                    let mut answered = 0;
                    for j in 0..100 {
                        let msg = format!("client {i} datagram {j} ωμέγα");
                        // UDP may drop under load; a reply, when it comes, must be right.
                        if let Ok(r) = exchange(&u, msg.as_bytes()) {
                            assert_eq!(r, up(msg.as_bytes()));
                            answered += 1;
                        }
                    }
                    answered
                })
            })
            .collect();
        let answered: usize = clients.into_iter().map(|c| c.join().unwrap()).sum();
        assert!(
            answered >= 4_900,
            "only {answered} of 5000 answered on loopback"
        );
    }
}

per_driver! {
    fn udp_over_ipv6() {
        if UdpSocket::bind("[::1]:0").is_err() {
            eprintln!("no IPv6 loopback; skipping");
            return;
        }
        let srv = TestServer::start_udp("[::1]", Config::default());
        let u = client_socket("[::1]:0", srv.addr, PATIENCE);
        assert_eq!(exchange(&u, b"six").unwrap(), b"SIX");
    }
}

per_driver! {
    fn rate_limit_per_source_address() {
        let srv = TestServer::start_udp(
            "127.0.0.1",
            Config {
                udp_rate: Some(5),
                ..Config::default()
            },
        );
        let u = client_socket("127.0.0.1:0", srv.addr, Duration::from_millis(300));
        for _ in 0..20 {
            u.send(b"burst").unwrap();
        }
        let mut replies = 0;
        let mut buf = [0u8; 16];
        while u.recv(&mut buf).is_ok() {
            replies += 1;
        }
        assert!(
            (5..=7).contains(&replies),
            "{replies} replies to a burst of 20 at 5/s"
        );
        assert!(srv.server.stats().udp_rate_limited >= 13);
    }
}

fn upcase_cmd() -> Cmd {
    let mut c = Cmd::cargo_bin("upcase").unwrap();
    c.env_remove("UPCASE_ADDR").timeout(PATIENCE);
    c
}

per_driver! {
    fn client_send_and_pipe_over_udp_against_the_binary() {
        let srv = common::Upcased::spawn(&["--udp"]);
        let addr = srv.addr.to_string();
        upcase_cmd()
            .args(["--udp", "-c", &addr, "send", "hello", "udp"])
            .assert()
            .success()
            .stdout("HELLO UDP\n");
        upcase_cmd()
            .args(["--udp", "-c", &addr])
            .write_stdin("one\ntwo straße\n\nlast, no newline")
            .assert()
            .success()
            .stdout("ONE\nTWO STRASSE\n\nLAST, NO NEWLINE\n");
        assert!(srv.log().contains("(udp)"), "{}", srv.log());
    }
}

per_driver! {
    fn tcp_and_udp_stop_on_the_same_signal() {
        let mut srv = common::Upcased::spawn(&["--udp"]);
        let u = client_socket("127.0.0.1:0", srv.addr, Duration::from_millis(500));
        assert_eq!(exchange(&u, b"before").unwrap(), b"BEFORE");
        let t = std::time::Instant::now();
        srv.signal("TERM");
        assert!(srv.wait().success());
        assert!(t.elapsed() < Duration::from_secs(5));
        assert!(exchange(&u, b"after").is_err());
    }
}

per_driver! {
    fn client_without_a_udp_server_says_so_and_exits_1() {
        let srv = common::Upcased::spawn(&[]); // TCP only
        upcase_cmd()
            .args([
                "--udp",
                "--timeout",
                "500ms",
                "-c",
                &srv.addr.to_string(),
                "send",
                "hi",
            ])
            .assert()
            .code(1)
            .stderr(
                predicate::str::contains(srv.addr.to_string()).and(predicate::str::contains("--udp")),
            );
    }
}

per_driver! {
    fn client_refuses_a_line_longer_than_a_datagram() {
        let srv = common::Upcased::spawn(&["--udp"]);
        let long = "x".repeat(70_000);
        upcase_cmd()
            .args(["--udp", "-c", &srv.addr.to_string()])
            .write_stdin(format!("short\n{long}\n"))
            .assert()
            .code(1)
            .stdout("SHORT\n")
            .stderr(predicate::str::contains("does not fit in one UDP datagram"));
    }
}

per_driver! {
    fn bench_over_udp_against_the_real_server() {
        let srv = common::Upcased::spawn(&["--udp"]);
        let out = upcase_cmd()
            .args([
                "-c",
                &srv.addr.to_string(),
                "bench",
                "--udp",
                "--connections",
                "4",
            ])
            .args(["--duration", "300ms", "--warmup", "0", "--json"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let j: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(j["transport"], "udp");
        assert!(j["messages"].as_u64().unwrap() > 0);
        assert_eq!(j["errors"]["wrong_replies"], 0);
    }
}
