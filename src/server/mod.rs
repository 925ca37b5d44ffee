//! `upcased`: accepts TCP connections and upper-cases each byte stream back to its sender.
//!
//! The server is handed listeners that are already bound and a future that says when to
//! stop, so tests bind `127.0.0.1:0` and never fight over ports:
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use upcase::server::{Config, Server};
//! let listener = upcase::net::bind_tcp("127.0.0.1:0".parse().unwrap())?;
//! let server = Server::new(Config::default());
//! server.run(vec![listener], async { let _ = tokio::signal::ctrl_c().await; }).await?;
//! # Ok(()) }
//! ```
//!
//! [`Server::run`] serves on the caller's runtime; [`Server::run_workers`] starts one
//! single-threaded runtime per core, each accepting on its own copy of the listeners, which
//! avoids work-stealing hand-offs on the per-message path; [`Server::run_worker_sets`] takes
//! one listener set per worker (for sockets bound per worker).
//!
//! | file | job |
//! | --- | --- |
//! | `config.rs` | [`Config`] and its validation |
//! | `options.rs` | [`ServerArgs`]: the `upcased` flags, their defaults and their mapping to a [`Config`] |
//! | `listeners.rs` | [`Listener`]: a socket and its settings; [`Listeners`]: one worker's set |
//! | `workers.rs` | runtimes, one worker's tasks, the counter summary |
//! | `accept.rs` | the accept loop, refusals, the EMFILE back-off |
//! | `preface.rs` | before the core: the PROXY header, the per-IP limit on its address, the banner |
//! | `metrics.rs` | the admin port's [`Snapshot`](crate::admin::Snapshot), summed from the workers at scrape time |
//! | `admission.rs` | the connection limits shared by all workers |
//! | `conn/` | one connection: the state machine, the readiness driver, the transport seam |
//! | `ring.rs` | `--io`: choosing the driver; the io_uring workers' threads and their host (limits, counters, logs) |
//! | `drain.rs` | the drain signal and its deadline |
//! | `stats.rs` | per-worker counters, summed into [`Stats`] |
//! | `log.rs` | rate-limited warnings |
//! | `tls.rs` | TLS listeners: the certificate, the handshake (after any PROXY header) before the banner and the stream, `Transport` for TLS |
//! | `udp.rs` | UDP mode |

mod accept;
mod admission;
mod config;
pub mod conn;
mod drain;
mod listeners;
mod log;
mod metrics;
mod options;
mod preface;
#[cfg(all(target_os = "linux", feature = "uring"))]
mod ring;
mod stats;
mod tcp;
mod tls;
mod udp;
mod workers;

pub use config::{Config, ConfigError, Driver};
pub use listeners::{Listener, ListenerSettings, Listeners, Preamble};
pub use options::{BannerSetupError, ServerArgs};
pub use stats::Stats;
pub use udp::MIN_REPLY_PORT;

pub(crate) use admission::Slot;
#[cfg(all(target_os = "linux", feature = "uring"))]
pub(crate) use ring::Host;

use std::future::Future;
use std::io;
use std::sync::{Arc, Mutex};

use tracing::info;

use admission::Admission;
use conn::Policy;
use drain::Drain;
use log::RateLimitedLog;
use stats::WorkerStats;
use workers::{current_thread_runtime, worker};

/// State shared by every worker and connection of one server.
#[derive(Debug)]
pub(crate) struct Shared {
    config: Config,
    /// Why `config` cannot be served, if it cannot.
    invalid: Option<ConfigError>,
    pub(crate) policy: Policy,
    admission: Admission,
    drain: Drain,
    /// Every worker's counters, summed by [`Shared::stats`].
    workers: Mutex<Vec<Arc<WorkerStats>>>,
    limit_log: RateLimitedLog,
    accept_log: RateLimitedLog,
    /// Refused PROXY headers.
    proxy_log: RateLimitedLog,
    /// The certificate and acceptor of the TLS listeners, if the server has any.
    tls: Option<tls::TlsState>,
    /// The drain signal of each set of io_uring workers (`--io uring`).
    #[cfg(all(target_os = "linux", feature = "uring"))]
    rings: Mutex<Vec<crate::uring::Handle>>,
}

impl Shared {
    fn begin_drain(&self) {
        if self.drain.begin() {
            info!(
                active = self.admission.active(),
                "draining: no new connections; open ones finish their line"
            );
        }
        #[cfg(all(target_os = "linux", feature = "uring"))]
        for h in self.rings.lock().unwrap_or_else(|e| e.into_inner()).iter() {
            h.stop_accepting();
        }
        self.connections_drain();
    }

    /// Tells the io_uring workers that connections drain, once they do: after the drain
    /// began and the last listener (of the accept loops and the rings alike) is closed.
    fn connections_drain(&self) {
        #[cfg(all(target_os = "linux", feature = "uring"))]
        if let Some(deadline) = self.drain.deadline() {
            for h in self.rings.lock().unwrap_or_else(|e| e.into_inner()).iter() {
                h.drain(deadline);
            }
        }
    }

