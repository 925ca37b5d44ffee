//! What a server serves on: listeners that carry their own settings, and UDP sockets.
//!
//! A [`Listener`] is a bound socket plus what it speaks before the byte stream starts. Today
//! that is nothing ([`Preamble::None`]); a PROXY protocol header and a TLS handshake are the
//! settings the next changes add, as fields or variants here, so that every listener keeps
//! its own.

use std::io;

/// What a connection on a listener speaks before the upper-casing stream begins.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Preamble {
    /// Nothing: the stream starts with the first byte.
    #[default]
    None,
}

/// A listener's settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct ListenerSettings {
    /// What comes before the stream.
    pub preamble: Preamble,
    /// Whether the stream is inside TLS: the handshake comes first (after any PROXY
    /// header), with the server's certificate (see [`Server::with_tls`](super::Server::with_tls)).
    pub tls: bool,
}

/// A bound TCP listener and its settings.
#[derive(Debug)]
pub struct Listener {
    /// The bound socket (see [`crate::net::bind_tcp`]).
    pub socket: std::net::TcpListener,
    /// What connections on it speak before the stream.
    pub settings: ListenerSettings,
}

impl Listener {
    /// A listener with the default settings: the stream starts at once.
    pub fn plain(socket: std::net::TcpListener) -> Self {
        Listener {
            socket,
            settings: ListenerSettings::default(),
        }
    }

    /// A TLS listener: each connection's stream begins after a TLS handshake.
    pub fn tls(socket: std::net::TcpListener) -> Self {
        Listener {
            socket,
            settings: ListenerSettings {
                tls: true,
                ..ListenerSettings::default()
            },
        }
    }

    /// Another handle on the same socket, with the same settings, for another worker.
    pub fn try_clone(&self) -> io::Result<Self> {
        Ok(Listener {
            socket: self.socket.try_clone()?,
            settings: self.settings,
        })
    }
}

impl From<std::net::TcpListener> for Listener {
    fn from(socket: std::net::TcpListener) -> Self {
        Listener::plain(socket)
    }
}

/// One worker's set of sockets: TCP listeners and, in UDP mode, UDP sockets. All bound
/// already, so that tests can use port 0 and the caller reports real addresses.
#[derive(Debug, Default)]
pub struct Listeners {
    /// TCP listeners with their settings.
    pub tcp: Vec<Listener>,
    /// Bound UDP sockets (empty unless UDP mode is on).
    pub udp: Vec<std::net::UdpSocket>,
}

impl Listeners {
    /// A set for another worker: the same TCP listeners (shared sockets, so the kernel hands
    /// each connection to one of the workers), and no UDP sockets, which one worker serves.
    pub fn tcp_copies(&self) -> io::Result<Listeners> {
        Ok(Listeners {
            tcp: self
                .tcp
                .iter()
                .map(Listener::try_clone)
                .collect::<io::Result<_>>()?,
            udp: Vec::new(),
        })
    }
}

impl From<Vec<std::net::TcpListener>> for Listeners {
    fn from(tcp: Vec<std::net::TcpListener>) -> Self {
        Listeners {
            tcp: tcp.into_iter().map(Listener::plain).collect(),
            udp: Vec::new(),
        }
    }
}

impl From<Vec<Listener>> for Listeners {
    fn from(tcp: Vec<Listener>) -> Self {
        Listeners {
            tcp,
            udp: Vec::new(),
        }
    }
}
