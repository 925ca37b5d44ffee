//! The PROXY protocol and the banner through the real server, on real sockets: every split
//! point of every header kind, every rejection (with the server still serving others), LOCAL
//! and UNKNOWN, the client's data in the header's segment, and the per-IP limit on the
//! proxied address.

#[macro_use]
mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use common::{read_n, up, TestServer, PATIENCE};
use upcase::banner::Template;
use upcase::proxy::{v1_header, v2_header, ProxyMode, ProxySettings, V1_UNKNOWN};
use upcase::server::{Config, Listener, ListenerSettings, Listeners};

/// A server whose every listener requires `mode`, and sends `{client}` as its banner, so that
/// each test sees which address the server took as the client's.
fn proxied_server(mode: ProxyMode, config: Config) -> TestServer {
    proxied_servers(&[mode], config).0
}

/// One server with a listener per mode; returns the listeners' addresses.
fn proxied_servers(modes: &[ProxyMode], config: Config) -> (TestServer, Vec<SocketAddr>) {
    let proxy = |mode| ProxySettings {
        mode,
        header_timeout: Duration::from_millis(500),
        ..ProxySettings::default()
    };
    let tcp: Vec<Listener> = modes
        .iter()
        .map(|&mode| {
            let socket = upcase::net::bind_tcp("127.0.0.1:0".parse().unwrap()).unwrap();
            Listener::new(socket, ListenerSettings::default().with_proxy(proxy(mode)))
        })
        .collect();
    let addrs = tcp.iter().map(|l| l.socket.local_addr().unwrap()).collect();
    let config = Config {
        banner: Some(client_banner()),
        ..config
    };
    (
        TestServer::start_on_listeners(Listeners::from(tcp), config),
        addrs,
    )
}

fn client_banner() -> upcase::banner::Banner {
    Template::parse("{client}").unwrap().bind("t", "h").unwrap()
}

fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(PATIENCE)).unwrap();
    s.set_nodelay(true).unwrap();
    s
}

/// Reads one LF-terminated line.
fn read_line(s: &mut TcpStream) -> String {
    let mut line = Vec::new();
    let mut b = [0u8; 1];
    while line.last() != Some(&b'\n') {
        match s.read(&mut b) {
            Ok(0) => panic!("closed before the end of a line: {line:?}"),
            Ok(_) => line.push(b[0]),
            Err(e) => panic!("reading a line: {e} after {line:?}"),
        }
    }
    String::from_utf8(line).unwrap()
}

/// Whether the server closed the connection without sending a byte (a FIN or a reset).
fn closed_unanswered(s: &mut TcpStream) -> bool {
    let mut buf = [0u8; 64];
    match s.read(&mut buf) {
        Ok(0) => true,
        Ok(n) => panic!("the server answered: {:?}", &buf[..n]),
        Err(e) if matches!(e.kind(), ErrorKind::ConnectionReset) => true,
        Err(e) => panic!("no close: {e}"),
    }
}

const SRC4: &str = "192.0.2.7:40001";
const DST4: &str = "198.51.100.1:2277";
const SRC6: &str = "[2001:db8::7]:40002";
const DST6: &str = "[2001:db8:ffff:ffff:ffff:ffff:ffff:1]:2277";

/// Every header kind the issue names, with the client address the server must take from it
/// (`None`: the socket's own).
fn headers() -> Vec<(&'static str, Vec<u8>, Option<SocketAddr>)> {
    let (s4, d4, s6, d6) = (
        SRC4.parse().unwrap(),
        DST4.parse().unwrap(),
        SRC6.parse().unwrap(),
        DST6.parse().unwrap(),
    );
    vec![
        ("v1 TCP4", v1_header(s4, d4).into_bytes(), Some(s4)),
        ("v1 TCP6", v1_header(s6, d6).into_bytes(), Some(s6)),
        ("v1 UNKNOWN", V1_UNKNOWN.to_vec(), None),
        (
            "v1 UNKNOWN with addresses",
            b"PROXY UNKNOWN ffff:: ffff:: 1 2\r\n".to_vec(),
            None,
        ),
        ("v2 TCP4", v2_header(Some((s4, d4)), &[], false), Some(s4)),
        (
            "v2 TCP6 with TLVs and CRC32C",
            v2_header(
                Some((s6, d6)),
                &[(0x02, b"example.test"), (0xE0, b"vendor")],
                true,
            ),
            Some(s6),
        ),
        ("v2 LOCAL", v2_header(None, &[], false), None),
    ]
}

