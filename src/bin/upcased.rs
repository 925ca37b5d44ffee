//! `upcased`: the capitalisation server. Parses flags, binds, serves, maps errors to exit
//! codes (0 after a drain, 1 when it cannot serve, 2 for usage errors).

use std::net::SocketAddr;
use std::process::ExitCode;

use anyhow::{bail, Context};
use clap::Parser;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};
use upcase::limits;
use upcase::logging;
use upcase::net::{bind_tcp, bind_udp, raise_nofile_limit};
use upcase::server::{Listener, Listeners, Server, ServerArgs};
use upcase::tls;

fn main() -> ExitCode {
    let args = ServerArgs::parse();
    logging::init(
        args.log_format,
        tracing::Level::INFO,
        args.verbose,
        args.quiet,
    );
    let config = args.config();
    if let Err(e) = config.validate() {
        // The flag parser refuses all of these first; this is the library's word on it.
        eprintln!("upcased: error: {e}");
        return ExitCode::from(2);
    }
    if args.tls_identity_missing() {
        eprintln!(
            "upcased: error: --tls-listen needs a certificate: give --tls-cert FILE and \
             --tls-key FILE, or --tls-self-signed FILE to make one"
        );
        return ExitCode::from(2);
    }
    let server = match tls_server(&args, config) {
        Ok(server) => server,
        Err(e) => {
            eprintln!("upcased: error: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    match run(args, server) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("upcased: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// The server, with the TLS certificate when there are TLS listeners: read from
/// `--tls-cert`/`--tls-key`, or made by `--tls-self-signed`.
fn tls_server(args: &ServerArgs, config: upcase::server::Config) -> anyhow::Result<Server> {
    if args.tls_listen.is_empty() {
        return Ok(Server::new(config));
    }
    let store = match (&args.tls_self_signed, &args.tls_cert, &args.tls_key) {
        (Some(path), _, _) => {
            let store = tls::self_signed(path)?;
            info!(
                ca = %path.display(),
                "made a self-signed certificate for localhost, 127.0.0.1 and ::1; \
                 clients trust it with --ca {}",
                path.display()
            );
            store
        }
        (None, Some(cert), Some(key)) => tls::CertStore::from_files(cert, key)?,
        // `tls_identity_missing` and clap's `requires` rule the rest out.
        _ => bail!("--tls-listen needs --tls-cert and --tls-key, or --tls-self-signed"),
    };
    Ok(Server::with_tls(config, store)?)
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

    // With only --tls-listen, only TLS is served.
    let defaults = args.listen.is_empty() && args.tls_listen.is_empty();
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
            Ok(l) => listeners.tcp.push(Listener::plain(l)),
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

    for &addr in &args.tls_listen {
        match bind_tcp(addr) {
            Ok(l) => listeners.tcp.push(Listener::tls(l)),
            Err(e) => {
                let hint = if e.kind() == std::io::ErrorKind::AddrInUse {
                    " — is another upcased running? pick another port with --tls-listen"
                } else {
                    ""
                };
                bail!("could not listen on {addr} (tls): {}{hint}", plain(&e));
            }
        }
    }

    if args.udp {
        // Same address and port as each TCP listener (its real port, when 0 was asked).
        for l in listeners.tcp.iter().filter(|l| !l.settings.tls) {
            let addr = l.socket.local_addr()?;
            let u = bind_udp(addr)
                .map_err(|e| anyhow::anyhow!("could not listen on {addr} (udp): {}", plain(&e)))?;
            listeners.udp.push(u);
        }
    }

    // Signals are hooked before the first "listening on" line, so that a script that
    // waits for that line and then signals always gets a drain.
    let shutdown = CancellationToken::new();
    spawn_signal_thread(shutdown.clone(), server.clone())
        .context("could not install signal handlers")?;

    for l in &listeners.tcp {
        if l.settings.tls {
            info!("listening on {} (tls)", l.socket.local_addr()?);
        } else {
            info!("listening on {}", l.socket.local_addr()?);
        }
    }
    for u in &listeners.udp {
        info!("listening on {} (udp)", u.local_addr()?);
    }
    let workers = match args.workers {
        Some(n) => n as usize,
        None => std::thread::available_parallelism().map_or(1, |n| n.get()),
    };
    server
        .run_workers(listeners, workers, shutdown.cancelled_owned())
        .context("server failed")?;
    info!("stopped; counters: {}", server.stats());
    Ok(())
}

/// Handles signals on a thread of its own: the first SIGINT or SIGTERM starts the drain and
/// the second exits at once; SIGUSR1 logs the counters; SIGHUP reloads the TLS certificate
/// (without TLS it is logged and ignored).
fn spawn_signal_thread(shutdown: CancellationToken, server: Server) -> anyhow::Result<()> {
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
                loop {
                    let name = tokio::select! {
                        _ = term.recv() => "SIGTERM",
                        _ = int.recv() => "SIGINT",
                        _ = usr1.recv() => {
                            info!("SIGUSR1: counters: {}", server.stats());
                            continue;
                        }
                        _ = hup.recv() => {
                            reload(&server);
                            continue;
                        }
                    };
                    if draining {
                        warn!("second signal ({name}): exiting at once");
                        std::process::exit(0);
                    }
                    info!("{name}: draining (a second signal exits at once)");
                    draining = true;
                    shutdown.cancel();
                }
            });
        })?;
    ready_rx.recv()??;
    Ok(())
}

/// SIGHUP: reads `--tls-cert` and `--tls-key` again; a bad pair is logged and the old one
/// kept.
fn reload(server: &Server) {
    let generation = || server.tls_store().map_or(0, |s| s.generation());
    match server.reload_tls() {
        None => info!("SIGHUP: no TLS certificate to reload; ignored"),
        Some(Ok(true)) => info!(
            generation = generation(),
            "SIGHUP: TLS certificate reloaded; new handshakes use it"
        ),
        Some(Ok(false)) => info!("SIGHUP: the certificate is self-signed; nothing to reload"),
        Some(Err(e)) => {
            warn!(error = %e, "SIGHUP: TLS certificate not reloaded; keeping the old one")
        }
    }
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
