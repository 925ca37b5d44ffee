//! The `upcased` flags: their help, defaults and bounds, and how they become a [`Config`].
//! In the library so that tests reach the same mapping the binary uses.
// The flags' doc comments are their `--help` text, where `[::1]:2277` is an address, not a
// rustdoc link.
#![allow(rustdoc::broken_intra_doc_links)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

use super::{Config, Driver, ListenerSettings};
use crate::banner::{hostname, Banner, BannerError, Template};
use crate::limits;
use crate::logging::LogFormat;
use crate::proxy::{ProxyMode, ProxySettings};
use crate::transform::Mode;
use crate::units::{parse_duration, parse_listen_addr, parse_size_in};

const EXAMPLES: &str = "\
Examples:
  upcased                                   serve on 127.0.0.1:2277 and [::1]:2277
  upcased -l 0.0.0.0:2277 -l [::]:2277      every address, IPv4 and IPv6
  upcased --udp --udp-rate 100              TCP and UDP, at most 100 replies/s per source
  upcased --idle-timeout 0 --workers 1      never close idle connections; one thread
  upcased --tls-listen 127.0.0.1:2278 --tls-self-signed ca.pem
                                            TLS only, with a throw-away certificate
  upcased -l 127.0.0.1:2277 --tls-listen 127.0.0.1:2278 --tls-cert c.pem --tls-key k.pem
  kill -HUP $(pidof upcased)                read --tls-cert and --tls-key again
  UPCASED_LISTEN='127.0.0.1:7000, [::1]:7000' upcased
  kill -USR1 $(pidof upcased)               log the counters now
  upcased --proxy-protocol v2 --admin 127.0.0.1:9277 --banner '{id} saw {client}'
                                            behind HAProxy (send-proxy-v2), with probes and metrics

Exit status: 0 after a drain (SIGTERM or SIGINT), 1 when it cannot serve, 2 for usage errors.";