per_driver! {
    fn every_header_split_at_every_byte_is_read_and_the_data_after_it_served() {
        let server = proxied_server(ProxyMode::Any, Config::default());
        let data = b"hello, straight after the header\n";
        let mut connections = 0;
        for (name, header, client) in headers() {
            // 0: the header and the data in one segment; otherwise the header cut at `split`,
            // the rest of it arriving with the data.
            for split in 0..header.len() {
                let mut s = server.connect();
                let mine = s.local_addr().unwrap();
                if split > 0 {
                    s.write_all(&header[..split]).unwrap();
                    // Give the first piece time to be read alone (not asserted: a merged read
                    // is the split-0 case, which must work too).
                    std::thread::sleep(Duration::from_millis(2));
                }
                let mut rest = header[split..].to_vec();
                rest.extend_from_slice(data);
                s.write_all(&rest).unwrap();
                let want = client.unwrap_or(mine);
                assert_eq!(
                    read_line(&mut s),
                    format!("{want}\n"),
                    "{name} split at {split}"
                );
                assert_eq!(
                    read_n(&mut s, data.len()),
                    up(data),
                    "{name} split at {split}"
                );
                connections += 1;
            }
        }
        let st = server.server.stats();
        assert_eq!(st.served, connections);
        assert_eq!(st.rejected_proxy_header, 0);
        // PROXY headers are not the client's bytes.
        server.wait_for("bytes counted", |st| {
            st.bytes_received == connections * data.len() as u64
        });
    }
}

per_driver! {
    fn a_local_header_announcing_junk_is_skipped_and_served_with_the_socket_addresses() {
        let server = proxied_server(ProxyMode::V2, Config::default());
        let mut local = v2_header(None, &[], false);
        // LOCAL with an address block and an unknown family byte, 40 bytes announced.
        local[13] = 0x11;
        local[14..16].copy_from_slice(&40u16.to_be_bytes());
        local.extend_from_slice(&[0xAB; 40]);
        let mut s = server.connect();
        let mine = s.local_addr().unwrap();
        local.extend_from_slice(b"ping\n");
        s.write_all(&local).unwrap();
        assert_eq!(read_line(&mut s), format!("{mine}\n"));
        assert_eq!(read_n(&mut s, 5), b"PING\n");
    }
}

per_driver! {
    fn every_bad_header_is_closed_unanswered_counted_and_others_are_still_served() {
        let (server, addrs) = proxied_servers(
            &[ProxyMode::Any, ProxyMode::V1, ProxyMode::V2],
            Config::default(),
        );
        let (any, v1_only, v2_only) = (addrs[0], addrs[1], addrs[2]);
        let s4: SocketAddr = SRC4.parse().unwrap();
        let d4: SocketAddr = DST4.parse().unwrap();
        let good_v1 = v1_header(s4, d4);
        let good_v2 = v2_header(Some((s4, d4)), &[], false);
        let mut wrong_version = good_v2.clone();
        wrong_version[12] = 0x31;
        let mut unknown_command = good_v2.clone();
        unknown_command[12] = 0x2F;
        let mut oversized_v2 = v2_header(None, &[], false);
        oversized_v2[14..16].copy_from_slice(&5000u16.to_be_bytes());
        let mut bad_crc = v2_header(Some((s4, d4)), &[], true);
        let last = bad_crc.len() - 1;
        bad_crc[last] ^= 1;
        let mut oversized_v1 = b"PROXY UNKNOWN ".to_vec();
        oversized_v1.resize(200, b'x');
        let no_crlf = good_v1.trim_end().to_owned();
        let lone_lf = format!("{no_crlf}\n");
        let cases: Vec<(&str, SocketAddr, Vec<u8>, bool)> = vec![
            // (what, where, bytes, then half-close)
            ("no header", any, b"hello\n".to_vec(), false),
            (
                "garbage",
                any,
                vec![0x00, 0xFF, 0x13, 0x37, 0x0D, 0x0A],
                false,
            ),
            ("oversized v1", any, oversized_v1, false),
            ("oversized v2", v2_only, oversized_v2, false),
            (
                "v1 without CRLF, then FIN",
                any,
                no_crlf.clone().into(),
                true,
            ),
            (
                "v1 without CRLF, then data",
                any,
                format!("{no_crlf} hello").into(),
                false,
            ),
            ("lone LF", any, lone_lf.into(), false),
            ("wrong v2 version", any, wrong_version, false),
            ("unknown v2 command", any, unknown_command, false),
            ("bad CRC32C", any, bad_crc, false),
            ("v2 on a v1 listener", v1_only, good_v2.clone(), false),
            (
                "v1 on a v2 listener",
                v2_only,
                good_v1.clone().into(),
                false,
            ),
            (
                "lowercase proxy",
                v1_only,
                good_v1.to_lowercase().into(),
                false,
            ),
            (
                "timeout: half a header, then silence",
                any,
                good_v2[..20].to_vec(),
                false,
            ),
            ("timeout: nothing at all", any, Vec::new(), false),
        ];
        let mut rejected = 0;
        for (what, addr, bytes, fin) in cases {
            // A connection that stays open throughout, served before and after.
            let mut bystander = connect(any);
            bystander.write_all(good_v1.as_bytes()).unwrap();
            assert_eq!(read_line(&mut bystander), format!("{s4}\n"), "{what}");
            let mut s = connect(addr);
            s.write_all(&bytes).unwrap();
            if fin {
                s.shutdown(std::net::Shutdown::Write).unwrap();
            }
            assert!(closed_unanswered(&mut s), "{what}");
            rejected += 1;
            server.wait_for(what, |st| st.rejected_proxy_header == rejected);
            bystander.write_all(b"still here\n").unwrap();
            assert_eq!(read_n(&mut bystander, 11), b"STILL HERE\n", "{what}");
            let mut fresh = connect(addr);
            let header: &[u8] = if addr == v2_only {
                &good_v2
            } else {
                good_v1.as_bytes()
            };
            fresh.write_all(header).unwrap();
            fresh.write_all(b"next\n").unwrap();
            assert_eq!(read_line(&mut fresh), format!("{s4}\n"), "{what}");
            assert_eq!(read_n(&mut fresh, 5), b"NEXT\n", "{what}");
        }
        let st = server.server.stats();
        assert_eq!(st.rejected_proxy_header, rejected);
        assert_eq!(st.rejected_per_ip + st.rejected_over_limit, 0);
    }
}

