//! `upcased`: the capitalisation server. Parses flags, binds, serves, maps errors to exit
//! codes (0 after a drain, 1 when it cannot serve, 2 for usage errors).
// The flags' doc comments are their `--help` text, where `[::1]:2277` is an address, not a
// rustdoc link.
#![allow(rustdoc::broken_intra_doc_links)]

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::Parser;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};
use upcase::limits;
use upcase::logging::{self, LogFormat};
use upcase::net::{bind_tcp, bind_udp, parse_duration, parse_listen_addr, raise_nofile_limit};
use upcase::server::{Config, Listeners, Server};
use upcase::transform::Mode;

/// The capitalisation server: upper-cases every byte stream it receives and sends it back.
#[derive(Debug, Parser)]
#[command(version, about, long_about = None)]
struct Cli {
    /// Address to listen on, HOST:PORT or [V6]:PORT; repeat for more. Port 0 picks a free
    /// port. [default: 127.0.0.1:2277 and [::1]:2277]
    #[arg(short, long = "listen", value_name = "ADDR", env = "UPCASED_LISTEN",
          value_delimiter = ',', value_parser = parse_listen_addr)]
    listen: Vec<SocketAddr>,

    /// Upper-case only a-z, like C's toupper; every other byte passes unchanged.
    #[arg(long)]
    ascii: bool,

    /// Also serve UDP: one reply datagram per datagram, on every listen address.
    #[arg(long)]
    udp: bool,

    /// UDP datagrams answered per second per source address. [default: unlimited]
    #[arg(long, value_name = "N", requires = "udp",
          value_parser = clap::value_parser!(u32).range(1..))]
    udp_rate: Option<u32>,

    /// Connections served at once; more are accepted and closed at once.
    #[arg(long, value_name = "N", default_value_t = limits::DEFAULT_MAX_CONNECTIONS)]
    max_connections: usize,

    /// Connections served at once from one IP address. [default: unlimited]
    #[arg(long, value_name = "N")]
    max_connections_per_ip: Option<usize>,

    /// Close a connection that moves no byte for this long; 0 never does.
    #[arg(long, value_name = "DUR", default_value = "5m", value_parser = parse_duration)]
    idle_timeout: Duration,

    /// Bound on the graceful drain after SIGTERM or SIGINT.
    #[arg(long, value_name = "DUR", default_value = "10s", value_parser = parse_duration)]
    shutdown_timeout: Duration,

    /// Bound on a lingering close: after FIN, input is read and discarded for at most this
    /// long, so that a client still sending gets no reset.
    #[arg(long, value_name = "DUR", default_value = "2s", value_parser = parse_duration)]
    linger_timeout: Duration,

    /// Bytes read from a connection at a time; a busy connection holds at most 4× this
    /// (input plus the largest upper-cased output), an idle one nothing.
    #[arg(long, value_name = "BYTES", default_value_t = limits::READ_CHUNK,
          value_parser = parse_read_buffer)]
    read_buffer: usize,

    /// Worker threads, each with its own event loop. [default: one per available core]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=1024))]
    workers: Option<u16>,

    /// Log line format.
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,

    /// More logging (-v debug, -vv trace). RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count)]
    verbose: u8,

    /// Less logging (-q warnings only, -qq errors only).
    #[arg(short, long, action = clap::ArgAction::Count, conflicts_with = "verbose")]
    quiet: u8,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    logging::init(cli.log_format, tracing::Level::INFO, cli.verbose, cli.quiet);
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("upcased: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match raise_nofile_limit() {
        Ok(n) if (n as usize) < cli.max_connections + 64 => warn!(
            nofile = n,
            max_connections = cli.max_connections,
            "descriptor limit is below --max-connections; raise `ulimit -n` to reach it"
        ),
        Ok(_) => {}
        Err(e) => warn!(error = %e, "could not read the descriptor limit"),
    }

    let defaults = cli.listen.is_empty();
    let addrs = if defaults {
        vec![
            SocketAddr::from(([127, 0, 0, 1], limits::DEFAULT_PORT)),
            SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, limits::DEFAULT_PORT)),
        ]
    } else {
        cli.listen.clone()
    };
    let mut listeners = Listeners::default();
    for addr in addrs {
        match bind_tcp(addr) {
            Ok(l) => listeners.tcp.push(l),
            Err(e) if defaults && addr.is_ipv6() && ipv6_unavailable(&e) => {
                warn!(%addr, error = %e, "IPv6 is not available here; skipping it");
            }
            Err(e) => {
                let hint = if e.kind() == std::io::ErrorKind::AddrInUse {
                    " — is another upcased running? pick another port with --listen"
                } else {
                    ""
                };
                bail!("could not listen on {addr}: {}{hint}", plain(&e));
            }
        }
    }

    if cli.udp {
        // Same address and port as each TCP listener (its real port, when 0 was asked).
        for l in &listeners.tcp {
            let addr = l.local_addr()?;
            let u = bind_udp(addr)
                .map_err(|e| anyhow::anyhow!("could not listen on {addr} (udp): {}", plain(&e)))?;
            listeners.udp.push(u);
        }
    }

    // Signals are hooked before the first "listening on" line, so that a script that
    // waits for that line and then signals always gets a drain.
    let shutdown = CancellationToken::new();
    spawn_signal_thread(shutdown.clone()).context("could not install signal handlers")?;

    for l in &listeners.tcp {
        info!("listening on {}", l.local_addr()?);
    }
    for u in &listeners.udp {
        info!("listening on {} (udp)", u.local_addr()?);
    }
    let config = Config {
        mode: if cli.ascii {
            Mode::Ascii
        } else {
            Mode::Unicode
        },
        max_connections: cli.max_connections,
        max_connections_per_ip: cli.max_connections_per_ip,
        idle_timeout: (!cli.idle_timeout.is_zero()).then_some(cli.idle_timeout),
        shutdown_timeout: cli.shutdown_timeout,
        udp_rate: cli.udp_rate,
        linger_timeout: cli.linger_timeout,
        read_buffer: cli.read_buffer,
    };
    let workers = match cli.workers {
        Some(n) => n as usize,
        None => std::thread::available_parallelism().map_or(1, |n| n.get()),
    };
    let server = Server::new(config);
    server
        .run_workers(listeners, workers, shutdown.cancelled_owned())
        .context("server failed")?;
    let stats = server.stats();
    info!(
        served = stats.served,
        refused = stats.rejected_over_limit + stats.rejected_per_ip,
        "stopped"
    );
    Ok(())
}

