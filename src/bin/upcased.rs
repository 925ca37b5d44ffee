//! `upcased`: the capitalisation server. Parses flags, binds, serves, maps errors to exit
//! codes (0 after a drain, 1 when it cannot serve, 2 for usage errors).

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::{CommandFactory, Parser};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};
use upcase::admin::{AdminConfig, AdminServer, Readiness};
use upcase::generate;
use upcase::limits;
use upcase::logging;
use upcase::net::{bind_tcp, bind_udp, raise_nofile_limit};
use upcase::reuseport::{bind_tcp_reuse_port, bind_udp_reuse_port};
use upcase::server::{Driver, Listener, ListenerSettings, Listeners, Server, ServerArgs};
use upcase::systemd::{self, Notifier};
use upcase::tls;

fn main() -> ExitCode {
    // Socket activation comes first, before logging or any thread opens a descriptor or
    // reads the environment: it claims fds 3.. and unsets the LISTEN_* variables.
    let inherited = systemd::take_listen_fds();
    let args = ServerArgs::parse();
    if let Some(what) = args.generate {
        return match generate::to_stdout(ServerArgs::command(), what) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("upcased: error: could not write to stdout: {e}");
                ExitCode::FAILURE
            }
        };
    }
    let inherited = match inherited {
        Ok(v) => v,
        Err(e) => {
            eprintln!("upcased: error: socket activation: {e}");
            return ExitCode::FAILURE;
        }
    };
    if !inherited.is_empty() && !args.listen.is_empty() {
        ServerArgs::command()
            .error(
                clap::error::ErrorKind::ArgumentConflict,
                "--listen cannot be used when the service manager passes sockets \
                 (LISTEN_FDS): drop --listen, or the .socket unit",
            )
            .exit();
    }
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
    if args.tls_identity_missing() {
        eprintln!(
            "upcased: error: --tls-listen needs a certificate: give --tls-cert FILE and \
             --tls-key FILE, or --tls-self-signed FILE to make one"
        );
        return ExitCode::from(2);
    }
    if args.io == Driver::Uring {
        if !args.tls_listen.is_empty() {
            eprintln!(
                "upcased: error: --io uring does not serve --tls-listen yet: use --io epoll (or auto)"
            );
            return ExitCode::from(2);
        }
        if let Err(why) = uring_available() {
            eprintln!("upcased: error: --io uring: {why}");
            return ExitCode::FAILURE;
        }
    }
    let notifier = Notifier::from_env().unwrap_or_else(|e| {
        warn!(error = %e, "NOTIFY_SOCKET is unusable; not notifying the service manager");
        Notifier::disabled()
    });
    let server = match tls_server(&args, config) {
        Ok(server) => server,
        Err(e) => {
            eprintln!("upcased: error: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    let result = run(args, inherited, server, notifier.clone());
    let _ = notifier.status("stopped");
    match result {
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

fn run(
    args: ServerArgs,
    inherited: Vec<systemd::Inherited>,
    server: Server,
    notifier: Notifier,
) -> anyhow::Result<()> {
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
    let workers = match args.workers {
        Some(n) => n as usize,
        None => std::thread::available_parallelism().map_or(1, |n| n.get()),
    };

    let settings = server.config().listener;
    let sets = if inherited.is_empty() {
        bind_sets(&args, workers, settings)?
    } else {
        if args.reuse_port {
            warn!("--reuse-port does not apply to sockets the service manager passes; they are shared by the workers");
        }
        let mut listeners = Listeners::default();
        for i in &inherited {
            info!(fd = i.fd, name = %i.name, kind = %i.kind(), addr = %i.local_addr()?, "inherited socket");
        }
        let (tcp, udp) = systemd::partition(inherited);
        listeners.tcp = tcp
            .into_iter()
            .map(|(_, l)| Listener::new(l, settings))
            .collect();
        listeners.udp = udp.into_iter().map(|(_, u)| u).collect();
        shared_sets(listeners, workers)?
    };

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
        notifier.clone(),
        readiness,
        args.drain_delay,
    )
    .context("could not install signal handlers")?;

    let first = &sets[0];
    let mut addrs = Vec::new();
    for l in &first.tcp {
        let addr = l.socket.local_addr()?;
        match (l.settings.proxy.mode, l.settings.tls) {
            (upcase::proxy::ProxyMode::Off, true) => info!("listening on {addr} (tls)"),
            (upcase::proxy::ProxyMode::Off, false) => info!("listening on {addr}"),
            (mode, true) => info!("listening on {addr} (tls, PROXY protocol {mode} required)"),
            (mode, false) => info!("listening on {addr} (PROXY protocol {mode} required)"),
        }
        addrs.push(addr.to_string());
    }
    for u in &first.udp {
        let addr = u.local_addr()?;
        info!("listening on {addr} (udp)");
        addrs.push(format!("{addr} (udp)"));
    }
    if let Some(a) = &admin {
        info!(
            "admin port on http://{}/ (/livez, /readyz, /metrics)",
            a.local_addr()
        );
    }
    let plural = if addrs.len() == 1 { "" } else { "s" };
    let status = format!(
        "serving {} listener{plural} on {}",
        addrs.len(),
        addrs.join(", ")
    );
    let exit = CancellationToken::new();
    let watchdog_stop = exit.clone();
    let ready = notifier.clone();
    let result = server.run_worker_sets_with(sets, shutdown.cancelled_owned(), move || {
        if let Err(e) = ready.ready(&status) {
            warn!(error = %e, "could not tell the service manager READY=1");
        }
        tokio::spawn(ready.run_watchdog(watchdog_stop));
    });
    exit.cancel();
    result.context("server failed")?;
    if let Some(a) = admin {
        a.shutdown();
    }
    info!("stopped; counters: {}", server.stats());
    Ok(())
}

/// One listener set per worker. Without `--reuse-port`: one socket per address, shared by
/// every worker (dup'd), UDP served by the first. With it: every worker binds its own TCP
/// socket on each address with `SO_REUSEPORT`, so that the kernel balances between workers
/// (and processes); UDP is one `SO_REUSEPORT` socket per address, in the first worker,
/// because the `--udp-rate` limit is kept per socket and would multiply with the workers.
fn bind_sets(
    args: &ServerArgs,
    workers: usize,
    settings: ListenerSettings,
) -> anyhow::Result<Vec<Listeners>> {
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
    let bind = |addr| {
        if args.reuse_port {
            bind_tcp_reuse_port(addr)
        } else {
            bind_tcp(addr)
        }
    };
    let mut listeners = Listeners::default();
    for addr in addrs {
        match bind(addr) {
            Ok(l) => listeners.tcp.push(Listener::new(l, settings)),
            Err(e) if defaults && addr.is_ipv6() && ipv6_unavailable(&e) => {
                warn!(%addr, error = %e, "IPv6 is not available here; skipping it");
            }
            Err(e) => {
                let hint = if e.kind() == std::io::ErrorKind::AddrInUse {
                    if args.reuse_port {
                        " — is a process without --reuse-port (or another user's) on it? pick another port with --listen"
                    } else {
                        " — is another upcased running? pick another port with --listen"
                    }
                } else {
                    ""
                };
                bail!("could not listen on {addr}: {}{hint}", plain(&e));
            }
        }
    }

    for &addr in &args.tls_listen {
        match bind(addr) {
            Ok(l) => listeners.tcp.push(Listener::new(l, settings.with_tls())),
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
            let u = if args.reuse_port {
                bind_udp_reuse_port(addr)
            } else {
                bind_udp(addr)
            };
            let u =
                u.map_err(|e| anyhow::anyhow!("could not listen on {addr} (udp): {}", plain(&e)))?;
            listeners.udp.push(u);
        }
    }
    if !args.reuse_port {
        return shared_sets(listeners, workers);
    }
    // The other workers bind the real addresses of the first set (its ports, when 0 was
    // asked).
    let mut sets = Vec::with_capacity(workers);
    for _ in 1..workers.max(1) {
        let mut set = Listeners::default();
        for l in &listeners.tcp {
            let addr = l.socket.local_addr()?;
            let socket = bind_tcp_reuse_port(addr).map_err(|e| {
                anyhow::anyhow!(
                    "could not listen on {addr} again for another worker: {}",
                    plain(&e)
                )
            })?;
            set.tcp.push(Listener {
                socket,
                settings: l.settings,
            });
        }
        sets.push(set);
    }
    sets.insert(0, listeners);
    Ok(sets)
}

/// One set per worker, all sharing the sockets of `listeners`; the first serves UDP.
fn shared_sets(listeners: Listeners, workers: usize) -> anyhow::Result<Vec<Listeners>> {
    let mut sets = Vec::with_capacity(workers.max(1));
    for _ in 1..workers.max(1) {
        sets.push(listeners.tcp_copies()?);
    }
    sets.insert(0, listeners);
    Ok(sets)
}

/// Handles signals on a thread of its own: the first SIGINT or SIGTERM makes `/readyz` say
/// 503 at once (and the service manager hear `STOPPING=1`) and, `drain_delay` later, starts
/// the drain; a second exits at once; SIGUSR1 logs the counters; SIGHUP is logged and
/// ignored.
fn spawn_signal_thread(
    shutdown: CancellationToken,
    server: Server,
    notifier: Notifier,
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
                let begin_drain = || {
                    shutdown.cancel();
                    let active = server.stats().active;
                    let _ = notifier.status(&format!("draining {active} connections"));
                };
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
                        () = &mut delay, if delaying => {
                            delaying = false;
                            info!("drain delay over: draining");
                            begin_drain();
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
                        let _ = notifier.stopping(&format!("{name}: draining"));
                        begin_drain();
                    } else {
                        let delay_text = humantime::format_duration(drain_delay);
                        info!(
                            "{name}: /readyz now says 503; still serving for {delay_text} before the \
                             drain (a second signal exits at once)"
                        );
                        let _ = notifier.stopping(&format!(
                            "{name}: readyz 503, still serving for {delay_text}, then draining"
                        ));
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

/// Whether the io_uring driver can run here; why not, in one line, if it cannot.
fn uring_available() -> Result<(), String> {
    #[cfg(all(target_os = "linux", feature = "uring"))]
    return upcase::uring::probe().map_err(|why| format!("io_uring is unavailable here: {why}"));
    #[cfg(not(all(target_os = "linux", feature = "uring")))]
    Err("this build has no io_uring driver (Linux, cargo feature `uring`)".into())
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
