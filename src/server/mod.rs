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
//! single-threaded runtime per core, each accepting on the same listeners, which avoids
//! work-stealing hand-offs on the per-message path.
//!
//! What each connection does, and how it ends, lives in `connection`; the connection
//! limits and counters shared by all workers live in [`Shared`].

mod connection;
mod udp;

pub use udp::MIN_REPLY_PORT;

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info, warn};

use crate::limits;
use crate::transform::Mode;

/// How the server behaves; every field has a flag in `upcased`.
#[derive(Debug, Clone)]
pub struct Config {
    /// Full Unicode or ASCII-only upper-casing.
    pub mode: Mode,
    /// Connections served at once; one more is accepted and closed at once.
    pub max_connections: usize,
    /// Connections served at once from one IP address; `None` for no limit.
    pub max_connections_per_ip: Option<usize>,
    /// Close a connection that moved no byte for this long; `None` never does.
    pub idle_timeout: Option<Duration>,
    /// Bound on the whole graceful drain.
    pub shutdown_timeout: Duration,
    /// Bound on one lingering close.
    pub linger_timeout: Duration,
    /// Bytes read from a connection at a time. A busy connection holds this much input and
    /// at most [`crate::transform::MAX_EXPANSION`] times as much output; an idle one none.
    pub read_buffer: usize,
    /// UDP datagrams answered per second per source address; `None` for no limit.
    pub udp_rate: Option<u32>,
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
        }
    }
}

/// Counters of what the server has done, for logs and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Connections accepted and served.
    pub served: u64,
    /// Connections being served now.
    pub active: usize,
    /// Connections closed at once because `max_connections` was reached.
    pub rejected_over_limit: u64,
    /// Connections closed at once because their address had `max_connections_per_ip`.
    pub rejected_per_ip: u64,
    /// Connections closed by the idle timeout.
    pub idle_closed: u64,
    /// `accept` failures for lack of descriptors or memory, each followed by a back-off.
    pub accept_resource_errors: u64,
    /// UDP datagrams answered.
    pub udp_replied: u64,
    /// UDP datagrams ignored because they came from a port below 1024.
    pub udp_privileged_port: u64,
    /// UDP datagrams dropped because their reply would have been larger.
    pub udp_would_amplify: u64,
    /// UDP datagrams dropped by `udp_rate`.
    pub udp_rate_limited: u64,
}

/// What a server serves on: TCP listeners and, in UDP mode, UDP sockets. All bound
/// already, so that tests can use port 0 and the caller reports real addresses.
#[derive(Debug, Default)]
pub struct Listeners {
    /// Bound TCP listeners.
    pub tcp: Vec<std::net::TcpListener>,
    /// Bound UDP sockets (empty unless UDP mode is on).
    pub udp: Vec<std::net::UdpSocket>,
}

impl From<Vec<std::net::TcpListener>> for Listeners {
    fn from(tcp: Vec<std::net::TcpListener>) -> Self {
        Listeners {
            tcp,
            udp: Vec::new(),
        }
    }
}

/// UDP counters, shared by the UDP tasks.
#[derive(Debug, Default)]
struct UdpCounters {
    replied: AtomicU64,
    privileged_port: AtomicU64,
    would_amplify: AtomicU64,
    rate_limited: AtomicU64,
}

/// State shared by every worker and connection of one server.
#[derive(Debug)]
pub struct Shared {
    config: Config,
    active: AtomicUsize,
    per_ip: Mutex<HashMap<IpAddr, usize>>,
    served: AtomicU64,
    rejected_over_limit: AtomicU64,
    rejected_per_ip: AtomicU64,
    idle_closed: AtomicU64,
    accept_resource_errors: AtomicU64,
    udp: UdpCounters,
    /// Cancelled when the drain starts: listeners close and connections wind down.
    drain: CancellationToken,
    /// When the drain started; connections close by `drain_started + shutdown_timeout`.
    drain_started: OnceLock<Instant>,
    limit_log: RateLimitedLog,
    accept_log: RateLimitedLog,
}

/// A capitalisation server: configuration, limits and counters. Cheap to clone; clones
/// share everything.
#[derive(Debug, Clone)]
pub struct Server {
    shared: Arc<Shared>,
}

impl Server {
    /// A server with this configuration, not yet serving.
    pub fn new(config: Config) -> Self {
        Server {
            shared: Arc::new(Shared {
                config,
                active: AtomicUsize::new(0),
                per_ip: Mutex::new(HashMap::new()),
                served: AtomicU64::new(0),
                rejected_over_limit: AtomicU64::new(0),
                rejected_per_ip: AtomicU64::new(0),
                idle_closed: AtomicU64::new(0),
                accept_resource_errors: AtomicU64::new(0),
                udp: UdpCounters::default(),
                drain: CancellationToken::new(),
                drain_started: OnceLock::new(),
                limit_log: RateLimitedLog::default(),
                accept_log: RateLimitedLog::default(),
            }),
        }
    }

