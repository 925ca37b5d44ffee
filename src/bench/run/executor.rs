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
//!
//! The driver is generic over the stream ([`Stream`]): a `TcpStream`, or a TLS stream on
//! one. Monomorphised, the plain path is the same code as before TLS existed; TLS only adds
//! a flush after the writes (rustls may hold records the socket did not take), which for a
//! `TcpStream` is an inlined `Ready`.

use std::collections::VecDeque;
use std::future::{poll_fn, Future};
use std::io;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tracing::debug;

use super::{bump, Schedule, Shared, TlsStream, Watch, MAX_IN_FLIGHT, MAX_PIPELINE};

/// A connection the driver can load: a byte stream, and how to open another one like it
/// for `--reconnect`.
pub(super) trait Stream: AsyncRead + AsyncWrite + Unpin + Sized {
    /// Opens a new connection to the run's peer, as the first ones were opened.
    fn reopen(shared: &Shared) -> impl Future<Output = io::Result<Self>>;
}

impl Stream for TcpStream {
    fn reopen(shared: &Shared) -> impl Future<Output = io::Result<Self>> {
        shared.reopen()
    }
}

impl Stream for TlsStream {
    async fn reopen(shared: &Shared) -> io::Result<Self> {
        let tcp = shared.reopen().await?;
        let Some(tls) = &shared.tls else {
            return Err(io::Error::other("the run is not over TLS"));
        };
        crate::tls::connect(tcp, tls.config(), tls.name().clone(), shared.timeout)
            .await
            .map_err(io::Error::other)
    }
}

/// Drives one TCP (or TLS) connection until the run ends (the task is aborted) or the
/// connection fails.
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
    /// Closed loop: the free pipeline slots (messages that may begin).
    free: usize,
    /// When each message whose reply is owed started, oldest first: when its first byte
    /// was written (closed loop), or its scheduled time if that was earlier (open loop).
    starts: VecDeque<Instant>,
    /// The bytes of a wrong reply being collected for the report, once per run.
    capture: Option<Vec<u8>>,
    /// `--reconnect`: messages owed from the connection before, still to be written again
    /// on this one before any new message begins (their start times stay in `starts`).
    resend: usize,
    /// Replies to messages completed on this connection (not the one before).
    answered: u64,
    /// Messages this connection was opened to send again: the first `resent` of it.
    resent: u64,
}

