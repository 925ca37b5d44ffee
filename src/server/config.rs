//! How the server behaves, and the rule that every value is checked in the library, not only
//! by the flag parser.

use std::time::Duration;

use crate::limits;
use crate::transform::Mode;

use super::conn::Policy;
use super::listeners::ListenerSettings;
use crate::banner::Banner;
use crate::proxy::SettingsError;

/// How the server behaves; every field has a flag in `upcased`. [`validate`](Self::validate)
/// says whether the server will serve it: [`Server::run`](super::Server::run) refuses an
/// invalid one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Full Unicode or ASCII-only upper-casing.
    pub mode: Mode,
    /// Connections served at once, at least 1; one more is accepted and closed at once.
    pub max_connections: usize,
    /// Connections served at once from one IP address, at least 1; `None` for no limit.
    pub max_connections_per_ip: Option<usize>,
    /// Close a connection that moved no byte for this long (more than zero, at most
    /// [`limits::MAX_DURATION`]); `None` never does.
    pub idle_timeout: Option<Duration>,
    /// Bound on the whole graceful drain, lingering closes included (at most
    /// [`limits::MAX_DURATION`]).
    pub shutdown_timeout: Duration,
    /// Bound on one lingering close (at most [`limits::MAX_DURATION`]).
    pub linger_timeout: Duration,
    /// Bytes read from a connection at a time, from [`limits::MIN_READ_CHUNK`] to
    /// [`limits::MAX_READ_CHUNK`]. A busy connection holds this much input and at most
    /// [`crate::transform::MAX_EXPANSION`] times as much output; an idle one none.
    pub read_buffer: usize,
    /// UDP datagrams answered per second per source address, at least 1; `None` for no limit.
    pub udp_rate: Option<u32>,
    /// The settings `upcased` gives every TCP listener it binds (`--proxy-protocol`,
    /// `--proxy-header-timeout`). The server itself serves each [`Listener`](super::Listener)
    /// with that listener's own settings.
    pub listener: ListenerSettings,
    /// The line sent on every TCP connection before any reply (`--banner`); `None` sends none.
    pub banner: Option<Banner>,
    /// Bound on a TLS handshake on a TLS listener (more than zero, at most
    /// [`limits::MAX_DURATION`]); the connection holds its slot meanwhile.
    pub tls_handshake_timeout: Duration,
    /// Which connection driver serves the TCP listeners (`--io`).
    pub io: Driver,
}

/// The connection driver (`--io`): both run the same state machine, so every promise of the
/// protocol holds on either; they differ in how the kernel is asked for bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Driver {
    /// io_uring where [`crate::uring::probe`] finds everything the driver needs and no
    /// listener needs what it does not do yet (TLS); epoll otherwise. The choice is logged.
    #[default]
    Auto,
    /// The tokio readiness driver (epoll): every listener kind, every kernel.
    Epoll,
    /// The io_uring driver: plain TCP listeners, with PROXY headers and banners; UDP
    /// sockets are still served by a tokio task. Refused where io_uring is unavailable, or
    /// with TLS listeners.
    Uring,
}

impl Driver {
    /// The flag's spelling: `auto`, `epoll`, `uring`.
    pub fn as_str(self) -> &'static str {
        match self {
            Driver::Auto => "auto",
            Driver::Epoll => "epoll",
            Driver::Uring => "uring",
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            mode: Mode::Unicode,
            max_connections: limits::DEFAULT_MAX_CONNECTIONS,
            max_connections_per_ip: None,
            idle_timeout: Some(limits::DEFAULT_IDLE_TIMEOUT),
            shutdown_timeout: limits::DEFAULT_SHUTDOWN_TIMEOUT,
            linger_timeout: limits::LINGER_TIMEOUT,
            read_buffer: limits::READ_CHUNK,
            udp_rate: None,
            listener: ListenerSettings::default(),
            banner: None,
            tls_handshake_timeout: limits::DEFAULT_TLS_HANDSHAKE_TIMEOUT,
            io: Driver::Auto,
        }
    }
}

/// A [`Config`] value the server will not serve with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// `max_connections` is 0: every connection would be refused.
    #[error("max_connections is 0: no connection could ever be served; give at least 1")]
    NoConnections,
    /// `max_connections_per_ip` is `Some(0)`.
    #[error("max_connections_per_ip is 0: no connection could ever be served; give at least 1, or no limit")]
    NoConnectionsPerIp,
    /// `read_buffer` is outside its range.
    #[error("read_buffer is {0} bytes: give between {min} and {max}", min = limits::MIN_READ_CHUNK, max = limits::MAX_READ_CHUNK)]
    ReadBuffer(usize),
    /// `idle_timeout` is `Some(0)`, which would close every connection at once (`None` is
    /// "no idle timeout").
    #[error(
        "idle_timeout is zero: every connection would be closed at once; use None to turn it off"
    )]
    ZeroIdleTimeout,
    /// A duration is longer than [`limits::MAX_DURATION`].
    #[error("{name} is {value:?}: durations go up to {max:?}", max = limits::MAX_DURATION)]
    TooLong {
        /// Which field.
        name: &'static str,
        /// Its value.
        value: Duration,
    },
    /// `udp_rate` is `Some(0)`.
    #[error("udp_rate is 0: no datagram could ever be answered; give at least 1, or no limit")]
    NoUdpRate,
    /// A listener's PROXY protocol setting cannot work.
    #[error("listener settings: {0}")]
    Proxy(#[from] SettingsError),
    /// `tls_handshake_timeout` is zero: every handshake would time out.
    #[error("tls_handshake_timeout is zero: every TLS handshake would time out; give more")]
    ZeroTlsHandshakeTimeout,
}

