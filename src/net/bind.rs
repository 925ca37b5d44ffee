//! Binding listener sockets the way a server should.

use std::io;
use std::net::{SocketAddr, TcpListener, UdpSocket};

use socket2::{Domain, Protocol, Socket, Type};

use crate::limits::LISTEN_BACKLOG;

/// Binds a TCP listener the way a server should: `SO_REUSEADDR` (so a restart does not wait
/// for TIME_WAIT), v6-only for IPv6 addresses (so `[::]` and `0.0.0.0` can both be bound),
/// a deep backlog, non-blocking.
pub fn bind_tcp(addr: SocketAddr) -> io::Result<TcpListener> {
    tcp(addr, false)
}

/// [`bind_tcp`], and `SO_REUSEPORT` when `reuse_port` (see [`crate::reuseport`]).
pub(crate) fn tcp(addr: SocketAddr, reuse_port: bool) -> io::Result<TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    if reuse_port {
        socket.set_reuse_port(true)?;
    }
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
    udp(addr, false)
}

/// [`bind_udp`], and `SO_REUSEPORT` when `reuse_port` (see [`crate::reuseport`]).
pub(crate) fn udp(addr: SocketAddr, reuse_port: bool) -> io::Result<UdpSocket> {
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    if reuse_port {
        socket.set_reuse_port(true)?;
    }
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