impl<S: Stream> TcpDriver<S> {
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
                free: if closed_loop { pipeline } else { 0 },
                starts: VecDeque::with_capacity(pipeline.clamp(16, 64)),
                capture: None,
                resend: 0,
                answered: 0,
                resent: 0,
            },
        }
    }

    /// Runs until the connection fails. A connection the server closed or reset before
    /// sending a byte was refused; one it closed later was reset.
    pub async fn run(mut self) {
        let error = loop {
            let error = poll_fn(|cx| self.poll(cx)).await;
            // `--reconnect`: a clean close (FIN) at a message boundary is a server going
            // away in good order; reopen and go on, first sending again the messages it
            // closed without answering, if that is provably safe (`unanswered`).
            let fin = error.kind() == io::ErrorKind::UnexpectedEof;
            let clean = fin && self.state.at_boundary();
            let resend = fin && !clean && self.state.unanswered();
            if !((clean || resend) && self.shared.reconnect.is_some()) {
                break error;
            }
            if clean && !self.shared.sending.get() {
                // The window is over and nothing is owed: nothing to reopen for.
                return;
            }
            match S::reopen(&self.shared).await {
                Ok(stream) => self.stream = stream,
                Err(e) => break e,
            }
            bump(&self.shared.reconnects);
            let again = self.state.starts.len();
            debug!(
                resent = again,
                "reopened a connection the server closed cleanly"
            );
            self.shared
                .retried
                .set(self.shared.retried.get() + again as u64);
            self.state.reopened(again);
        };
        debug!(
            %error,
            owed = self.state.starts.len(),
            reply_bytes_read = self.state.recvd,
            "connection ended"
        );
        self.watch.oldest.set(None);
        let owed = self.watch.in_flight.get();
        self.shared.settle(&self.watch, owed);
        if self.watch.received.get() == 0 {
            self.watch.refused.set(true);
            bump(&self.shared.refused);
        } else {
            bump(&self.shared.resets);
        }
    }

    /// Reads what has arrived and writes what is due until neither can make progress.
    /// Ready only with the error that ended the connection.
    ///
    /// Reading comes first, so that a server's FIN sent with its last reply is seen before
    /// another message goes out (for `--reconnect`, that close is clean).
    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<io::Error> {
        loop {
            if let Some(schedule) = &mut self.schedule {
                schedule.poll_due(cx);
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
                Poll::Ready(Ok(())) => {
                    let data = read.filled();
                    let w = &self.watch;
                    w.received.set(w.received.get() + data.len() as u64);
                    self.state.consume(shared, w, data);
                }
                Poll::Ready(Err(e)) => return Poll::Ready(e),
                Poll::Pending => {
                    drop(buf);
                    if let Err(e) = self.write_due(cx) {
                        return Poll::Ready(e);
                    }
                    // TLS: push out records rustls holds because the socket was full, or
                    // register for when it takes more (nothing else would: no message may
                    // begin until their replies come). TCP holds nothing: ready at once.
                    if let Poll::Ready(Err(e)) = Pin::new(&mut self.stream).poll_flush(cx) {
                        return Poll::Ready(e);
                    }
                    self.watch.oldest.set(self.state.starts.front().copied());
                    return Poll::Pending;
                }
            }
        }
    }

    /// Whether another message may begin now.
    fn may_begin(&self) -> bool {
        let shared = &self.shared;
        if !shared.sending.get() {
            return false;
        }
        match &self.schedule {
            None => self.state.free > 0,
            Some(s) => {
                s.owed() > 0
                    && self.state.starts.len() < MAX_PIPELINE as usize
                    && shared.in_flight.get() < MAX_IN_FLIGHT
            }
        }
    }

    /// Writes the message begun, and begins and writes more while they may, until the
    /// socket is full (then a wake-up is registered).
    fn write_due(&mut self, cx: &mut Context<'_>) -> io::Result<()> {
        loop {
            let beginning = self.state.sent == 0;
            // Messages owed from the connection before go first, after the window too:
            // their replies are awaited like any other owed.
            if beginning && self.state.resend == 0 && !self.may_begin() {
                return Ok(());
            }
            // The clock is read per message, not per batch: a batch of writes takes
            // microseconds each, which would otherwise be charged to the server.
            // A message sent again keeps the start it had (so its latency is the whole
            // wait, the close and the reopen included): no new start for it.
            let now = (beginning && self.state.resend == 0).then(Instant::now);
            let message = &self.shared.payload.message;
            let st = &mut self.state;
            match Pin::new(&mut self.stream).poll_write(cx, &message[st.sent..]) {
                Poll::Ready(Ok(0)) => return Err(io::ErrorKind::WriteZero.into()),
                Poll::Ready(Ok(n)) => {
                    if let Some(now) = now {
                        let start = match &mut self.schedule {
                            None => {
                                st.free -= 1;
                                now
                            }
                            Some(schedule) => {
                                let (start, late) = schedule.begin(now);
                                if late {
                                    bump(&self.shared.late);
                                }
                                if self.shared.measuring.get() {
                                    bump(&self.shared.begun_in_window);
                                }
                                bump(&self.watch.begun);
                                start
                            }
                        };
                        st.starts.push_back(start);
                        self.shared.owe(&self.watch);
                    }
                    st.sent += n;
                    if st.sent == message.len() {
                        st.sent = 0;
                        st.resend = st.resend.saturating_sub(1);
                    }
                }
                Poll::Ready(Err(e)) => return Err(e),
                Poll::Pending => return Ok(()),
            }
        }
    }
}

impl State {
    /// No message half written, no reply half read, no reply owed.
    fn at_boundary(&self) -> bool {
        self.sent == 0 && self.recvd == 0 && self.starts.is_empty()
    }

    /// At a FIN: whether the messages owed may be sent again on a new connection. Yes when
    /// every reply so far is complete and not a byte of the next one came (the server
    /// stopped at a message boundary, as a drain does), the connection answered a message
    /// before (HTTP's rule: retry only on a reused connection, so a server that closes
    /// fresh connections unanswered is an error, not a loop), and none of the owed messages
    /// is itself one sent again (RFC 9110 §9.2.2: a failed automatic retry is not retried).
    /// Sound because after its FIN the server can never answer them on this connection,
    /// and upper-casing has no effect beyond its reply: sending again cannot duplicate or
    /// change anything.
    fn unanswered(&self) -> bool {
        self.recvd == 0
            && !self.starts.is_empty()
            && self.answered > 0
            && self.answered >= self.resent
    }

    /// A new connection replaces the one closed, to send again `again` messages owed.
    fn reopened(&mut self, again: usize) {
        self.sent = 0;
        self.resend = again;
        self.resent = again as u64;
        self.answered = 0;
    }

