//! The protocol on real sockets: the library's server on an ephemeral port, plain TCP
//! clients.

#[macro_use]
mod common;

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::thread;
use std::time::Duration;

use common::{read_n, read_to_end, roundtrip, up, TestServer};
use upcase::server::Config;
use upcase::transform::Mode;

per_driver! {
    fn one_line_comes_back_upper_cased() {
        let srv = TestServer::start(Config::default());
        let mut c = srv.connect();
        assert_eq!(roundtrip(&mut c, b"hello, world\n", 13), b"HELLO, WORLD\n");
    }

    fn many_messages_on_one_connection() {
        let srv = TestServer::start(Config::default());
        let mut c = srv.connect();
        for i in 0..500 {
            let msg = format!("message number {i} straße\n");
            let want = up(msg.as_bytes());
            assert_eq!(roundtrip(&mut c, msg.as_bytes(), want.len()), want);
        }
    }

    fn unicode_examples_of_the_protocol() {
        let srv = TestServer::start(Config::default());
        let mut c = srv.connect();
        let msg = "straße ﬁ ǆ ı \u{390}\n";
        let want = "STRASSE FI Ǆ I \u{399}\u{308}\u{301}\n";
        assert_eq!(
            roundtrip(&mut c, msg.as_bytes(), want.len()),
            want.as_bytes()
        );
    }

    fn a_reply_does_not_wait_for_a_newline() {
        let srv = TestServer::start(Config::default());
        let mut c = srv.connect();
        assert_eq!(roundtrip(&mut c, b"no newline yet", 14), b"NO NEWLINE YET");
    }

    fn non_letters_and_invalid_bytes_come_back_unchanged() {
        let srv = TestServer::start(Config::default());
        let mut c = srv.connect();
        let msg = b"a\rb\0c\xff\xfe\xc3(\xed\xa0\x80 1+1\n";
        let want = b"A\rB\0C\xff\xfe\xc3(\xed\xa0\x80 1+1\n";
        assert_eq!(roundtrip(&mut c, msg, want.len()), want);
    }

    fn character_split_across_writes_is_held_back_until_complete() {
        let srv = TestServer::start(Config::default());
        let mut c = srv.connect();
        let e = "é".as_bytes();
        c.write_all(b"caf").unwrap();
        c.write_all(&e[..1]).unwrap();
        assert_eq!(read_n(&mut c, 3), b"CAF");
        thread::sleep(Duration::from_millis(100));
        c.write_all(&e[1..]).unwrap();
        c.write_all(b"\n").unwrap();
        assert_eq!(read_n(&mut c, 3), "É\n".as_bytes());
    }

    fn half_close_gets_everything_owed_then_eof() {
        let srv = TestServer::start(Config::default());
        let mut c = srv.connect();
        c.write_all(b"last words, no newline").unwrap();
        c.shutdown(Shutdown::Write).unwrap();
        assert_eq!(read_to_end(&mut c), b"LAST WORDS, NO NEWLINE");
    }

    fn incomplete_sequence_at_half_close_is_flushed_unchanged() {
        let srv = TestServer::start(Config::default());
        let mut c = srv.connect();
        c.write_all(b"end\xf0\x9f\x98").unwrap();
        c.shutdown(Shutdown::Write).unwrap();
        assert_eq!(read_to_end(&mut c), b"END\xf0\x9f\x98");
    }

    fn ascii_mode_changes_only_a_to_z() {
        let srv = TestServer::start(Config {
            mode: Mode::Ascii,
            ..Config::default()
        });
        let mut c = srv.connect();
        let msg = "straße café\n".as_bytes();
        let want = "STRAßE CAFé\n".as_bytes();
        assert_eq!(roundtrip(&mut c, msg, want.len()), want);
    }

    fn hundred_fifty_concurrent_clients_each_get_their_own_replies() {
        let srv = TestServer::start(Config::default());
        let addr = srv.addr;
        let clients: Vec<_> = (0..150)
            .map(|i| {
                thread::spawn(move || {
                    let mut c = TcpStream::connect(addr).unwrap();
                    c.set_read_timeout(Some(common::PATIENCE)).unwrap();
                    for j in 0..20 {
                        let msg = format!("client {i} line {j} grüße\n");
                        let want = up(msg.as_bytes());
                        assert_eq!(roundtrip(&mut c, msg.as_bytes(), want.len()), want);
                    }
                })
            })
            .collect();
        for c in clients {
            c.join().unwrap();
        }
    }

    fn sixteen_mib_stream_written_while_reading() {
        let srv = TestServer::start(Config::default());
        let mut c = srv.connect();
        // Mixed text with multi-byte characters that straddle every kind of boundary.
        let unit = "Ünïcödé straße ωμέγα привет 漢字 🎉 plain ascii\n".as_bytes();
        let mut data = Vec::with_capacity(16 << 20);
        while data.len() < 16 << 20 {
            data.extend_from_slice(unit);
        }
        let want = up(&data);
        let mut w = c.try_clone().unwrap();
        let writer = thread::spawn(move || {
            // Odd-sized writes, so characters are split across segments.
            for chunk in data.chunks(65_521) {
                w.write_all(chunk).unwrap();
            }
            w.shutdown(Shutdown::Write).unwrap();
        });
        let got = read_to_end(&mut c);
        writer.join().unwrap();
        assert_eq!(got.len(), want.len());
        assert!(got == want, "16 MiB reply differs");
    }

    fn ipv6_loopback_is_served_where_available() {
        let Ok(probe) = std::net::TcpListener::bind("[::1]:0") else {
            eprintln!("no IPv6 loopback here; skipping");
            return;
        };
        drop(probe);
        let srv = TestServer::start_on("[::1]:0".parse().unwrap(), Config::default());
        assert!(srv.addr.is_ipv6());
        let mut c = srv.connect();
        assert_eq!(
            roundtrip(&mut c, "ipv6 ok ñ\n".as_bytes(), 11),
            "IPV6 OK Ñ\n".as_bytes()
        );
    }

    fn a_client_that_resets_does_not_disturb_another() {
        let srv = TestServer::start(Config::default());
        let mut good = srv.connect();
        for _ in 0..50 {
            let bad = socket2::Socket::from(srv.connect());
            bad.set_linger(Some(Duration::ZERO)).unwrap();
            let mut bad = TcpStream::from(bad);
            bad.write_all(b"half a mess").unwrap();
            drop(bad); // RST
        }
        assert_eq!(roundtrip(&mut good, b"still fine\n", 11), b"STILL FINE\n");
        srv.wait_for("reset connections to be released", |s| s.active == 1);
        let mut buf = [0u8; 1];
        good.set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        assert!(good.read(&mut buf).is_err(), "nothing unexpected arrives");
    }
}