impl Config {
    /// Checks every field against the same rules the flags apply.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.max_connections == 0 {
            return Err(ConfigError::NoConnections);
        }
        if self.max_connections_per_ip == Some(0) {
            return Err(ConfigError::NoConnectionsPerIp);
        }
        if !(limits::MIN_READ_CHUNK..=limits::MAX_READ_CHUNK).contains(&self.read_buffer) {
            return Err(ConfigError::ReadBuffer(self.read_buffer));
        }
        if self.idle_timeout == Some(Duration::ZERO) {
            return Err(ConfigError::ZeroIdleTimeout);
        }
        for (name, value) in [
            ("idle_timeout", self.idle_timeout.unwrap_or_default()),
            ("shutdown_timeout", self.shutdown_timeout),
            ("linger_timeout", self.linger_timeout),
            ("tls_handshake_timeout", self.tls_handshake_timeout),
        ] {
            if value > limits::MAX_DURATION {
                return Err(ConfigError::TooLong { name, value });
            }
        }
        if self.udp_rate == Some(0) {
            return Err(ConfigError::NoUdpRate);
        }
        self.listener.validate()?;
        if self.tls_handshake_timeout.is_zero() {
            return Err(ConfigError::ZeroTlsHandshakeTimeout);
        }
        Ok(())
    }

    /// What each connection's state machine applies.
    pub fn policy(&self) -> Policy {
        Policy {
            mode: self.mode,
            idle_timeout: self.idle_timeout,
            linger_timeout: self.linger_timeout,
            read_limit: self.read_buffer,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_is_valid() {
        assert_eq!(Config::default().validate(), Ok(()));
    }

    #[test]
    fn every_value_the_flags_refuse_is_refused() {
        let bad = |f: fn(&mut Config)| {
            let mut c = Config::default();
            f(&mut c);
            c.validate().unwrap_err()
        };
        assert_eq!(bad(|c| c.max_connections = 0), ConfigError::NoConnections);
        assert_eq!(
            bad(|c| c.max_connections_per_ip = Some(0)),
            ConfigError::NoConnectionsPerIp
        );
        assert_eq!(bad(|c| c.read_buffer = 0), ConfigError::ReadBuffer(0));
        assert_eq!(
            bad(|c| c.read_buffer = limits::MAX_READ_CHUNK + 1),
            ConfigError::ReadBuffer(limits::MAX_READ_CHUNK + 1)
        );
        assert_eq!(
            bad(|c| c.idle_timeout = Some(Duration::ZERO)),
            ConfigError::ZeroIdleTimeout
        );
        assert!(matches!(
            bad(|c| c.idle_timeout = Some(Duration::MAX)),
            ConfigError::TooLong {
                name: "idle_timeout",
                ..
            }
        ));
        assert!(matches!(
            bad(|c| c.shutdown_timeout = limits::MAX_DURATION + Duration::from_secs(1)),
            ConfigError::TooLong {
                name: "shutdown_timeout",
                ..
            }
        ));
        assert!(matches!(
            bad(|c| c.linger_timeout = Duration::MAX),
            ConfigError::TooLong {
                name: "linger_timeout",
                ..
            }
        ));
        assert_eq!(bad(|c| c.udp_rate = Some(0)), ConfigError::NoUdpRate);
        assert_eq!(
            bad(|c| c.listener.proxy.header_timeout = Duration::ZERO),
            ConfigError::Proxy(SettingsError::ZeroTimeout)
        );
        assert_eq!(
            bad(|c| c.listener.proxy.max_v2_header = 16),
            ConfigError::Proxy(SettingsError::V2Cap(16))
        );
        assert_eq!(
            bad(|c| c.tls_handshake_timeout = Duration::ZERO),
            ConfigError::ZeroTlsHandshakeTimeout
        );
    }

    #[test]
    fn the_bounds_themselves_are_valid() {
        let c = Config {
            max_connections: 1,
            max_connections_per_ip: Some(1),
            idle_timeout: Some(limits::MAX_DURATION),
            shutdown_timeout: Duration::ZERO,
            linger_timeout: limits::MAX_DURATION,
            read_buffer: limits::MIN_READ_CHUNK,
            udp_rate: Some(1),
            ..Config::default()
        };
        assert_eq!(c.validate(), Ok(()));
    }
}
