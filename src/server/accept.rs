//! The accept loop of one listener in one worker: admission, refusal, and the back-off when
//! the process runs out of descriptors.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio_util::task::TaskTracker;
use tracing::{debug, warn};

use super::admission::Refusal;
use super::drain::Accepting;
use super::listeners::{ListenerSettings, Preamble};
use super::stats::{bump, WorkerStats};
use super::tcp::{Accepted, Acceptor};
use super::{conn, preface, tls, Shared};
use crate::limits;

/// Accepts until the drain begins, then closes the listener (by dropping it) so that new
/// connections are refused, and only then lets go of `registered`: once every listener is
/// closed, connections drain (see [`Drain`](super::drain::Drain)).
pub(crate) async fn accept_loop(
    listener: Acceptor,
    settings: ListenerSettings,
    shared: Arc<Shared>,
    stats: Arc<WorkerStats>,
    tracker: TaskTracker,
    registered: Accepting,
) {
    let local = listener.local_addr().ok();
    // `{server}` in the banner: the listener's own address.
    let server = local.unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 0)));
    let mut backoff = limits::ACCEPT_BACKOFF_MIN;
    loop {
        let accepted = tokio::select! {
            biased;
            () = shared.drain.stop_accepting() => break,
            r = listener.accept() => r.and_then(|(s, peer)| Ok((Accepted::register(s, settings.tls)?, peer))),
        };
        match accepted {
            Ok((stream, peer)) => {
                backoff = limits::ACCEPT_BACKOFF_MIN;
                if let Some(decoder) = settings.proxy.decoder() {
                    // The client's address is in the header: only `max_connections` now,
                    // the per-IP limit once the header is read.
                    match shared.admit_unplaced() {
                        Ok(slot) => {
                            tracker.spawn(preface::proxied(
                                stream,
                                peer,
                                server,
                                (decoder, settings.proxy.header_timeout),
                                shared.clone(),
                                stats.clone(),
                                slot,
                            ));
                        }
                        Err(why) => refuse(&shared, &stats, stream, peer, why),
                    }
                    continue;
                }
                match shared.admit(peer.ip()) {
                    Ok(slot) => {
                        bump(&stats.served);
                        match (settings.preamble, shared.config.banner.is_some(), stream) {
                            // The banner, if any, is sent inside TLS, after the handshake.
                            (Preamble::None, _, Accepted::Tls(stream)) => {
                                tracker.spawn(tls::serve(
                                    stream,
                                    Vec::new(),
                                    (peer, server),
                                    shared.clone(),
                                    stats.clone(),
                                    slot,
                                ));
                            }
                            (Preamble::None, false, Accepted::Plain(stream)) => {
                                tracker.spawn(conn::serve(
                                    stream,
                                    peer,
                                    shared.clone(),
                                    stats.clone(),
                                    slot,
                                ));
                            }
                            (Preamble::None, true, Accepted::Plain(stream)) => {
                                tracker.spawn(preface::bannered(
                                    stream,
                                    peer,
                                    server,
                                    shared.clone(),
                                    stats.clone(),
                                    slot,
                                ));
                            }
                        }
                    }
                    Err(why) => refuse(&shared, &stats, stream, peer, why),
                }
            }
            Err(e) if is_resource_exhaustion(&e) => {
                bump(&stats.accept_resource_errors);
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
                    () = shared.drain.stop_accepting() => break,
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
    drop(listener);
    if let Some(local) = local {
        debug!(%local, "listener closed");
    }
    drop(registered);
}

/// Closes a connection over a limit at once, with no data, and counts it. `peer` is the
/// client's address (the PROXY header's, behind a balancer).
pub(crate) fn refuse(
    shared: &Shared,
    stats: &WorkerStats,
    stream: impl Sized,
    peer: SocketAddr,
    why: Refusal,
) {
    let (counter, what) = match why {
        Refusal::OverLimit => (&stats.rejected_over_limit, "--max-connections"),
        Refusal::PerIp => (&stats.rejected_per_ip, "--max-connections-per-ip"),
    };
    let limit = shared.admission.limit(why);
    // Counted before the close, so that whoever sees the close also sees the count.
    bump(counter);
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