/// Random bytes in random chunks, then a half-close, against the reference transform: one
/// server per driver for every generated case (starting one per case would dominate).
mod streamed {
    use super::*;
    use proptest::prelude::*;
    use proptest::test_runner::{Config as Cases, TestRunner};
    use std::sync::OnceLock;

    fn server() -> std::net::SocketAddr {
        static EPOLL: OnceLock<TestServer> = OnceLock::new();
        static URING: OnceLock<TestServer> = OnceLock::new();
        let cell = match common::driver() {
            upcase::server::Driver::Uring => &URING,
            _ => &EPOLL,
        };
        cell.get_or_init(|| TestServer::start(Config::default()))
            .addr
    }

    fn bytes() -> impl Strategy<Value = Vec<u8>> {
        let piece = prop_oneof![
            any::<char>().prop_map(|c| c.to_string().into_bytes()),
            "[a-zß-ÿα-ωа-я \n]{0,12}".prop_map(String::into_bytes),
            prop::collection::vec(any::<u8>(), 0..6),
        ];
        prop::collection::vec(piece, 0..200).prop_map(|v| v.concat())
    }

    fn one_case(input: Vec<u8>, sizes: Vec<usize>) -> Result<(), TestCaseError> {
        let mut c = TcpStream::connect(server()).unwrap();
        c.set_nodelay(true).unwrap();
        c.set_read_timeout(Some(common::PATIENCE)).unwrap();
        let mut w = c.try_clone().unwrap();
        let data = input.clone();
        let writer = thread::spawn(move || {
            let mut rest = &data[..];
            for n in sizes.iter().cycle() {
                if rest.is_empty() {
                    break;
                }
                let (a, b) = rest.split_at((*n).min(rest.len()));
                w.write_all(a).unwrap();
                rest = b;
                thread::yield_now();
            }
            w.shutdown(Shutdown::Write).unwrap();
        });
        let got = read_to_end(&mut c);
        writer.join().unwrap();
        prop_assert_eq!(
            got,
            upcase::transform::reference_upcase(&input, Mode::Unicode)
        );
        Ok(())
    }

    per_driver! {
        fn random_bytes_in_random_chunks_then_half_close_match_the_reference() {
            let mut runner = TestRunner::new(Cases {
                cases: 48,
                failure_persistence: None,
                ..Cases::default()
            });
            let strategy = (bytes(), prop::collection::vec(1usize..300, 1..20));
            if let Err(e) = runner.run(&strategy, |(input, sizes)| one_case(input, sizes)) {
                panic!("{e}");
            }
        }
    }
}

per_driver! {
    fn counters_move_with_their_events() {
        let mut srv = TestServer::start(Config::default());
        let mut c = srv.connect();
        assert_eq!(roundtrip(&mut c, "straße\n".as_bytes(), 8), b"STRASSE\n");
        c.shutdown(Shutdown::Write).unwrap();
        assert_eq!(read_to_end(&mut c), b"");
        srv.wait_for("the client's close", |s| s.closed_client == 1);
        let bad = socket2::Socket::from(srv.connect());
        bad.set_linger(Some(Duration::ZERO)).unwrap();
        let mut bad = TcpStream::from(bad);
        bad.write_all(b"x").unwrap();
        common::read_n(&mut bad, 1);
        drop(bad); // RST
        srv.wait_for("the reset", |s| s.closed_error == 1);
        let mut idle = srv.connect();
        assert_eq!(roundtrip(&mut idle, b"bye\n", 4), b"BYE\n");
        srv.begin_stop();
        assert_eq!(read_to_end(&mut idle), b"");
        let s = srv.server.stats();
        assert_eq!(
            (s.served, s.closed_client, s.closed_error, s.closed_drain),
            (3, 1, 1, 1)
        );
        assert_eq!((s.bytes_received, s.bytes_sent), (8 + 1 + 4, 8 + 1 + 4));
        drop(idle); // ends the lingering close
        let server = srv.server.clone();
        srv.join().unwrap();
        assert_eq!(server.stats().active, 0);
    }
}
