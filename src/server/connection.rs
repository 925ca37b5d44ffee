//! One connection, from accept to close.
//!
//! The loop waits for the socket to become readable without holding any buffer, so an
//! idle connection costs only its task and socket registration. When bytes arrive it
//! borrows a buffer pair from a per-thread pool, reads until the socket would block,
//! upper-cases each chunk (in place when it can) and writes the result back before reading
//! more: a client that does not read stalls its own connection, and never grows server
//! memory beyond `read_buffer × (1 + MAX_EXPANSION)` bytes
//! ([`crate::limits::MAX_BUFFERED_PER_CONNECTION`] by default).
//!
//! A connection ends when the client half-closes (everything owed is sent, then FIN), on an
//! error, at the idle timeout, or during a drain: at a line boundary at once, mid-line once
//! the line's LF has been echoed. Every ending by the server is a lingering close.

use std::cell::RefCell;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::Poll;
use std::time::Instant;

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::sleep_until;
use tracing::{debug, Instrument};

use super::{Shared, Slot};

use crate::transform::Upcaser;

/// Serves one accepted connection to its end. Never panics on I/O: every error ends the
/// connection and is logged at debug level.
pub(super) async fn serve(stream: TcpStream, peer: SocketAddr, shared: Arc<Shared>, slot: Slot) {
    let span = tracing::debug_span!("conn", %peer);
    async move {
        let _slot = slot;
        let _ = stream.set_nodelay(true);
        debug!("accepted");
        let mut conn = Connection {
            stream,
            up: Upcaser::new(shared.config.mode),
            at_line_start: true,
            last_active: Instant::now(),
            shared: &shared,
        };
        match conn.run().await {
            Ok(end) => debug!(?end, "closed"),
            Err(e) => debug!(error = %e, "closed on error"),
        }
    }
    .instrument(span)
    .await
}

/// How a connection ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    /// The client half-closed; everything owed was sent, then FIN.
    ClientClosed,
    /// Nothing moved for the idle timeout.
    Idle,
    /// The drain closed it at a line boundary.
    Drained,
    /// The drain deadline passed with the connection still busy.
    DrainDeadline,
}

struct Connection<'a> {
    stream: TcpStream,
    up: Upcaser,
    /// Whether the last byte echoed was LF (or nothing has been echoed): a drain may close
    /// the connection here without cutting a reply.
    at_line_start: bool,
    last_active: Instant,
    shared: &'a Shared,
}

/// What the timer branch decided.
enum Tick {
    Continue,
    End(End),
}

