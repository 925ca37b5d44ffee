//! TLS listeners: the certificate the server serves, the handshake each connection on a TLS
//! listener makes before its stream begins, and [`Transport`] for the established stream,
//! so that the readiness driver runs a TLS connection unchanged.
//!
//! The handshake runs after the admission slot is taken (it counts against the connection
//! limits) and after the PROXY header, if the listener requires one (read in plain text by
//! `preface.rs`, as HAProxy sends it in TLS passthrough), bounded by
//! [`Config::tls_handshake_timeout`](super::Config::tls_handshake_timeout) from its start;
//! a drain that begins meanwhile closes it at once: nothing has been echoed, so it is
//! at a line boundary. A failed handshake is counted by its reason and logged at most once
//! per [`LOG_INTERVAL`](crate::limits::LOG_INTERVAL). The banner, if any, is the first
//! thing sent inside TLS.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio_rustls::TlsAcceptor;
use tracing::{debug, warn};

use super::admission::Slot;
use super::conn::{self, End, Transport};
use super::log::RateLimitedLog;
use super::stats::{bump, WorkerStats};
use super::tcp::Tcp;
use super::{preface, Shared};
use crate::tls::{self, CertStore, ServerTransport, TlsError};

/// What TLS listeners share: the reloadable certificate, the acceptor built on it, and the
/// rate limit of the handshake-failure warning.
pub(crate) struct TlsState {
    pub(crate) store: Arc<CertStore>,
    acceptor: TlsAcceptor,
    log: RateLimitedLog,
}

impl std::fmt::Debug for TlsState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsState")
            .field("store", &self.store)
            .finish_non_exhaustive()
    }
}

impl TlsState {
    /// The acceptor for `store`'s certificate (TLS 1.3 and 1.2, the `ring` provider).
    pub(crate) fn new(store: Arc<CertStore>) -> Result<Self, TlsError> {
        let acceptor = TlsAcceptor::from(tls::server_config(store.clone())?);
        Ok(TlsState {
            store,
            acceptor,
            log: RateLimitedLog::default(),
        })
    }
}

/// Shakes hands on a connection accepted on a TLS listener, sends the banner (if any) inside
/// TLS, then serves it as any other.
///
/// `early` is what the client sent after its PROXY header in the header's last read (the
/// start of its client hello), empty without a header; `client` is its address (the
/// header's, behind a balancer), `server` the listener's.
pub(crate) async fn serve(
    tcp: Tcp,
    early: Vec<u8>,
    (client, server): (SocketAddr, SocketAddr),
    shared: Arc<Shared>,
    stats: Arc<WorkerStats>,
    slot: Slot,
) {
    let Some(state) = shared.tls.as_ref() else {
        // `Server::run*` refuses a TLS listener without a certificate; never reached.
        return;
    };
    let handshake = tls::accept_after(
        &state.acceptor,
        early,
        tcp,
        shared.config.tls_handshake_timeout,
    );
    let result = tokio::select! {
        biased;
        () = shared.drain.cancelled() => {
            debug!(%client, "drain began during the TLS handshake; closed");
            stats.closed(End::Drained);
            return;
        }
        r = handshake => r,
    };
    match result {
        Ok(mut stream) => {
            bump(&stats.tls_handshakes);
            if !preface::send_banner(&mut stream, server, client, &shared, &stats).await {
                return;
            }
            let io = ServerTransport::new(stream);
            conn::serve(io, client, shared.clone(), stats, slot).await;
        }
        Err(e) => {
            // `accept` has closed the stream already (after any alert rustls owed).
            stats.tls_failed(e.reason);
            drop(slot);
            state.log.warn(|suppressed| {
                warn!(peer = %client, reason = e.reason.as_str(), error = %e.error, suppressed,
                      "TLS handshake failed")
            });
        }
    }
}

impl Transport for ServerTransport<Tcp> {
    #[inline]
    fn poll_read_ready(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ServerTransport::poll_read_ready(self, cx)
    }

    #[inline]
    fn poll_read(&mut self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        ServerTransport::poll_read(self, cx, buf)
    }

    #[inline]
    fn poll_write(&mut self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        ServerTransport::poll_write(self, cx, buf)
    }

    #[inline]
    fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ServerTransport::poll_flush(self, cx)
    }

    fn poll_shutdown(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ServerTransport::poll_shutdown(self, cx)
    }

    fn input_waiting(&self) -> io::Result<bool> {
        ServerTransport::input_waiting(self)
    }
}
