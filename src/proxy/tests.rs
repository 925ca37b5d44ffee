use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};

use proptest::prelude::*;

use super::*;

const DATA: &[u8] = b"hello, world\n";

fn settings(mode: ProxyMode) -> ProxySettings {
    ProxySettings {
        mode,
        ..ProxySettings::default()
    }
}

fn decoder(mode: ProxyMode) -> Decoder {
    settings(mode).decoder().unwrap()
}

fn v4(a: [u8; 4], port: u16) -> SocketAddr {
    SocketAddr::new(Ipv4Addr::from(a).into(), port)
}

fn v6(s: [u16; 8], port: u16) -> SocketAddr {
    SocketAddr::new(Ipv6Addr::from(s).into(), port)
}

fn proxied(version: Version, source: SocketAddr, destination: SocketAddr) -> Header {
    Header {
        version,
        addresses: Addresses::Proxied {
            source,
            destination,
        },
        local: false,
    }
}

fn own(version: Version, local: bool) -> Header {
    Header {
        version,
        addresses: Addresses::Own,
        local,
    }
}

/// What feeding `pieces` in order comes to: the header and the bytes after it (from the
/// piece that completed it and every later piece), or the first error, or `None` if the
/// header never completed.
fn run(mode: ProxyMode, pieces: &[&[u8]]) -> Result<Option<(Header, Vec<u8>)>, ProxyError> {
    let mut decoder = decoder(mode);
    let mut done: Option<(Header, Vec<u8>)> = None;
    for piece in pieces {
        match &mut done {
            Some((_, rest)) => rest.extend_from_slice(piece),
            None => match decoder.feed(piece)? {
                Progress::NeedMore => {}
                Progress::Done { header, consumed } => {
                    assert!(consumed <= piece.len());
                    done = Some((header, piece[consumed..].to_vec()));
                }
            },
        }
    }
    Ok(done)
}

/// The header decodes to `expected`, and the data after it comes out whole, whether the
/// header and data arrive in one read, in two split at every byte, or byte by byte.
fn assert_every_split(mode: ProxyMode, header: &[u8], expected: Header) {
    let wire = [header, DATA].concat();
    let want = Some((expected, DATA.to_vec()));
    assert_eq!(run(mode, &[&wire]), Ok(want.clone()), "one read");
    for at in 0..=wire.len() {
        let (first, second) = wire.split_at(at);
        assert_eq!(
            run(mode, &[first, second]),
            Ok(want.clone()),
            "split at {at}"
        );
        // The first piece alone: incomplete until it holds the whole header.
        let alone = run(mode, &[first]);
        if at < header.len() {
            assert_eq!(alone, Ok(None), "prefix of {at} bytes");
        } else {
            assert_eq!(alone, Ok(Some((expected, wire[header.len()..at].to_vec()))));
        }
    }
    let bytes: Vec<&[u8]> = wire.chunks(1).collect();
    assert_eq!(run(mode, &bytes), Ok(want), "byte by byte");
    // Consumed is counted from the piece that completed the header.
    let mut d = decoder(mode);
    for &b in &header[..header.len() - 1] {
        assert_eq!(d.feed(&[b]), Ok(Progress::NeedMore));
    }
    assert_eq!(
        d.feed(&wire[header.len() - 1..]),
        Ok(Progress::Done {
            header: expected,
            consumed: 1
        })
    );
}

/// `wire` is refused with `error`, in one read and byte by byte.
fn assert_rejected(mode: ProxyMode, wire: &[u8], error: ProxyError) {
    assert_eq!(run(mode, &[wire]), Err(error), "one read");
    let bytes: Vec<&[u8]> = wire.chunks(1).collect();
    assert_eq!(run(mode, &bytes), Err(error), "byte by byte");
}

// --- v1 ---

#[test]
fn v1_tcp4_at_every_split() {
    let header = b"PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n";
    let want = proxied(
        Version::V1,
        v4([192, 168, 0, 1], 56324),
        v4([192, 168, 0, 11], 443),
    );
    assert_every_split(ProxyMode::V1, header, want);
    assert_every_split(ProxyMode::Any, header, want);
}

