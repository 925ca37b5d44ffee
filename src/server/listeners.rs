//! What a server serves on: listeners that carry their own settings, and UDP sockets.
//!
//! A [`Listener`] is a bound socket plus what it speaks before the byte stream starts: the
//! PROXY protocol header it requires ([`ListenerSettings::proxy`]), and the [`Preamble`]
//! (where a TLS handshake goes). Every listener keeps its own, so a per-listener flag is one
//! line in the binary.

use std::io;

use crate::proxy::{ProxySettings, SettingsError};

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
    /// The PROXY protocol header every connection must start with (`--proxy-protocol`), read
    /// before the preamble and the stream; off by default.
    pub proxy: ProxySettings,
    /// Whether the stream is inside TLS: the handshake comes first (after any PROXY
    /// header), with the server's certificate (see [`Server::with_tls`](super::Server::with_tls)).
    pub tls: bool,
}

impl ListenerSettings {
    /// These settings with `proxy` as the PROXY protocol setting.
    pub fn with_proxy(self, proxy: ProxySettings) -> Self {
        ListenerSettings { proxy, ..self }
    }

    /// These settings with the stream inside TLS.
    pub fn with_tls(self) -> Self {
        ListenerSettings { tls: true, ..self }
    }

    /// Checks every setting; [`Server::run`](super::Server::run) refuses a listener whose
    /// settings fail this.
    pub fn validate(&self) -> Result<(), SettingsError> {
        self.proxy.validate()
    }
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
    /// A listener with these settings.
    pub fn new(socket: std::net::TcpListener, settings: ListenerSettings) -> Self {
        Listener { socket, settings }
    }

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