per_driver! {
    fn the_per_ip_limit_counts_the_proxied_address_not_the_balancer() {
        let server = proxied_server(
            ProxyMode::V2,
            Config {
                max_connections_per_ip: Some(1),
                ..Config::default()
            },
        );
        let dst: SocketAddr = DST4.parse().unwrap();
        let open = |src: &str| {
            let src: SocketAddr = src.parse().unwrap();
            let mut s = server.connect();
            s.write_all(&v2_header(Some((src, dst)), &[], false))
                .unwrap();
            s
        };
        // Three connections from one real peer (127.0.0.1), two of them for one client.
        let mut first = open("192.0.2.1:1000");
        assert_eq!(read_line(&mut first), "192.0.2.1:1000\n");
        let mut other = open("192.0.2.2:1000");
        assert_eq!(read_line(&mut other), "192.0.2.2:1000\n");
        let mut second = open("192.0.2.1:1001");
        assert!(closed_unanswered(&mut second));
        server.wait_for("the per-IP refusal", |st| st.rejected_per_ip == 1);
        // The client's slot is freed when its connection ends.
        first.shutdown(std::net::Shutdown::Write).unwrap();
        assert!(closed_unanswered(&mut first));
        server.wait_for("the close", |st| st.closed_client == 1);
        let mut third = open("192.0.2.1:1002");
        assert_eq!(read_line(&mut third), "192.0.2.1:1002\n");
        third.write_all(b"ok\n").unwrap();
        assert_eq!(read_n(&mut third, 3), b"OK\n");
        other.write_all(b"x\n").unwrap();
        assert_eq!(read_n(&mut other, 2), b"X\n");
        assert_eq!(server.server.stats().rejected_proxy_header, 0);
    }
}

per_driver! {
    fn the_banner_comes_first_on_a_plain_listener_too_and_without_it_nothing_changes() {
        let banner = Template::parse("{id} {server} saw {client} on {hostname}")
            .unwrap()
            .bind("edge-1", "host-a")
            .unwrap();
        let with = TestServer::start(Config {
            banner: Some(banner),
            ..Config::default()
        });
        let mut s = with.connect();
        let mine = s.local_addr().unwrap();
        s.write_all(b"abc\n").unwrap();
        assert_eq!(
            read_line(&mut s),
            format!("edge-1 {} saw {mine} on host-a\n", with.addr)
        );
        assert_eq!(read_n(&mut s, 4), b"ABC\n");
        let without = TestServer::start(Config::default());
        let mut s = without.connect();
        s.write_all(b"abc\n").unwrap();
        assert_eq!(read_n(&mut s, 4), b"ABC\n");
    }
}

per_driver! {
    fn a_drain_closes_a_connection_still_in_its_header() {
        let mut server = proxied_server(ProxyMode::V1, Config::default());
        let mut s = server.connect();
        s.write_all(b"PROXY TCP4 ").unwrap();
        server.wait_for("the connection", |st| st.active == 1);
        server.begin_stop();
        assert!(closed_unanswered(&mut s));
        server.join().unwrap();
    }
}

per_driver! {
    fn a_listener_with_invalid_proxy_settings_is_refused() {
        let socket = upcase::net::bind_tcp("127.0.0.1:0".parse().unwrap()).unwrap();
        let settings = ListenerSettings::default().with_proxy(ProxySettings {
            mode: ProxyMode::V2,
            header_timeout: Duration::ZERO,
            ..ProxySettings::default()
        });
        let server = upcase::server::Server::new(Config::default());
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let e = rt
            .block_on(server.run(vec![Listener::new(socket, settings)], async {}))
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput);
        assert!(e.to_string().contains("timeout"), "{e}");
    }
}