#[test]
fn v1_tcp6_at_every_split() {
    // The spec's longest TCP6 line: 104 bytes.
    let full = "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff";
    let header = format!("PROXY TCP6 {full} {full} 65535 65535\r\n");
    assert_eq!(header.len(), 104);
    let all = v6([0xffff; 8], 65535);
    assert_every_split(
        ProxyMode::V1,
        header.as_bytes(),
        proxied(Version::V1, all, all),
    );
    let short = b"PROXY TCP6 2001:db8::1 ::1 0 2277\r\n";
    let want = proxied(
        Version::V1,
        v6([0x2001, 0xdb8, 0, 0, 0, 0, 0, 1], 0),
        v6([0, 0, 0, 0, 0, 0, 0, 1], 2277),
    );
    assert_every_split(ProxyMode::Any, short, want);
}

#[test]
fn v1_unknown_at_every_split_uses_own_addresses() {
    assert_every_split(ProxyMode::V1, V1_UNKNOWN, own(Version::V1, false));
    // The worst case: 107 bytes, whose fields the receiver must ignore.
    let full = "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff";
    let long = format!("PROXY UNKNOWN {full} {full} 65535 65535\r\n");
    assert_eq!(long.len(), crate::limits::PROXY_V1_MAX_HEADER);
    assert_every_split(ProxyMode::Any, long.as_bytes(), own(Version::V1, false));
    // Anything before the CRLF is ignored, even what would not parse.
    assert_every_split(
        ProxyMode::V1,
        b"PROXY UNKNOWN x  y\r\n",
        own(Version::V1, false),
    );
}

#[test]
fn v1_line_over_107_bytes_is_oversized() {
    let long = format!("PROXY UNKNOWN {}\r\n", "f".repeat(92));
    assert_eq!(long.len(), 108);
    assert_rejected(ProxyMode::V1, long.as_bytes(), ProxyError::V1TooLong);
    // No CRLF at all: refused once 107 bytes are in, not later.
    let endless = [b"PROXY TCP4 ".as_slice(), &[b'1'; 200]].concat();
    assert_rejected(ProxyMode::V1, &endless, ProxyError::V1TooLong);
    assert_eq!(
        run(ProxyMode::V1, &[&endless[..107]]),
        Err(ProxyError::V1TooLong)
    );
    assert_eq!(run(ProxyMode::V1, &[&endless[..106]]), Ok(None));
}

#[test]
fn v1_needs_crlf() {
    let lf = b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\nhello";
    assert_rejected(ProxyMode::V1, lf, ProxyError::LoneLf);
    let cr = b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\rhello";
    assert_rejected(ProxyMode::V1, cr, ProxyError::LoneCr);
    assert_rejected(ProxyMode::Any, b"PROXY UNKNOWN\n", ProxyError::LoneLf);
    // A line ending in CR waits for the next byte rather than guessing.
    assert_eq!(run(ProxyMode::V1, &[b"PROXY UNKNOWN\r"]), Ok(None));
}

#[test]
fn v1_malformed_lines_are_refused() {
    let cases: &[&[u8]] = &[
        b"PROXY \r\n",
        b"PROXY TCP4\r\n",
        b"PROXY  TCP4 1.2.3.4 5.6.7.8 1 2\r\n",
        b"PROXY TCP4 1.2.3.4  5.6.7.8 1 2\r\n",
        b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2 \r\n",
        b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n",
        b"PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n",
        b"PROXY TCP4 1.2.3.4 5.6.7.8\r\n",
        b"PROXY TCP4 01.2.3.4 5.6.7.8 1 2\r\n",
        b"PROXY TCP4 1.2.3.256 5.6.7.8 1 2\r\n",
        b"PROXY TCP4 1.2.3.4 5.6.7.8 01 2\r\n",
        b"PROXY TCP4 1.2.3.4 5.6.7.8 1 65536\r\n",
        b"PROXY TCP4 1.2.3.4 5.6.7.8 +1 2\r\n",
        b"PROXY TCP4 1.2.3.4 5.6.7.8 -1 2\r\n",
        b"PROXY TCP4 ::1 ::1 1 2\r\n",
        b"PROXY TCP6 1.2.3.4 5.6.7.8 1 2\r\n",
        b"PROXY TCP6 ::1::2 ::1 1 2\r\n",
        b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\xc3\xa9\r\n",
        b"PROXY TCP4 1.2.3.4\t5.6.7.8 1 2\r\n",
    ];
    for case in cases {
        let got = run(ProxyMode::V1, &[case]);
        assert!(
            matches!(got, Err(ProxyError::MalformedV1(_))),
            "{:?}: {got:?}",
            String::from_utf8_lossy(case)
        );
    }
}

