//! The io_uring workers ([`crate::uring`]) inside the server: choosing the driver, starting
//! one ring per worker thread on that worker's listeners, and what a ring asks of the server
//! (the shared limits, the counters, the rate-limited warnings) through a [`Host`].
//!
//! The rings serve the TCP listeners. UDP sockets, the once-a-minute counter log and the
//! drain signal stay on a small tokio runtime on the calling thread (the hub), which also
//! runs what `serving` spawns (the service manager's watchdog) until the last ring is done.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;

use tracing::{debug, error, info, warn};

use super::admission::{Refusal, Slot};
use super::drain::{Accepting, Drain};
use super::listeners::{Listener, Listeners};
use super::stats::{bump, WorkerStats};
use super::workers::{current_thread_runtime, worker};
use super::{Driver, Shared};
use crate::proxy::ProxyError;
use crate::uring::{self, Handle};

/// Which driver serves this server's TCP listeners.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Chosen {
    Epoll,
    Uring,
}

/// Decides the driver for `--io` and these listeners, logging the choice once (`log`).
/// `--io uring` is refused (`InvalidInput`) with a TLS listener, and (`Unsupported`) where
/// the probe finds io_uring unusable.
pub(crate) fn choose<'a>(
    io: Driver,
    sets: impl IntoIterator<Item = &'a Listeners>,
    log: bool,
) -> io::Result<Chosen> {
    let tls = sets
        .into_iter()
        .flat_map(|s| &s.tcp)
        .any(|l| l.settings.tls);
    let chosen = match io {
        Driver::Epoll => Chosen::Epoll,
        Driver::Uring if tls => {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "--io uring does not serve TLS listeners yet: use --io epoll (or auto)",
            ))
        }
        Driver::Uring => match uring::probe() {
            Ok(()) => Chosen::Uring,
            Err(why) => {
                return Err(io::Error::new(
                    io::ErrorKind::Unsupported,
                    format!("--io uring: io_uring is unavailable here: {why}"),
                ))
            }
        },
        Driver::Auto if tls => {
            if log {
                info!(
                    io = "epoll",
                    "connection driver: epoll (TLS listeners are served on epoll only)"
                );
            }
            return Ok(Chosen::Epoll);
        }
        Driver::Auto => match uring::probe() {
            Ok(()) => Chosen::Uring,
            Err(why) => {
                if log {
                    info!(io = "epoll", reason = %why, "connection driver: epoll (io_uring unavailable)");
                }
                return Ok(Chosen::Epoll);
            }
        },
    };
    if log {
        match chosen {
            Chosen::Uring => info!(io = "uring", "connection driver: io_uring"),
            Chosen::Epoll => info!(io = "epoll", "connection driver: epoll"),
        }
    }
    Ok(chosen)
}

/// What a ring worker needs from the server it serves: its own counters, and the limits and
/// logs every worker shares.
#[derive(Debug)]
pub(crate) struct Host {
    pub(crate) shared: Arc<Shared>,
    pub(crate) stats: Arc<WorkerStats>,
    /// The worker's registration as an accept loop with the drain, until its listeners close.
    accepting: std::sync::Mutex<Option<Accepting>>,
}

impl Host {
    /// A host for a new worker, whose counters join the server's sums.
    fn new(shared: Arc<Shared>) -> Host {
        let stats = shared.new_worker_stats();
        let accepting = std::sync::Mutex::new(Some(Drain::accepting(&shared)));
        Host {
            shared,
            stats,
            accepting,
        }
    }

    /// The worker has closed its listeners after the drain began (and the kernel has let go
    /// of them): once every worker has, connections drain.
    pub(crate) fn listeners_closed(&self) {
        let guard = self
            .accepting
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        drop(guard);
    }

    /// The per-connection policy.
    pub(crate) fn policy(&self) -> super::conn::Policy {
        self.shared.policy
    }

    /// The banner line's template, if there is one.
    pub(crate) fn banner(&self) -> Option<&crate::banner::Banner> {
        self.shared.config.banner.as_ref()
    }

    /// Whether connections are limited per client address (so the accept must learn it).
    pub(crate) fn per_ip(&self) -> bool {
        self.shared.config.max_connections_per_ip.is_some()
    }

    /// A place under `max_connections`, not yet under the per-IP limit.
    pub(crate) fn admit(&self) -> Result<Slot, Refusal> {
        self.shared.admit_unplaced()
    }

    /// Counts and logs a refusal; the caller closes the connection after this, so that
    /// whoever sees the close also sees the count.
    pub(crate) fn refuse(&self, peer: Option<SocketAddr>, why: Refusal) {
        let (counter, what) = match why {
            Refusal::OverLimit => (&self.stats.rejected_over_limit, "--max-connections"),
            Refusal::PerIp => (&self.stats.rejected_per_ip, "--max-connections-per-ip"),
        };
        bump(counter);
        let limit = self.shared.admission.limit(why);
        let peer = peer.map_or_else(|| "?".to_owned(), |p| p.to_string());
        self.shared.limit_log.warn(
            |suppressed| warn!(%peer, limit, suppressed, "connection refused: {what} reached"),
        );
    }

    /// Counts and logs a refused PROXY header; the caller closes after this.
    pub(crate) fn proxy_refused(&self, peer: SocketAddr, e: &ProxyError) {
        bump(&self.stats.rejected_proxy_header);
        self.shared.proxy_log.warn(
            |suppressed| warn!(%peer, reason = e.reason(), suppressed, "connection refused: {e}"),
        );
    }

    /// Counts a connection as served (accepted and admitted; behind a PROXY header, once the
    /// header was read).
    pub(crate) fn served(&self) {
        bump(&self.stats.served);
    }

