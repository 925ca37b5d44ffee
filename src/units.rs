//! The values a user types on a command line: durations, byte sizes and addresses, each with
//! one rule that every flag of both binaries applies.
//!
//! Every parser here is a clap value parser (`Result<T, String>`), so a value outside its
//! rule is a usage error (status 2) with a line that says what was expected.

use std::net::{IpAddr, Ipv6Addr, SocketAddr, ToSocketAddrs};
use std::time::Duration;

use crate::limits::{DEFAULT_PORT, MAX_DURATION};

/// Parses a duration written `500ms`, `10s`, `5m`, `1h`, or a bare number of seconds, at most
/// [`MAX_DURATION`]. `0` is accepted (callers decide what it means, usually "off").
///
/// The bound keeps every deadline computed from a flag (`now + duration`) representable, so
/// no timer can overflow, whatever the user types.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let d = match s.parse::<u64>() {
        Ok(secs) => Duration::from_secs(secs),
        Err(_) if s.chars().all(|c| c.is_ascii_digit()) && !s.is_empty() => Duration::MAX,
        Err(_) => humantime::parse_duration(s).map_err(|e| {
            format!("`{s}` is not a duration ({e}); write it like 500ms, 10s or 5m")
        })?,
    };
    if d > MAX_DURATION {
        return Err(format!(
            "`{s}` is too long: durations go up to {}",
            humantime::format_duration(MAX_DURATION)
        ));
    }
    Ok(d)
}

/// Parses a byte size: a plain number of bytes, or one with a binary suffix (`k`, `K`,
/// `KiB`; `m`, `M`, `MiB`; `g`, `G`, `GiB`, each a power of 1024) or a decimal one (`KB`,
/// `MB`, `GB`, powers of 1000), as GNU coreutils reads them. Spaces before the suffix are
/// allowed. Range checks are the caller's (see [`parse_size_in`]).
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, suffix) = t.split_at(split);
    let bad = || format!("`{s}` is not a size: write bytes, or e.g. 64KiB, 1MiB, 512k");
    if digits.is_empty() {
        return Err(bad());
    }
    let n: u64 = digits.parse().map_err(|_| bad())?;
    let unit: u64 = match suffix.trim() {
        "" | "B" | "b" => 1,
        "k" | "K" | "KiB" | "kiB" => 1 << 10,
        "m" | "M" | "MiB" => 1 << 20,
        "g" | "G" | "GiB" => 1 << 30,
        "KB" | "kB" => 1_000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        _ => return Err(bad()),
    };
    n.checked_mul(unit)
        .ok_or_else(|| format!("`{s}` is too large"))
}

/// [`parse_size`], then a check that the size lies in `min..=max` bytes.
pub fn parse_size_in(s: &str, min: u64, max: u64) -> Result<u64, String> {
    let n = parse_size(s)?;
    if (min..=max).contains(&n) {
        Ok(n)
    } else {
        Err(format!(
            "`{}` is out of range: give between {} and {}",
            s.trim(),
            human_size(min),
            human_size(max)
        ))
    }
}

/// A size the way the help and errors write it: `64KiB`, `16MiB`, or bytes.
pub fn human_size(n: u64) -> String {
    for (unit, name) in [(1u64 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")] {
        if n >= unit && n.is_multiple_of(unit) {
            return format!("{}{name}", n / unit);
        }
    }
    format!("{n} bytes")
}

/// Where to connect or listen, as the user wrote it: a host (an IP address or a name still
/// to be resolved) and a port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPort {
    /// An IP address, or a name to resolve.
    pub host: String,
    /// The port: the one given, or [`DEFAULT_PORT`].
    pub port: u16,
}

impl HostPort {
    /// Every address the host names, with the port. An IP address needs no look-up.
    pub fn resolve(&self) -> std::io::Result<Vec<SocketAddr>> {
        if let Ok(ip) = self.host.parse::<IpAddr>() {
            return Ok(vec![SocketAddr::new(ip, self.port)]);
        }
        Ok((self.host.as_str(), self.port).to_socket_addrs()?.collect())
    }
}