    /// The configuration this server runs with.
    pub fn config(&self) -> &Config {
        &self.shared.config
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> Stats {
        let s = &self.shared;
        Stats {
            served: s.served.load(Ordering::Relaxed),
            active: s.active.load(Ordering::Relaxed),
            rejected_over_limit: s.rejected_over_limit.load(Ordering::Relaxed),
            rejected_per_ip: s.rejected_per_ip.load(Ordering::Relaxed),
            idle_closed: s.idle_closed.load(Ordering::Relaxed),
            accept_resource_errors: s.accept_resource_errors.load(Ordering::Relaxed),
            udp_replied: s.udp.replied.load(Ordering::Relaxed),
            udp_privileged_port: s.udp.privileged_port.load(Ordering::Relaxed),
            udp_would_amplify: s.udp.would_amplify.load(Ordering::Relaxed),
            udp_rate_limited: s.udp.rate_limited.load(Ordering::Relaxed),
        }
    }

    /// Starts the graceful drain, as `shutdown` resolving does.
    pub fn begin_drain(&self) {
        self.shared.begin_drain();
    }

    /// Serves on the current tokio runtime until `shutdown` resolves, then drains:
    /// listeners close, connections finish their current line and are closed, all within
    /// the configured shutdown timeout.
    pub async fn run(
        &self,
        listeners: impl Into<Listeners>,
        shutdown: impl Future<Output = ()>,
    ) -> io::Result<()> {
        let worker = self.worker(listeners.into());
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
        let workers = workers.max(1);
        let mut threads = Vec::with_capacity(workers - 1);
        for i in 1..workers {
            let copies = Listeners {
                tcp: listeners
                    .tcp
                    .iter()
                    .map(|l| l.try_clone())
                    .collect::<io::Result<Vec<_>>>()?,
                udp: Vec::new(),
            };
            let server = self.clone();
            let thread = std::thread::Builder::new()
                .name(format!("upcased-worker-{i}"))
                .spawn(move || -> io::Result<()> {
                    current_thread_runtime()?.block_on(server.worker(copies))
                })?;
            threads.push(thread);
        }
        let rt = current_thread_runtime()?;
        let result = rt.block_on(async {
            let server = self.clone();
            tokio::spawn(async move {
                shutdown.await;
                server.shared.begin_drain();
            });
            self.worker(listeners).await
        });
        for t in threads {
            match t.join() {
                Ok(r) => r?,
                Err(_) => return Err(io::Error::other("a worker thread panicked")),
            }
        }
        result
    }

    /// One worker: an accept loop per listener, and every connection they accept, until
    /// the drain has finished; and a task per UDP socket, until the drain begins.
    async fn worker(&self, listeners: Listeners) -> io::Result<()> {
        let tracker = TaskTracker::new();
        let mut accept_loops = Vec::with_capacity(listeners.tcp.len() + listeners.udp.len());
        for u in listeners.udp {
            u.set_nonblocking(true)?;
            let u = tokio::net::UdpSocket::from_std(u)?;
            let shared = self.shared.clone();
            accept_loops.push(tokio::spawn(async move {
                if let Err(e) = udp::serve(u, shared).await {
                    warn!(error = %e, "udp socket failed");
                }
            }));
        }
        for l in listeners.tcp {
            l.set_nonblocking(true)?;
            let l = TcpListener::from_std(l)?;
            accept_loops.push(tokio::spawn(accept_loop(
                l,
                self.shared.clone(),
                tracker.clone(),
            )));
        }
        for a in accept_loops {
            let _ = a.await;
        }
        // The drain has begun: every connection bounds itself by the drain deadline.
        tracker.close();
        let grace = self.shared.config.shutdown_timeout + self.shared.config.linger_timeout;
        if tokio::time::timeout(grace, tracker.wait()).await.is_err() {
            warn!(
                remaining = tracker.len(),
                "shutdown timeout: closing remaining connections"
            );
        }
        Ok(())
    }
}

impl Shared {
    fn begin_drain(&self) {
        if self.drain_started.set(Instant::now()).is_ok() {
            info!(
                active = self.active.load(Ordering::Relaxed),
                "draining: no new connections; open ones finish their line"
            );
        }
        self.drain.cancel();
    }

    /// The instant by which every connection must be closed, once the drain has begun.
    fn drain_deadline(&self) -> Option<Instant> {
        self.drain_started
            .get()
            .map(|t| *t + self.config.shutdown_timeout)
    }