#[test]
fn v1_unknown_protocol_is_refused() {
    for case in [
        b"PROXY UDP4 1.2.3.4 5.6.7.8 1 2\r\n".as_slice(),
        b"PROXY tcp4 1.2.3.4 5.6.7.8 1 2\r\n",
        b"PROXY UNKNOWNX\r\n",
    ] {
        assert_rejected(ProxyMode::V1, case, ProxyError::UnsupportedProtocol);
    }
}

// --- presence and version ---

#[test]
fn no_header_is_refused_at_the_first_byte_that_shows_it() {
    let no = |expected| ProxyError::NoHeader { expected };
    assert_rejected(ProxyMode::V1, b"hello\n", no("v1"));
    assert_rejected(ProxyMode::V2, b"hello\n", no("v2"));
    assert_rejected(ProxyMode::Any, b"hello\n", no("v1 or v2"));
    assert_eq!(run(ProxyMode::Any, &[b"h"]), Err(no("v1 or v2")));
    // Looks like PROXY for a while, then is not.
    assert_rejected(ProxyMode::V1, b"PROXIMA\r\n", no("v1"));
    assert_rejected(ProxyMode::Any, b"\r\n\r\nGET", no("v1 or v2"));
    assert_rejected(ProxyMode::V1, b"GET / HTTP/1.1\r\n\r\n", no("v1"));
    // A lower-case prefix is not the protocol's.
    assert_rejected(ProxyMode::V1, b"proxy TCP4", no("v1"));
}

#[test]
fn the_other_version_is_refused() {
    let v2 = v2_header(Some((v4([1, 2, 3, 4], 1), v4([5, 6, 7, 8], 2))), &[], false);
    assert_rejected(
        ProxyMode::V1,
        &v2,
        ProxyError::VersionNotAccepted {
            found: Version::V2,
            accepted: ProxyMode::V1,
        },
    );
    assert_rejected(
        ProxyMode::V2,
        V1_UNKNOWN,
        ProxyError::VersionNotAccepted {
            found: Version::V1,
            accepted: ProxyMode::V2,
        },
    );
}

#[test]
fn the_verdict_on_the_other_version_waits_for_its_whole_signature() {
    // However the reads split it, the same bytes get the same error.
    assert_eq!(run(ProxyMode::V2, &[b"PROX"]), Ok(None));
    assert_eq!(
        run(ProxyMode::V2, &[b"PROXY "]),
        Err(ProxyError::VersionNotAccepted {
            found: Version::V1,
            accepted: ProxyMode::V2
        })
    );
    assert_eq!(
        run(ProxyMode::V2, &[b"P", b"\0"]),
        Err(ProxyError::NoHeader { expected: "v2" })
    );
    assert_eq!(run(ProxyMode::V1, &[&v2::SIGNATURE[..11]]), Ok(None));
    assert_eq!(
        run(ProxyMode::V1, &[b"\r\n\r\nGET"]),
        Err(ProxyError::NoHeader { expected: "v1" })
    );
}

#[test]
fn off_has_no_decoder() {
    assert!(settings(ProxyMode::Off).decoder().is_none());
}

// --- v2 ---

#[test]
fn v2_tcp4_at_every_split() {
    let (s, d) = (v4([10, 0, 0, 1], 40000), v4([10, 0, 0, 2], 2277));
    let header = v2_header(Some((s, d)), &[], false);
    assert_eq!(header.len(), 16 + 12);
    assert_every_split(ProxyMode::V2, &header, proxied(Version::V2, s, d));
    assert_every_split(ProxyMode::Any, &header, proxied(Version::V2, s, d));
}