impl std::fmt::Display for HostPort {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// Parses an address the one way both binaries read one: `HOST:PORT`, `[IPV6]:PORT`, or a
/// host alone for port [`DEFAULT_PORT`] (`localhost`, `127.0.0.1`, `[::1]`).
///
/// Two forms are refused with a hint, because each has two readings: a bare number (a port,
/// or the IPv4 address `0.0.N.N`?) and an IPv6 address without brackets (`::1:2277` is both
/// `[::1]:2277` and the address `::0.1.34.119`).
pub fn parse_host_port(s: &str) -> Result<HostPort, String> {
    let t = s.trim();
    if t.is_empty() {
        return Err("the address is empty: write HOST:PORT, e.g. 127.0.0.1:2277".into());
    }
    if let Some(rest) = t.strip_prefix('[') {
        let (inside, after) = rest.split_once(']').ok_or_else(|| {
            format!("`{t}` has `[` without `]`: write [IPV6]:PORT, e.g. [::1]:2277")
        })?;
        let ip: Ipv6Addr = inside
            .parse()
            .map_err(|_| format!("`{inside}` in `{t}` is not an IPv6 address"))?;
        let port = match after {
            "" => DEFAULT_PORT,
            p => parse_port(
                p.strip_prefix(':').ok_or_else(|| {
                    format!("`{t}`: expected `:PORT` after `]`, e.g. [{ip}]:2277")
                })?,
                t,
            )?,
        };
        return Ok(HostPort {
            host: ip.to_string(),
            port,
        });
    }
    if t.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!(
            "`{t}` is not an address: did you mean 127.0.0.1:{t}?"
        ));
    }
    if t.matches(':').count() > 1 {
        let hint = match t.rsplit_once(':') {
            Some((head, port))
                if head.parse::<Ipv6Addr>().is_ok()
                    && !port.is_empty()
                    && port.bytes().all(|b| b.is_ascii_digit()) =>
            {
                format!("[{head}]:{port}")
            }
            _ => format!("[{t}]:{DEFAULT_PORT}"),
        };
        return Err(format!(
            "`{t}`: write an IPv6 address in brackets, e.g. {hint}"
        ));
    }
    if let Some(p) = t.strip_prefix(':') {
        return Err(format!("`{t}` has no host: did you mean 127.0.0.1:{p}?"));
    }
    match t.split_once(':') {
        Some((host, port)) if !host.is_empty() => Ok(HostPort {
            host: host.to_string(),
            port: parse_port(port, t)?,
        }),
        Some(_) => unreachable!("a leading colon was handled above"),
        None => Ok(HostPort {
            host: t.to_string(),
            port: DEFAULT_PORT,
        }),
    }
}

fn parse_port(p: &str, whole: &str) -> Result<u16, String> {
    p.parse::<u16>()
        .map_err(|_| format!("`{p}` in `{whole}` is not a port (0 to 65535)"))
}

