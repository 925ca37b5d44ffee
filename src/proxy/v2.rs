//! The v2 header: a 12-byte signature, version and command, family and protocol, a 16-bit
//! length, then that many bytes of addresses and TLVs.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};

use super::crc32c::crc32c;
use super::{Addresses, Header, ProxyError, Version};

/// The signature every v2 header starts with. Its NUL and CRLFs make it fail fast in HTTP,
/// TLS, SMTP and others, and it cannot be mistaken for a v1 line.
pub const SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";

/// The signature's first byte, which tells v2 from v1 (`P`).
pub(super) const SIGNATURE_FIRST: u8 = SIGNATURE[0];

/// The fixed part: signature, version/command, family/protocol, length.
pub const FIXED: usize = 16;

/// The `LOCAL` command: a connection the balancer made for itself (a health check).
pub const COMMAND_LOCAL: u8 = 0x0;
/// The `PROXY` command: a relayed connection, whose endpoints the header carries.
pub const COMMAND_PROXY: u8 = 0x1;

/// The TLV type of a CRC32C of the whole header.
pub const TLV_CRC32C: u8 = 0x03;

/// TCP over IPv4: 4 + 4 address bytes, 2 + 2 port bytes.
pub const TCP4: u8 = 0x11;
/// TCP over IPv6: 16 + 16 address bytes, 2 + 2 port bytes.
pub const TCP6: u8 = 0x21;

/// Whether `buf` (non-empty) agrees with the signature as far as it goes.
pub(super) fn starts_like(buf: &[u8]) -> bool {
    let n = buf.len().min(SIGNATURE.len());
    buf[..n] == SIGNATURE[..n]
}

/// Decodes a v2 header from the start of `buf`, which [`starts_like`] accepted. Each fixed
/// field is checked as soon as it arrives; the addresses and TLVs once all are in.
pub(super) fn parse(buf: &[u8], max: usize) -> Result<Option<(Header, usize)>, ProxyError> {
    if buf.len() <= SIGNATURE.len() {
        return Ok(None);
    }
    let version = buf[12] >> 4;
    if version != 2 {
        return Err(ProxyError::WrongVersion(version));
    }
    let command = buf[12] & 0x0F;
    if command != COMMAND_LOCAL && command != COMMAND_PROXY {
        return Err(ProxyError::UnknownCommand(command));
    }
    let Some(&family) = buf.get(13) else {
        return Ok(None);
    };
    // LOCAL: the spec says the family is ignored, so it is not checked either.
    if command == COMMAND_PROXY && (family >> 4 > 3 || family & 0x0F > 2) {
        return Err(ProxyError::UnsupportedFamily(family));
    }
    let Some(length) = buf.get(14..16) else {
        return Ok(None);
    };
    let total = FIXED + usize::from(u16::from_be_bytes([length[0], length[1]]));
    if total > max {
        return Err(ProxyError::V2TooLong {
            announced: total,
            max,
        });
    }
    let Some(header) = buf.get(..total) else {
        return Ok(None);
    };
    let own = Header {
        version: Version::V2,
        addresses: Addresses::Own,
        local: command == COMMAND_LOCAL,
    };
    if command == COMMAND_LOCAL {
        // Whatever the announced length, it is skipped unread.
        return Ok(Some((own, total)));
    }
    let address_length = match (family >> 4, family & 0x0F) {
        // UNSPEC family or protocol: nothing to read, the spec says to ignore the block.
        (0, _) | (_, 0) => return Ok(Some((own, total))),
        (1, _) => 12,
        (2, _) => 36,
        _ => 216,
    };
    let block = &header[FIXED..];
    if block.len() < address_length {
        return Err(ProxyError::MalformedV2(
            "the length is shorter than the family's addresses",
        ));
    }
    check_tlvs(header, FIXED + address_length)?;
    let addresses = match family {
        TCP4 => {
            let ip = |at: usize| Ipv4Addr::from(<[u8; 4]>::try_from(&block[at..at + 4]).unwrap());
            Addresses::Proxied {
                source: SocketAddr::new(ip(0).into(), port(block, 8)),
                destination: SocketAddr::new(ip(4).into(), port(block, 10)),
            }
        }
        TCP6 => {
            let ip = |at: usize| Ipv6Addr::from(<[u8; 16]>::try_from(&block[at..at + 16]).unwrap());
            Addresses::Proxied {
                source: SocketAddr::new(ip(0).into(), port(block, 32)),
                destination: SocketAddr::new(ip(16).into(), port(block, 34)),
            }
        }
        // UDP and AF_UNIX: valid, but not what a TCP service carries; the spec lets the
        // receiver fall back to the real endpoints.
        _ => Addresses::Own,
    };
    Ok(Some((Header { addresses, ..own }, total)))
}

fn port(block: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([block[at], block[at + 1]])
}

/// Walks the TLVs from `start` to the end of `header`: each must fit, unknown types are
/// skipped, and a CRC32C TLV (at most one) must match the header with its value zeroed.
fn check_tlvs(header: &[u8], start: usize) -> Result<(), ProxyError> {
    let mut at = start;
    let mut crc_at = None;
    while at < header.len() {
        let Some(head) = header.get(at..at + 3) else {
            return Err(ProxyError::MalformedV2("a TLV cut short by the length"));
        };
        let value_length = usize::from(u16::from_be_bytes([head[1], head[2]]));
        let value = at + 3;
        if value + value_length > header.len() {
            return Err(ProxyError::MalformedV2("a TLV longer than the header"));
        }
        if head[0] == TLV_CRC32C {
            if value_length != 4 {
                return Err(ProxyError::MalformedV2("a CRC32C TLV that is not 4 bytes"));
            }
            if crc_at.replace(value).is_some() {
                return Err(ProxyError::MalformedV2("two CRC32C TLVs"));
            }
        }
        at = value + value_length;
    }
    if let Some(at) = crc_at {
        let expected = u32::from_be_bytes(header[at..at + 4].try_into().unwrap());
        let actual = crc32c(&[&header[..at], &[0; 4], &header[at + 4..]]);
        if actual != expected {
            return Err(ProxyError::BadCrc { expected, actual });
        }
    }
    Ok(())
}
