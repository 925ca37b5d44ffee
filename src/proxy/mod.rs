//! PROXY protocol v1 and v2 (HAProxy's `doc/proxy-protocol.txt`): a sans-I/O header decoder.
//!
//! A balancer that speaks the PROXY protocol starts every connection with one header that
//! names the real client. This module turns bytes into that header and does no I/O: the
//! connection driver reads, hands each read to [`Decoder::feed`], and gets back
//! [`Progress::NeedMore`], [`Progress::Done`] (the header, and how many bytes of *that* read it
//! took: the rest is the client's data, to be served untouched), or a typed [`ProxyError`].
//! A header split across reads at any byte decodes the same as one read.
//!
//! What is accepted is configuration, never a guess ([`ProxyMode`]): with `v1`, `v2` or `any`
//! a connection that does not start with such a header is rejected; `any` tells the two apart
//! by their first byte. v2 `LOCAL` (health checks), v1 `UNKNOWN` and the v2 families this
//! TCP service does not carry decode to a header without addresses ([`Addresses::Own`]): the
//! connection is then served with the socket's own addresses.
//!
//! [`read_header`] is the decoder wrapped around an `AsyncRead`, with the header timeout, for
//! a driver that reads that way. [`encode`] builds headers, for tests, `upcase bench` and
//! other clients.

mod crc32c;
pub mod encode;
mod io;
mod v1;
mod v2;

#[cfg(test)]
mod tests;

use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use crate::limits::{
    DEFAULT_PROXY_HEADER_TIMEOUT, PROXY_V1_MAX_HEADER, PROXY_V2_MAX_HEADER,
    PROXY_V2_MIN_HEADER_CAP, PROXY_V2_PROTOCOL_MAX,
};

pub use crc32c::crc32c;
pub use encode::{v1_header, v2_header, V1_UNKNOWN};
pub use io::{read_header, HeaderError};

/// Which PROXY protocol header a listener requires before the stream (`--proxy-protocol`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum ProxyMode {
    /// No header: the stream starts at once (the default).
    #[default]
    Off,
    /// Every connection starts with a v1 (text) header.
    V1,
    /// Every connection starts with a v2 (binary) header.
    V2,
    /// Every connection starts with a v1 or a v2 header, told apart by the signature.
    Any,
}

impl fmt::Display for ProxyMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ProxyMode::Off => "off",
            ProxyMode::V1 => "v1",
            ProxyMode::V2 => "v2",
            ProxyMode::Any => "any",
        })
    }
}

/// The PROXY protocol version of a header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Version {
    /// The human-readable line, `PROXY TCP4 …\r\n`.
    V1,
    /// The binary header that starts with a 12-byte signature.
    V2,
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Version::V1 => "v1",
            Version::V2 => "v2",
        })
    }
}

/// The addresses a header carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Addresses {
    /// The balancer relayed a TCP connection: these are the real client and the address it
    /// connected to. v1 `TCP4`/`TCP6`, v2 `PROXY` with family `0x11`/`0x21`.
    Proxied {
        /// The real client.
        source: SocketAddr,
        /// The address the client connected to (the balancer's front end).
        destination: SocketAddr,
    },
    /// Use the socket's own addresses. v2 `LOCAL` (the balancer's own health check), v1
    /// `UNKNOWN`, and a v2 `PROXY` header whose family this TCP service does not carry
    /// (`UNSPEC`, UDP `0x12`/`0x22`, `AF_UNIX` `0x31`/`0x32`): the spec lets a receiver fall
    /// back to the real endpoints for those.
    Own,
}

/// A decoded PROXY protocol header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Header {
    /// Which version it was.
    pub version: Version,
    /// What it says about the connection.
    pub addresses: Addresses,
    /// Whether it was a v2 `LOCAL` command (a connection the balancer made for itself).
    pub local: bool,
}

impl Header {
    /// The real client's address, if the header carries one.
    pub fn source(&self) -> Option<SocketAddr> {
        match self.addresses {
            Addresses::Proxied { source, .. } => Some(source),
            Addresses::Own => None,
        }
    }

