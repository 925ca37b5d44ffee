//! `--admin ADDR`: health and metrics over HTTP/1.1, for balancers, Kubernetes and Prometheus.
//!
//! | request | reply |
//! | --- | --- |
//! | `GET /livez` | 200 while the process runs |
//! | `GET /readyz` | 200 while serving; 503 from the moment [`Readiness::set_ready`]`(false)` |
//! | `GET /metrics` | 200, the Prometheus text format (see [`metrics`]) |
//! | `HEAD` of any of these | the same status and headers, no body |
//! | any other path | 404 |
//! | a method other than `GET` or `HEAD`, on any path | 405, with `Allow: GET, HEAD` |
//!
//! It runs on its own thread with its own single-threaded tokio runtime ([`AdminServer::start`]),
//! so a busy data path never delays a probe, on a listener it is handed already bound (tests
//! bind port 0). It serves at most [`AdminConfig::max_connections`] connections at once
//! (one more is closed at once, unanswered), closes a connection that takes longer than
//! [`AdminConfig::header_timeout`] to send a request's headers, and closes any connection
//! after [`AdminConfig::keep_alive`] once its current request is answered. Built on hyper.

pub mod metrics;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::header::{HeaderValue, ALLOW, CACHE_CONTROL, CONTENT_TYPE};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, warn};

use crate::limits::{
    ACCEPT_BACKOFF_MIN, ADMIN_HEADER_TIMEOUT, ADMIN_KEEP_ALIVE, ADMIN_MAX_CONNECTIONS,
};
pub use metrics::{Closed, Metrics, MetricsSource, Rejected, Snapshot, Udp};

/// Whether the instance should get traffic: `/readyz` says 200 while it is set, 503 once
/// cleared. Cloning shares the flag. The server clears it the moment SIGTERM arrives
/// (before `--drain-delay`), so a balancer stops sending new connections while the
/// listeners still accept.
#[derive(Debug, Clone)]
pub struct Readiness(Arc<AtomicBool>);

impl Readiness {
    /// A flag that starts ready.
    pub fn new() -> Readiness {
        Readiness(Arc::new(AtomicBool::new(true)))
    }

    /// Sets or clears readiness.
    pub fn set_ready(&self, ready: bool) {
        self.0.store(ready, Ordering::SeqCst);
    }