#[test]
fn v2_tcp6_with_tlvs_at_every_split() {
    let (s, d) = (
        v6([0x2001, 0xdb8, 0, 0, 0, 0, 0, 7], 1),
        v6([0xfe80, 0, 0, 0, 0, 0, 0, 1], 65535),
    );
    let tlvs: &[(u8, &[u8])] = &[
        (0x01, b"h2"),              // ALPN
        (0x02, b"example.com"),     // authority
        (0x04, &[]),                // NOOP, empty
        (0x05, &[7; 128]),          // unique ID, the largest
        (0xE3, b"custom, unknown"), // application-specific: skipped
    ];
    let header = v2_header(Some((s, d)), tlvs, true);
    assert_every_split(ProxyMode::V2, &header, proxied(Version::V2, s, d));
    let without_crc = v2_header(Some((s, d)), tlvs, false);
    assert_every_split(ProxyMode::Any, &without_crc, proxied(Version::V2, s, d));
}

#[test]
fn v2_local_is_served_with_own_addresses_and_its_length_skipped() {
    let bare = v2_header(None, &[], false);
    assert_eq!(bare.len(), 16);
    assert_every_split(ProxyMode::V2, &bare, own(Version::V2, true));
    // A LOCAL header with an address block and junk after it: all skipped, unread, and
    // the family byte is ignored even when it is not a valid one.
    let mut junk = bare.clone();
    junk[13] = 0xFF;
    junk.extend_from_slice(&[0xAB; 40]);
    junk[14..16].copy_from_slice(&40u16.to_be_bytes());
    assert_every_split(ProxyMode::Any, &junk, own(Version::V2, true));
}

#[test]
fn v2_families_not_carried_fall_back_to_own_addresses() {
    let tcp4 = v2_header(Some((v4([1, 2, 3, 4], 1), v4([5, 6, 7, 8], 2))), &[], false);
    for family in [0x00, 0x10, 0x12, 0x20] {
        let mut h = tcp4.clone();
        h[13] = family;
        assert_every_split(ProxyMode::V2, &h, own(Version::V2, false));
    }
    let tcp6 = v2_header(Some((v6([1; 8], 1), v6([2; 8], 2))), &[], false);
    let mut udp6 = tcp6.clone();
    udp6[13] = 0x22;
    assert_every_split(ProxyMode::V2, &udp6, own(Version::V2, false));
    // AF_UNIX: 216 bytes of paths.
    let mut unix = v2_header(None, &[], false);
    unix[12] = 0x21;
    unix[13] = 0x31;
    unix[14..16].copy_from_slice(&216u16.to_be_bytes());
    unix.extend_from_slice(&[0; 216]);
    assert_every_split(ProxyMode::V2, &unix, own(Version::V2, false));
}

#[test]
fn v2_wrong_version_unknown_command_and_family_are_refused() {
    let good = v2_header(Some((v4([1, 2, 3, 4], 1), v4([5, 6, 7, 8], 2))), &[], false);
    let with = |at: usize, byte: u8| {
        let mut h = good.clone();
        h[at] = byte;
        h
    };
    assert_rejected(ProxyMode::V2, &with(12, 0x11), ProxyError::WrongVersion(1));
    assert_rejected(ProxyMode::Any, &with(12, 0x31), ProxyError::WrongVersion(3));
    assert_rejected(
        ProxyMode::V2,
        &with(12, 0x22),
        ProxyError::UnknownCommand(2),
    );
    assert_rejected(
        ProxyMode::V2,
        &with(12, 0x2F),
        ProxyError::UnknownCommand(0xF),
    );
    assert_rejected(
        ProxyMode::V2,
        &with(13, 0x41),
        ProxyError::UnsupportedFamily(0x41),
    );
    assert_rejected(
        ProxyMode::V2,
        &with(13, 0x13),
        ProxyError::UnsupportedFamily(0x13),
    );
    // Refused as soon as the offending byte arrives.
    assert_eq!(
        run(ProxyMode::V2, &[&with(12, 0x11)[..13]]),
        Err(ProxyError::WrongVersion(1))
    );
}

