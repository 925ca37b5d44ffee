//! The v1 header: one US-ASCII line, `PROXY TCP4 <src> <dst> <sport> <dport>\r\n`.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use super::{Addresses, Header, ProxyError, Version};
use crate::limits::PROXY_V1_MAX_HEADER;

/// Every v1 header starts with this.
pub(super) const PREFIX: &[u8] = b"PROXY ";

/// Whether `buf` (non-empty) agrees with the v1 prefix as far as it goes.
pub(super) fn starts_like(buf: &[u8]) -> bool {
    let n = buf.len().min(PREFIX.len());
    buf[..n] == PREFIX[..n]
}

/// Decodes a v1 line from the start of `buf`, which [`starts_like`] accepted. The line is
/// only parsed once its CRLF is in; before that, a lone LF, a CR followed by anything but LF,
/// or 107 bytes without CRLF fail at once.
pub(super) fn parse(buf: &[u8]) -> Result<Option<(Header, usize)>, ProxyError> {
    let window = &buf[..buf.len().min(PROXY_V1_MAX_HEADER)];
    for (i, &byte) in window.iter().enumerate() {
        match byte {
            b'\n' => return Err(ProxyError::LoneLf),
            b'\r' => {
                let length = i + 2;
                if length > PROXY_V1_MAX_HEADER {
                    return Err(ProxyError::V1TooLong);
                }
                return match buf.get(i + 1) {
                    Some(b'\n') => Ok(Some((line(&buf[..i])?, length))),
                    Some(_) => Err(ProxyError::LoneCr),
                    None => Ok(None),
                };
            }
            _ => {}
        }
    }
    if buf.len() >= PROXY_V1_MAX_HEADER {
        Err(ProxyError::V1TooLong)
    } else {
        Ok(None)
    }
}

/// Parses the line without its CRLF.
fn line(line: &[u8]) -> Result<Header, ProxyError> {
    let line = std::str::from_utf8(line)
        .ok()
        .filter(|s| s.is_ascii())
        .ok_or(ProxyError::MalformedV1("not US-ASCII"))?;
    let mut fields = line.split(' ');
    // Consumed outside the assertion: `debug_assert_eq!` does not evaluate its arguments in
    // a release build, which then took "PROXY" for the protocol.
    let signature = fields.next();
    debug_assert_eq!(signature, Some("PROXY"));
    let family = match fields.next() {
        Some("UNKNOWN") => {
            // The spec: the receiver must ignore anything before the CRLF.
            return Ok(Header {
                version: Version::V1,
                addresses: Addresses::Own,
                local: false,
            });
        }
        Some("TCP4") => Family::V4,
        Some("TCP6") => Family::V6,
        Some("") | None => return Err(ProxyError::MalformedV1("no protocol after PROXY")),
        Some(_) => return Err(ProxyError::UnsupportedProtocol),
    };
    let mut next = |what: &'static str| match fields.next() {
        Some("") | None => Err(ProxyError::MalformedV1(what)),
        Some(field) => Ok(field),
    };
    let source = family.address(next("missing source address")?)?;
    let destination = family.address(next("missing destination address")?)?;
    let source_port = port(next("missing source port")?)?;
    let destination_port = port(next("missing destination port")?)?;
    if fields.next().is_some() {
        return Err(ProxyError::MalformedV1("more than six fields"));
    }
    Ok(Header {
        version: Version::V1,
        addresses: Addresses::Proxied {
            source: SocketAddr::new(source, source_port),
            destination: SocketAddr::new(destination, destination_port),
        },
        local: false,
    })
}

#[derive(Clone, Copy)]
enum Family {
    V4,
    V6,
}

impl Family {
    /// std's parsers match the spec's canonical forms: IPv4 as four decimal numbers without
    /// leading zeros, IPv6 as hex groups with at most one `::`.
    fn address(self, field: &str) -> Result<IpAddr, ProxyError> {
        match self {
            Family::V4 => field
                .parse::<Ipv4Addr>()
                .map(IpAddr::V4)
                .map_err(|_| ProxyError::MalformedV1("not an IPv4 address")),
            Family::V6 => field
                .parse::<Ipv6Addr>()
                .map(IpAddr::V6)
                .map_err(|_| ProxyError::MalformedV1("not an IPv6 address")),
        }
    }
}

/// A port: decimal digits only, no leading zero (the spec forbids them), 0..=65535.
fn port(field: &str) -> Result<u16, ProxyError> {
    let bad = ProxyError::MalformedV1("not a port (0-65535, no leading zeros)");
    if field.len() > 5
        || !field.bytes().all(|b| b.is_ascii_digit())
        || (field.len() > 1 && field.starts_with('0'))
    {
        return Err(bad);
    }
    field.parse().map_err(|_| bad)
}