    /// Checks `data` against the expected reply, wherever in the reply it falls, and
    /// counts every reply it completes.
    #[inline]
    fn consume(&mut self, shared: &Shared, watch: &Watch, mut data: &[u8]) {
        let expected = &shared.payload.expected[..];
        let size = expected.len();
        // Every reply completed by one read arrived at the same moment: one clock read.
        let mut now = None;
        while !data.is_empty() {
            let take = (size - self.recvd).min(data.len());
            let chunk = &data[..take];
            if let Some(c) = &mut self.capture {
                c.extend_from_slice(chunk);
            } else if chunk != &expected[self.recvd..self.recvd + take] {
                // The reply was right up to here, so its bytes so far are the expected
                // ones.
                if self.reply_right && shared.start_capture() {
                    let mut c = Vec::with_capacity(size);
                    c.extend_from_slice(&expected[..self.recvd]);
                    c.extend_from_slice(chunk);
                    self.capture = Some(c);
                }
                self.reply_right = false;
            }
            self.recvd += take;
            data = &data[take..];
            if self.recvd == size {
                self.recvd = 0;
                let now = *now.get_or_insert_with(Instant::now);
                let start = self.starts.pop_front();
                if start.is_none() {
                    // A reply to no message: wrong whatever its bytes.
                    if self.capture.is_none() && shared.start_capture() {
                        self.capture = Some(expected.to_vec());
                    }
                    self.reply_right = false;
                }
                if let Some(got) = self.capture.take() {
                    let sent = if start.is_some() {
                        &shared.payload.message[..]
                    } else {
                        &[]
                    };
                    shared.keep_wrong(sent, &got);
                    shared.capturing.set(false);
                }
                shared.record(
                    start.map(|s| now.saturating_duration_since(s)),
                    self.reply_right,
                );
                self.reply_right = true;
                if start.is_some() {
                    shared.settle(watch, 1);
                    self.free += 1;
                    self.answered += 1;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::options::Text;
    use crate::bench::payload::Payload;
    use std::task::Waker;
    use std::time::Duration;

    /// A stream that, like rustls, holds what is written until it is flushed; the peer
    /// upper-cases what it gets, and ends the stream after `limit` bytes of replies.
    struct Holding {
        held: Vec<u8>,
        replies: Vec<u8>,
        served: usize,
        limit: usize,
        reader: Option<Waker>,
    }

    impl AsyncRead for Holding {
        fn poll_read(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &mut ReadBuf<'_>,
        ) -> Poll<io::Result<()>> {
            if self.replies.is_empty() {
                if self.served >= self.limit {
                    return Poll::Ready(Ok(()));
                }
                self.reader = Some(cx.waker().clone());
                return Poll::Pending;
            }
            let n = buf.remaining().min(self.replies.len());
            buf.put_slice(&self.replies[..n]);
            self.replies.drain(..n);
            self.served += n;
            Poll::Ready(Ok(()))
        }
    }

    impl AsyncWrite for Holding {
        fn poll_write(
            mut self: Pin<&mut Self>,
            _cx: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<io::Result<usize>> {
            self.held.extend_from_slice(buf);
            Poll::Ready(Ok(buf.len()))
        }

        fn poll_flush(mut self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            let reply = crate::transform::upcase(&self.held, crate::transform::Mode::Unicode);
            self.held.clear();
            self.replies.extend_from_slice(&reply);
            if let Some(w) = self.reader.take() {
                w.wake();
            }
            Poll::Ready(Ok(()))
        }

        fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    impl Stream for Holding {
        fn reopen(_shared: &Shared) -> impl Future<Output = io::Result<Self>> {
            std::future::ready(Err(io::Error::other("no reopening here")))
        }
    }

    #[test]
    fn records_a_stream_holds_are_flushed_so_that_their_replies_come() {
        let size = 100;
        let shared = Rc::new(Shared::new(
            Payload::new(size, Text::Ascii),
            Duration::from_secs(10),
        ));
        let stream = Holding {
            held: Vec::new(),
            replies: Vec::new(),
            served: 0,
            limit: 5 * size,
            reader: None,
        };
        let driver = TcpDriver::new(stream, Rc::clone(&shared), Rc::default(), 1, None);
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            tokio::time::timeout(Duration::from_secs(10), driver.run())
                .await
                .expect("every message is flushed, so every reply comes and the stream ends")
        });
        assert_eq!(shared.replies.get(), 5);
        assert_eq!(shared.wrong_replies.get(), 0);
    }
}
