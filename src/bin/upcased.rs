//! `upcased`: the capitalisation server. Parses flags, binds, serves, maps errors to exit
//! codes (0 after a drain, 1 when it cannot serve, 2 for usage errors).

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::Parser;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};
use upcase::admin::{AdminConfig, AdminServer, Readiness};
use upcase::limits;
use upcase::logging;
use upcase::net::{bind_tcp, bind_udp, raise_nofile_limit};
use upcase::server::{Listener, Listeners, Server, ServerArgs};

fn main() -> ExitCode {
    let args = ServerArgs::parse();
    logging::init(
        args.log_format,
        tracing::Level::INFO,
        args.verbose,
        args.quiet,
    );
    let mut config = args.config();
    config.banner = match args.banner() {
        Ok(b) => b,
        Err(e) => {
            eprintln!("upcased: error: {e}");
            return ExitCode::from(2);
        }
    };
    if let Err(e) = config.validate() {
        // The flag parser refuses all of these first; this is the library's word on it.
        eprintln!("upcased: error: {e}");
        return ExitCode::from(2);
    }
    match run(args, Server::new(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("upcased: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: ServerArgs, server: Server) -> anyhow::Result<()> {
    let max_connections = server.config().max_connections;
    match raise_nofile_limit() {
        Ok(n) if (n as usize) < max_connections + 64 => warn!(
            nofile = n,
            max_connections,
            "descriptor limit is below --max-connections; raise `ulimit -n` to reach it"
        ),
        Ok(_) => {}
        Err(e) => warn!(error = %e, "could not read the descriptor limit"),
    }

    let defaults = args.listen.is_empty();
    let addrs = if defaults {
        vec![
            SocketAddr::from(([127, 0, 0, 1], limits::DEFAULT_PORT)),
            SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, limits::DEFAULT_PORT)),
        ]
    } else {
        args.listen.clone()
    };
    let mut listeners = Listeners::default();
    for addr in addrs {
        match bind_tcp(addr) {
            Ok(l) => listeners
                .tcp
                .push(Listener::new(l, server.config().listener)),
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

    if args.udp {
        // Same address and port as each TCP listener (its real port, when 0 was asked).
        for l in &listeners.tcp {
            let addr = l.socket.local_addr()?;
            let u = bind_udp(addr)
                .map_err(|e| anyhow::anyhow!("could not listen on {addr} (udp): {}", plain(&e)))?;
            listeners.udp.push(u);
        }
    }

    let readiness = Readiness::new();
    let admin = match args.admin {
        Some(addr) => {
            let l = bind_tcp(addr).map_err(|e| {
                anyhow::anyhow!("could not listen on {addr} (--admin): {}", plain(&e))
            })?;
            let source = Arc::new(server.clone());
            Some(AdminServer::start(
                l,
                source,
                readiness.clone(),
                AdminConfig::default(),
            )?)
        }
        None => None,
    };

    // Signals are hooked before the first "listening on" line, so that a script that
    // waits for that line and then signals always gets a drain.
    let shutdown = CancellationToken::new();
    spawn_signal_thread(
        shutdown.clone(),
        server.clone(),
        readiness,
        args.drain_delay,
    )
    .context("could not install signal handlers")?;

    for l in &listeners.tcp {
        let addr = l.socket.local_addr()?;
        match l.settings.proxy.mode {
            upcase::proxy::ProxyMode::Off => info!("listening on {addr}"),
            mode => info!("listening on {addr} (PROXY protocol {mode} required)"),
        }
    }
    for u in &listeners.udp {
        info!("listening on {} (udp)", u.local_addr()?);
    }
    if let Some(a) = &admin {
        info!(
            "admin port on http://{}/ (/livez, /readyz, /metrics)",
            a.local_addr()
        );
    }
    let workers = match args.workers {
        Some(n) => n as usize,
        None => std::thread::available_parallelism().map_or(1, |n| n.get()),
    };
    server
        .run_workers(listeners, workers, shutdown.cancelled_owned())
        .context("server failed")?;
    if let Some(a) = admin {
        a.shutdown();
    }
    info!("stopped; counters: {}", server.stats());
    Ok(())
}

/// Handles signals on a thread of its own: the first SIGINT or SIGTERM makes `/readyz` say
/// 503 at once and, `drain_delay` later, starts the drain; a second exits at once; SIGUSR1
/// logs the counters; SIGHUP is logged and ignored.
fn spawn_signal_thread(
    shutdown: CancellationToken,
    server: Server,
    readiness: Readiness,
    drain_delay: Duration,
) -> anyhow::Result<()> {
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
                let hooks = (|| {
                    Ok::<_, std::io::Error>((
                        signal(SignalKind::terminate())?,
                        signal(SignalKind::interrupt())?,
                        signal(SignalKind::user_defined1())?,
                        signal(SignalKind::hangup())?,
                    ))
                })();
                let (mut term, mut int, mut usr1, mut hup) = match hooks {
                    Ok(h) => h,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                let _ = ready_tx.send(Ok(()));
                let mut draining = false;
                let delay = tokio::time::sleep(Duration::MAX);
                tokio::pin!(delay);
                let mut delaying = false;
                loop {
                    let name = tokio::select! {
                        _ = term.recv() => "SIGTERM",
                        _ = int.recv() => "SIGINT",
                        _ = usr1.recv() => {
                            info!("SIGUSR1: counters: {}", server.stats());
                            continue;
                        }
                        _ = hup.recv() => {
                            info!("SIGHUP: nothing to reload; ignored");
                            continue;
                        }
                        () = &mut delay, if delaying => {
                            delaying = false;
                            info!("drain delay over: draining");
                            shutdown.cancel();
                            continue;
                        }
                    };
                    if draining {
                        warn!("second signal ({name}): exiting at once");
                        std::process::exit(0);
                    }
                    draining = true;
                    readiness.set_ready(false);
                    if drain_delay.is_zero() {
                        info!("{name}: draining (a second signal exits at once)");
                        shutdown.cancel();
                    } else {
                        info!(
                            "{name}: /readyz now says 503; still serving for {} before the \
                             drain (a second signal exits at once)",
                            humantime::format_duration(drain_delay)
                        );
                        delay
                            .as_mut()
                            .reset(tokio::time::Instant::now() + drain_delay);
                        delaying = true;
                    }
                }
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