    /// Registers the drain signal of new io_uring workers; signalled at once if the drain has
    /// begun already.
    #[cfg(all(target_os = "linux", feature = "uring"))]
    fn add_ring(&self, h: crate::uring::Handle) {
        self.rings
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(h.clone());
        if self.drain.begun() {
            h.stop_accepting();
        }
        if let Some(deadline) = self.drain.deadline() {
            h.drain(deadline);
        }
    }

    /// The counters of a new worker, which join the sums of [`Shared::stats`].
    pub(crate) fn new_worker_stats(&self) -> Arc<WorkerStats> {
        let stats = Arc::new(WorkerStats::default());
        self.workers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(stats.clone());
        stats
    }

    fn stats(&self) -> Stats {
        let mut s = Stats {
            active: self.admission.active(),
            ..Stats::default()
        };
        for w in self
            .workers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
        {
            w.add_to(&mut s);
        }
        s
    }
}

/// A capitalisation server: configuration, limits and counters. Cheap to clone; clones
/// share everything.
#[derive(Debug, Clone)]
pub struct Server {
    shared: Arc<Shared>,
}

impl Server {
    /// A server with this configuration, not yet serving. An invalid configuration (see
    /// [`Config::validate`]) is kept, and every `run` refuses it with that error.
    pub fn new(config: Config) -> Self {
        let invalid = config.validate().err();
        Server {
            shared: Arc::new(Shared {
                policy: config.policy(),
                admission: Admission::new(config.max_connections, config.max_connections_per_ip),
                drain: Drain::new(config.shutdown_timeout),
                workers: Mutex::new(Vec::new()),
                limit_log: RateLimitedLog::default(),
                accept_log: RateLimitedLog::default(),
                proxy_log: RateLimitedLog::default(),
                tls: None,
                #[cfg(all(target_os = "linux", feature = "uring"))]
                rings: Mutex::new(Vec::new()),
                invalid,
                config,
            }),
        }
    }

    /// A server with this configuration that serves `store`'s certificate on its TLS
    /// listeners ([`Listener::tls`]). Fails only if rustls refuses the configuration.
    pub fn with_tls(
        config: Config,
        store: Arc<crate::tls::CertStore>,
    ) -> Result<Self, crate::tls::TlsError> {
        let state = tls::TlsState::new(store)?;
        let mut server = Server::new(config);
        // Just made, so not shared yet.
        if let Some(shared) = Arc::get_mut(&mut server.shared) {
            shared.tls = Some(state);
        }
        Ok(server)
    }

    /// Reads the TLS certificate and key files again (what SIGHUP does): `None` without
    /// TLS, `Some(Ok(true))` when the next handshakes use the new pair, `Some(Ok(false))`
    /// when there are no files to read (a self-signed pair), and the error when the new
    /// files are unusable, in which case the old pair goes on being served.
    pub fn reload_tls(&self) -> Option<Result<bool, crate::tls::TlsError>> {
        self.shared.tls.as_ref().map(|t| t.store.reload())
    }

    /// The certificate store of the TLS listeners, if any.
    pub fn tls_store(&self) -> Option<&Arc<crate::tls::CertStore>> {
        self.shared.tls.as_ref().map(|t| &t.store)
    }

    /// The configuration this server runs with.
    pub fn config(&self) -> &Config {
        &self.shared.config
    }

    /// A snapshot of the counters, summed over the workers.
    pub fn stats(&self) -> Stats {
        self.shared.stats()
    }

    /// Starts the graceful drain, as `shutdown` resolving does.
    pub fn begin_drain(&self) {
        self.shared.begin_drain();
    }