    /// Takes a connection slot for `ip`, or says which limit refuses it.
    fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<Slot, Refusal> {
        let max = self.config.max_connections;
        if self.active.fetch_add(1, Ordering::AcqRel) >= max {
            self.active.fetch_sub(1, Ordering::AcqRel);
            return Err(Refusal::OverLimit);
        }
        if let Some(per_ip) = self.config.max_connections_per_ip {
            let mut map = self.per_ip.lock().unwrap_or_else(|e| e.into_inner());
            let n = map.entry(ip).or_insert(0);
            if *n >= per_ip {
                drop(map);
                self.active.fetch_sub(1, Ordering::AcqRel);
                return Err(Refusal::PerIp);
            }
            *n += 1;
        }
        self.served.fetch_add(1, Ordering::Relaxed);
        Ok(Slot {
            shared: self.clone(),
            ip,
        })
    }
}

/// Why a connection was refused.
enum Refusal {
    OverLimit,
    PerIp,
}

/// A connection's place in the limits; freed when dropped.
struct Slot {
    shared: Arc<Shared>,
    ip: IpAddr,
}

impl Drop for Slot {
    fn drop(&mut self) {
        if self.shared.config.max_connections_per_ip.is_some() {
            let mut map = self.shared.per_ip.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(n) = map.get_mut(&self.ip) {
                *n -= 1;
                if *n == 0 {
                    map.remove(&self.ip);
                }
            }
        }
        self.shared.active.fetch_sub(1, Ordering::AcqRel);
    }
}

fn current_thread_runtime() -> io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
}

/// Accepts until the drain begins, then closes the listener (by dropping it) so that new
/// connections are refused.
async fn accept_loop(listener: TcpListener, shared: Arc<Shared>, tracker: TaskTracker) {
    let local = listener.local_addr().ok();
    let mut backoff = limits::ACCEPT_BACKOFF_MIN;
    loop {
        let accepted = tokio::select! {
            biased;
            () = shared.drain.cancelled() => break,
            r = listener.accept() => r,
        };
        match accepted {
            Ok((stream, peer)) => {
                backoff = limits::ACCEPT_BACKOFF_MIN;
                match shared.admit(peer.ip()) {
                    Ok(slot) => {
                        let shared = shared.clone();
                        tracker.spawn(connection::serve(stream, peer, shared, slot));
                    }
                    Err(why) => refuse(&shared, stream, peer, why),
                }
            }
            Err(e) if is_resource_exhaustion(&e) => {
                shared
                    .accept_resource_errors
                    .fetch_add(1, Ordering::Relaxed);
                shared.accept_log.warn(|suppressed| {
                    warn!(
                        error = %e,
                        suppressed,
                        retry_in = ?backoff,
                        "accept failed for lack of resources; backing off"
                    )
                });
                tokio::select! {
                    biased;
                    () = shared.drain.cancelled() => break,
                    () = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(limits::ACCEPT_BACKOFF_MAX);
            }
            Err(e) => {
                // ECONNABORTED, EPROTO, EPERM (firewall) and the like concern one
                // connection that is already gone; the listener is fine.
                debug!(error = %e, "accept failed; carrying on");
            }
        }
    }
    if let Some(local) = local {
        debug!(%local, "listener closed");
    }
}

/// Closes a connection over a limit at once, with no data, and counts it.
fn refuse(shared: &Shared, stream: tokio::net::TcpStream, peer: SocketAddr, why: Refusal) {
    let (counter, limit, what) = match why {
        Refusal::OverLimit => (
            &shared.rejected_over_limit,
            shared.config.max_connections,
            "--max-connections",
        ),
        Refusal::PerIp => (
            &shared.rejected_per_ip,
            shared.config.max_connections_per_ip.unwrap_or(0),
            "--max-connections-per-ip",
        ),
    };
    // Counted before the close, so that whoever sees the close also sees the count.
    counter.fetch_add(1, Ordering::Relaxed);
    drop(stream);
    shared
        .limit_log
        .warn(|suppressed| warn!(%peer, limit, suppressed, "connection refused: {what} reached"));
}

/// Whether an `accept` error means the process or system is out of something, so that
/// retrying at once would spin.
fn is_resource_exhaustion(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)
    )
}

/// A warning that is written at most once per [`limits::LOG_INTERVAL`], with the number of
/// occurrences suppressed since the last one.
#[derive(Debug, Default)]
struct RateLimitedLog {
    last: Mutex<Option<Instant>>,
    suppressed: AtomicU64,
}

impl RateLimitedLog {
    fn warn(&self, log: impl FnOnce(u64)) {
        let now = Instant::now();
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        match *last {
            Some(t) if now.duration_since(t) < limits::LOG_INTERVAL => {
                self.suppressed.fetch_add(1, Ordering::Relaxed);
            }
            _ => {
                *last = Some(now);
                drop(last);
                log(self.suppressed.swap(0, Ordering::Relaxed));
            }
        }
    }
}