/// Parses a listen address with [`parse_host_port`]'s rule, and resolves it to the one
/// socket address to bind (a name's first address). Port 0 asks the system for a free port.
///
/// An IPv4-mapped IPv6 address (`[::ffff:127.0.0.1]`) is refused with the IPv4 form to use
/// instead: IPv6 listeners are v6-only, so it could never be bound.
pub fn parse_listen_addr(s: &str) -> Result<SocketAddr, String> {
    let hp = parse_host_port(s)?;
    let addr = hp
        .resolve()
        .map_err(|e| format!("`{}` does not resolve: {e}", s.trim()))?
        .into_iter()
        .next()
        .ok_or_else(|| format!("`{}` resolves to no address", s.trim()))?;
    if let SocketAddr::V6(v6) = addr {
        if let Some(v4) = v6.ip().to_ipv4_mapped() {
            return Err(format!(
                "`{}` is an IPv4-mapped address, which an IPv6 listener does not serve: listen on {v4}:{} instead",
                s.trim(),
                v6.port()
            ));
        }
    }
    Ok(addr)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hp(host: &str, port: u16) -> HostPort {
        HostPort {
            host: host.into(),
            port,
        }
    }

    #[test]
    fn durations_parse_up_to_the_bound() {
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("10s").unwrap(), Duration::from_secs(10));
        assert_eq!(parse_duration(" 5m").unwrap(), Duration::from_secs(300));
        assert_eq!(parse_duration("0").unwrap(), Duration::ZERO);
        assert_eq!(parse_duration("3").unwrap(), Duration::from_secs(3));
        assert_eq!(parse_duration("7d").unwrap(), MAX_DURATION);
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("8d").unwrap_err().contains("too long"));
        assert!(parse_duration("18446744073709551615")
            .unwrap_err()
            .contains("too long"));
        assert!(parse_duration("99999999999999999999999")
            .unwrap_err()
            .contains("too long"));
    }

    #[test]
    fn sizes_take_the_usual_suffixes() {
        assert_eq!(parse_size("65536").unwrap(), 65536);
        assert_eq!(parse_size("64KiB").unwrap(), 65536);
        assert_eq!(parse_size("64k").unwrap(), 65536);
        assert_eq!(parse_size("64 K").unwrap(), 65536);
        assert_eq!(parse_size("1MiB").unwrap(), 1 << 20);
        assert_eq!(parse_size("16M").unwrap(), 16 << 20);
        assert_eq!(parse_size("2KB").unwrap(), 2000);
        assert!(parse_size("KiB").is_err());
        assert!(parse_size("12 parsecs").is_err());
        assert!(parse_size("-1").is_err());
        assert!(parse_size("99999999999G")
            .unwrap_err()
            .contains("too large"));
        assert!(parse_size_in("512", 1024, 1 << 24)
            .unwrap_err()
            .contains("between 1KiB and 16MiB"));
    }

    #[test]
    fn addresses_have_one_rule() {
        assert_eq!(
            parse_host_port("127.0.0.1:24101").unwrap(),
            hp("127.0.0.1", 24101)
        );
        assert_eq!(parse_host_port("localhost:9").unwrap(), hp("localhost", 9));
        assert_eq!(parse_host_port("localhost").unwrap(), hp("localhost", 2277));
        assert_eq!(parse_host_port("[::1]:2277").unwrap(), hp("::1", 2277));
        assert_eq!(parse_host_port("[::1]").unwrap(), hp("::1", 2277));
        assert_eq!(
            parse_host_port(" 10.0.0.1:80 ").unwrap(),
            hp("10.0.0.1", 80)
        );
        assert_eq!(hp("::1", 5).to_string(), "[::1]:5");
    }

    #[test]
    fn ambiguous_addresses_are_refused_with_a_hint() {
        let e = parse_host_port("24101").unwrap_err();
        assert!(e.contains("did you mean 127.0.0.1:24101?"), "{e}");
        let e = parse_host_port(":24101").unwrap_err();
        assert!(e.contains("did you mean 127.0.0.1:24101?"), "{e}");
        let e = parse_host_port("::1:2277").unwrap_err();
        assert!(e.contains("[::1]:2277"), "{e}");
        let e = parse_host_port("::1").unwrap_err();
        assert!(e.contains("brackets"), "{e}");
        assert!(parse_host_port("[::1").is_err());
        assert!(parse_host_port("[::1]2277").is_err());
        assert!(parse_host_port("[nope]:1").is_err());
        assert!(parse_host_port("127.0.0.1:99999").is_err());
        assert!(parse_host_port("").is_err());
    }

    #[test]
    fn listen_addresses_resolve_to_one_socket_address() {
        assert_eq!(
            parse_listen_addr("127.0.0.1:2277").unwrap(),
            "127.0.0.1:2277".parse().unwrap()
        );
        assert_eq!(
            parse_listen_addr(" [::1]:0").unwrap(),
            "[::1]:0".parse().unwrap()
        );
        assert!(parse_listen_addr("localhost:9").unwrap().ip().is_loopback());
        let e = parse_listen_addr("[::ffff:127.0.0.1]:9").unwrap_err();
        assert!(e.contains("127.0.0.1:9 instead"), "{e}");
        assert!(parse_listen_addr("nonsense:x").is_err());
    }
}
