//! One benchmark run, from the first connection to the figures: opening every connection
//! before the clock starts, the warm-up, the timed window, the watchdog that abandons
//! stalled connections, and the live progress.
//!
//! Everything runs on one thread: a current-thread tokio runtime with one task per
//! connection ([`executor`] for TCP, [`udp`] for UDP). One thread is the point: the tool
//! must cost at most one core, so that on a shared machine it is the server, not the load
//! generator, that gets measured. Being on one thread, the tasks share the counters, the
//! histogram and one read buffer without locks or atomics.

mod executor;
mod udp;

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

use hdrhistogram::Histogram;
use tokio::net::{TcpStream, UdpSocket};
use tokio::task::{AbortHandle, JoinSet, LocalSet};
use tokio::time::{sleep_until, Instant};
use tracing::{debug, warn};

use super::options::BenchArgs;
use super::payload::Payload;
use super::progress::Progress;
use super::result::{BenchResult, Errors, Latency, LoopMode, Transport};
use super::BenchError;
use crate::client::{self, ClientError};

/// Connection attempts in flight at once while opening. Enough to open thousands of
/// connections in well under a second on loopback, few enough not to overflow a server's
/// SYN queue and turn opening into one-second SYN retransmissions.
pub const CONNECT_CONCURRENCY: usize = 128;

/// How often the progress line is redrawn and the watchdog looks for stalled connections.
/// Ten times a second reads as live to a person and costs nothing measurable.
pub const TICK: Duration = Duration::from_millis(100);

/// The one read buffer all connections share (they run on one thread and never hold it
/// across a wait). As large as `loadgen.c`'s, so one read takes whatever the socket holds.
pub const READ_BUFFER: usize = 1 << 20;

/// Descriptors the process needs besides one per connection: standard streams, the
/// runtime's epoll and wake-up descriptors, and a margin.
pub const SPARE_DESCRIPTORS: u64 = 32;

/// The slowest latency the histogram can hold, in nanoseconds (one hour); anything slower
/// is recorded as this.
const HISTOGRAM_MAX_NS: u64 = 3_600_000_000_000;

/// State every connection task of a run shares. Single-threaded, so plain cells.
pub(super) struct Shared {
    /// What each message holds, and what each reply must hold.
    pub payload: Payload,
    /// How long a reply may take before it counts as a timeout.
    pub timeout: Duration,
    /// Whether the timed window is open: replies completed now count in the figures.
    pub measuring: Cell<bool>,
    /// Replies completed in the timed window.
    pub messages: Cell<u64>,
    /// Replies completed over the whole run, for the progress line.
    pub replies: Cell<u64>,
    /// Latency of each reply in the window, in nanoseconds.
    pub histogram: RefCell<Histogram<u64>>,
    /// See [`Errors`].
    pub wrong_replies: Cell<u64>,
    /// See [`Errors`].
    pub resets: Cell<u64>,
    /// See [`Errors`].
    pub timeouts: Cell<u64>,
    /// Scratch space for reads, borrowed only inside one poll.
    pub read_buf: RefCell<Box<[u8]>>,
}

impl Shared {
    fn new(payload: Payload, timeout: Duration) -> Shared {
        Shared {
            payload,
            timeout,
            measuring: Cell::new(false),
            messages: Cell::new(0),
            replies: Cell::new(0),
            // Cannot fail: 1 ≤ low, high ≥ 2 × low, and 3 significant digits is in 0..=5.
            histogram: RefCell::new(
                Histogram::new_with_bounds(1, HISTOGRAM_MAX_NS, 3).expect("valid histogram bounds"),
            ),
            wrong_replies: Cell::new(0),
            resets: Cell::new(0),
            timeouts: Cell::new(0),
            read_buf: RefCell::new(vec![0u8; READ_BUFFER].into_boxed_slice()),
        }
    }

    /// Counts one complete reply. `latency` is `None` for a reply to no message (bytes
    /// the server sent that nobody asked for), which is always wrong.
    #[inline]
    pub fn record(&self, latency: Option<Duration>, right: bool) {
        bump(&self.replies);
        let Some(latency) = latency else {
            bump(&self.wrong_replies);
            return;
        };
        if !right {
            bump(&self.wrong_replies);
        }
        if self.measuring.get() {
            bump(&self.messages);
            let ns = u64::try_from(latency.as_nanos()).unwrap_or(u64::MAX);
            self.histogram.borrow_mut().saturating_record(ns.max(1));
        }
    }
}

