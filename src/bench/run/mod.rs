//! One benchmark run, from the first connection to the figures: opening every connection
//! before the clock starts, the warm-up, the timed window, the drain after it, the watchdog
//! that abandons stalled connections, and the live progress.
//!
//! Everything runs on one thread: a current-thread tokio runtime with one task per
//! connection ([`executor`] for TCP, [`udp`] for UDP). One thread is the point: the tool
//! must cost at most one core, so that on a shared machine it is the server, not the load
//! generator, that gets measured. Being on one thread, the tasks share the counters, the
//! histogram and one read buffer without locks or atomics.
//!
//! Memory does not grow with the load asked for: an open loop keeps, per connection, the
//! count of messages its schedule made due and the count it began (a message's scheduled
//! time is computed from its index), and one start time per reply owed, at most
//! [`MAX_PIPELINE`](super::options::MAX_PIPELINE) per connection and [`MAX_IN_FLIGHT`] in all.

mod executor;
mod udp;

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::rc::Rc;
use std::time::Duration;

use hdrhistogram::Histogram;
use tokio::net::{TcpStream, UdpSocket};
use tokio::sync::Notify;
use tokio::task::{AbortHandle, JoinSet, LocalSet};
use tokio::time::{sleep_until, Instant};
use tracing::debug;

use super::options::{BenchArgs, MAX_PIPELINE};
use super::payload::Payload;
use super::progress::Progress;
use super::result::{
    round, BenchResult, Errors, Latency, LoopMode, ScheduleReport, Transport, MAX_SCHEDULE_SLIP,
};
use super::BenchError;
use crate::check::report::Detail;
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

/// Open loop: replies owed at once over all connections. Each costs one start time (16
/// bytes), so this bounds that memory to 16 MiB whatever `--rate` asks; a message due
/// beyond it waits, and is counted as never sent if the window ends first.
pub const MAX_IN_FLIGHT: u64 = 1 << 20;

/// Open loop: a message whose first byte goes out more than this after its scheduled time
/// is counted late. Ten timer ticks: more than scheduling noise on a busy machine, less than
/// any stall worth seeing.
pub const LATE_SEND: Duration = Duration::from_millis(10);

/// The slowest latency the histogram can hold, in nanoseconds (one hour); anything slower
/// is recorded as this.
const HISTOGRAM_MAX_NS: u64 = 3_600_000_000_000;

/// Open loop: the messages one connection never sent are recorded in the histogram in at
/// most this many groups (each at its middle value), so that the cost does not grow with
/// `--rate`; the histogram's own precision is coarser than the groups.
const UNSENT_GROUPS: u64 = 256;

/// The latest deadline ever computed: `t + d`, or `t` plus four times the longest flag
/// value if that overflows (it cannot on any real clock; no `Instant + Duration` may panic).
pub(super) fn later(t: Instant, d: Duration) -> Instant {
    t.checked_add(d)
        .or_else(|| t.checked_add(crate::limits::MAX_DURATION * 4))
        .unwrap_or(t)
}

/// A bench connection over TLS (`--tls`).
pub(super) type TlsStream = tokio_rustls::client::TlsStream<TcpStream>;

