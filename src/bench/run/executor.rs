//! One TCP connection under load: writes messages, reads replies, checks every byte.
//!
//! The driver is one hand-written poll function rather than a writer and a reader awaiting
//! in turn, for two reasons. Writing and reading must go on at once: with large messages
//! in flight, a client that writes a whole message before reading fills both socket
//! buffers and deadlocks against a server that writes back before it reads on. And it
//! keeps the per-message cost to what `loadgen.c` pays: a write and a read system call,
//! no allocation, no timer, two clock reads.
//!
//! Replies are framed by length, never by read: a correct reply is exactly as long as its
//! message, so the driver counts bytes across reads, however the kernel splits them.

use std::collections::VecDeque;
use std::future::poll_fn;
use std::io;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tracing::debug;

use super::{bump, Schedule, Shared, Watch};

/// Drives one TCP connection until the run ends (the task is aborted) or the connection
/// fails.
pub(super) struct TcpDriver<S = TcpStream> {
    stream: S,
    shared: Rc<Shared>,
    watch: Rc<Watch>,
    /// Open loop only: when this connection's messages are due.
    schedule: Option<Schedule>,
    state: State,
}

/// The bookkeeping of one connection, apart from the socket so that reads can borrow
/// both at once.
struct State {
    /// Bytes of the message being written that are already written.
    sent: usize,
    /// Bytes of the reply being read that are already read.
    recvd: usize,
    /// Whether every byte of the reply being read was right so far.
    reply_right: bool,
    /// Messages whose turn has come and that are not fully written. In closed loop, the
    /// free pipeline slots.
    queued: usize,
    /// When each unanswered message started, oldest first. Closed loop: when its first
    /// byte was written. Open loop: its scheduled time, from the moment it is due.
    starts: VecDeque<Instant>,
    closed_loop: bool,
}

impl<S: AsyncRead + AsyncWrite + Unpin> TcpDriver<S> {
    /// A driver for `stream`: closed loop with `pipeline` messages in flight, or open loop
    /// when a `schedule` is given.
    pub fn new(
        stream: S,
        shared: Rc<Shared>,
        watch: Rc<Watch>,
        pipeline: usize,
        schedule: Option<Schedule>,
    ) -> TcpDriver<S> {
        let closed_loop = schedule.is_none();
        TcpDriver {
            stream,
            shared,
            watch,
            schedule,
            state: State {
                sent: 0,
                recvd: 0,
                reply_right: true,
                queued: if closed_loop { pipeline } else { 0 },
                starts: VecDeque::with_capacity(pipeline.max(16)),
                closed_loop,
            },
        }
    }

    /// Runs until the connection fails; a failure is counted as a reset.
    pub async fn run(mut self) {
        let error = poll_fn(|cx| self.poll(cx)).await;
        self.watch.oldest.set(None);
        debug!(%error, "connection ended");
        bump(&self.shared.resets);
    }

    /// Writes what is due and reads what has arrived until neither can make progress.
    /// Ready only with the error that ended the connection.
    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<io::Error> {
        loop {
            if let Some(schedule) = &mut self.schedule {
                while schedule.poll_tick(cx).is_ready() {
                    let state = &mut self.state;
                    schedule.take_due(|t| {
                        state.starts.push_back(t);
                        state.queued += 1;
                    });
                }
            }
            if let Err(e) = self.write_queued(cx) {
                return Poll::Ready(e);
            }
            // TLS holds records it could not write yet; plain TCP holds nothing (ready at
            // once). Pending registers the wake-up for when the socket takes more.
            if let Poll::Ready(Err(e)) = Pin::new(&mut self.stream).poll_flush(cx) {
                return Poll::Ready(e);
            }
            let shared = &*self.shared;
            let mut buf = shared.read_buf.borrow_mut();
            let mut read = ReadBuf::new(&mut buf[..]);
            match Pin::new(&mut self.stream).poll_read(cx, &mut read) {
                Poll::Ready(Ok(())) if read.filled().is_empty() => {
                    return Poll::Ready(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the server closed the connection",
                    ));
                }
                Poll::Ready(Ok(())) => self.state.consume(shared, read.filled()),
                Poll::Ready(Err(e)) => return Poll::Ready(e),
                Poll::Pending => {
                    self.watch.oldest.set(self.state.starts.front().copied());
                    return Poll::Pending;
                }
            }
        }
    }

    /// Writes queued messages until all are written or the socket is full (then a wake-up
    /// is registered).
    fn write_queued(&mut self, cx: &mut Context<'_>) -> io::Result<()> {
        let message = &self.shared.payload.message;
        let st = &mut self.state;
        while st.queued > 0 {
            // The clock is read per message, not per batch: a batch of writes takes
            // microseconds each, which would otherwise be charged to the server.
            let start = (st.closed_loop && st.sent == 0).then(Instant::now);
            match Pin::new(&mut self.stream).poll_write(cx, &message[st.sent..]) {
                Poll::Ready(Ok(0)) => return Err(io::ErrorKind::WriteZero.into()),
                Poll::Ready(Ok(n)) => {
                    if let Some(t) = start {
                        st.starts.push_back(t);
                    }
                    st.sent += n;
                    if st.sent == message.len() {
                        st.sent = 0;
                        st.queued -= 1;
                    }
                }
                Poll::Ready(Err(e)) => return Err(e),
                Poll::Pending => break,
            }
        }
        Ok(())
    }
}

impl State {
    /// Checks `data` against the expected reply, wherever in the reply it falls, and
    /// counts every reply it completes.
    #[inline]
    fn consume(&mut self, shared: &Shared, mut data: &[u8]) {
        let expected = &shared.payload.expected[..];
        let size = expected.len();
        // Every reply completed by one read arrived at the same moment: one clock read.
        let mut now = None;
        while !data.is_empty() {
            let take = (size - self.recvd).min(data.len());
            if data[..take] != expected[self.recvd..self.recvd + take] {
                self.reply_right = false;
            }
            self.recvd += take;
            data = &data[take..];
            if self.recvd == size {
                self.recvd = 0;
                let now = *now.get_or_insert_with(Instant::now);
                let start = if self.starts.len() > self.not_started() {
                    self.starts.pop_front()
                } else {
                    None // a reply to a message not yet sent
                };
                shared.record(
                    start.map(|s| now.saturating_duration_since(s)),
                    self.reply_right,
                );
                self.reply_right = true;
                if self.closed_loop && start.is_some() {
                    self.queued += 1;
                }
            }
        }
    }

    /// Messages in `starts` that have not had a byte written yet (open loop only: in
    /// closed loop a start is recorded with the first byte).
    fn not_started(&self) -> usize {
        if self.closed_loop {
            0
        } else {
            self.queued - usize::from(self.sent > 0)
        }
    }
}
