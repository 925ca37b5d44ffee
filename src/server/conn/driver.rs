//! The readiness driver: runs a [`Connection`] over any [`Transport`] on tokio.
//!
//! It waits for input without holding a buffer, so an idle connection costs only its task
//! and socket registration. When bytes arrive it borrows a buffer pair from the per-thread
//! pool, reads until the transport would block, hands each chunk to the state machine and
//! writes the reply it returns before reading more, and tells the machine about the drain
//! and the timer. The policy (what to answer, when to close, how) is the machine's; this
//! file only moves bytes and waits.

use std::future::poll_fn;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use tokio::time::{sleep_until, timeout_at, Instant, Sleep};
use tokio_util::sync::WaitForCancellationFuture;
use tracing::{debug, warn, Instrument};

use super::machine::{Connection, End, Next, Timer};
use super::pool::Buffers;
use super::transport::Transport;
use crate::server::admission::Slot;
use crate::server::drain::Drain;
use crate::server::stats::WorkerStats;
use crate::server::Shared;
use crate::transform::MAX_HELD_BACK;

/// Serves one accepted connection to its end, counts how it ended and logs it. Never panics
/// on I/O: every error ends the connection and is logged at debug level.
pub(crate) async fn serve<T: Transport>(
    mut io: T,
    peer: SocketAddr,
    shared: Arc<Shared>,
    stats: Arc<WorkerStats>,
    slot: Slot,
) {
    let span = tracing::debug_span!("conn", %peer);
    async move {
        let _slot = slot;
        let started = Instant::now();
        let mut conn = Connection::new(&shared.policy, started);
        debug!("accepted");
        let end = drive(&mut io, &mut conn, &shared.drain, &stats).await;
        if end == End::DrainDeadline && conn.mid_line() {
            warn!(%peer, "shutdown timeout cut a line in progress");
        }
        debug!(
            reason = end.as_str(),
            bytes_in = conn.bytes_in(),
            bytes_out = conn.bytes_out(),
            duration = ?started.elapsed(),
            "closed"
        );
    }
    .instrument(span)
    .await
}

/// What the driver waits on besides the transport: the connection's timer and the drain.
struct Waits<'a, 'd> {
    timer: Pin<&'a mut Sleep>,
    drain_wait: Pin<&'a mut WaitForCancellationFuture<'d>>,
    drain_seen: bool,
    drain: &'d Drain,
}

impl Waits<'_, '_> {
    /// Sets the timer for the connection's next deadline.
    fn rearm(&mut self, conn: &Connection) {
        if let Some(d) = conn.deadline() {
            self.timer.as_mut().reset(d);
        }
    }

    /// Tells the machine once that the drain has begun, if it has.
    fn notice_drain(&mut self, conn: &mut Connection) -> Next {
        if self.drain_seen {
            return Next::Continue;
        }
        let Some(deadline) = self.drain.deadline() else {
            return Next::Continue;
        };
        self.drain_seen = true;
        let next = conn.drain_began(deadline);
        self.rearm(conn);
        next
    }
}

/// Runs the connection until it ends, counts how it ended (before the close, so that a
/// client that sees the close sees the count), and closes it.
async fn drive<T: Transport>(
    io: &mut T,
    conn: &mut Connection,
    drain: &Drain,
    stats: &WorkerStats,
) -> End {
    let timer = sleep_until(conn.deadline().unwrap_or_else(far_future));
    tokio::pin!(timer);
    let drain_wait = drain.cancelled();
    tokio::pin!(drain_wait);
    let mut w = Waits {
        timer: timer.as_mut(),
        drain_wait: drain_wait.as_mut(),
        drain_seen: false,
        drain,
    };
    let end = match decide(io, conn, &mut w, stats).await {
        Ok(end) => end,
        Err(e) => {
            debug!(error = %e, "connection error");
            stats.closed(End::Error);
            return End::Error;
        }
    };
    stats.closed(end);
    match close(io, conn, &mut w, end).await {
        Ok(end) => end,
        Err(e) => {
            debug!(error = %e, "error while closing");
            end
        }
    }
}