/// Adds one to a counter.
#[inline]
pub(super) fn bump(c: &Cell<u64>) {
    c.set(c.get() + 1);
}

/// Where a connection task publishes the start time of its oldest unanswered message, so
/// that the watchdog can find stalled connections without a timer per message.
#[derive(Debug, Default)]
pub(super) struct Watch {
    /// When the oldest message still waiting for its reply started; `None` when none waits.
    pub oldest: Cell<Option<Instant>>,
}

/// The resolution of the runtime's timers: they fire on millisecond ticks, rounded up.
/// An open loop arms its timer this much ahead of the next send time, so that messages go
/// out at most this early and never late, instead of up to this late.
const TIMER_RESOLUTION: Duration = Duration::from_millis(1);

/// The send times of an open loop: one connection's share of a fixed schedule.
pub(super) struct Schedule {
    next: Instant,
    interval: Duration,
    timer: std::pin::Pin<Box<tokio::time::Sleep>>,
}

impl Schedule {
    /// Messages at `first`, `first + interval`, `first + 2 × interval`, ...
    fn new(first: Instant, interval: Duration) -> Schedule {
        Schedule {
            next: first,
            interval,
            timer: Box::pin(sleep_until(ahead_of(first))),
        }
    }

    /// Ready when at least one message is due; registers for a wake-up otherwise.
    pub fn poll_tick(&mut self, cx: &mut std::task::Context<'_>) -> std::task::Poll<()> {
        self.timer.as_mut().poll(cx)
    }

    /// Hands `f` the start time of every message due within the timer's resolution (at
    /// least one, so a timer that fires early cannot spin) and arms the timer for the next.
    ///
    /// A message's start time is the earlier of its scheduled time and now: latency counts
    /// from the schedule when the tool is late (no coordinated omission), and from the
    /// actual send when the timer let it go out early (no charge for time not yet due).
    pub fn take_due(&mut self, mut f: impl FnMut(Instant)) {
        let now = Instant::now();
        let horizon = now + TIMER_RESOLUTION;
        loop {
            f(self.next.min(now));
            self.next += self.interval;
            if self.next > horizon {
                break;
            }
        }
        self.timer.as_mut().reset(ahead_of(self.next));
    }
}

/// When to wake for a message due at `t`: one timer resolution earlier.
fn ahead_of(t: Instant) -> Instant {
    t.checked_sub(TIMER_RESOLUTION).unwrap_or(t)
}

/// Runs one benchmark against `target` and returns what it measured.
///
/// Fails before any load is offered on usage errors, when `target` cannot be resolved or
/// reached (the first connection, or a UDP probe, gets no answer within `timeout`), or when
/// the descriptor limit cannot be raised far enough. Everything that goes wrong once load
/// is flowing is counted in [`BenchResult::errors`] instead.
pub fn run(
    target: &str,
    timeout: Duration,
    args: &BenchArgs,
    progress: Option<&Progress>,
) -> Result<BenchResult, BenchError> {
    run_tls(target, timeout, args, progress, None)
}

/// [`run`], over TLS when `tls` is given (`upcase bench --tls`): every connection's
/// handshake is done before the clock starts, and the result says which version and cipher
/// suite were negotiated.
pub fn run_tls(
    target: &str,
    timeout: Duration,
    args: &BenchArgs,
    progress: Option<&Progress>,
    tls: Option<&crate::client::TlsClient>,
) -> Result<BenchResult, BenchError> {
    args.validate()?;
    ensure_descriptors(args.connections)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|source| BenchError::Local {
            what: "starting the runtime",
            source,
        })?;
    let local = LocalSet::new();
    let result = local.block_on(
        &runtime,
        run_on_thread(target, timeout, args, progress, tls),
    );
    if let Some(p) = progress {
        p.finish();
    }
    result
}