/// The capitalisation server: listens on TCP (and, with --udp, UDP), upper-cases every byte
/// stream it receives, and sends it straight back.
#[derive(Debug, Clone, Parser)]
#[command(name = "upcased", version, after_long_help = EXAMPLES)]
pub struct ServerArgs {
    /// Address to listen on, HOST:PORT or [V6]:PORT; repeat for more. Port 0 picks a free
    /// port. [default: 127.0.0.1:2277 and [::1]:2277]
    #[arg(short, long = "listen", value_name = "ADDR", env = "UPCASED_LISTEN",
          value_delimiter = ',', value_parser = parse_listen_addr)]
    pub listen: Vec<SocketAddr>,

    /// Address to serve TLS on, HOST:PORT or [V6]:PORT; repeat for more. Needs --tls-cert
    /// and --tls-key, or --tls-self-signed. With --tls-listen and no --listen, only TLS is
    /// served.
    #[arg(long = "tls-listen", value_name = "ADDR", env = "UPCASED_TLS_LISTEN",
          value_delimiter = ',', value_parser = parse_listen_addr)]
    pub tls_listen: Vec<SocketAddr>,

    /// The TLS certificate chain (PEM, the server's own certificate first). SIGHUP reads it
    /// again.
    #[arg(
        long,
        value_name = "FILE",
        requires = "tls_key",
        requires = "tls_listen"
    )]
    pub tls_cert: Option<PathBuf>,

    /// The TLS private key (PEM: PKCS#8, PKCS#1 or SEC1; not encrypted). May be the
    /// certificate's file. SIGHUP reads it again.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,

    /// For trying TLS out: make a certificate for localhost, 127.0.0.1 and ::1 at startup,
    /// write it to FILE (give that to clients' --ca), and serve it.
    #[arg(
        long,
        value_name = "FILE",
        conflicts_with = "tls_cert",
        requires = "tls_listen"
    )]
    pub tls_self_signed: Option<PathBuf>,

    /// Bound on a TLS handshake, from the accept (or the end of the PROXY header); a client
    /// still shaking hands then is closed.
    #[arg(long, value_name = "DUR", default_value = "10s", value_parser = parse_tls_timeout)]
    pub tls_handshake_timeout: Duration,

    /// Upper-case only a-z, like C's toupper; every other byte passes unchanged.
    #[arg(long)]
    pub ascii: bool,

    /// Also serve UDP: one reply datagram per datagram, on every listen address.
    #[arg(long)]
    pub udp: bool,

    /// UDP datagrams answered per second per source address. [default: unlimited]
    #[arg(long, value_name = "N", requires = "udp",
          value_parser = clap::value_parser!(u32).range(1..))]
    pub udp_rate: Option<u32>,

    /// Connections served at once (at least 1); more are accepted and closed at once.
    #[arg(long, value_name = "N", default_value_t = limits::DEFAULT_MAX_CONNECTIONS,
          value_parser = parse_count)]
    pub max_connections: usize,

    /// Connections served at once from one IP address (at least 1). [default: unlimited]
    #[arg(long, value_name = "N", value_parser = parse_count)]
    pub max_connections_per_ip: Option<usize>,

    /// Close a connection that moves no byte for this long; 0 never does.
    #[arg(long, value_name = "DUR", default_value = "5m", value_parser = parse_duration)]
    pub idle_timeout: Duration,

    /// Bound on the graceful drain after SIGTERM or SIGINT, lingering closes included.
    #[arg(long, value_name = "DUR", default_value = "10s", value_parser = parse_duration)]
    pub shutdown_timeout: Duration,

    /// Bound on a lingering close: after FIN, input is read and discarded for at most this
    /// long, so that a client still sending gets no reset.
    #[arg(long, value_name = "DUR", default_value = "2s", value_parser = parse_duration)]
    pub linger_timeout: Duration,

    /// Bytes read from a connection at a time, 1KiB to 16MiB (suffixes KiB, MiB, k, M); a
    /// busy connection holds at most 4× this (input plus the largest upper-cased output),
    /// an idle one nothing.
    #[arg(long, value_name = "BYTES", default_value_t = limits::READ_CHUNK,
          value_parser = parse_read_buffer)]
    pub read_buffer: usize,

    /// Worker threads, each with its own event loop. [default: one per available core]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub workers: Option<u16>,

    /// PROXY protocol header every TCP connection must start with (from a balancer such as
    /// HAProxy): off, v1, v2, or any (either, told apart by its signature). A connection
    /// without one is closed unanswered; the header's client address is used everywhere.
    /// On --tls-listen addresses it comes before the TLS handshake, in plain text.
    #[arg(long, value_name = "off|v1|v2|any", env = "UPCASED_PROXY_PROTOCOL", value_enum,
          default_value_t = ProxyMode::Off, hide_possible_values = true)]
    pub proxy_protocol: ProxyMode,

    /// The whole PROXY header must arrive within this long of the accept (more than 0).
    #[arg(long, value_name = "DUR", default_value = "5s", value_parser = parse_positive_duration)]
    pub proxy_header_timeout: Duration,

    /// A line sent on every TCP connection before any reply: {id}, {server} (the listener's
    /// address), {client} (the client's, from the PROXY header if any), {hostname}; {{ and }}
    /// for braces. Example: '{id} saw {client}'. On --tls-listen addresses it is sent inside
    /// TLS, after the handshake.
    #[arg(long, value_name = "TEMPLATE", value_parser = Template::parse)]
    pub banner: Option<Template>,

    /// This instance's name in the banner's {id}. [default: the host name]
    #[arg(long, value_name = "ID", requires = "banner")]
    pub instance_id: Option<String>,

    /// Serve /livez, /readyz and /metrics (Prometheus) over HTTP on this address. [default: off]
    #[arg(long, value_name = "ADDR", env = "UPCASED_ADMIN", value_parser = parse_listen_addr)]
    pub admin: Option<SocketAddr>,

    /// After SIGTERM, /readyz answers 503 at once but the listeners keep serving this long
    /// before the drain begins, so a balancer can take the instance out of rotation first.
    #[arg(long, value_name = "DUR", default_value = "0", value_parser = parse_duration)]
    pub drain_delay: Duration,
    /// Bind every TCP and UDP socket with SO_REUSEPORT, one per worker thread: several
    /// upcased processes can then share a port, and the kernel spreads connections among
    /// all of their workers.
    #[arg(long)]
    pub reuse_port: bool,

    /// The connection driver: auto (io_uring where the kernel offers what it needs and no
    /// listener is TLS, else epoll; the log says which), epoll, or uring (exit status 1 where
    /// io_uring is unavailable; a usage error with --tls-listen).
    #[arg(long = "io", value_name = "auto|epoll|uring", env = "UPCASED_IO", value_enum,
          default_value_t = Driver::Auto, hide_possible_values = true)]
    pub io: Driver,

    /// Log line format.
    #[arg(long, value_name = "text|json", value_enum, default_value_t = LogFormat::Text,
          hide_possible_values = true)]
    pub log_format: LogFormat,

    /// More logging (-v debug, -vv trace). RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count)]
    pub verbose: u8,

    /// Less logging (-q warnings only, -qq errors only).
    #[arg(short, long, action = clap::ArgAction::Count, conflicts_with = "verbose")]
    pub quiet: u8,

    /// Write the man page or a shell completion script to stdout and exit (for packagers).
    #[arg(long, value_name = "WHAT", value_enum, hide = true, exclusive = true)]
    pub generate: Option<crate::generate::Generate>,
}

