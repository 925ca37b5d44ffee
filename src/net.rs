//! Listener sockets and descriptor limits: the small pieces of networking that both
//! binaries and the tests share. (Typed values such as addresses live in [`crate::units`].)

use std::io;
use std::net::{SocketAddr, TcpListener, UdpSocket};

use socket2::{Domain, Protocol, Socket, Type};

use crate::limits::LISTEN_BACKLOG;

pub use crate::units::{parse_duration, parse_listen_addr};

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

/// A UDP socket on an ephemeral port of the unspecified address of `peer`'s family, bound
/// with [`bind_udp`] and connected to `peer`, so that it receives only the peer's datagrams
/// and learns of ICMP "port unreachable". Non-blocking. The clients' one way to open a UDP
/// socket (`upcase --udp` and `upcase bench --udp`).
pub fn connect_udp(peer: SocketAddr) -> io::Result<UdpSocket> {
    let local: SocketAddr = if peer.is_ipv6() {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    } else {
        (std::net::Ipv4Addr::UNSPECIFIED, 0).into()
    };
    let socket = bind_udp(local)?;
    socket.connect(peer)?;
    Ok(socket)
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