async fn run_on_thread(
    target: &str,
    timeout: Duration,
    args: &BenchArgs,
    progress: Option<&Progress>,
    tls: Option<&crate::client::TlsClient>,
) -> Result<BenchResult, BenchError> {
    let payload = Payload::new(args.size as usize, args.text);
    let shared = Rc::new(Shared::new(payload, timeout));
    let n = args.connections as usize;
    if let Some(p) = progress {
        p.connecting(0, n as u64);
    }
    let (peer, conns) = if args.udp {
        let (peer, sockets, failures) = open_udp(target, n, timeout, &shared, progress).await?;
        (peer, Connections::Udp(sockets, failures))
    } else if let Some(tls) = tls {
        let (peer, streams, failures) = open_tcp(target, n, timeout, progress).await?;
        let (streams, failures) = handshakes(tls, streams, failures, timeout).await?;
        (peer, Connections::Tls(streams, failures))
    } else {
        let (peer, streams, failures) = open_tcp(target, n, timeout, progress).await?;
        (peer, Connections::Tcp(streams, failures))
    };
    let session = match &conns {
        Connections::Tls(s, _) => s.first().map(|s| crate::tls::session_info(s.get_ref().1)),
        _ => None,
    };
    let (open, connect_failures) = match &conns {
        Connections::Tcp(s, f) => (s.len(), *f),
        Connections::Tls(s, f) => (s.len(), *f),
        Connections::Udp(s, f) => (s.len(), *f),
    };

    // The clock starts only now that every connection is open.
    let t0 = Instant::now();
    let pipeline = args.pipeline as usize;
    let schedule = |i: usize| {
        args.rate.map(|rate| {
            // Connection i sends messages i, i + open, i + 2·open, ... of one schedule of
            // `rate` per second, so the total is `rate` whatever the number of connections.
            Schedule::new(
                t0 + Duration::from_secs_f64(i as f64 / rate),
                Duration::from_secs_f64(open as f64 / rate),
            )
        })
    };
    let mut tasks: Vec<(Rc<Watch>, AbortHandle)> = Vec::with_capacity(open);
    match conns {
        Connections::Tcp(streams, _) => {
            for (i, stream) in streams.into_iter().enumerate() {
                let watch = Rc::new(Watch::default());
                let driver = executor::TcpDriver::new(
                    stream,
                    Rc::clone(&shared),
                    Rc::clone(&watch),
                    pipeline,
                    schedule(i),
                );
                let handle = tokio::task::spawn_local(driver.run());
                tasks.push((watch, handle.abort_handle()));
            }
        }
        Connections::Tls(streams, _) => {
            for (i, stream) in streams.into_iter().enumerate() {
                let watch = Rc::new(Watch::default());
                let driver = executor::TcpDriver::new(
                    stream,
                    Rc::clone(&shared),
                    Rc::clone(&watch),
                    pipeline,
                    schedule(i),
                );
                let handle = tokio::task::spawn_local(driver.run());
                tasks.push((watch, handle.abort_handle()));
            }
        }
        Connections::Udp(sockets, _) => {
            for (i, socket) in sockets.into_iter().enumerate() {
                let driver = udp::UdpDriver::new(socket, Rc::clone(&shared), pipeline, schedule(i));
                let handle = tokio::task::spawn_local(driver.run());
                tasks.push((Rc::new(Watch::default()), handle.abort_handle()));
            }
        }
    }

    let warm_end = t0 + args.warmup;
    let end = warm_end + args.duration;
    let mut window_start = None;
    let mut last = (t0, 0u64);
    loop {
        let now = Instant::now();
        if window_start.is_none() && now >= warm_end {
            shared.measuring.set(true);
            window_start = Some(now);
        }
        if now >= end {
            break;
        }
        watchdog(&mut tasks, &shared, now);
        if let Some(p) = progress {
            let replies = shared.replies.get();
            let dt = now.duration_since(last.0).as_secs_f64();
            let rate = if dt > 0.0 {
                (replies - last.1) as f64 / dt
            } else {
                0.0
            };
            last = (now, replies);
            let errors = shared.wrong_replies.get()
                + shared.resets.get()
                + shared.timeouts.get()
                + connect_failures;
            match window_start {
                None => p.warming(now - t0, args.warmup, rate, errors),
                Some(ws) => p.measuring(now - ws, args.duration, rate, errors),
            }
        }
        let boundary = if window_start.is_none() {
            warm_end
        } else {
            end
        };
        sleep_until(boundary.min(now + TICK)).await;
    }
    let window_end = Instant::now();
    shared.measuring.set(false);
    for (_, task) in &tasks {
        task.abort();
    }

    let window_start = window_start.unwrap_or(window_end);
    let duration_s = window_end.duration_since(window_start).as_secs_f64();
    let messages = shared.messages.get();
    let bytes = messages * u64::from(args.size);
    let per_s = |x: f64| {
        if duration_s > 0.0 {
            x / duration_s
        } else {
            0.0
        }
    };
    let hist = shared.histogram.borrow();
    let latency = (!hist.is_empty()).then(|| {
        let us = |ns: u64| ns as f64 / 1000.0;
        Latency {
            min: us(hist.min()),
            mean: hist.mean() / 1000.0,
            p50: us(hist.value_at_quantile(0.5)),
            p90: us(hist.value_at_quantile(0.9)),
            p99: us(hist.value_at_quantile(0.99)),
            p999: us(hist.value_at_quantile(0.999)),
            max: us(hist.max()),
        }
    });
    Ok(BenchResult {
        target: target.to_string(),
        peer: peer.to_string(),
        transport: if args.udp {
            Transport::Udp
        } else {
            Transport::Tcp
        },
        tls: session,
        mode: if args.rate.is_some() {
            LoopMode::Open
        } else {
            LoopMode::Closed
        },
        connections: args.connections,
        connections_open: open as u32,
        size: args.size,
        pipeline: args.rate.is_none().then_some(args.pipeline),
        rate: args.rate,
        text: args.text,
        warmup_s: window_start.duration_since(t0).as_secs_f64(),
        duration_s,
        messages,
        bytes,
        msgs_per_s: per_s(messages as f64),
        mib_per_s: per_s(bytes as f64) / (1024.0 * 1024.0),
        latency_us: latency,
        errors: Errors {
            wrong_replies: shared.wrong_replies.get(),
            resets: shared.resets.get(),
            timeouts: shared.timeouts.get(),
            connect_failures,
        },
    })
}