    /// The client's address for everything downstream (per-IP limit, log span, banner,
    /// metrics): the header's source, or `peer` (the socket's) when it carries none.
    pub fn client_or(&self, peer: SocketAddr) -> SocketAddr {
        self.source().unwrap_or(peer)
    }

    /// The address the client connected to: the header's destination, or `local` (the
    /// socket's) when it carries none.
    pub fn server_or(&self, local: SocketAddr) -> SocketAddr {
        match self.addresses {
            Addresses::Proxied { destination, .. } => destination,
            Addresses::Own => local,
        }
    }
}

/// Why a connection's PROXY header was refused. Every one closes the connection with no
/// reply. [`ProxyError::Truncated`] and [`ProxyError::TimedOut`] come from the driver (end of
/// input, the header timer), the rest from the decoder.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ProxyError {
    /// The first bytes are not a PROXY header at all (a client that connected directly).
    #[error("no PROXY protocol header: the connection did not start with a {expected} header")]
    NoHeader {
        /// What the listener accepts: `v1`, `v2` or `v1 or v2`.
        expected: &'static str,
    },
    /// A header of the other version than the listener accepts.
    #[error("a PROXY {found} header, but this listener accepts {accepted} only")]
    VersionNotAccepted {
        /// The version the header's first bytes show.
        found: Version,
        /// The listener's mode.
        accepted: ProxyMode,
    },
    /// A v2 signature followed by a version other than 2.
    #[error("PROXY v2 signature with protocol version {0}, not 2")]
    WrongVersion(u8),
    /// No CRLF within the 107 bytes a v1 line may take.
    #[error("PROXY v1 line has no CRLF within {PROXY_V1_MAX_HEADER} bytes")]
    V1TooLong,
    /// A v2 header announcing more bytes than the listener's cap.
    #[error("PROXY v2 header of {announced} bytes is over the {max}-byte limit")]
    V2TooLong {
        /// 16 plus the header's length field.
        announced: usize,
        /// The cap in force.
        max: usize,
    },
    /// A v1 line that ends in LF alone.
    #[error("PROXY v1 line ends in a lone LF: CRLF is required")]
    LoneLf,
    /// A v1 line with a CR that is not followed by LF.
    #[error("PROXY v1 line has a CR not followed by LF")]
    LoneCr,
    /// A v1 line that does not match the grammar (fields, addresses, ports).
    #[error("malformed PROXY v1 header: {0}")]
    MalformedV1(&'static str),
    /// A v2 header whose address block or TLVs do not fit its length.
    #[error("malformed PROXY v2 header: {0}")]
    MalformedV2(&'static str),
    /// A v1 protocol other than `TCP4`, `TCP6` and `UNKNOWN`.
    #[error("unsupported PROXY v1 protocol: only TCP4, TCP6 and UNKNOWN exist")]
    UnsupportedProtocol,
    /// A v2 command other than `LOCAL` (0) and `PROXY` (1).
    #[error("unknown PROXY v2 command {0:#x}")]
    UnknownCommand(u8),
    /// A v2 family/protocol byte outside the spec's (family 0–3, protocol 0–2).
    #[error("unsupported PROXY v2 address family and protocol {0:#04x}")]
    UnsupportedFamily(u8),
    /// A v2 CRC32C TLV that does not match the header.
    #[error(
        "PROXY v2 CRC32C mismatch: the header says {expected:#010x}, its bytes give {actual:#010x}"
    )]
    BadCrc {
        /// The TLV's value.
        expected: u32,
        /// The CRC32C of the header with that value zeroed.
        actual: u32,
    },
    /// The client closed (or half-closed) before the header was complete.
    #[error("the connection ended after {received} bytes of a PROXY header")]
    Truncated {
        /// Bytes of header received.
        received: usize,
    },
    /// The header was not complete within the header timeout.
    #[error("no complete PROXY header within {0:?}")]
    TimedOut(Duration),
}