/// Serves the connection until the state machine says to close it, and says how.
async fn decide<T: Transport>(
    io: &mut T,
    conn: &mut Connection,
    w: &mut Waits<'_, '_>,
    stats: &WorkerStats,
) -> io::Result<End> {
    let mut reported = (0, 0);
    if let Next::Close(end) = w.notice_drain(conn) {
        return Ok(end);
    }
    loop {
        tokio::select! {
            biased;
            r = poll_fn(|cx| io.poll_read_ready(cx)) => r?,
            () = &mut w.drain_wait, if !w.drain_seen => {
                if let Next::Close(end) = w.notice_drain(conn) {
                    return Ok(end);
                }
                continue;
            }
            () = &mut w.timer, if conn.deadline().is_some() => {
                let end = match conn.timer(Instant::now()) {
                    Timer::Wait => {
                        w.rearm(conn);
                        continue;
                    }
                    Timer::Probe => match io.input_waiting() {
                        Ok(true) => {
                            // Input the reactor has not reported yet: not idle. Its
                            // readiness arrives on the reactor's next turn.
                            conn.input_waiting(Instant::now());
                            w.rearm(conn);
                            continue;
                        }
                        Ok(false) | Err(_) => conn.nothing_waiting(),
                    },
                    Timer::Close(end) => end,
                };
                return Ok(end);
            }
        }
        let mut bufs = Buffers::take(conn.read_limit());
        let step = pump(io, conn, &mut bufs, w).await;
        bufs.give_back();
        stats.add_bytes(conn.bytes_in() - reported.0, conn.bytes_out() - reported.1);
        reported = (conn.bytes_in(), conn.bytes_out());
        if let Next::Close(end) = step? {
            return Ok(end);
        }
    }
}

/// Reads and answers until the transport would block, or the connection ends.
async fn pump<T: Transport>(
    io: &mut T,
    conn: &mut Connection,
    bufs: &mut Buffers,
    w: &mut Waits<'_, '_>,
) -> io::Result<Next> {
    loop {
        let n = match read_now(io, &mut bufs.input).await {
            Some(Ok(n)) => n,
            None => return Ok(Next::Continue),
            Some(Err(e)) if e.kind() == io::ErrorKind::Interrupted => continue,
            Some(Err(e)) => return Err(e),
        };
        let now = Instant::now();
        if n == 0 {
            let rest = conn.end_of_input(now, &mut bufs.spill);
            if let Some(end) = write_all(io, conn, rest, w).await? {
                return Ok(Next::Close(end));
            }
            return Ok(conn.reply_sent());
        }
        // The machine must know of a drain before it answers, to stop at the LF. Input is
        // in hand, so its answer to the drain itself waits for `reply_sent`.
        let _ = w.notice_drain(conn);
        let Buffers { input, spill } = bufs;
        let out = conn.received(now, &mut input[..n], spill);
        if let Some(end) = write_all(io, conn, out, w).await? {
            return Ok(Next::Close(end));
        }
        if let close @ Next::Close(_) = conn.reply_sent() {
            return Ok(close);
        }
        if n < input.len() {
            // A short read has drained the socket (and cleared its readiness): go back to
            // waiting without the buffers, rather than make one more read just to learn
            // that it would block.
            return Ok(Next::Continue);
        }
    }
}

/// One read without waiting: `None` when nothing is there.
async fn read_now<T: Transport>(io: &mut T, buf: &mut [u8]) -> Option<io::Result<usize>> {
    poll_fn(|cx| {
        Poll::Ready(match io.poll_read(cx, buf) {
            Poll::Ready(r) => Some(r),
            Poll::Pending => None,
        })
    })
    .await
}

/// One write without waiting: `None` when the peer's window is full.
async fn write_now<T: Transport>(io: &mut T, buf: &[u8]) -> Option<io::Result<usize>> {
    poll_fn(|cx| {
        Poll::Ready(match io.poll_write(cx, buf) {
            Poll::Ready(r) => Some(r),
            Poll::Pending => None,
        })
    })
    .await
}