/// The open sockets of a run, and how many failed to open.
enum Connections {
    Tcp(Vec<TcpStream>, u64),
    Tls(Vec<tokio_rustls::client::TlsStream<TcpStream>>, u64),
    Udp(Vec<UdpSocket>, u64),
}

/// Abandons every connection whose oldest unanswered message is older than the timeout,
/// counting a timeout for each, and forgets tasks that have ended.
fn watchdog(tasks: &mut Vec<(Rc<Watch>, AbortHandle)>, shared: &Shared, now: Instant) {
    tasks.retain(|(watch, task)| {
        if task.is_finished() {
            return false;
        }
        match watch.oldest.get() {
            Some(t) if now.saturating_duration_since(t) > shared.timeout => {
                debug!(
                    "abandoning a connection with no reply for {:?}",
                    shared.timeout
                );
                task.abort();
                bump(&shared.timeouts);
                false
            }
            _ => true,
        }
    });
}

/// Raises the soft descriptor limit when `connections` needs more than it allows, or says
/// how to raise it.
fn ensure_descriptors(connections: u32) -> Result<(), BenchError> {
    let needed = u64::from(connections) + SPARE_DESCRIPTORS;
    let limit = crate::net::raise_nofile_limit().map_err(|source| BenchError::Local {
        what: "reading the descriptor limit",
        source,
    })?;
    if limit < needed {
        return Err(BenchError::DescriptorLimit {
            connections,
            needed,
            limit,
        });
    }
    Ok(())
}

/// Opens `n` TCP connections to `target`. The first one decides the address (every
/// resolved address is tried) and its failure is a connect error; later failures are
/// counted and returned.
/// Shakes hands on every open connection, [`CONNECT_CONCURRENCY`] at a time. The first
/// failing is the run failing (a certificate not trusted is not load); later ones count as
/// connect failures.
async fn handshakes(
    tls: &crate::client::TlsClient,
    streams: Vec<TcpStream>,
    mut failures: u64,
    timeout: Duration,
) -> Result<(Vec<tokio_rustls::client::TlsStream<TcpStream>>, u64), BenchError> {
    let mut out = Vec::with_capacity(streams.len());
    let mut streams = streams.into_iter();
    if let Some(first) = streams.next() {
        let s = crate::tls::connect(first, tls.config(), tls.name().clone(), timeout)
            .await
            .map_err(ClientError::from)?;
        out.push(s);
    }
    let mut pending = JoinSet::new();
    for tcp in streams {
        while pending.len() >= CONNECT_CONCURRENCY {
            match pending.join_next().await {
                Some(Ok(Ok(s))) => out.push(s),
                _ => failures += 1,
            }
        }
        let (config, name) = (tls.config().clone(), tls.name().clone());
        pending.spawn_local(async move { crate::tls::connect(tcp, &config, name, timeout).await });
    }
    while let Some(r) = pending.join_next().await {
        match r {
            Ok(Ok(s)) => out.push(s),
            _ => failures += 1,
        }
    }
    Ok((out, failures))
}