    /// `Err` (`InvalidInput`, holding the [`ConfigError`]) if the configuration, or the
    /// settings of a listener in `sets`, is invalid, or if a TLS listener is given to a
    /// server without a certificate.
    fn check<'a>(&self, sets: impl IntoIterator<Item = &'a Listeners>) -> io::Result<()> {
        let invalid = |e: ConfigError| Err(io::Error::new(io::ErrorKind::InvalidInput, e));
        if let Some(e) = &self.shared.invalid {
            return invalid(e.clone());
        }
        for l in sets.into_iter().flat_map(|set| &set.tcp) {
            if let Err(e) = l.settings.validate() {
                return invalid(e.into());
            }
            if l.settings.tls && self.shared.tls.is_none() {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "a TLS listener needs a certificate: make the server with Server::with_tls",
                ));
            }
        }
        Ok(())
    }

    /// Serves on the current tokio runtime until `shutdown` resolves, then drains:
    /// listeners close, connections finish their current line and are closed, all within
    /// the configured shutdown timeout.
    pub async fn run(
        &self,
        listeners: impl Into<Listeners>,
        shutdown: impl Future<Output = ()>,
    ) -> io::Result<()> {
        let listeners = listeners.into();
        self.check([&listeners])?;
        #[cfg(all(target_os = "linux", feature = "uring"))]
        if ring::choose(self.shared.config.io, [&listeners], true)? == ring::Chosen::Uring {
            let rings = ring::run_one(&self.shared, listeners);
            tokio::pin!(rings);
            tokio::select! {
                r = &mut rings => return r,
                () = shutdown => self.shared.begin_drain(),
            }
            return rings.await;
        }
        #[cfg(not(all(target_os = "linux", feature = "uring")))]
        no_uring(self.shared.config.io)?;
        let worker = worker(self.shared.clone(), listeners, true, None);
        tokio::pin!(worker);
        tokio::select! {
            r = &mut worker => return r,
            () = shutdown => self.shared.begin_drain(),
        }
        worker.await
    }

    /// Serves with `workers` threads, each running a single-threaded runtime that accepts
    /// on every listener, until `shutdown` resolves; then drains as [`run`](Self::run)
    /// does. Blocks the calling thread, which becomes one of the workers.
    ///
    /// UDP sockets are served by the calling thread's worker alone.
    pub fn run_workers(
        &self,
        listeners: impl Into<Listeners>,
        workers: usize,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> io::Result<()> {
        let listeners = listeners.into();
        let mut sets = Vec::with_capacity(workers.max(1));
        for _ in 1..workers.max(1) {
            sets.push(listeners.tcp_copies()?);
        }
        sets.insert(0, listeners);
        self.run_worker_sets(sets, shutdown)
    }

    /// Serves with one worker thread per listener set, each on a single-threaded runtime of
    /// its own, until `shutdown` resolves; then drains as [`run`](Self::run) does. The first
    /// set is served by the calling thread, which blocks until every worker has finished.
    /// Sets may share sockets (see [`Listeners::tcp_copies`]) or hold sockets of their own
    /// (`SO_REUSEPORT`, one per worker).
    pub fn run_worker_sets(
        &self,
        sets: Vec<Listeners>,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> io::Result<()> {
        self.run_worker_sets_with(sets, shutdown, || {})
    }

    /// [`run_worker_sets`](Self::run_worker_sets), calling `serving` once every worker has
    /// started its accept loops and UDP tasks (where a service manager is told `READY=1`).
    /// `serving` runs on the first worker's runtime, so it may `tokio::spawn` tasks that
    /// stop when that runtime stops serving (a watchdog).
    pub fn run_worker_sets_with(
        &self,
        sets: Vec<Listeners>,
        shutdown: impl Future<Output = ()> + Send + 'static,
        serving: impl FnOnce() + Send + 'static,
    ) -> io::Result<()> {
        self.check(&sets)?;
        #[cfg(all(target_os = "linux", feature = "uring"))]
        if ring::choose(self.shared.config.io, &sets, true)? == ring::Chosen::Uring {
            return ring::run_sets(&self.shared, sets, shutdown, serving);
        }
        #[cfg(not(all(target_os = "linux", feature = "uring")))]
        no_uring(self.shared.config.io)?;
        let count = sets.len().max(1);
        let (started_tx, mut started_rx) = tokio::sync::mpsc::unbounded_channel();
        let mut sets = sets.into_iter();
        let first = sets.next().unwrap_or_default();
        let mut threads = Vec::new();
        for (i, set) in sets.enumerate() {
            let shared = self.shared.clone();
            let started = started_tx.clone();
            let thread = std::thread::Builder::new()
                .name(format!("upcased-worker-{}", i + 1))
                .spawn(move || -> io::Result<()> {
                    current_thread_runtime()?.block_on(worker(shared, set, false, Some(started)))
                })?;
            threads.push(thread);
        }
        let rt = current_thread_runtime()?;
        let result = rt.block_on(async {
            let shared = self.shared.clone();
            tokio::spawn(async move {
                shutdown.await;
                shared.begin_drain();
            });
            tokio::spawn(async move {
                for _ in 0..count {
                    if started_rx.recv().await.is_none() {
                        return; // a worker failed before serving
                    }
                }
                serving();
            });
            worker(self.shared.clone(), first, true, Some(started_tx)).await
        });
        for t in threads {
            match t.join() {
                Ok(r) => r?,
                Err(_) => return Err(io::Error::other("a worker thread panicked")),
            }
        }
        result
    }
}

/// Without the io_uring driver in the build: `--io uring` is refused, `auto` is epoll.
#[cfg(not(all(target_os = "linux", feature = "uring")))]
fn no_uring(io: Driver) -> io::Result<()> {
    if io == Driver::Uring {
        return Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "--io uring: this build has no io_uring driver (Linux, cargo feature `uring`)",
        ));
    }
    Ok(())
}