impl Connection<'_> {
    async fn run(&mut self) -> io::Result<End> {
        let shared = self.shared;
        let drain = shared.drain.cancelled();
        tokio::pin!(drain);
        let mut draining = shared.drain.is_cancelled();
        let timer = sleep_until(self.deadline().unwrap_or_else(far_future).into());
        tokio::pin!(timer);
        loop {
            if draining && self.at_line_start {
                return self.linger_close(End::Drained).await;
            }
            tokio::select! {
                biased;
                // `poll_read_ready` keeps the task's waker in the stream's one reader slot;
                // a `readable()` future links itself into the stream's waiter list and
                // unlinks on drop, which cost ~400 instructions more per message.
                r = std::future::poll_fn(|cx| self.stream.poll_read_ready(cx)) => r?,
                () = &mut drain, if !draining => {
                    draining = true;
                    timer.as_mut().reset(self.deadline().unwrap_or_else(far_future).into());
                    continue;
                }
                () = &mut timer, if self.deadline().is_some() => {
                    match self.on_timer(timer.as_mut()) {
                        Tick::Continue => continue,
                        Tick::End(end) => return self.close_expired(end).await,
                    }
                }
            }
            let mut bufs = Buffers::take(self.shared.config.read_buffer);
            let step = self.pump(&mut bufs, &mut draining, timer.as_mut()).await;
            bufs.give_back();
            match step? {
                None => {}
                Some(End::ClientClosed) => return Ok(End::ClientClosed),
                Some(End::Drained) => return self.linger_close(End::Drained).await,
                Some(end) => return self.close_expired(end).await,
            }
        }
    }

    /// Reads and echoes until the socket would block. Returns how the connection ends, if
    /// it does.
    async fn pump(
        &mut self,
        bufs: &mut Buffers,
        draining: &mut bool,
        mut timer: Pin<&mut tokio::time::Sleep>,
    ) -> io::Result<Option<End>> {
        loop {
            let n = match self.read_now(&mut bufs.input).await {
                Ok(Some(n)) => n,
                Ok(None) => return Ok(None),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            self.last_active = Instant::now();
            if n == 0 {
                // Half-close: flush a held-back partial character, send FIN.
                bufs.spill.clear();
                self.up.finish(&mut bufs.spill);
                let rest = std::mem::take(&mut bufs.spill);
                let r = self.write_all(&rest, timer.as_mut()).await;
                bufs.spill = rest;
                if let Some(end) = r? {
                    return Ok(Some(end));
                }
                self.stream.shutdown().await?;
                return Ok(Some(End::ClientClosed));
            }
            if !*draining && self.shared.drain.is_cancelled() {
                *draining = true;
                timer
                    .as_mut()
                    .reset(self.deadline().unwrap_or_else(far_future).into());
            }
            let Buffers { input, spill } = bufs;
            let out = self.up.push_in_place(&mut input[..n], spill);
            // During a drain, a reply goes out up to and including the LF that ends the
            // current line; what the client sent after it is not answered.
            let (out, cut) = match draining.then(|| memchr_lf(out)).flatten() {
                Some(i) => (&out[..=i], true),
                None => (out, false),
            };
            if let Some(&last) = out.last() {
                self.at_line_start = last == b'\n';
            }
            if let Some(end) = self.write_all(out, timer.as_mut()).await? {
                return Ok(Some(end));
            }
            if cut {
                return Ok(Some(End::Drained));
            }
            if *draining && self.at_line_start {
                return Ok(Some(End::Drained));
            }
            if n < bufs.input.len() {
                // A short read has drained the socket (and `read_now` has cleared its
                // readiness): go back to waiting without the buffers, rather than make one
                // more read just to learn that it would block.
                return Ok(None);
            }
        }
    }

    /// One read, without waiting: `Ok(None)` when nothing is there. Goes through
    /// `AsyncRead::poll_read` rather than `try_read` because a short read there also clears
    /// the cached readiness, which saves the extra read that would only return EAGAIN.
    async fn read_now(&mut self, buf: &mut [u8]) -> io::Result<Option<usize>> {
        std::future::poll_fn(|cx| {
            let mut rb = ReadBuf::new(buf);
            Poll::Ready(match Pin::new(&mut self.stream).poll_read(cx, &mut rb) {
                Poll::Ready(Ok(())) => Ok(Some(rb.filled().len())),
                Poll::Ready(Err(e)) => Err(e),
                Poll::Pending => Ok(None),
            })
        })
        .await
    }

    /// One write, without waiting: `Ok(None)` when the socket's send buffer is full.
    async fn write_now(&mut self, buf: &[u8]) -> io::Result<Option<usize>> {
        std::future::poll_fn(|cx| {
            Poll::Ready(match Pin::new(&mut self.stream).poll_write(cx, buf) {
                Poll::Ready(r) => r.map(Some),
                Poll::Pending => Ok(None),
            })
        })
        .await
    }

    /// Writes all of `buf`, waiting for the client to read when its window is full. The
    /// idle timeout and the drain deadline still apply while waiting.
    async fn write_all(
        &mut self,
        mut buf: &[u8],
        mut timer: Pin<&mut tokio::time::Sleep>,
    ) -> io::Result<Option<End>> {
        let mut waited = false;
        while !buf.is_empty() {
            match self.write_now(buf).await {
                Ok(Some(0)) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(Some(n)) => {
                    buf = &buf[n..];
                    if waited {
                        // Progress after a stall is activity; without a stall the read
                        // that produced `buf` has just counted as such.
                        self.last_active = Instant::now();
                    }
                    continue;
                }
                Ok(None) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
            if !waited {
                debug!(
                    unsent = buf.len(),
                    "client is not reading; reads paused until it does"
                );
                waited = true;
            }
            tokio::select! {
                biased;
                r = std::future::poll_fn(|cx| self.stream.poll_write_ready(cx)) => r?,
                () = &mut timer, if self.deadline().is_some() => {
                    if let Tick::End(end) = self.on_timer(timer.as_mut()) {
                        return Ok(Some(end));
                    }
                }
            }
        }
        Ok(None)
    }

    /// When the connection must next be looked at: the idle deadline, or the drain
    /// deadline if that is sooner.
    fn deadline(&self) -> Option<Instant> {
        let idle = self
            .shared
            .config
            .idle_timeout
            .map(|t| self.last_active + t);
        match (idle, self.shared.drain_deadline()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// The timer fired: end the connection if a deadline really passed, otherwise re-arm
    /// it (activity since it was set moved the idle deadline on).
    fn on_timer(&mut self, timer: Pin<&mut tokio::time::Sleep>) -> Tick {
        let now = Instant::now();
        if let Some(d) = self.shared.drain_deadline() {
            if now >= d {
                return Tick::End(End::DrainDeadline);
            }
        }
        if let Some(idle) = self.shared.config.idle_timeout {
            if now >= self.last_active + idle {
                return Tick::End(End::Idle);
            }
        }
        timer.reset(self.deadline().unwrap_or_else(far_future).into());
        Tick::Continue
    }

    async fn close_expired(&mut self, end: End) -> io::Result<End> {
        if end == End::Idle {
            self.shared.idle_closed.fetch_add(1, Ordering::Relaxed);
            debug!(timeout = ?self.shared.config.idle_timeout, "idle timeout");
            return self.linger_close(end).await;
        }
        // Past the drain deadline nothing more is owed: close now.
        Ok(end)
    }

    /// Sends FIN, then reads and discards until the client closes its side or the linger
    /// bound passes, so that input still in flight does not turn the close into a reset
    /// that would destroy replies the client has not read yet.
    async fn linger_close(&mut self, end: End) -> io::Result<End> {
        self.stream.shutdown().await?;
        let mut until = Instant::now() + self.shared.config.linger_timeout;
        if let Some(d) = self.shared.drain_deadline() {
            until = until.min(d.max(Instant::now()));
        }
        let mut bufs = Buffers::take(self.shared.config.read_buffer);
        let result = tokio::time::timeout_at(until.into(), async {
            loop {
                self.stream.readable().await?;
                match self.stream.try_read(&mut bufs.input) {
                    Ok(0) => return Ok(()),
                    Ok(_) => {}
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(e),
                }
            }
        })
        .await;
        bufs.give_back();
        match result {
            Ok(r) => r.map(|()| end),
            Err(_elapsed) => Ok(end),
        }
    }
}

fn far_future() -> Instant {
    // tokio's timer saturates far-off deadlines; a day is as good as never here because
    // the branch is disabled whenever there is no deadline.
    Instant::now() + std::time::Duration::from_secs(86_400)
}

fn memchr_lf(buf: &[u8]) -> Option<usize> {
    buf.iter().position(|&b| b == b'\n')
}

/// A connection's buffers, lent from a per-thread pool only while it has bytes to move.
struct Buffers {
    input: Box<[u8]>,
    spill: Vec<u8>,
}

/// Buffers kept per thread for reuse. Enough to serve a burst of busy connections without
/// going back to the allocator; beyond it buffers are freed, so an idle server shrinks.
const POOL_KEEP: usize = 64;

thread_local! {
    static POOL: RefCell<Vec<Buffers>> = const { RefCell::new(Vec::new()) };
}

impl Buffers {
    /// Buffers with an input buffer of `size` bytes, from the pool when it has some.
    fn take(size: usize) -> Buffers {
        POOL.with(|p| p.borrow_mut().pop())
            .filter(|b| b.input.len() == size)
            .unwrap_or_else(|| Buffers {
                input: vec![0u8; size].into_boxed_slice(),
                spill: Vec::new(),
            })
    }

    fn give_back(self) {
        POOL.with(|p| {
            let mut p = p.borrow_mut();
            if p.len() < POOL_KEEP {
                p.push(self);
            }
        });
    }
}