/// State every connection task of a run shares. Single-threaded, so plain cells.
pub(super) struct Shared {
    /// What each message holds, and what each reply must hold.
    pub payload: Payload,
    /// How long a reply may take before it counts as a timeout.
    pub timeout: Duration,
    /// Whether new messages may be sent: until the window ends (or Ctrl-C).
    pub sending: Cell<bool>,
    /// Whether the timed window is open: replies completed now count in the figures.
    pub measuring: Cell<bool>,
    /// Replies completed in the timed window.
    pub messages: Cell<u64>,
    /// Replies completed over the whole run, for the progress line.
    pub replies: Cell<u64>,
    /// Replies owed over all connections.
    pub in_flight: Cell<u64>,
    /// Woken when the last reply owed arrives after sending stopped.
    pub drained: Notify,
    /// Open loop: messages begun within the window.
    pub begun_in_window: Cell<u64>,
    /// Open loop: messages begun more than [`LATE_SEND`] after their time.
    pub late: Cell<u64>,
    /// Latency of each reply in the window, in nanoseconds.
    pub histogram: RefCell<Histogram<u64>>,
    /// The first wrong reply of the run.
    pub first_wrong: RefCell<Option<Detail>>,
    /// Whether some connection is collecting the bytes of a wrong reply for
    /// [`Shared::first_wrong`], so that only one does.
    pub capturing: Cell<bool>,
    /// See [`Errors`].
    pub wrong_replies: Cell<u64>,
    /// See [`Errors`].
    pub resets: Cell<u64>,
    /// See [`Errors`].
    pub refused: Cell<u64>,
    /// See [`Errors`].
    pub timeouts: Cell<u64>,
    /// `--reconnect`: where to reopen a connection the server closed cleanly, and whether
    /// to read a banner on the new one.
    pub reconnect: Option<(SocketAddr, bool)>,
    /// Connections reopened under `--reconnect`.
    pub reconnects: Cell<u64>,
    /// `--reconnect`: messages a server closed without answering, sent again.
    pub retried: Cell<u64>,
    /// `--tls`: the configuration and server name every connection shakes hands with,
    /// reopened ones included.
    pub tls: Option<crate::client::TlsClient>,
    /// `--banner`: connections per banner, reopened ones included.
    pub banners: RefCell<Option<std::collections::BTreeMap<String, u64>>>,
    /// Scratch space for reads, borrowed only inside one poll.
    pub read_buf: RefCell<Box<[u8]>>,
}