#[test]
fn v2_over_the_cap_is_refused_from_its_length_field() {
    let mut h = v2_header(None, &[], false);
    h[12] = 0x21;
    h[13] = 0x11;
    h[14..16].copy_from_slice(&5000u16.to_be_bytes());
    let error = ProxyError::V2TooLong {
        announced: 5016,
        max: crate::limits::PROXY_V2_MAX_HEADER,
    };
    // Only the 16 fixed bytes: refused before any of the 5000 arrive.
    assert_rejected(ProxyMode::V2, &h, error);
    // LOCAL is subject to the cap too: skipping is not unbounded.
    h[12] = 0x20;
    assert_rejected(ProxyMode::Any, &h, error);
    // At the cap exactly: accepted.
    let mut at_cap = v2_header(None, &[], false);
    let len = crate::limits::PROXY_V2_MAX_HEADER - 16;
    at_cap[14..16].copy_from_slice(&(len as u16).to_be_bytes());
    at_cap.resize(crate::limits::PROXY_V2_MAX_HEADER, 0);
    assert_eq!(
        run(ProxyMode::V2, &[&at_cap]),
        Ok(Some((own(Version::V2, true), vec![])))
    );
}

#[test]
fn v2_bad_crc_is_refused() {
    let (s, d) = (v4([1, 2, 3, 4], 1), v4([5, 6, 7, 8], 2));
    let mut h = v2_header(Some((s, d)), &[(0x02, b"example.com")], true);
    // The address's last byte changes after the sum was taken.
    h[16 + 7] ^= 1;
    let got = run(ProxyMode::V2, &[&h]);
    assert!(matches!(got, Err(ProxyError::BadCrc { .. })), "{got:?}");
    let Err(error) = got else { unreachable!() };
    assert_rejected(ProxyMode::V2, &h, error);
    // The sum itself altered.
    let mut h = v2_header(Some((s, d)), &[], true);
    let last = h.len() - 1;
    h[last] ^= 0x80;
    assert!(matches!(
        run(ProxyMode::Any, &[&h]),
        Err(ProxyError::BadCrc { .. })
    ));
}

#[test]
fn v2_tlvs_and_addresses_must_fit_the_length() {
    let (s, d) = (v4([1, 2, 3, 4], 1), v4([5, 6, 7, 8], 2));
    let base = v2_header(Some((s, d)), &[], false);
    let with_tail = |tail: &[u8]| {
        let mut h = base.clone();
        h.extend_from_slice(tail);
        let len = (h.len() - 16) as u16;
        h[14..16].copy_from_slice(&len.to_be_bytes());
        h
    };
    for tail in [
        &[0x04][..],                                       // a TLV of one byte
        &[0x04, 0x00],                                     // two
        &[0x04, 0x00, 0x05, 1, 2],                         // value longer than what is left
        &[0x03, 0x00, 0x02, 0, 0],                         // CRC32C of 2 bytes
        &[0x03, 0, 4, 0, 0, 0, 0, 0x03, 0, 4, 0, 0, 0, 0], // two CRC32Cs
    ] {
        let got = run(ProxyMode::V2, &[&with_tail(tail)]);
        assert!(
            matches!(got, Err(ProxyError::MalformedV2(_))),
            "{tail:?}: {got:?}"
        );
    }
    // A TCP4 header whose length leaves no room for the addresses.
    let mut short = base[..16 + 4].to_vec();
    short[14..16].copy_from_slice(&4u16.to_be_bytes());
    assert!(matches!(
        run(ProxyMode::V2, &[&short]),
        Err(ProxyError::MalformedV2(_))
    ));
}

#[test]
fn decoder_says_how_much_it_holds_and_what_end_of_input_means() {
    let mut d = decoder(ProxyMode::V1);
    assert_eq!(d.feed(b"PROXY TC"), Ok(Progress::NeedMore));
    assert_eq!(d.buffered(), 8);
    assert_eq!(d.truncated(), ProxyError::Truncated { received: 8 });
}

#[test]
fn settings_are_validated() {
    assert_eq!(ProxySettings::default().validate(), Ok(()));
    let zero = ProxySettings {
        header_timeout: std::time::Duration::ZERO,
        ..ProxySettings::default()
    };
    assert_eq!(zero.validate(), Err(SettingsError::ZeroTimeout));
    for cap in [0, 231, 65_552] {
        let s = ProxySettings {
            max_v2_header: cap,
            ..ProxySettings::default()
        };
        assert_eq!(s.validate(), Err(SettingsError::V2Cap(cap)));
    }
    for cap in [232, 65_551] {
        let s = ProxySettings {
            max_v2_header: cap,
            ..ProxySettings::default()
        };
        assert_eq!(s.validate(), Ok(()));
    }
}