impl ProxyError {
    /// A short, stable key for logs (`reason = "lone_lf"`).
    pub fn reason(&self) -> &'static str {
        match self {
            ProxyError::NoHeader { .. } => "no_header",
            ProxyError::VersionNotAccepted { .. } => "version_not_accepted",
            ProxyError::WrongVersion(_) => "wrong_version",
            ProxyError::V1TooLong | ProxyError::V2TooLong { .. } => "oversized",
            ProxyError::LoneLf => "lone_lf",
            ProxyError::LoneCr => "lone_cr",
            ProxyError::MalformedV1(_) | ProxyError::MalformedV2(_) => "malformed",
            ProxyError::UnsupportedProtocol => "unsupported_protocol",
            ProxyError::UnknownCommand(_) => "unknown_command",
            ProxyError::UnsupportedFamily(_) => "unsupported_family",
            ProxyError::BadCrc { .. } => "bad_crc",
            ProxyError::Truncated { .. } => "truncated",
            ProxyError::TimedOut(_) => "timed_out",
        }
    }
}

/// A listener's PROXY protocol setting: what it requires before the stream, and the bounds
/// on reading it. `Default` is off, with the `limits` defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProxySettings {
    /// Which header is required (`--proxy-protocol`).
    pub mode: ProxyMode,
    /// The whole header must arrive within this long of the accept (`--proxy-header-timeout`).
    pub header_timeout: Duration,
    /// The largest v2 header accepted, 16 fixed bytes included.
    pub max_v2_header: usize,
}

impl Default for ProxySettings {
    fn default() -> Self {
        ProxySettings {
            mode: ProxyMode::Off,
            header_timeout: DEFAULT_PROXY_HEADER_TIMEOUT,
            max_v2_header: PROXY_V2_MAX_HEADER,
        }
    }
}

/// A [`ProxySettings`] value that cannot work.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SettingsError {
    /// A zero header timeout would refuse every connection.
    #[error("the PROXY header timeout must be more than 0")]
    ZeroTimeout,
    /// A v2 cap below the largest address block, or above the protocol's own maximum.
    #[error("the PROXY v2 header cap must be {PROXY_V2_MIN_HEADER_CAP}..={PROXY_V2_PROTOCOL_MAX} bytes, not {0}")]
    V2Cap(usize),
}

impl ProxySettings {
    /// Checks every field; a server must not run with settings that fail this.
    pub fn validate(&self) -> Result<(), SettingsError> {
        if self.header_timeout.is_zero() {
            return Err(SettingsError::ZeroTimeout);
        }
        if !(PROXY_V2_MIN_HEADER_CAP..=PROXY_V2_PROTOCOL_MAX).contains(&self.max_v2_header) {
            return Err(SettingsError::V2Cap(self.max_v2_header));
        }
        Ok(())
    }

    /// A fresh decoder for one connection, or `None` when the mode is `off`.
    pub fn decoder(&self) -> Option<Decoder> {
        let accept = match self.mode {
            ProxyMode::Off => return None,
            ProxyMode::V1 => Accept::V1,
            ProxyMode::V2 => Accept::V2,
            ProxyMode::Any => Accept::Any,
        };
        Some(Decoder {
            accept,
            max_v2: self
                .max_v2_header
                .clamp(PROXY_V2_MIN_HEADER_CAP, PROXY_V2_PROTOCOL_MAX),
            held: Vec::new(),
        })
    }
}

/// The versions a decoder accepts: a [`ProxyMode`] other than `off`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Accept {
    V1,
    V2,
    Any,
}

impl Accept {
    fn mode(self) -> ProxyMode {
        match self {
            Accept::V1 => ProxyMode::V1,
            Accept::V2 => ProxyMode::V2,
            Accept::Any => ProxyMode::Any,
        }
    }
}

/// What one [`Decoder::feed`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    /// The header is not complete yet: read more (within the header timeout).
    NeedMore,
    /// The header is complete. `consumed` bytes of the input just fed belong to it; the rest
    /// of that input (`input[consumed..]`) is the client's first data, to be served as is.
    Done {
        /// The header.
        header: Header,
        /// How many bytes of the last input were header.
        consumed: usize,
    },
}

