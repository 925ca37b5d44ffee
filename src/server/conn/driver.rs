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

use tokio::time::{sleep_until, Instant, Sleep};
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
///
/// Not an `async fn`: one of those would keep its arguments in its own state beside the
/// block that takes them over, about a hundred bytes more per idle connection.
pub(crate) fn serve<T: Transport>(
    mut io: T,
    peer: SocketAddr,
    shared: Arc<Shared>,
    stats: Arc<WorkerStats>,
    slot: Slot,
) -> impl std::future::Future<Output = ()> {
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
    // Everything below is bounded by the connection's own timer, set to the linger
    // deadline (a `timeout_at` would add a timer of its own to every connection's state);
    // past that deadline (the drain deadline), each step gets one attempt.
    w.timer.as_mut().reset(until);
    while !rest.is_empty() {
        let r = tokio::select! {
            biased;
            r = poll_fn(|cx| io.poll_write(cx, rest)) => r,
            () = &mut w.timer => break,
        };
        match r {
            Ok(0) | Err(_) => break,
            Ok(n) => rest = &rest[n..],
        }
    }
    conn.wrote(len - rest.len());
    tokio::select! {
        biased;
        _ = poll_fn(|cx| io.poll_flush(cx)) => {}
        () = &mut w.timer => {}
    }
    tokio::select! {
        biased;
        _ = poll_fn(|cx| io.poll_shutdown(cx)) => {}
        () = &mut w.timer => {}
    }
    if until <= Instant::now() {
        return Ok(end);
    }
    // Read and discard until the client closes its side or the bound passes, so that input
    // still in flight does not turn the close into a reset that would destroy replies the
    // client has not read yet.
    let mut bufs = Buffers::take(conn.read_limit());
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

#[cfg(test)]
mod tests {
    //! The driver over a scripted transport, with paused time: input the reactor has not
    //! reported yet, a client that stops reading, the drain deadline.
    use super::*;
    use crate::server::conn::Policy;
    use crate::transform::Mode;
    use std::sync::Mutex;
    use std::task::{Context, Waker};

    const IDLE: Duration = Duration::from_secs(10);

    #[derive(Default)]
    struct State {
        inbox: Vec<u8>,
        /// Whether the "reactor" has reported the inbox.
        ready: bool,
        /// Bytes the peer's window still takes; `None` for unlimited.
        window: Option<usize>,
        out: Vec<u8>,
        shut: bool,
        reader: Option<Waker>,
        writer: Option<Waker>,
    }

    #[derive(Clone, Default)]
    struct Mock(Arc<Mutex<State>>);

    impl Mock {
        fn arrive(&self, bytes: &[u8], reported: bool) {
            let mut s = self.0.lock().unwrap();
            s.inbox.extend_from_slice(bytes);
            if reported {
                s.ready = true;
                if let Some(w) = s.reader.take() {
                    w.wake();
                }
            }
        }
        fn report(&self) {
            self.arrive(b"", true);
        }
        fn window(&self, n: Option<usize>) {
            let mut s = self.0.lock().unwrap();
            s.window = n;
            if let Some(w) = s.writer.take() {
                w.wake();
            }
        }
        fn out(&self) -> Vec<u8> {
            self.0.lock().unwrap().out.clone()
        }
        fn shut(&self) -> bool {
            self.0.lock().unwrap().shut
        }
    }

    impl Transport for Mock {
        fn poll_read_ready(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            let mut s = self.0.lock().unwrap();
            if s.ready {
                return Poll::Ready(Ok(()));
            }
            s.reader = Some(cx.waker().clone());
            Poll::Pending
        }
        fn poll_read(&mut self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
            let mut s = self.0.lock().unwrap();
            if !s.ready || s.inbox.is_empty() {
                s.ready = false;
                s.reader = Some(cx.waker().clone());
                return Poll::Pending;
            }
            let n = buf.len().min(s.inbox.len());
            buf[..n].copy_from_slice(&s.inbox[..n]);
            s.inbox.drain(..n);
            if s.inbox.is_empty() {
                s.ready = false;
            }
            Poll::Ready(Ok(n))
        }
        fn poll_write(&mut self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
            let mut s = self.0.lock().unwrap();
            let n = s.window.map_or(buf.len(), |w| w.min(buf.len()));
            if n == 0 {
                s.writer = Some(cx.waker().clone());
                return Poll::Pending;
            }
            if let Some(w) = s.window.as_mut() {
                *w -= n;
            }
            s.out.extend_from_slice(&buf[..n]);
            Poll::Ready(Ok(n))
        }
        fn poll_shutdown(&mut self, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            self.0.lock().unwrap().shut = true;
            Poll::Ready(Ok(()))
        }
        fn input_waiting(&self) -> io::Result<bool> {
            Ok(!self.0.lock().unwrap().inbox.is_empty())
        }
    }

    struct Running {
        mock: Mock,
        drain: Arc<Drain>,
        task: tokio::task::JoinHandle<End>,
    }

    fn start(shutdown_timeout: Duration) -> Running {
        let mock = Mock::default();
        let drain = Arc::new(Drain::new(shutdown_timeout));
        let policy = Policy {
            mode: Mode::Unicode,
            idle_timeout: Some(IDLE),
            linger_timeout: Duration::from_secs(2),
            read_limit: 1024,
        };
        let (mut io, d) = (mock.clone(), drain.clone());
        let task = tokio::spawn(async move {
            let mut conn = Connection::new(&policy, Instant::now());
            drive(&mut io, &mut conn, &d, &WorkerStats::default()).await
        });
        Running { mock, drain, task }
    }

    /// Lets the driver run until it waits again.
    async fn settle() {
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
    }

    #[tokio::test(start_paused = true)]
    async fn input_that_arrived_but_was_not_reported_is_served_at_the_idle_deadline() {
        let r = start(Duration::from_secs(10));
        r.mock.arrive(b"hi\n", true);
        settle().await;
        assert_eq!(r.mock.out(), b"HI\n");
        // The process was stopped: the line arrived, but the reactor has not looked yet
        // when the idle timer fires.
        tokio::time::sleep(Duration::from_secs(5)).await;
        r.mock.arrive(b"hello\n", false);
        tokio::time::sleep(IDLE).await;
        settle().await;
        assert!(!r.mock.shut(), "closed as idle with input waiting");
        r.mock.report();
        settle().await;
        assert_eq!(r.mock.out(), b"HI\nHELLO\n");
        assert!(!r.task.is_finished());
    }

    #[tokio::test(start_paused = true)]
    async fn an_idle_close_flushes_held_back_bytes() {
        let r = start(Duration::from_secs(10));
        r.mock.arrive(b"abc\xe2", true);
        let end = r.task.await.unwrap();
        assert_eq!(end, End::Idle);
        assert_eq!(r.mock.out(), b"ABC\xe2");
        assert!(r.mock.shut());
    }

    #[tokio::test(start_paused = true)]
    async fn the_drain_deadline_bounds_a_stalled_write_and_the_linger() {
        let r = start(Duration::from_secs(1));
        r.mock.window(Some(100));
        r.mock.arrive(&[b'x'; 1000], true);
        settle().await;
        assert_eq!(r.mock.out().len(), 100, "stalled after the window");
        let t0 = Instant::now();
        r.drain.begin();
        let end = r.task.await.unwrap();
        assert_eq!(end, End::DrainDeadline);
        assert_eq!(
            Instant::now() - t0,
            Duration::from_secs(1),
            "not a moment past it"
        );
        assert!(r.mock.shut());
    }

    #[tokio::test(start_paused = true)]
    async fn the_drain_deadline_flushes_held_back_bytes_of_a_line_in_progress() {
        let r = start(Duration::from_millis(500));
        r.mock.arrive(b"abc\xe2", true);
        settle().await;
        let t0 = Instant::now();
        r.drain.begin();
        settle().await;
        assert!(!r.mock.shut(), "mid-line: the drain waits for the LF");
        let end = r.task.await.unwrap();
        assert_eq!(end, End::DrainDeadline);
        assert_eq!(r.mock.out(), b"ABC\xe2");
        assert!(Instant::now() - t0 <= Duration::from_millis(500));
    }

    #[tokio::test(start_paused = true)]
    async fn a_drain_mid_line_lingers_no_later_than_its_deadline() {
        let r = start(Duration::from_secs(1));
        r.mock.arrive(b"half ", true);
        settle().await;
        let t0 = Instant::now();
        r.drain.begin();
        r.mock.arrive(b"line\nmore", true);
        let end = r.task.await.unwrap();
        assert_eq!(end, End::Drained);
        assert_eq!(r.mock.out(), b"HALF LINE\n");
        // The lingering close (2 s on its own) ends at the drain deadline.
        assert_eq!(Instant::now() - t0, Duration::from_secs(1));
    }
}