#[test]
fn crc32c_matches_the_known_vectors() {
    assert_eq!(crc32c(&[b"123456789"]), 0xE306_9283);
    assert_eq!(crc32c(&[&[0u8; 32]]), 0x8A91_36AA); // RFC 3720, B.4
    assert_eq!(crc32c(&[&[0xFFu8; 32]]), 0x62A8_AB43);
    assert_eq!(crc32c(&[b"1234", b"56789"]), crc32c(&[b"123456789"]));
}

#[test]
fn encoders_write_what_the_spec_shows() {
    assert_eq!(
        v1_header(v4([192, 168, 0, 1], 56324), v4([192, 168, 0, 11], 443)),
        "PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n"
    );
    // Mixed families become IPv6.
    assert_eq!(
        v1_header(v4([1, 2, 3, 4], 1), v6([0, 0, 0, 0, 0, 0, 0, 1], 2)),
        "PROXY TCP6 0:0:0:0:0:ffff:102:304 0:0:0:0:0:0:0:1 1 2\r\n"
    );
    let h = v2_header(
        Some((v4([172, 19, 0, 1], 42578), v4([172, 19, 0, 3], 80))),
        &[],
        false,
    );
    assert_eq!(
        h,
        b"\r\n\r\n\0\r\nQUIT\n\x21\x11\x00\x0c\xac\x13\x00\x01\xac\x13\x00\x03\xa6\x52\x00\x50"
    );
}

#[test]
fn errors_have_stable_reasons() {
    assert_eq!(ProxyError::LoneLf.reason(), "lone_lf");
    assert_eq!(ProxyError::V1TooLong.reason(), "oversized");
    assert_eq!(
        ProxyError::TimedOut(std::time::Duration::from_secs(5)).to_string(),
        "no complete PROXY header within 5s"
    );
}

fn any_addr() -> impl Strategy<Value = SocketAddr> {
    prop_oneof![
        (any::<[u8; 4]>(), any::<u16>()).prop_map(|(a, p)| v4(a, p)),
        (any::<[u16; 8]>(), any::<u16>()).prop_map(|(s, p)| v6(s, p)),
    ]
}

fn any_mode() -> impl Strategy<Value = ProxyMode> {
    prop_oneof![
        Just(ProxyMode::V1),
        Just(ProxyMode::V2),
        Just(ProxyMode::Any)
    ]
}

proptest! {
    #[test]
    fn encoded_headers_round_trip_at_any_split(
        s in any_addr(),
        d in any_addr(),
        v2 in any::<bool>(),
        crc in any::<bool>(),
        tail in proptest::collection::vec(any::<u8>(), 0..64),
        at in any::<prop::sample::Index>(),
    ) {
        let (header, version) = if v2 {
            (v2_header(Some((s, d)), &[(0x05, b"id")], crc), Version::V2)
        } else {
            (v1_header(s, d).into_bytes(), Version::V1)
        };
        // The decoded addresses are the encoder's, after mapping a mixed pair to IPv6.
        let (s, d) = if s.is_ipv4() == d.is_ipv4() {
            (s, d)
        } else {
            let six = |a: SocketAddr| match a.ip() {
                std::net::IpAddr::V4(ip) => SocketAddr::new(ip.to_ipv6_mapped().into(), a.port()),
                _ => a,
            };
            (six(s), six(d))
        };
        let wire = [header.as_slice(), &tail].concat();
        let (first, second) = wire.split_at(at.index(wire.len() + 1));
        prop_assert_eq!(
            run(ProxyMode::Any, &[first, second]),
            Ok(Some((proxied(version, s, d), tail)))
        );
    }

    #[test]
    fn any_bytes_decode_the_same_however_split(
        mode in any_mode(),
        prefix in prop_oneof![
            Just(b"PROXY ".to_vec()),
            Just(v2::SIGNATURE.to_vec()),
            Just(Vec::new()),
        ],
        body in proptest::collection::vec(any::<u8>(), 0..300),
        at in any::<prop::sample::Index>(),
    ) {
        let wire = [prefix.as_slice(), &body].concat();
        let whole = run(mode, &[&wire]);
        let (first, second) = wire.split_at(at.index(wire.len() + 1));
        prop_assert_eq!(run(mode, &[first, second]), whole.clone());
        let bytes: Vec<&[u8]> = wire.chunks(1).collect();
        prop_assert_eq!(run(mode, &bytes), whole);
    }
}