/// The incremental decoder for one connection's header. Feed it each read until it says
/// [`Progress::Done`] or fails; then drop it. It copies bytes only when a header is split
/// across reads, and then at most the header's own bytes (≤ the cap), never the data after.
#[derive(Debug, Clone)]
pub struct Decoder {
    accept: Accept,
    max_v2: usize,
    /// The header's bytes so far, when earlier reads ended inside it.
    held: Vec<u8>,
}

impl Decoder {
    /// Takes the next bytes read from the connection.
    pub fn feed(&mut self, input: &[u8]) -> Result<Progress, ProxyError> {
        if self.held.is_empty() {
            // The common case: the whole header in the first read, decoded in place.
            return match parse(self.accept, input, self.max_v2)? {
                Some((header, len)) => Ok(Progress::Done {
                    header,
                    consumed: len,
                }),
                None => {
                    // Incomplete means shorter than the header, which is at most the cap.
                    self.held.extend_from_slice(input);
                    Ok(Progress::NeedMore)
                }
            };
        }
        let before = self.held.len();
        let room = self.cap().saturating_sub(before);
        let take = input.len().min(room);
        self.held.extend_from_slice(&input[..take]);
        match parse(self.accept, &self.held, self.max_v2)? {
            Some((header, len)) => {
                debug_assert!(len > before, "an incomplete prefix was a whole header");
                self.held = Vec::new();
                Ok(Progress::Done {
                    header,
                    consumed: len - before,
                })
            }
            // Unreachable in practice (parse refuses an incomplete header at the cap), but a
            // decoder must never hold more than the cap while asking for more.
            None if take < input.len() => Err(self.too_long()),
            None => Ok(Progress::NeedMore),
        }
    }

    /// Bytes of an incomplete header held so far.
    pub fn buffered(&self) -> usize {
        self.held.len()
    }

    /// The error for end of input before the header was complete.
    pub fn truncated(&self) -> ProxyError {
        ProxyError::Truncated {
            received: self.held.len(),
        }
    }

    /// The most header bytes this decoder will hold: enough for the largest header of
    /// every version it accepts.
    fn cap(&self) -> usize {
        match self.accept {
            Accept::V1 => PROXY_V1_MAX_HEADER,
            Accept::V2 => self.max_v2,
            Accept::Any => self.max_v2.max(PROXY_V1_MAX_HEADER),
        }
    }

    fn too_long(&self) -> ProxyError {
        match self.held.first() {
            Some(b'P') => ProxyError::V1TooLong,
            _ => ProxyError::V2TooLong {
                announced: self.held.len(),
                max: self.max_v2,
            },
        }
    }
}

/// Decodes a header from the start of `buf`: `Ok(None)` if `buf` is a valid beginning of an
/// acceptable header but not all of it, `Ok(Some((header, length)))` once it is complete.
/// Fails as soon as `buf` cannot begin an acceptable header.
fn parse(accept: Accept, buf: &[u8], max_v2: usize) -> Result<Option<(Header, usize)>, ProxyError> {
    let Some(&first) = buf.first() else {
        return Ok(None);
    };
    let expected = match accept {
        Accept::V1 => "v1",
        Accept::V2 => "v2",
        Accept::Any => "v1 or v2",
    };
    let no_header = ProxyError::NoHeader { expected };
    let version = match first {
        b'P' if v1::starts_like(buf) => Version::V1,
        v2::SIGNATURE_FIRST if v2::starts_like(buf) => Version::V2,
        _ => return Err(no_header),
    };
    match (accept, version) {
        (Accept::V1, Version::V2) | (Accept::V2, Version::V1) => {
            // Refused either way; but which error is decided on the whole signature, so
            // that the verdict does not depend on where the reads split it.
            let signature = match version {
                Version::V1 => v1::PREFIX.len(),
                Version::V2 => v2::SIGNATURE.len(),
            };
            if buf.len() < signature {
                return Ok(None);
            }
            Err(ProxyError::VersionNotAccepted {
                found: version,
                accepted: accept.mode(),
            })
        }
        (_, Version::V1) => v1::parse(buf),
        (_, Version::V2) => v2::parse(buf, max_v2),
    }
}