    /// Whether `/readyz` answers 200.
    pub fn is_ready(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

impl Default for Readiness {
    fn default() -> Self {
        Readiness::new()
    }
}

/// The admin port's own bounds; `Default` takes them from [`crate::limits`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AdminConfig {
    /// Connections served at once.
    pub max_connections: usize,
    /// How long a request's headers (or, on a kept-alive connection, the next request) may take.
    pub header_timeout: Duration,
    /// How long a connection is kept, after which it is closed once its request is answered.
    pub keep_alive: Duration,
}

impl Default for AdminConfig {
    fn default() -> Self {
        AdminConfig {
            max_connections: ADMIN_MAX_CONNECTIONS,
            header_timeout: ADMIN_HEADER_TIMEOUT,
            keep_alive: ADMIN_KEEP_ALIVE,
        }
    }
}

/// Why the admin port could not start.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// A bound that cannot work.
    #[error("admin port: {0} must be more than 0")]
    Zero(&'static str),
    /// Setting up the listener, the runtime or the thread failed.
    #[error("admin port: {context}: {source}")]
    Io {
        /// What was being done.
        context: &'static str,
        /// The failure.
        #[source]
        source: std::io::Error,
    },
}

impl AdminConfig {
    /// Checks every bound.
    pub fn validate(&self) -> Result<(), AdminError> {
        if self.max_connections == 0 {
            return Err(AdminError::Zero("the connection limit"));
        }
        if self.header_timeout.is_zero() {
            return Err(AdminError::Zero("the header timeout"));
        }
        if self.keep_alive.is_zero() {
            return Err(AdminError::Zero("the keep-alive time"));
        }
        Ok(())
    }
}

/// What the request handler reads.
struct State {
    metrics: Metrics,
    readiness: Readiness,
}

/// The running admin port. [`AdminServer::shutdown`] (or dropping it) stops it: no new
/// connections, open ones closed once their current request is answered, the thread joined.
#[derive(Debug)]
pub struct AdminServer {
    local_addr: SocketAddr,
    cancel: CancellationToken,
    thread: Option<JoinHandle<()>>,
}

impl AdminServer {
    /// Starts serving on `listener` (already bound) on a thread of its own. `source` is
    /// asked for the figures at each scrape of `/metrics`; `readiness` decides `/readyz`.
    /// Every failure to set up is returned here, before anything is served.
    pub fn start(
        listener: std::net::TcpListener,
        source: Arc<dyn MetricsSource>,
        readiness: Readiness,
        config: AdminConfig,
    ) -> Result<AdminServer, AdminError> {
        config.validate()?;
        let io = |context| move |source| AdminError::Io { context, source };
        let local_addr = listener
            .local_addr()
            .map_err(io("reading the listener's address"))?;
        listener
            .set_nonblocking(true)
            .map_err(io("making the listener non-blocking"))?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .enable_time()
            .build()
            .map_err(io("building its runtime"))?;
        let listener = {
            let _entered = runtime.enter();
            tokio::net::TcpListener::from_std(listener).map_err(io("registering the listener"))?
        };
        let state = Arc::new(State {
            metrics: Metrics::new(source),
            readiness,
        });
        let cancel = CancellationToken::new();
        let stop = cancel.clone();
        let thread = std::thread::Builder::new()
            .name("upcased-admin".into())
            .spawn(move || runtime.block_on(serve(listener, state, config, stop)))
            .map_err(io("starting its thread"))?;
        Ok(AdminServer {
            local_addr,
            cancel,
            thread: Some(thread),
        })
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Stops serving and waits for the thread to end (at most about one header timeout).
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        self.cancel.cancel();
        if let Some(thread) = self.thread.take() {
            if thread.join().is_err() {
                warn!("the admin thread panicked");
            }
        }
    }
}

impl Drop for AdminServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The accept loop.
async fn serve(
    listener: tokio::net::TcpListener,
    state: Arc<State>,
    config: AdminConfig,
    cancel: CancellationToken,
) {
    let slots = Arc::new(Semaphore::new(config.max_connections));
    let tracker = TaskTracker::new();
    loop {
        let accepted = tokio::select! {
            () = cancel.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(error) => {
                // Most likely out of descriptors: the data path's problem too; pause
                // rather than spin on a connection that stays pending.
                debug!(%error, "admin accept failed");
                tokio::time::sleep(ACCEPT_BACKOFF_MIN).await;
                continue;
            }
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            debug!(%peer, "admin connection refused: at the connection limit");
            drop(stream);
            continue;
        };
        let state = state.clone();
        let cancel = cancel.clone();
        tracker.spawn(async move {
            connection(stream, peer, state, config, cancel).await;
            drop(slot);
        });
    }
    drop(listener);
    tracker.close();
    // Each connection ends once its current request is answered; a client that will not
    // read its reply is not waited for past one header timeout.
    let _ = tokio::time::timeout(config.header_timeout, tracker.wait()).await;
}

/// Serves one connection until the client closes, a timeout, or the shutdown.
async fn connection(
    stream: tokio::net::TcpStream,
    peer: SocketAddr,
    state: Arc<State>,
    config: AdminConfig,
    cancel: CancellationToken,
) {
    let service = service_fn(move |request| {
        let state = state.clone();
        async move { Ok::<_, Infallible>(respond(&state, &request)) }
    });
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(config.header_timeout)
        .keep_alive(true)
        .max_buf_size(8 * 1024);
    let conn = builder.serve_connection(TokioIo::new(stream), service);
    tokio::pin!(conn);
    let lifetime = tokio::time::sleep(config.keep_alive);
    tokio::pin!(lifetime);
    let mut closing = false;
    loop {
        tokio::select! {
            result = conn.as_mut() => {
                if let Err(error) = result {
                    debug!(%peer, %error, "admin connection ended with an error");
                }
                return;
            }
            () = &mut lifetime, if !closing => {
                conn.as_mut().graceful_shutdown();
                closing = true;
            }
            () = cancel.cancelled(), if !closing => {
                conn.as_mut().graceful_shutdown();
                closing = true;
            }
        }
    }
}

fn text(status: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

/// The routing table of the module's `//!`.
fn respond(state: &State, request: &Request<Incoming>) -> Response<Full<Bytes>> {
    let method = request.method();
    let mut response = if method != Method::GET && method != Method::HEAD {
        let mut response = text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
        response
            .headers_mut()
            .insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
        response
    } else {
        match request.uri().path() {
            "/livez" => text(StatusCode::OK, "ok\n"),
            "/readyz" if state.readiness.is_ready() => text(StatusCode::OK, "ready\n"),
            "/readyz" => text(StatusCode::SERVICE_UNAVAILABLE, "not ready: draining\n"),
            "/metrics" => {
                let mut response = Response::new(Full::new(Bytes::from(state.metrics.encode())));
                response.headers_mut().insert(
                    CONTENT_TYPE,
                    HeaderValue::from_static(metrics::CONTENT_TYPE),
                );
                response
            }
            _ => text(StatusCode::NOT_FOUND, "not found\n"),
        }
    };
    // Health and figures are of this instant; no cache may answer for the server.
    response
        .headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}