async fn open_tcp(
    target: &str,
    n: usize,
    timeout: Duration,
    progress: Option<&Progress>,
) -> Result<(SocketAddr, Vec<TcpStream>, u64), BenchError> {
    let first = first_tcp(target, timeout).await?;
    let peer = first.peer_addr().map_err(|source| ClientError::Connect {
        addr: target.to_string(),
        source,
    })?;
    let mut streams = Vec::with_capacity(n);
    streams.push(first);
    let mut failures = 0u64;
    let mut pending = JoinSet::new();
    let mut collect = |r: Option<Result<io::Result<TcpStream>, tokio::task::JoinError>>,
                       streams: &mut Vec<TcpStream>| {
        match r {
            Some(Ok(Ok(s))) => streams.push(s),
            Some(Ok(Err(e))) => {
                if failures == 0 {
                    warn!(%peer, error = %e, "a connection failed to open");
                }
                failures += 1;
            }
            Some(Err(e)) => {
                warn!(error = %e, "a connection attempt was lost");
                failures += 1;
            }
            None => {}
        }
        if let Some(p) = progress {
            p.connecting(streams.len() as u64 + failures, n as u64);
        }
    };
    for _ in 1..n {
        while pending.len() >= CONNECT_CONCURRENCY {
            let r = pending.join_next().await;
            collect(r, &mut streams);
        }
        pending.spawn_local(connect_one(peer, timeout));
    }
    while let Some(r) = pending.join_next().await {
        collect(Some(r), &mut streams);
    }
    Ok((peer, streams, failures))
}

/// The first connection: every address `target` resolves to, in order, each attempt
/// bounded by `timeout`.
async fn first_tcp(target: &str, timeout: Duration) -> Result<TcpStream, BenchError> {
    Ok(client::connect_each_async(target, |addr| connect_one(addr, timeout)).await?)
}

/// One connection, with `TCP_NODELAY`: every message is a small write that wants its
/// reply at once.
async fn connect_one(addr: SocketAddr, timeout: Duration) -> io::Result<TcpStream> {
    let stream = tokio::time::timeout(timeout, TcpStream::connect(addr))
        .await
        .map_err(|_| io::Error::from(io::ErrorKind::TimedOut))??;
    stream.set_nodelay(true)?;
    Ok(stream)
}

/// Opens `n` connected UDP sockets to the first address of `target`, after checking with
/// one message that something answers there: UDP has no handshake to fail.
async fn open_udp(
    target: &str,
    n: usize,
    timeout: Duration,
    shared: &Shared,
    progress: Option<&Progress>,
) -> Result<(SocketAddr, Vec<UdpSocket>, u64), BenchError> {
    let peer = client::resolve(target)?[0];
    let mut sockets = Vec::with_capacity(n);
    let mut failures = 0u64;
    for i in 0..n {
        match udp_socket(peer) {
            Ok(s) => sockets.push(s),
            Err(source) if i == 0 => {
                return Err(BenchError::UdpUnreachable {
                    addr: target.to_string(),
                    reason: source.to_string(),
                })
            }
            Err(e) => {
                if failures == 0 {
                    warn!(%peer, error = %e, "a UDP socket failed to open");
                }
                failures += 1;
            }
        }
        if let Some(p) = progress {
            p.connecting((i + 1) as u64, n as u64);
        }
    }
    udp::probe(&sockets[0], &shared.payload.message, timeout)
        .await
        .map_err(|reason| BenchError::UdpUnreachable {
            addr: target.to_string(),
            reason,
        })?;
    Ok((peer, sockets, failures))
}

/// A UDP socket bound to an ephemeral port and connected to `peer`, so that it receives
/// only the peer's datagrams and learns of ICMP port-unreachable.
fn udp_socket(peer: SocketAddr) -> io::Result<UdpSocket> {
    UdpSocket::from_std(crate::net::connect_udp(peer)?)
}
