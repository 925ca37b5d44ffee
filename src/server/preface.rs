//! What a connection goes through before the core sees a byte: the PROXY protocol header when
//! its listener requires one (then the per-IP limit, with the client's address from it; on a
//! TLS listener, then the handshake, in `tls.rs`), and the banner. The state machine and its
//! driver are unchanged by either: the header is read here and the client's data that came
//! with it is handed over through [`Prefixed`], a transport that yields those bytes before the
//! socket's (on a TLS listener, to the handshake, through `Sniffed::with_early`).

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncWrite, AsyncWriteExt};
use tracing::{debug, warn};

use super::accept::refuse;
use super::admission::Slot;
use super::conn::{self, End, Transport};
use super::stats::{bump, WorkerStats};
use super::tcp::{Accepted, Tcp};
use super::Shared;
use crate::limits;
use crate::proxy::{read_header, Decoder, HeaderError};

/// Serves a connection on a listener that requires a PROXY header. `slot` holds its place
/// under `max_connections` (taken at accept); the per-IP limit is applied here, to the
/// header's client address. `header` is the listener's decoder and header timeout. A refused
/// header closes the connection with no reply. On a TLS listener (`tls`) the header is read
/// in plain text, before the handshake, which then begins with the bytes that came after it.
pub(crate) async fn proxied(
    mut stream: Accepted,
    peer: SocketAddr,
    server: SocketAddr,
    (decoder, header_timeout): (Decoder, Duration),
    shared: Arc<Shared>,
    stats: Arc<WorkerStats>,
    mut slot: Slot,
) {
    let mut buf = [0u8; limits::PROXY_READ_CHUNK];
    let read = tokio::select! {
        biased;
        () = shared.drain.cancelled() => {
            debug!(%peer, "drain began while the PROXY header was incomplete; closed");
            return;
        }
        r = async {
            match &mut stream {
                Accepted::Plain(s) => read_header(s, decoder, header_timeout, &mut buf).await,
                Accepted::Tls(s) => read_header(s, decoder, header_timeout, &mut buf).await,
            }
        } => r,
    };
    let (header, rest) = match read {
        Ok(done) => done,
        Err(HeaderError::Proxy(e)) => {
            // Counted before the close, so that whoever sees the close also sees the count.
            bump(&stats.rejected_proxy_header);
            drop(stream);
            shared.proxy_log.warn(|suppressed| {
                warn!(%peer, reason = e.reason(), suppressed, "connection refused: {e}")
            });
            return;
        }
        Err(HeaderError::Io(e)) => {
            debug!(%peer, error = %e, "connection failed while reading its PROXY header");
            return;
        }
    };
    let client = header.client_or(peer);
    if let Err(why) = slot.place(client.ip()) {
        refuse(&shared, &stats, stream, client, why);
        return;
    }
    debug!(%peer, %client, version = %header.version, local = header.local, "PROXY header read");
    bump(&stats.served);
    let mut stream = match stream {
        Accepted::Tls(stream) => {
            let early = buf[rest].to_vec();
            super::tls::serve(stream, early, (client, server), shared, stats, slot).await;
            return;
        }
        Accepted::Plain(stream) => stream,
    };
    if !send_banner(&mut stream, server, client, &shared, &stats).await {
        return;
    }
    let io = Prefixed {
        pending: buf[rest].to_vec(),
        at: 0,
        inner: stream,
    };
    conn::serve(io, client, shared, stats, slot).await;
}

/// Serves a connection on a listener without a PROXY header, when there is a banner to send
/// first. Already admitted and counted.
pub(crate) async fn bannered(
    mut stream: Tcp,
    peer: SocketAddr,
    server: SocketAddr,
    shared: Arc<Shared>,
    stats: Arc<WorkerStats>,
    slot: Slot,
) {
    if send_banner(&mut stream, server, peer, &shared, &stats).await {
        conn::serve(stream, peer, shared, stats, slot).await;
    }
}

/// Writes the banner line, if there is one (on a TLS stream: inside TLS, flushed); `false`
/// when the connection ended instead (a write error, the idle timeout, the drain), which is
/// counted as its end.
pub(crate) async fn send_banner<S: AsyncWrite + Unpin>(
    stream: &mut S,
    server: SocketAddr,
    client: SocketAddr,
    shared: &Shared,
    stats: &WorkerStats,
) -> bool {
    let Some(banner) = &shared.config.banner else {
        return true;
    };
    let mut line = Vec::with_capacity(128);
    banner.render_into(server, client, &mut line);
    // A fresh socket's send buffer takes the line at once; the bounds are for a client that
    // never reads at all: the idle timeout, as for any reply, and the drain.
    let idle = async {
        match shared.config.idle_timeout {
            Some(t) => tokio::time::sleep(t).await,
            None => std::future::pending().await,
        }
    };
    let end = tokio::select! {
        biased;
        r = async { stream.write_all(&line).await?; stream.flush().await } => match r {
            Ok(()) => {
                stats.add_bytes(0, line.len() as u64);
                return true;
            }
            Err(e) => {
                debug!(%client, error = %e, "connection failed while sending the banner");
                End::Error
            }
        },
        () = idle => End::Idle,
        () = shared.drain.cancelled() => End::Drained,
    };
    stats.closed(end);
    false
}

/// A transport that yields `pending` (the client's data that arrived with its PROXY header)
/// before anything more from `inner`.
#[derive(Debug)]
pub(crate) struct Prefixed<T> {
    pending: Vec<u8>,
    at: usize,
    inner: T,
}

impl<T: Transport> Transport for Prefixed<T> {
    fn poll_read_ready(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.at < self.pending.len() {
            return Poll::Ready(Ok(()));
        }
        self.inner.poll_read_ready(cx)
    }

    fn poll_read(&mut self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        let left = &self.pending[self.at..];
        if left.is_empty() {
            return self.inner.poll_read(cx, buf);
        }
        let n = left.len().min(buf.len());
        buf[..n].copy_from_slice(&left[..n]);
        self.at += n;
        if self.at == self.pending.len() {
            self.pending = Vec::new();
            self.at = 0;
        }
        Poll::Ready(Ok(n))
    }

    fn poll_write(&mut self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        self.inner.poll_write(cx, buf)
    }

    fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.inner.poll_flush(cx)
    }

    fn poll_shutdown(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.inner.poll_shutdown(cx)
    }

    fn input_waiting(&self) -> io::Result<bool> {
        if self.at < self.pending.len() {
            return Ok(true);
        }
        self.inner.input_waiting()
    }
}