// --- read_header, on real sockets ---

mod on_sockets {
    use std::time::Duration;

    use tokio::io::AsyncWriteExt;
    use tokio::net::{TcpListener, TcpStream};

    use super::*;

    /// Long enough never to fire when the header is sent.
    const PATIENT: Duration = Duration::from_secs(10);

    async fn pair() -> (TcpStream, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (server, _) = listener.accept().await.unwrap();
        client.set_nodelay(true).unwrap();
        (client, server)
    }

    #[tokio::test]
    async fn a_header_in_two_segments_and_the_data_after_it() {
        let (mut client, mut server) = pair().await;
        let (s, d) = (v4([203, 0, 113, 9], 5555), v4([10, 0, 0, 1], 2277));
        let header = v1_header(s, d);
        let reader = tokio::spawn(async move {
            let mut buf = vec![0u8; 64 * 1024];
            let (h, rest) =
                read_header(&mut server, decoder(ProxyMode::Any), PATIENT, &mut buf).await?;
            Ok::<_, HeaderError>((h, buf[rest].to_vec()))
        });
        let (first, second) = header.as_bytes().split_at(20);
        client.write_all(first).await.unwrap();
        client.flush().await.unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
        client
            .write_all(&[second, b"first data\n"].concat())
            .await
            .unwrap();
        let (h, rest) = reader.await.unwrap().unwrap();
        assert_eq!(h, proxied(Version::V1, s, d));
        assert_eq!(h.client_or(v4([127, 0, 0, 1], 1)), s);
        assert_eq!(rest, b"first data\n");
    }

    #[tokio::test]
    async fn a_silent_client_times_out() {
        let (_client, mut server) = pair().await;
        let mut buf = [0u8; 512];
        let timeout = Duration::from_millis(50);
        let got = read_header(&mut server, decoder(ProxyMode::V2), timeout, &mut buf).await;
        assert!(
            matches!(got, Err(HeaderError::Proxy(ProxyError::TimedOut(t))) if t == timeout),
            "{got:?}"
        );
    }

    #[tokio::test]
    async fn a_client_that_closes_mid_header_is_truncated() {
        let (mut client, mut server) = pair().await;
        client
            .write_all(&v2_header(None, &[], false)[..10])
            .await
            .unwrap();
        client.shutdown().await.unwrap();
        let mut buf = [0u8; 512];
        let got = read_header(&mut server, decoder(ProxyMode::V2), PATIENT, &mut buf).await;
        assert!(
            matches!(
                got,
                Err(HeaderError::Proxy(ProxyError::Truncated { received: 10 }))
            ),
            "{got:?}"
        );
    }

    #[tokio::test]
    async fn a_client_without_a_header_is_refused_at_once() {
        let (mut client, mut server) = pair().await;
        client.write_all(b"hello\n").await.unwrap();
        let mut buf = [0u8; 512];
        let got = read_header(&mut server, decoder(ProxyMode::V1), PATIENT, &mut buf).await;
        assert!(
            matches!(got, Err(HeaderError::Proxy(ProxyError::NoHeader { .. }))),
            "{got:?}"
        );
    }
}

#[test]
fn modes_parse_as_the_flag_spells_them() {
    use clap::ValueEnum;
    for mode in [ProxyMode::Off, ProxyMode::V1, ProxyMode::V2, ProxyMode::Any] {
        assert_eq!(ProxyMode::from_str(&mode.to_string(), false), Ok(mode));
    }
    assert!(ProxyMode::from_str("v3", false).is_err());
    assert_eq!(ProxyMode::default(), ProxyMode::Off);
}
