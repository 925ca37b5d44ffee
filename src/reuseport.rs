//! Binding with `SO_REUSEPORT`, for `--reuse-port`: several sockets (in several `upcased`
//! processes, or one per worker thread) bound to one address and port, among which the
//! kernel spreads new connections (TCP, by a hash of the 4-tuple) and datagrams (UDP).
//!
//! The kernel lets a socket join a port only if every socket already on it set
//! `SO_REUSEPORT` too and belongs to the same user, so a plain [`crate::net::bind_tcp`] on a
//! shared port still fails with "address in use", and so does a reuse-port bind on a port a
//! plain socket holds. Apart from the option, the sockets are set up as [`crate::net`]'s.

use std::io;
use std::net::{SocketAddr, TcpListener, UdpSocket};

/// [`crate::net::bind_tcp`] with `SO_REUSEPORT`: `SO_REUSEADDR`, v6-only for IPv6, the deep
/// backlog, non-blocking.
pub fn bind_tcp_reuse_port(addr: SocketAddr) -> io::Result<TcpListener> {
    crate::net::bind::tcp(addr, true)
}

/// [`crate::net::bind_udp`] with `SO_REUSEPORT`: v6-only for IPv6, non-blocking.
pub fn bind_udp_reuse_port(addr: SocketAddr) -> io::Result<UdpSocket> {
    crate::net::bind::udp(addr, true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::{bind_tcp, bind_udp};
    use std::io::ErrorKind;

    const LOOPBACK: ([u8; 4], u16) = ([127, 0, 0, 1], 0);

    #[test]
    fn two_reuse_port_listeners_share_a_tcp_port() {
        let first = bind_tcp_reuse_port(LOOPBACK.into()).unwrap();
        let addr = first.local_addr().unwrap();
        let second = bind_tcp_reuse_port(addr).unwrap();
        assert_eq!(second.local_addr().unwrap(), addr);
    }

    #[test]
    fn without_reuse_port_the_second_tcp_bind_is_address_in_use() {
        let plain = bind_tcp(LOOPBACK.into()).unwrap();
        let addr = plain.local_addr().unwrap();
        assert_eq!(bind_tcp(addr).unwrap_err().kind(), ErrorKind::AddrInUse);
        // Joining a plain socket's port is refused even with the option...
        assert_eq!(
            bind_tcp_reuse_port(addr).unwrap_err().kind(),
            ErrorKind::AddrInUse
        );
        // ...and a plain socket cannot join a reuse-port group.
        let shared = bind_tcp_reuse_port(LOOPBACK.into()).unwrap();
        let shared_addr = shared.local_addr().unwrap();
        assert_eq!(
            bind_tcp(shared_addr).unwrap_err().kind(),
            ErrorKind::AddrInUse
        );
    }

    #[test]
    fn two_reuse_port_sockets_share_a_udp_port() {
        let first = bind_udp_reuse_port(LOOPBACK.into()).unwrap();
        let addr = first.local_addr().unwrap();
        let second = bind_udp_reuse_port(addr).unwrap();
        assert_eq!(second.local_addr().unwrap(), addr);
    }

    #[test]
    fn without_reuse_port_the_second_udp_bind_is_address_in_use() {
        let plain = bind_udp(LOOPBACK.into()).unwrap();
        let addr = plain.local_addr().unwrap();
        assert_eq!(bind_udp(addr).unwrap_err().kind(), ErrorKind::AddrInUse);
        assert_eq!(
            bind_udp_reuse_port(addr).unwrap_err().kind(),
            ErrorKind::AddrInUse
        );
    }

    #[test]
    fn ipv6_reuse_port_when_available() {
        let Ok(first) = bind_tcp_reuse_port(([0u16, 0, 0, 0, 0, 0, 0, 1], 0).into()) else {
            eprintln!("skipped: IPv6 loopback not available");
            return;
        };
        let addr = first.local_addr().unwrap();
        bind_tcp_reuse_port(addr).unwrap();
    }

    /// The point of the option: the kernel hands connections to both listeners. It hashes
    /// each connection's 4-tuple, so with 64 connections from distinct source ports the
    /// chance that one listener gets none is 2 × 2⁻⁶⁴.
    #[test]
    fn the_kernel_spreads_connections_over_the_group() {
        let a = bind_tcp_reuse_port(LOOPBACK.into()).unwrap();
        let addr = a.local_addr().unwrap();
        let b = bind_tcp_reuse_port(addr).unwrap();
        let clients: Vec<_> = (0..64)
            .map(|_| std::net::TcpStream::connect(addr).unwrap())
            .collect();
        let drain = |l: &TcpListener| {
            let mut n = 0;
            while l.accept().is_ok() {
                n += 1;
            }
            n
        };
        // Every handshake completed before connect() returned, so both queues are final.
        let (na, nb) = (drain(&a), drain(&b));
        assert_eq!(na + nb, clients.len());
        assert!(na > 0 && nb > 0, "a got {na}, b got {nb}");
    }
}