/// Writes all of `buf`, waiting for the client to read when its window is full. The idle
/// timeout and the drain deadline still apply while waiting, and a drain that begins
/// meanwhile is noticed. `Some(end)` when a deadline ended the connection first.
async fn write_all<T: Transport>(
    io: &mut T,
    conn: &mut Connection,
    mut buf: &[u8],
    w: &mut Waits<'_, '_>,
) -> io::Result<Option<End>> {
    let mut stalled = false;
    while !buf.is_empty() {
        let r = match write_now(io, buf).await {
            Some(r) => r,
            None => {
                if conn.write_stalled() {
                    debug!(
                        unsent = buf.len(),
                        "client is not reading; reads paused until it does"
                    );
                }
                stalled = true;
                tokio::select! {
                    biased;
                    r = poll_fn(|cx| io.poll_write(cx, buf)) => r,
                    () = &mut w.drain_wait, if !w.drain_seen => {
                        let _ = w.notice_drain(conn);
                        continue;
                    }
                    () = &mut w.timer, if conn.deadline().is_some() => {
                        match conn.timer(Instant::now()) {
                            Timer::Close(end) => return Ok(Some(end)),
                            Timer::Wait | Timer::Probe => {
                                w.rearm(conn);
                                continue;
                            }
                        }
                    }
                }
            }
        };
        match r {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => {
                conn.wrote(n);
                if stalled {
                    conn.write_resumed(Instant::now());
                }
                buf = &buf[n..];
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    // Plain TCP holds nothing back: this is ready at once. A TLS transport may have to wait.
    loop {
        let r = match poll_fn(|cx| Poll::Ready(io.poll_flush(cx))).await {
            Poll::Ready(r) => r,
            Poll::Pending => tokio::select! {
                biased;
                r = poll_fn(|cx| io.poll_flush(cx)) => r,
                () = &mut w.timer, if conn.deadline().is_some() => {
                    match conn.timer(Instant::now()) {
                        Timer::Close(end) => return Ok(Some(end)),
                        Timer::Wait | Timer::Probe => {
                            w.rearm(conn);
                            continue;
                        }
                    }
                }
            },
        };
        return r.map(|()| None);
    }
}

/// Ends the connection the way `end` says: after the client's FIN, FIN; otherwise the
/// held-back bytes still owed, FIN, and a lingering close bounded by the linger timeout and
/// the drain deadline.
async fn close<T: Transport>(
    io: &mut T,
    conn: &mut Connection,
    w: &mut Waits<'_, '_>,
    end: End,
) -> io::Result<End> {
    if !end.lingers() {
        poll_fn(|cx| io.poll_shutdown(cx)).await?;
        return Ok(end);
    }
    if end == End::Idle {
        debug!("idle timeout");
    }
    let mut until = conn.linger_until(Instant::now());
    let tail = conn.unanswered_tail();
    let mut held = [0u8; MAX_HELD_BACK];
    let len = tail.len();
    held[..len].copy_from_slice(tail);
    let mut rest = &held[..len];
    // Bounded by the linger deadline; past it (the drain deadline), one attempt.
    let _ = timeout_at(until, async {
        while !rest.is_empty() {
            match poll_fn(|cx| io.poll_write(cx, rest)).await {
                Ok(0) | Err(_) => break,
                Ok(n) => rest = &rest[n..],
            }
        }
        poll_fn(|cx| io.poll_flush(cx)).await
    })
    .await;
    conn.wrote(len - rest.len());
    let _ = timeout_at(until, poll_fn(|cx| io.poll_shutdown(cx))).await;
    if until <= Instant::now() {
        return Ok(end);
    }
    // Read and discard until the client closes its side or the bound passes, so that input
    // still in flight does not turn the close into a reset that would destroy replies the
    // client has not read yet.
    let mut bufs = Buffers::take(conn.read_limit());
    w.timer.as_mut().reset(until);
    let result = loop {
        tokio::select! {
            biased;
            r = poll_fn(|cx| io.poll_read(cx, &mut bufs.input)) => match r {
                Ok(0) => break Ok(end),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => break Err(e),
            },
            () = &mut w.drain_wait, if !w.drain_seen => {
                w.drain_seen = true;
                if let Some(d) = w.drain.deadline() {
                    if d < until {
                        until = d;
                        w.timer.as_mut().reset(until);
                    }
                }
            }
            () = &mut w.timer => break Ok(end),
        }
    };
    bufs.give_back();
    result
}

fn far_future() -> Instant {
    // The timer branch is disabled whenever there is no deadline; a day is as good as never.
    let now = Instant::now();
    now.checked_add(Duration::from_secs(86_400)).unwrap_or(now)
}