impl ServerArgs {
    /// The server configuration these flags ask for. `--idle-timeout 0` is "no idle
    /// timeout".
    pub fn config(&self) -> Config {
        Config {
            mode: if self.ascii {
                Mode::Ascii
            } else {
                Mode::Unicode
            },
            max_connections: self.max_connections,
            max_connections_per_ip: self.max_connections_per_ip,
            idle_timeout: (!self.idle_timeout.is_zero()).then_some(self.idle_timeout),
            shutdown_timeout: self.shutdown_timeout,
            linger_timeout: self.linger_timeout,
            read_buffer: self.read_buffer,
            udp_rate: self.udp_rate,
            listener: ListenerSettings::default().with_proxy(ProxySettings {
                mode: self.proxy_protocol,
                header_timeout: self.proxy_header_timeout,
                ..ProxySettings::default()
            }),
            banner: None,
            tls_handshake_timeout: self.tls_handshake_timeout,
            io: self.io,
        }
    }

    /// Whether TLS is asked for but no certificate is: `--tls-listen` without `--tls-cert`
    /// and `--tls-key` or `--tls-self-signed`. The binary reports it as a usage error.
    pub fn tls_identity_missing(&self) -> bool {
        !self.tls_listen.is_empty() && self.tls_cert.is_none() && self.tls_self_signed.is_none()
    }

    /// The `--banner` template bound to this instance: `{id}` is `--instance-id`, or the host
    /// name. `None` without `--banner`.
    pub fn banner(&self) -> Result<Option<Banner>, BannerSetupError> {
        let Some(template) = &self.banner else {
            return Ok(None);
        };
        let host = hostname().map_err(BannerSetupError::Hostname)?;
        let id = self.instance_id.as_deref().unwrap_or(&host);
        Ok(Some(template.bind(id, &host)?))
    }
}