    /// Counts a connection's end by its reason (when the close begins, so that a client that
    /// sees the close also sees the count).
    pub(crate) fn closed(&self, end: super::conn::End) {
        self.stats.closed(end);
    }

    /// Counts bytes moved.
    #[inline]
    pub(crate) fn bytes(&self, received: u64, sent: u64) {
        self.stats.add_bytes(received, sent);
    }

    /// Counts and logs an accept that failed for want of descriptors or memory.
    pub(crate) fn accept_failed(&self, e: &io::Error, retry_in: std::time::Duration) {
        bump(&self.stats.accept_resource_errors);
        self.shared.accept_log.warn(|suppressed| {
            warn!(
                error = %e,
                suppressed,
                retry_in = ?retry_in,
                "accept failed for lack of resources; backing off"
            )
        });
    }
}

/// Starts one ring worker on a thread of its own, serving `tcp`. `started` hears once its
/// accepts are armed. A worker that fails begins the drain, so that the server stops rather
/// than serve on fewer rings than it was asked to.
pub(crate) fn spawn(
    shared: &Arc<Shared>,
    tcp: Vec<Listener>,
    handle: &Handle,
    name: String,
    started: Option<tokio::sync::mpsc::UnboundedSender<()>>,
) -> io::Result<JoinHandle<io::Result<()>>> {
    let host = Host::new(shared.clone());
    let handle = handle.clone();
    std::thread::Builder::new()
        .name(name)
        .spawn(move || -> io::Result<()> {
            let r = uring::run(tcp, &host, &handle, || {
                if let Some(s) = started {
                    let _ = s.send(());
                }
            });
            if let Err(e) = &r {
                error!(error = %e, "an io_uring worker failed; draining");
                host.shared.begin_drain();
            }
            r.map_err(io::Error::other)
        })
}

/// A drain handle for this server's rings: one eventfd every ring polls, drained at once if
/// the drain has begun already.
pub(crate) fn handle(shared: &Shared) -> io::Result<Handle> {
    let h = Handle::new()?;
    shared.add_ring(h.clone());
    Ok(h)
}

/// Waits for ring threads, returning the first error.
fn join(threads: Vec<JoinHandle<io::Result<()>>>) -> io::Result<()> {
    let mut result = Ok(());
    for t in threads {
        let r = t
            .join()
            .unwrap_or_else(|_| Err(io::Error::other("an io_uring worker thread panicked")));
        if result.is_ok() {
            result = r;
        }
    }
    result
}

/// [`Server::run_worker_sets_with`](super::Server::run_worker_sets_with) on rings: a ring
/// thread per set with TCP listeners, and the hub (UDP, counters, `shutdown`, `serving`) on
/// the calling thread.
pub(crate) fn run_sets(
    shared: &Arc<Shared>,
    sets: Vec<Listeners>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    serving: impl FnOnce() + Send + 'static,
) -> io::Result<()> {
    // The hub's runtime first: once the rings accept, descriptors may run out (EMFILE).
    let rt = current_thread_runtime()?;
    let handle = handle(shared)?;
    let (started_tx, mut started_rx) = tokio::sync::mpsc::unbounded_channel();
    let mut udp = Vec::new();
    let mut threads = Vec::new();
    for (i, set) in sets.into_iter().enumerate() {
        udp.extend(set.udp);
        if set.tcp.is_empty() {
            continue;
        }
        let name = format!("upcased-ring-{i}");
        match spawn(shared, set.tcp, &handle, name, Some(started_tx.clone())) {
            Ok(t) => threads.push(t),
            Err(e) => {
                shared.begin_drain();
                let _ = join(threads);
                return Err(e);
            }
        }
    }
    debug!(rings = threads.len(), "io_uring workers started");
    let count = threads.len() + 1;
    rt.block_on(async {
        let s = shared.clone();
        tokio::spawn(async move {
            shutdown.await;
            s.begin_drain();
        });
        tokio::spawn(async move {
            for _ in 0..count {
                if started_rx.recv().await.is_none() {
                    return; // a worker failed before serving
                }
            }
            serving();
        });
        let udp = Listeners {
            tcp: Vec::new(),
            udp,
        };
        let hub = worker(shared.clone(), udp, true, Some(started_tx)).await;
        // The rings end after their last connection; wait off the runtime, which keeps
        // running what `serving` spawned meanwhile.
        let rings = tokio::task::spawn_blocking(move || join(threads))
            .await
            .unwrap_or_else(|_| Err(io::Error::other("joining the io_uring workers panicked")));
        hub.and(rings)
    })
}

/// [`Server::run`](super::Server::run) on one ring: the ring on a thread of its own, the
/// hub on the caller's runtime. Returns once the drain has closed every connection.
pub(crate) async fn run_one(shared: &Arc<Shared>, listeners: Listeners) -> io::Result<()> {
    let handle = handle(shared)?;
    let Listeners { tcp, udp } = listeners;
    let (done_tx, done_rx) = tokio::sync::oneshot::channel();
    let thread = if tcp.is_empty() {
        None
    } else {
        Some(spawn(shared, tcp, &handle, "upcased-ring".into(), None)?)
    };
    // The ring thread is joined by a thread of its own, which reports to the runtime.
    std::thread::Builder::new()
        .name("upcased-ring-join".into())
        .spawn(move || {
            let _ = done_tx.send(join(thread.into_iter().collect()));
        })?;
    let udp = Listeners {
        tcp: Vec::new(),
        udp,
    };
    let hub = worker(shared.clone(), udp, true, None).await;
    let rings = done_rx
        .await
        .unwrap_or_else(|_| Err(io::Error::other("the io_uring worker vanished")));
    hub.and(rings)
}