/// Waits for SIGINT or SIGTERM on a thread of its own: the first starts the drain, the
/// second exits at once.
fn spawn_signal_thread(shutdown: CancellationToken) -> anyhow::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name("upcased-signals".into())
        .spawn(move || {
            let rt = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    let _ = ready_tx.send(Err(e));
                    return;
                }
            };
            rt.block_on(async move {
                let (mut term, mut int) = match (
                    signal(SignalKind::terminate()),
                    signal(SignalKind::interrupt()),
                ) {
                    (Ok(t), Ok(i)) => (t, i),
                    (Err(e), _) | (_, Err(e)) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                let _ = ready_tx.send(Ok(()));
                tokio::select! {
                    _ = term.recv() => info!("SIGTERM: draining (a second signal exits at once)"),
                    _ = int.recv() => info!("SIGINT: draining (a second signal exits at once)"),
                }
                shutdown.cancel();
                tokio::select! {
                    _ = term.recv() => {}
                    _ = int.recv() => {}
                }
                warn!("second signal: exiting at once");
                std::process::exit(0);
            });
        })?;
    ready_rx.recv()??;
    Ok(())
}

fn ipv6_unavailable(e: &std::io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EADDRNOTAVAIL | libc::EAFNOSUPPORT | libc::EPROTONOSUPPORT)
    )
}

/// An I/O error without the "(os error N)" suffix.
fn plain(e: &std::io::Error) -> String {
    let s = e.to_string();
    s.split(" (os error").next().unwrap_or(&s).to_lowercase()
}

fn parse_read_buffer(s: &str) -> Result<usize, String> {
    upcase::units::parse_size_in(
        s,
        limits::MIN_READ_CHUNK as u64,
        limits::MAX_READ_CHUNK as u64,
    )
    .map(|n| n as usize)
}
