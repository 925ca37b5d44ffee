//! Building PROXY headers: what a balancer sends. For tests, `upcase bench` and clients
//! that stand in for a balancer.

use std::fmt::Write as _;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};

use super::crc32c::crc32c;
use super::v2::{COMMAND_LOCAL, COMMAND_PROXY, FIXED, SIGNATURE, TCP4, TCP6, TLV_CRC32C};

/// The v1 header that says "use the socket's own addresses".
pub const V1_UNKNOWN: &[u8] = b"PROXY UNKNOWN\r\n";

/// Both addresses in one family: as they are if they share one, otherwise both as IPv6
/// (an IPv4 address as `::ffff:a.b.c.d`), since a header carries a single family.
fn same_family(source: SocketAddr, destination: SocketAddr) -> (SocketAddr, SocketAddr) {
    match (source.ip(), destination.ip()) {
        (IpAddr::V4(_), IpAddr::V4(_)) | (IpAddr::V6(_), IpAddr::V6(_)) => (source, destination),
        _ => {
            let six = |a: SocketAddr| match a.ip() {
                IpAddr::V4(ip) => SocketAddr::new(ip.to_ipv6_mapped().into(), a.port()),
                IpAddr::V6(_) => a,
            };
            (six(source), six(destination))
        }
    }
}

/// The v1 line for a relayed TCP connection from `source` to `destination`, CRLF included.
/// IPv6 addresses are written as eight hex groups, the form every receiver parses.
pub fn v1_header(source: SocketAddr, destination: SocketAddr) -> String {
    let (source, destination) = same_family(source, destination);
    let mut line = String::with_capacity(crate::limits::PROXY_V1_MAX_HEADER);
    let family = if source.is_ipv4() { "TCP4" } else { "TCP6" };
    let _ = write!(line, "PROXY {family} ");
    for ip in [source.ip(), destination.ip()] {
        match ip {
            IpAddr::V4(ip) => {
                let _ = write!(line, "{ip} ");
            }
            IpAddr::V6(ip) => {
                let s = ip.segments();
                let _ = write!(
                    line,
                    "{:x}:{:x}:{:x}:{:x}:{:x}:{:x}:{:x}:{:x} ",
                    s[0], s[1], s[2], s[3], s[4], s[5], s[6], s[7]
                );
            }
        }
    }
    let _ = write!(line, "{} {}\r\n", source.port(), destination.port());
    line
}

/// A v2 header. `addresses`: `Some((source, destination))` for a relayed TCP connection
/// (`PROXY` command), `None` for `LOCAL` (a balancer's own health check). `tlvs` are
/// appended as given (type, value); with `crc`, a CRC32C TLV is appended last and filled in.
///
/// # Panics
///
/// If the TLVs make the header longer than the protocol allows (65,551 bytes).
pub fn v2_header(
    addresses: Option<(SocketAddr, SocketAddr)>,
    tlvs: &[(u8, &[u8])],
    crc: bool,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(FIXED + 36 + 7);
    out.extend_from_slice(&SIGNATURE);
    match addresses {
        None => out.extend_from_slice(&[0x20 | COMMAND_LOCAL, 0x00, 0, 0]),
        Some((source, destination)) => {
            let (source, destination) = same_family(source, destination);
            match (source.ip(), destination.ip()) {
                (IpAddr::V4(s), IpAddr::V4(d)) => {
                    out.extend_from_slice(&[0x20 | COMMAND_PROXY, TCP4, 0, 0]);
                    out.extend_from_slice(&s.octets());
                    out.extend_from_slice(&d.octets());
                }
                (s, d) => {
                    let six = |ip: IpAddr| match ip {
                        IpAddr::V6(ip) => ip,
                        IpAddr::V4(ip) => ip.to_ipv6_mapped(),
                    };
                    let (s, d): (Ipv6Addr, Ipv6Addr) = (six(s), six(d));
                    out.extend_from_slice(&[0x20 | COMMAND_PROXY, TCP6, 0, 0]);
                    out.extend_from_slice(&s.octets());
                    out.extend_from_slice(&d.octets());
                }
            }
            out.extend_from_slice(&source.port().to_be_bytes());
            out.extend_from_slice(&destination.port().to_be_bytes());
        }
    }
    for (kind, value) in tlvs {
        let length = u16::try_from(value.len()).expect("a TLV value longer than 65,535 bytes");
        out.push(*kind);
        out.extend_from_slice(&length.to_be_bytes());
        out.extend_from_slice(value);
    }
    let crc_at = crc.then(|| {
        out.extend_from_slice(&[TLV_CRC32C, 0, 4, 0, 0, 0, 0]);
        out.len() - 4
    });
    let length = u16::try_from(out.len() - FIXED).expect("a PROXY v2 header over 65,551 bytes");
    out[14..16].copy_from_slice(&length.to_be_bytes());
    if let Some(at) = crc_at {
        let sum = crc32c(&[&out]);
        out[at..at + 4].copy_from_slice(&sum.to_be_bytes());
    }
    out
}
