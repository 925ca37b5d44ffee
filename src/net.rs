//! Addresses, durations, listener sockets and descriptor limits: the small pieces of
//! networking that both binaries and the tests share.

use std::io;
use std::net::{SocketAddr, TcpListener, ToSocketAddrs, UdpSocket};
use std::time::Duration;

use socket2::{Domain, Protocol, Socket, Type};

use crate::limits::LISTEN_BACKLOG;

/// Parses a listen address: `HOST:PORT` or `[V6]:PORT`, where HOST is an IP address or a
/// name that resolves (its first address is used). Port 0 asks the system for a free port.
///
/// Used as a clap value parser, so a malformed address is a usage error.
pub fn parse_listen_addr(s: &str) -> Result<SocketAddr, String> {
    if let Ok(addr) = s.parse::<SocketAddr>() {
        return Ok(addr);
    }
    if !s.contains(':') {
        return Err(format!(
            "`{s}` is not an address: expected HOST:PORT or [IPV6]:PORT, e.g. 127.0.0.1:2277"
        ));
    }
    match s.to_socket_addrs() {
        Ok(mut addrs) => addrs
            .next()
            .ok_or_else(|| format!("`{s}` resolves to no address")),
        Err(e) => Err(format!(
            "`{s}` is not an address (expected HOST:PORT or [IPV6]:PORT): {e}"
        )),
    }
}

/// Parses a duration written `500ms`, `10s`, `5m`, `1h`, or a bare number of seconds.
/// `0` is accepted (callers decide what it means, usually "off").
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    if let Ok(secs) = s.parse::<u64>() {
        return Ok(Duration::from_secs(secs));
    }
    humantime::parse_duration(s)
        .map_err(|e| format!("`{s}` is not a duration ({e}); write it like 500ms, 10s or 5m"))
}

/// Binds a TCP listener the way a server should: `SO_REUSEADDR` (so a restart does not wait
/// for TIME_WAIT), v6-only for IPv6 addresses (so `[::]` and `0.0.0.0` can both be bound),
/// a deep backlog, non-blocking.
pub fn bind_tcp(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.bind(&addr.into())?;
    socket.listen(LISTEN_BACKLOG)?;
    socket.set_nonblocking(true)?;
    Ok(socket.into())
}

/// Binds a UDP socket, v6-only for IPv6 addresses as [`bind_tcp`] does, non-blocking.
pub fn bind_udp(addr: SocketAddr) -> io::Result<UdpSocket> {
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.bind(&addr.into())?;
    socket.set_nonblocking(true)?;
    Ok(socket.into())
}

/// Raises the soft limit on open descriptors to the hard limit, so that the default
/// connection limit can be reached. Returns the soft limit in force afterwards.
pub fn raise_nofile_limit() -> io::Result<u64> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes a plain struct we own.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return Err(io::Error::last_os_error());
    }
    if lim.rlim_cur < lim.rlim_max {
        let raised = libc::rlimit {
            rlim_cur: lim.rlim_max,
            rlim_max: lim.rlim_max,
        };
        // SAFETY: setrlimit reads a plain struct we own.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
            return Ok(raised.rlim_cur);
        }
    }
    Ok(lim.rlim_cur)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_addresses_parse() {
        assert_eq!(
            parse_listen_addr("127.0.0.1:2277").unwrap(),
            "127.0.0.1:2277".parse().unwrap()
        );
        assert_eq!(
            parse_listen_addr("[::1]:0").unwrap(),
            "[::1]:0".parse().unwrap()
        );
        assert!(parse_listen_addr("localhost:9").unwrap().ip().is_loopback());
        assert!(parse_listen_addr("nonsense").is_err());
        assert!(parse_listen_addr("127.0.0.1").is_err());
        assert!(parse_listen_addr("127.0.0.1:99999").is_err());
    }

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("10s").unwrap(), Duration::from_secs(10));
        assert_eq!(parse_duration("5m").unwrap(), Duration::from_secs(300));
        assert_eq!(parse_duration("0").unwrap(), Duration::ZERO);
        assert_eq!(parse_duration("3").unwrap(), Duration::from_secs(3));
        assert!(parse_duration("soon").is_err());
    }
}
