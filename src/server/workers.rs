//! Workers and their runtimes: each worker owns a listener set, its counters, and every
//! connection its accept loops take; the drain ends it.

use std::io;
use std::sync::Arc;

use tokio::time::{timeout_at, Instant};
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

use super::accept::accept_loop;
use super::drain::Drain;
use super::listeners::Listeners;
use super::tcp::Acceptor;
use super::{udp, Shared};
use crate::limits;

/// A single-threaded runtime for one worker: no work-stealing hand-offs on the per-message
/// path.
pub(crate) fn current_thread_runtime() -> io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
}

/// One worker: an accept loop per TCP listener and every connection they accept, until the
/// drain has finished; a task per UDP socket, until the drain begins; and, when `report`,
/// the once-a-minute counter summary. Once they are all spawned, `started` (if any) hears
/// of it.
pub(crate) async fn worker(
    shared: Arc<Shared>,
    listeners: Listeners,
    report: bool,
    started: Option<tokio::sync::mpsc::UnboundedSender<()>>,
) -> io::Result<()> {
    let stats = shared.new_worker_stats();
    let tracker = TaskTracker::new();
    let mut tasks = Vec::with_capacity(listeners.tcp.len() + listeners.udp.len() + 1);
    for u in listeners.udp {
        u.set_nonblocking(true)?;
        let u = tokio::net::UdpSocket::from_std(u)?;
        let (shared, stats) = (shared.clone(), stats.clone());
        tasks.push(tokio::spawn(async move {
            if let Err(e) = udp::serve(u, &shared, &stats).await {
                warn!(error = %e, "udp socket failed");
            }
        }));
    }
    for l in listeners.tcp {
        l.socket.set_nonblocking(true)?;
        // Accepted sockets inherit it: no system call per connection.
        let _ = socket2::SockRef::from(&l.socket).set_nodelay(true);
        let socket = Acceptor::new(l.socket)?;
        tasks.push(tokio::spawn(accept_loop(
            socket,
            l.settings,
            shared.clone(),
            stats.clone(),
            tracker.clone(),
            Drain::accepting(&shared),
        )));
    }
    if report {
        tasks.push(tokio::spawn(report_stats(shared.clone())));
    }
    if let Some(started) = started {
        let _ = started.send(());
    }
    for t in tasks {
        let _ = t.await;
    }
    // This worker's listeners are closed; connections drain once every worker's are.
    shared.drain.cancelled().await;
    // The drain has begun: every connection closes itself by the drain deadline, its
    // lingering close included. The margin only covers scheduling.
    tracker.close();
    let until = shared
        .drain
        .deadline()
        .and_then(|d| d.checked_add(limits::DRAIN_MARGIN));
    if let Some(until) = until {
        if timeout_at(until, tracker.wait()).await.is_err() {
            warn!(
                remaining = tracker.len(),
                "shutdown timeout: closing remaining connections"
            );
        }
    } else {
        tracker.wait().await;
    }
    Ok(())
}

/// Logs the counters once per [`limits::STATS_LOG_INTERVAL`] at info level, when any of them
/// changed, until the drain begins.
async fn report_stats(shared: Arc<Shared>) {
    let mut last = shared.stats();
    let start = Instant::now() + limits::STATS_LOG_INTERVAL;
    let mut tick = tokio::time::interval_at(start, limits::STATS_LOG_INTERVAL);
    loop {
        tokio::select! {
            () = shared.drain.cancelled() => return,
            _ = tick.tick() => {}
        }
        let now = shared.stats();
        if now != last {
            info!("counters: {now}");
            last = now;
        }
    }
}