/// Why `--banner` cannot be used (a usage error: exit status 2).
#[derive(Debug, thiserror::Error)]
pub enum BannerSetupError {
    /// The template, bound to the instance id and host name, is refused.
    #[error("--banner: {0}")]
    Banner(#[from] BannerError),
    /// The host name, for `{hostname}` and the default `{id}`, could not be read.
    #[error("--banner: could not read the host name: {0}")]
    Hostname(std::io::Error),
}

fn parse_tls_timeout(s: &str) -> Result<Duration, String> {
    match parse_duration(s)? {
        d if d.is_zero() => Err("0 would fail every handshake: give more than zero".into()),
        d => Ok(d),
    }
}

fn parse_positive_duration(s: &str) -> Result<Duration, String> {
    match parse_duration(s)? {
        d if d.is_zero() => Err("0 would refuse every connection: give more than 0".into()),
        d => Ok(d),
    }
}

fn parse_count(s: &str) -> Result<usize, String> {
    match s.trim().parse::<usize>() {
        Ok(0) => Err("0 would refuse every connection: give at least 1".into()),
        Ok(n) => Ok(n),
        Err(_) => Err(format!("`{s}` is not a whole number")),
    }
}

fn parse_read_buffer(s: &str) -> Result<usize, String> {
    parse_size_in(
        s,
        limits::MIN_READ_CHUNK as u64,
        limits::MAX_READ_CHUNK as u64,
    )
    .map(|n| n as usize)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn parse(args: &[&str]) -> Result<ServerArgs, clap::Error> {
        ServerArgs::try_parse_from(std::iter::once("upcased").chain(args.iter().copied()))
    }

    #[test]
    fn the_flags_parse() {
        ServerArgs::command().debug_assert();
    }

    #[test]
    fn defaults_match_the_named_constants() {
        let args = parse(&[]).unwrap();
        assert_eq!(args.config(), Config::default());
        assert_eq!(args.idle_timeout, limits::DEFAULT_IDLE_TIMEOUT);
        assert_eq!(args.shutdown_timeout, limits::DEFAULT_SHUTDOWN_TIMEOUT);
        assert_eq!(args.linger_timeout, limits::LINGER_TIMEOUT);
        assert_eq!(args.read_buffer, limits::READ_CHUNK);
        assert_eq!(args.max_connections, limits::DEFAULT_MAX_CONNECTIONS);
    }

    #[test]
    fn zero_idle_timeout_means_none_and_other_values_are_kept() {
        let off = parse(&["--idle-timeout", "0"]).unwrap().config();
        assert_eq!(off.idle_timeout, None);
        assert_eq!(off.validate(), Ok(()));
        let on = parse(&["--idle-timeout", "3s"]).unwrap().config();
        assert_eq!(on.idle_timeout, Some(Duration::from_secs(3)));
    }

    #[test]
    fn whatever_the_flags_accept_validates() {
        for args in [
            &["--read-buffer", "1KiB", "--max-connections", "1"][..],
            &["--read-buffer", "16MiB", "--idle-timeout", "7d"],
            &["--shutdown-timeout", "0", "--linger-timeout", "7d"],
            &["--udp", "--udp-rate", "1", "--max-connections-per-ip", "1"],
            &["--proxy-protocol", "any", "--proxy-header-timeout", "7d"],
            &[
                "--proxy-protocol",
                "v2",
                "--admin",
                "127.0.0.1:0",
                "--drain-delay",
                "7d",
            ],
        ] {
            assert_eq!(parse(args).unwrap().config().validate(), Ok(()), "{args:?}");
        }
    }

    #[test]
    fn the_proxy_flags_set_every_listener() {
        let c = parse(&["--proxy-protocol", "v1", "--proxy-header-timeout", "3s"])
            .unwrap()
            .config();
        assert_eq!(c.listener.proxy.mode, ProxyMode::V1);
        assert_eq!(c.listener.proxy.header_timeout, Duration::from_secs(3));
        assert_eq!(
            parse(&[]).unwrap().config().listener.proxy.mode,
            ProxyMode::Off
        );
    }

    #[test]
    fn the_io_flag_picks_the_driver() {
        assert_eq!(parse(&[]).unwrap().config().io, Driver::Auto);
        for (flag, want) in [
            ("auto", Driver::Auto),
            ("epoll", Driver::Epoll),
            ("uring", Driver::Uring),
        ] {
            assert_eq!(parse(&["--io", flag]).unwrap().config().io, want);
            assert_eq!(want.as_str(), flag);
        }
        assert_eq!(parse(&["--io", "kqueue"]).unwrap_err().exit_code(), 2);
    }

    #[test]
    fn tls_flags_map_to_the_config_and_ask_for_a_certificate() {
        let args = parse(&[
            "--tls-listen",
            "127.0.0.1:0",
            "--tls-handshake-timeout",
            "3s",
        ])
        .unwrap();
        assert!(args.tls_identity_missing());
        assert_eq!(args.config().tls_handshake_timeout, Duration::from_secs(3));
        let args = parse(&["--tls-listen", "127.0.0.1:0", "--tls-self-signed", "ca.pem"]).unwrap();
        assert!(!args.tls_identity_missing());
        assert_eq!(
            parse(&[]).unwrap().tls_handshake_timeout,
            limits::DEFAULT_TLS_HANDSHAKE_TIMEOUT
        );
    }

    #[test]
    fn the_banner_binds_the_instance_id() {
        let args = parse(&["--banner", "{id} saw {client}", "--instance-id", "edge-1"]).unwrap();
        let line = args.banner().unwrap().unwrap().render(
            "127.0.0.1:1".parse().unwrap(),
            "192.0.2.7:5000".parse().unwrap(),
        );
        assert_eq!(line, b"edge-1 saw 192.0.2.7:5000\n");
        assert!(parse(&[]).unwrap().banner().unwrap().is_none());
        let long = "x".repeat(limits::MAX_BANNER);
        let e = parse(&["--banner", &long]).unwrap().banner().unwrap_err();
        assert!(matches!(
            e,
            BannerSetupError::Banner(BannerError::TooLong(_))
        ));
    }

    #[test]
    fn out_of_range_values_are_usage_errors() {
        for args in [
            &["--max-connections", "0"][..],
            &["--max-connections-per-ip", "0"],
            &["--idle-timeout", "18446744073709551615"],
            &["--shutdown-timeout", "8d"],
            &["--read-buffer", "0"],
            &["--read-buffer", "17MiB"],
            &["--udp", "--udp-rate", "0"],
            &["--listen", "[::ffff:127.0.0.1]:2277"],
            &["--proxy-protocol", "v3"],
            &["--proxy-header-timeout", "0"],
            &["--banner", "{nope}"],
            &["--banner", ""],
            &["--instance-id", "a"],
            &["--admin", "nowhere"],
            &[
                "--tls-listen",
                "127.0.0.1:0",
                "--tls-handshake-timeout",
                "0",
            ],
            &["--tls-listen", "127.0.0.1:0", "--tls-cert", "c.pem"],
            &["--tls-key", "k.pem"],
            &["--tls-self-signed", "ca.pem"],
            &[
                "--tls-listen",
                "127.0.0.1:0",
                "--tls-self-signed",
                "a",
                "--tls-cert",
                "c",
                "--tls-key",
                "k",
            ],
        ] {
            let e = parse(args).unwrap_err();
            assert_eq!(e.exit_code(), 2, "{args:?}");
        }
    }
}