impl Shared {
    fn new(payload: Payload, timeout: Duration) -> Shared {
        Shared {
            payload,
            timeout,
            sending: Cell::new(true),
            measuring: Cell::new(false),
            messages: Cell::new(0),
            replies: Cell::new(0),
            in_flight: Cell::new(0),
            drained: Notify::new(),
            begun_in_window: Cell::new(0),
            late: Cell::new(0),
            // Cannot fail: 1 ≤ low, high ≥ 2 × low, and 3 significant digits is in 0..=5.
            histogram: RefCell::new(
                Histogram::new_with_bounds(1, HISTOGRAM_MAX_NS, 3).expect("valid histogram bounds"),
            ),
            first_wrong: RefCell::new(None),
            capturing: Cell::new(false),
            wrong_replies: Cell::new(0),
            resets: Cell::new(0),
            refused: Cell::new(0),
            timeouts: Cell::new(0),
            reconnect: None,
            reconnects: Cell::new(0),
            retried: Cell::new(0),
            tls: None,
            banners: RefCell::new(None),
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

    /// Keeps `got` as the first wrong reply, if none is kept yet. `sent` is empty for bytes
    /// that answered no message.
    pub fn keep_wrong(&self, sent: &[u8], got: &[u8]) {
        let mut first = self.first_wrong.borrow_mut();
        if first.is_none() {
            let expected: &[u8] = if sent.is_empty() {
                b""
            } else {
                &self.payload.expected
            };
            *first = Some(Detail::new(sent, expected, got));
        }
    }

    /// Counts a connection under its banner (`--banner`).
    pub fn count_banner(&self, banner: Option<String>) {
        if let (Some(counts), Some(banner)) = (&mut *self.banners.borrow_mut(), banner) {
            *counts.entry(banner).or_default() += 1;
        }
    }

    /// Opens another connection to the run's peer, for `--reconnect`, reading its banner
    /// when the run reads banners.
    pub async fn reopen(&self) -> io::Result<TcpStream> {
        let Some((peer, banner)) = self.reconnect else {
            return Err(io::Error::other("reconnecting is off"));
        };
        let mut stream = connect_one(peer, self.timeout).await?;
        if banner {
            let b = read_banner(&mut stream, self.timeout).await?;
            self.count_banner(Some(b));
        }
        Ok(stream)
    }

    /// Whether a wrong reply is still wanted for [`Shared::first_wrong`] and nobody is
    /// collecting one; if so the caller now is.
    pub fn start_capture(&self) -> bool {
        if self.capturing.get() || self.first_wrong.borrow().is_some() {
            return false;
        }
        self.capturing.set(true);
        true
    }

    /// One message began: one more reply owed.
    pub fn owe(&self, watch: &Watch) {
        bump(&self.in_flight);
        bump(&watch.in_flight);
    }

    /// `n` replies owed by one connection are settled (arrived, given up, or the
    /// connection ended).
    pub fn settle(&self, watch: &Watch, n: u64) {
        watch.in_flight.set(watch.in_flight.get().saturating_sub(n));
        let left = self.in_flight.get().saturating_sub(n);
        self.in_flight.set(left);
        if left == 0 && !self.sending.get() {
            self.drained.notify_one();
        }
    }
}

/// Adds one to a counter.
#[inline]
pub(super) fn bump(c: &Cell<u64>) {
    c.set(c.get() + 1);
}

/// What one connection task publishes for the run loop, which outlives it (tasks are
/// aborted at the end): the watchdog's view and the counts the figures need.
#[derive(Debug, Default)]
pub(super) struct Watch {
    /// When the oldest message still waiting for its reply started; `None` when none waits.
    pub oldest: Cell<Option<Instant>>,
    /// Replies this connection owes.
    pub in_flight: Cell<u64>,
    /// Bytes (TCP) or datagrams (UDP) received over the run.
    pub received: Cell<u64>,
    /// Open loop: messages begun.
    pub begun: Cell<u64>,
    /// Whether the server closed the connection before sending a byte.
    pub refused: Cell<bool>,
}

/// The resolution of the runtime's timers: they fire on millisecond ticks, rounded up.
/// An open loop arms its timer this much ahead of the next send time, so that messages go
/// out at most this early and never late, instead of up to this late.
const TIMER_RESOLUTION: Duration = Duration::from_millis(1);

/// One connection's share of an open loop's schedule: message `k` is due at
/// `first + k × interval`. Pure arithmetic, so the run loop can count what was due.
#[derive(Debug, Clone, Copy)]
pub(super) struct Plan {
    first: Instant,
    /// Seconds between two messages of this connection.
    interval: f64,
}

impl Plan {
    /// When message `k` is due.
    pub fn time_of(&self, k: u64) -> Instant {
        let secs = k as f64 * self.interval;
        let cap = crate::limits::MAX_DURATION * 4;
        let d = Duration::try_from_secs_f64(secs).map_or(cap, |d| d.min(cap));
        later(self.first, d)
    }

    /// How many messages are due at `t` (those due at or before it).
    pub fn due_by(&self, t: Instant) -> u64 {
        if t < self.first {
            return 0;
        }
        // `as` saturates, so an absurd rate cannot overflow the count.
        let n = (t.duration_since(self.first).as_secs_f64() / self.interval).floor() as u64;
        n.saturating_add(1)
    }
}

/// The driver's side of a [`Plan`]: a timer for the next message, and how many messages
/// are due and begun. Messages due and not begun are a count, never a queue.
pub(super) struct Schedule {
    plan: Plan,
    timer: Pin<Box<tokio::time::Sleep>>,
    due: u64,
    begun: u64,
}

impl Schedule {
    fn new(plan: Plan) -> Schedule {
        Schedule {
            plan,
            timer: Box::pin(sleep_until(ahead_of(plan.first))),
            due: 0,
            begun: 0,
        }
    }

    /// Brings the count of messages due up to date when the timer has fired, and re-arms it
    /// for the next message (registering for a wake-up).
    pub fn poll_due(&mut self, cx: &mut std::task::Context<'_>) {
        while self.timer.as_mut().poll(cx).is_ready() {
            let now = Instant::now();
            // Everything due within the timer's resolution goes now: a timer that fires
            // early cannot spin, and none goes out late for want of a tick.
            self.due = self.due.max(self.plan.due_by(now + TIMER_RESOLUTION));
            let next = ahead_of(self.plan.time_of(self.due)).max(now + Duration::from_micros(1));
            self.timer.as_mut().reset(next);
        }
    }

    /// Messages due and not yet begun.
    pub fn owed(&self) -> u64 {
        self.due - self.begun
    }

    /// The next message's first byte goes out `now`: its start time (the earlier of its
    /// scheduled time and now: latency counts from the schedule when the tool is late, and
    /// from the actual send when the timer let it go early) and whether it is late.
    pub fn begin(&mut self, now: Instant) -> (Instant, bool) {
        let at = self.plan.time_of(self.begun);
        self.begun += 1;
        (at.min(now), now > later(at, LATE_SEND))
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
    run_until(target, timeout, args, progress, std::future::pending::<()>)
}

/// [`run`], stopped early when the future that `stop` makes completes (`upcase bench`
/// passes Ctrl-C): the result then holds the figures so far, with
/// [`interrupted`](BenchResult::interrupted) set. `stop` is called on the run's own runtime,
/// before the first connection, so it may create tokio signal handlers.
pub fn run_until<F: Future<Output = ()>>(
    target: &str,
    timeout: Duration,
    args: &BenchArgs,
    progress: Option<&Progress>,
    stop: impl FnOnce() -> F,
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
    let result = local.block_on(&runtime, async {
        let stop = stop();
        run_on_thread(target, timeout, args, progress, stop).await
    });
    if let Some(p) = progress {
        p.finish();
    }
    result
}

/// The open sockets of a run (TCP: each with its banner under `--banner`).
enum Connections {
    Tcp(Vec<(TcpStream, Option<String>)>),
    Tls(Vec<TlsStream>),
    Udp(Vec<UdpSocket>),
}

/// One connection task, as the run loop sees it.
struct Task {
    watch: Rc<Watch>,
    handle: AbortHandle,
    plan: Option<Plan>,
    /// Whether the watchdog may abandon it (TCP; UDP times out its own datagrams).
    abandonable: bool,
}

/// Starts the driver of one TCP or TLS connection.
fn stream_task<S: executor::Stream + 'static>(
    stream: S,
    shared: &Rc<Shared>,
    pipeline: usize,
    plan: Option<Plan>,
) -> Task {
    let watch = Rc::new(Watch::default());
    let driver = executor::TcpDriver::new(
        stream,
        Rc::clone(shared),
        Rc::clone(&watch),
        pipeline,
        plan.map(Schedule::new),
    );
    let handle = tokio::task::spawn_local(driver.run()).abort_handle();
    Task {
        watch,
        handle,
        plan,
        abandonable: true,
    }
}

async fn run_on_thread(
    target: &str,
    timeout: Duration,
    args: &BenchArgs,
    progress: Option<&Progress>,
    stop: impl Future<Output = ()>,
) -> Result<BenchResult, BenchError> {
    let mut stop = std::pin::pin!(stop);
    let payload = Payload::new(args.size as usize, args.text);
    let mut shared = Shared::new(payload, timeout);
    *shared.banners.get_mut() = args.banner.then(std::collections::BTreeMap::new);
    let n = args.connections as usize;
    if let Some(p) = progress {
        p.connecting(0, n as u64);
    }
    shared.tls = args.tls.clone();
    let (peer, conns, failures) = if args.udp {
        let (peer, sockets, failures) = open_udp(target, n, timeout, &shared, progress).await?;
        (peer, Connections::Udp(sockets), failures)
    } else if let Some(tls) = &args.tls {
        let (peer, streams, failures) = open_tcp(target, n, timeout, false, progress).await?;
        let streams = streams.into_iter().map(|(s, _)| s).collect();
        let (streams, failures) = handshakes(tls, streams, failures, timeout, progress).await?;
        (peer, Connections::Tls(streams), failures)
    } else {
        let (peer, streams, failures) = open_tcp(target, n, timeout, args.banner, progress).await?;
        (peer, Connections::Tcp(streams), failures)
    };
    let (connect_failures, first_connect_error) = failures;
    if args.reconnect {
        shared.reconnect = Some((peer, args.banner));
    }
    let shared = Rc::new(shared);
    let open = match &conns {
        Connections::Tcp(s) => s.len(),
        Connections::Tls(s) => s.len(),
        Connections::Udp(s) => s.len(),
    };
    // Every connection has the one client configuration and the one server: the first
    // connection's session stands for all.
    let session = match &conns {
        Connections::Tls(s) => s.first().map(|s| crate::tls::session_info(s.get_ref().1)),
        _ => None,
    };

    // The clock starts only now that every connection is open.
    let t0 = Instant::now();
    let pipeline = args.pipeline as usize;
    let plan = |i: usize| {
        // Connection i sends messages i, i + open, i + 2·open, ... of one schedule of
        // `rate` per second, so the total is `rate` whatever the number of connections.
        args.rate.map(|rate| Plan {
            first: later(t0, Duration::from_secs_f64(i as f64 / rate)),
            interval: open as f64 / rate,
        })
    };
    let mut tasks: Vec<Task> = Vec::with_capacity(open);
    match conns {
        Connections::Tcp(streams) => {
            for (i, (stream, banner)) in streams.into_iter().enumerate() {
                shared.count_banner(banner);
                tasks.push(stream_task(stream, &shared, pipeline, plan(i)));
            }
        }
        Connections::Tls(streams) => {
            for (i, stream) in streams.into_iter().enumerate() {
                tasks.push(stream_task(stream, &shared, pipeline, plan(i)));
            }
        }
        Connections::Udp(sockets) => {
            for (i, socket) in sockets.into_iter().enumerate() {
                let watch = Rc::new(Watch::default());
                let plan = plan(i);
                let driver = udp::UdpDriver::new(
                    socket,
                    Rc::clone(&shared),
                    Rc::clone(&watch),
                    pipeline,
                    plan.map(Schedule::new),
                );
                let handle = tokio::task::spawn_local(driver.run()).abort_handle();
                tasks.push(Task {
                    watch,
                    handle,
                    plan,
                    abandonable: false,
                });
            }
        }
    }
    let all: Vec<(Rc<Watch>, Option<Plan>)> = tasks
        .iter()
        .map(|t| (Rc::clone(&t.watch), t.plan))
        .collect();
    let errors_so_far = |shared: &Shared| {
        shared.wrong_replies.get()
            + shared.resets.get()
            + shared.refused.get()
            + shared.timeouts.get()
            + connect_failures
    };

    let warm_end = later(t0, args.warmup);
    let end = later(warm_end, args.duration);
    let mut window_start = None;
    let mut last = (t0, 0u64);
    let mut interrupted = false;
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
            let errors = errors_so_far(&shared);
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
        tokio::select! {
            () = sleep_until(boundary.min(now + TICK)) => {}
            () = &mut stop => {
                interrupted = true;
                break;
            }
        }
    }
    let window_end = Instant::now();
    shared.measuring.set(false);
    shared.sending.set(false);
    let window_start = window_start.unwrap_or(window_end);
    let replies_outstanding = shared.in_flight.get();

    // The drain: no new message; wait for the replies owed, each up to `--timeout` from
    // its start (the watchdog abandons what is older), so that a reply still owed when the
    // window closed is either checked or counted, never ignored.
    let drain_end = later(window_end, timeout + TICK);
    while !interrupted && shared.in_flight.get() > 0 {
        let now = Instant::now();
        watchdog(&mut tasks, &shared, now);
        if shared.in_flight.get() == 0 || now >= drain_end {
            break;
        }
        if let Some(p) = progress {
            p.draining(shared.in_flight.get(), errors_so_far(&shared));
        }
        tokio::select! {
            () = shared.drained.notified() => {}
            () = sleep_until(drain_end.min(now + TICK)) => {}
            () = &mut stop => interrupted = true,
        }
    }
    // What is still owed and older than the timeout is a timeout, however short the run.
    watchdog(&mut tasks, &shared, Instant::now());
    for task in &tasks {
        task.handle.abort();
    }

    let duration_s = window_end.duration_since(window_start).as_secs_f64();
    let per_s = |x: f64| {
        if duration_s > 0.0 {
            x / duration_s
        } else {
            0.0
        }
    };
    let schedule = args.rate.map(|rate| {
        let mut due = 0u64;
        let mut begun = 0u64;
        let mut hist = shared.histogram.borrow_mut();
        for (watch, plan) in &all {
            let Some(plan) = plan else { continue };
            let d = plan.due_by(window_end);
            let b = watch.begun.get().min(d);
            due += d;
            begun += b;
            record_unsent(&mut hist, plan, b, d, window_end);
        }
        let never_sent = due - begun;
        let late = shared.late.get();
        let slip = if due > 0 {
            (late + never_sent) as f64 / due as f64
        } else {
            0.0
        };
        ScheduleReport {
            asked_per_s: rate,
            sent_per_s: round(per_s(shared.begun_in_window.get() as f64), 1),
            due,
            late,
            never_sent,
            slip: round(slip, 4),
            slipped: slip > MAX_SCHEDULE_SLIP,
        }
    });
    let refused = all.iter().filter(|(w, _)| w.refused.get()).count() as u64;
    let silent = all
        .iter()
        .filter(|(w, _)| !w.refused.get() && w.received.get() == 0)
        .count() as u64;
    let messages = shared.messages.get();
    let bytes = messages * u64::from(args.size);
    let first_wrong_reply = shared.first_wrong.borrow().clone();
    let banners = shared.banners.borrow().clone();
    let hist = shared.histogram.borrow();
    let latency = (!hist.is_empty()).then(|| {
        let us = |ns: f64| round(ns / 1000.0, 1);
        Latency {
            min: us(hist.min() as f64),
            mean: us(hist.mean()),
            p50: us(hist.value_at_quantile(0.5) as f64),
            p90: us(hist.value_at_quantile(0.9) as f64),
            p99: us(hist.value_at_quantile(0.99) as f64),
            p999: us(hist.value_at_quantile(0.999) as f64),
            max: us(hist.max() as f64),
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
        connections_open: (open as u64 - refused) as u32,
        size: args.size,
        pipeline: args.rate.is_none().then_some(args.pipeline),
        rate: args.rate,
        text: args.text,
        warmup_s: round(args.warmup.as_secs_f64(), 3),
        duration_s: round(duration_s, 3),
        messages,
        bytes,
        msgs_per_s: round(per_s(messages as f64), 1),
        mib_per_s: round(per_s(bytes as f64) / (1024.0 * 1024.0), 3),
        latency_us: latency,
        schedule,
        replies_outstanding,
        first_wrong_reply,
        first_connect_error,
        reconnects: shared.reconnects.get(),
        retried: shared.retried.get(),
        banners,
        interrupted,
        errors: Errors {
            wrong_replies: shared.wrong_replies.get(),
            resets: shared.resets.get(),
            timeouts: shared.timeouts.get(),
            connect_failures,
            refused,
            silent,
        },
    })
}

/// Records, for coordinated omission, the messages `begun..due` of one connection that
/// its schedule made due and that were never sent: each as the time from its scheduled
/// send to `end`, in at most [`UNSENT_GROUPS`] groups.
fn record_unsent(hist: &mut Histogram<u64>, plan: &Plan, begun: u64, due: u64, end: Instant) {
    let n = due - begun;
    if n == 0 {
        return;
    }
    let groups = n.min(UNSENT_GROUPS);
    for g in 0..groups {
        let lo = begun + n * g / groups;
        let hi = begun + n * (g + 1) / groups;
        let mid = lo + (hi - lo) / 2;
        let ns = u64::try_from(end.saturating_duration_since(plan.time_of(mid)).as_nanos())
            .unwrap_or(u64::MAX);
        hist.saturating_record_n(ns.max(1), hi - lo);
    }
}

/// Abandons every connection whose oldest unanswered message is older than the timeout,
/// counting a timeout for each reply it owed, and forgets tasks that have ended.
fn watchdog(tasks: &mut Vec<Task>, shared: &Shared, now: Instant) {
    tasks.retain(|task| {
        if task.handle.is_finished() {
            return false;
        }
        if !task.abandonable {
            return true;
        }
        match task.watch.oldest.get() {
            Some(t) if now.saturating_duration_since(t) > shared.timeout => {
                debug!(
                    "abandoning a connection with no reply for {:?}",
                    shared.timeout
                );
                task.handle.abort();
                let owed = task.watch.in_flight.get().max(1);
                shared.timeouts.set(shared.timeouts.get() + owed);
                task.watch.oldest.set(None);
                shared.settle(&task.watch, owed);
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

/// Connections that failed to open, and why the first one failed.
type Failures = (u64, Option<String>);

/// Opens `n` TCP connections to `target`. The first one decides the address (every
/// resolved address is tried) and its failure is a connect error; later failures are
/// counted and returned.
async fn open_tcp(
    target: &str,
    n: usize,
    timeout: Duration,
    banner: bool,
    progress: Option<&Progress>,
) -> Result<(SocketAddr, Vec<(TcpStream, Option<String>)>, Failures), BenchError> {
    let mut first = first_tcp(target, timeout).await?;
    let peer = first.peer_addr().map_err(|source| ClientError::Connect {
        addr: target.to_string(),
        source,
    })?;
    let first_banner = match banner {
        true => Some(
            read_banner(&mut first, timeout)
                .await
                .map_err(|e| BenchError::NoBanner {
                    addr: target.to_string(),
                    reason: e.to_string(),
                })?,
        ),
        false => None,
    };
    let mut streams = Vec::with_capacity(n);
    streams.push((first, first_banner));
    let mut failures = 0u64;
    let mut first_error: Option<String> = None;
    let mut pending = JoinSet::new();
    // No log line per failure: they are counted, and the first reason is in the result.
    type Opened = io::Result<(TcpStream, Option<String>)>;
    let mut collect = |r: Option<Result<Opened, tokio::task::JoinError>>,
                       streams: &mut Vec<(TcpStream, Option<String>)>| {
        match r {
            Some(Ok(Ok(s))) => streams.push(s),
            Some(Ok(Err(e))) => {
                debug!(%peer, error = %e, "a connection failed to open");
                first_error.get_or_insert_with(|| e.to_string());
                failures += 1;
            }
            Some(Err(e)) => {
                debug!(error = %e, "a connection attempt was lost");
                first_error.get_or_insert_with(|| e.to_string());
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
        pending.spawn_local(async move {
            let mut stream = connect_one(peer, timeout).await?;
            let banner = match banner {
                true => Some(read_banner(&mut stream, timeout).await?),
                false => None,
            };
            Ok((stream, banner))
        });
    }
    while let Some(r) = pending.join_next().await {
        collect(Some(r), &mut streams);
    }
    Ok((peer, streams, (failures, first_error)))
}

/// Shakes hands on every open connection, [`CONNECT_CONCURRENCY`] at a time, all before
/// the clock starts. The first connection's failure is the run's (a certificate the client
/// does not trust is not a load figure: [`BenchError::Tls`]); later ones are counted with
/// the connections that failed to open.
async fn handshakes(
    tls: &crate::client::TlsClient,
    streams: Vec<TcpStream>,
    failures: Failures,
    timeout: Duration,
    progress: Option<&Progress>,
) -> Result<(Vec<TlsStream>, Failures), BenchError> {
    let (mut failed, mut first_error) = failures;
    let total = streams.len() as u64 + failed;
    let mut out = Vec::with_capacity(streams.len());
    let mut streams = streams.into_iter();
    if let Some(first) = streams.next() {
        let s = crate::tls::connect(first, tls.config(), tls.name().clone(), timeout).await?;
        out.push(s);
    }
    let mut pending = JoinSet::new();
    let mut collect =
        |r: Option<Result<Result<TlsStream, crate::tls::TlsError>, tokio::task::JoinError>>,
         out: &mut Vec<TlsStream>| {
            match r {
                Some(Ok(Ok(s))) => out.push(s),
                Some(Ok(Err(e))) => {
                    debug!(error = %e, "a TLS handshake failed");
                    first_error.get_or_insert_with(|| e.to_string());
                    failed += 1;
                }
                Some(Err(e)) => {
                    debug!(error = %e, "a TLS handshake was lost");
                    first_error.get_or_insert_with(|| e.to_string());
                    failed += 1;
                }
                None => {}
            }
            if let Some(p) = progress {
                p.handshaking(out.len() as u64 + failed, total);
            }
        };
    for tcp in streams {
        while pending.len() >= CONNECT_CONCURRENCY {
            let r = pending.join_next().await;
            collect(r, &mut out);
        }
        let (config, name) = (tls.config().clone(), tls.name().clone());
        pending.spawn_local(async move { crate::tls::connect(tcp, &config, name, timeout).await });
    }
    while let Some(r) = pending.join_next().await {
        collect(Some(r), &mut out);
    }
    Ok((out, (failed, first_error)))
}

/// Reads the banner line the server sends first (`--banner`), at most
/// [`MAX_BANNER`](super::options::MAX_BANNER) bytes, within `timeout`, and not a byte beyond
/// its LF (what follows belongs to the replies). Returns it without its line end.
async fn read_banner(stream: &mut TcpStream, timeout: Duration) -> io::Result<String> {
    use super::options::MAX_BANNER;
    use tokio::io::AsyncReadExt;
    let read = async {
        let mut line = Vec::new();
        let mut buf = [0u8; 512];
        loop {
            let n = stream.peek(&mut buf).await?;
            if n == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the server closed the connection before a banner line",
                ));
            }
            let (take, done) = match buf[..n].iter().position(|&b| b == b'\n') {
                Some(i) => (i + 1, true),
                None => (n, false),
            };
            if line.len() + take > MAX_BANNER {
                return Err(io::Error::other(format!(
                    "more than {MAX_BANNER} bytes without LF: not a banner line"
                )));
            }
            let start = line.len();
            line.resize(start + take, 0);
            stream.read_exact(&mut line[start..]).await?;
            if done {
                line.pop();
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
                return Ok(String::from_utf8_lossy(&line).into_owned());
            }
        }
    };
    tokio::time::timeout(timeout, read).await.map_err(|_| {
        io::Error::new(
            io::ErrorKind::TimedOut,
            format!(
                "no banner line within {}",
                humantime::format_duration(timeout)
            ),
        )
    })?
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
) -> Result<(SocketAddr, Vec<UdpSocket>, Failures), BenchError> {
    let peer = client::resolve(target)?[0];
    let mut sockets = Vec::with_capacity(n);
    let mut failures = 0u64;
    let mut first_error: Option<String> = None;
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
                debug!(%peer, error = %e, "a UDP socket failed to open");
                first_error.get_or_insert_with(|| e.to_string());
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
    Ok((peer, sockets, (failures, first_error)))
}

/// A UDP socket bound to an ephemeral port and connected to `peer`, so that it receives
/// only the peer's datagrams and learns of ICMP port-unreachable.
fn udp_socket(peer: SocketAddr) -> io::Result<UdpSocket> {
    UdpSocket::from_std(crate::net::connect_udp(peer)?)
}
