//! The connection's policy as a state machine that does no I/O: events in, decisions out.
//!
//! A driver (the readiness loop in `driver.rs` today; an io_uring one later) owns the socket
//! and the buffers, and tells a [`Connection`] what happened: bytes arrived
//! ([`received`](Connection::received)), bytes went out ([`wrote`](Connection::wrote)), the
//! reply is out ([`reply_sent`](Connection::reply_sent)), the client sent FIN
//! ([`end_of_input`](Connection::end_of_input)), the drain began
//! ([`drain_began`](Connection::drain_began)), the timer fired
//! ([`timer`](Connection::timer)). Each answer says what to do next: write these bytes, read
//! more, check for waiting input, or close and how.
//!
//! The buffers are the driver's, lent for one call: [`received`](Connection::received)
//! upper-cases in place in whatever memory the bytes were read into (a pooled buffer, or a
//! ring buffer the kernel filled) and returns the reply as a slice of it or of `spill`. The
//! readiness driver keeps one reply in flight: it asks for no more input until it has
//! written the reply and called `reply_sent`. That is the backpressure, and with
//! `read_limit` bytes per read, the memory bound: input ≤ `read_limit`, reply ≤
//! `read_limit ×` [`MAX_EXPANSION`](crate::transform::MAX_EXPANSION). A driver may also
//! hand over several reads before the first reply is out (the io_uring driver gathers the
//! replies of queued buffers into one send): the replies go out in order, `reply_sent`
//! follows the last of them, and the driver bounds what it queues.
//!
//! Time is passed in as [`tokio::time::Instant`], so tests drive every deadline with paused
//! time and no socket.

use std::time::Duration;

use tokio::time::Instant;

use crate::transform::{Mode, Upcaser};

/// The per-connection settings the state machine applies, taken from the server's
/// [`Config`](crate::server::Config).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// Full Unicode or ASCII-only upper-casing.
    pub mode: Mode,
    /// Close after this long with no byte moved; `None` never does.
    pub idle_timeout: Option<Duration>,
    /// Bound on a lingering close.
    pub linger_timeout: Duration,
    /// The most bytes to read at a time: the memory bound's unit.
    pub read_limit: usize,
}

/// How a connection ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// The client half-closed; everything owed was sent, then FIN.
    Client,
    /// Nothing moved for the idle timeout (or the client stopped reading for that long).
    Idle,
    /// The drain closed it at a line boundary.
    Drained,
    /// The drain deadline passed with the connection still busy.
    DrainDeadline,
    /// A socket error (a reset, for one) ended it.
    Error,
}

impl End {
    /// The reason as logs and metrics write it: `client`, `idle`, `drain`, `drain deadline`,
    /// `error`.
    pub fn as_str(self) -> &'static str {
        match self {
            End::Client => "client",
            End::Idle => "idle",
            End::Drained => "drain",
            End::DrainDeadline => "drain deadline",
            End::Error => "error",
        }
    }

    /// Whether the server ends this connection with a lingering close (FIN, then input read
    /// and discarded for a while) rather than just FIN.
    pub fn lingers(self) -> bool {
        matches!(self, End::Idle | End::Drained | End::DrainDeadline)
    }
}

/// What to do after an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Carry on: wait for input (or keep writing, if a reply is in flight).
    Continue,
    /// Close the connection: for a close by the server, write
    /// [`unanswered_tail`](Connection::unanswered_tail), shut down the write side and linger
    /// until [`linger_until`](Connection::linger_until); for [`End::Client`], shut down.
    Close(End),
}

/// What the timer's firing means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Timer {
    /// No deadline has passed (activity moved the idle deadline on): set the timer again
    /// for [`deadline`](Connection::deadline).
    Wait,
    /// The idle deadline passed while waiting for input. Input that has arrived but that the
    /// driver has not yet seen (after the process was stopped, say) means the connection is
    /// not idle: look without waiting, then call
    /// [`input_waiting`](Connection::input_waiting) or [`nothing_waiting`](Connection::nothing_waiting).
    Probe,
    /// Close, as for [`Next::Close`].
    Close(End),
}

/// Where a connection is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Waiting for input or reading it.
    Reading,
    /// A reply is being written; no input is read until it is out.
    Writing,
    /// Over.
    Closed,
}

/// One TCP connection's policy: the transform and its held-back bytes, the line boundary the
/// drain waits for, the idle and drain deadlines, and the memory bound.
#[derive(Debug)]
pub struct Connection {
    up: Upcaser,
    phase: Phase,
    /// Whether the last byte echoed was LF (or nothing has been echoed).
    at_line_start: bool,
    /// The drain cut the last chunk after its LF: what followed is not answered.
    cut: bool,
    /// The server closed while a reply was in flight: the stream has a gap, so nothing is
    /// flushed after it.
    interrupted: bool,
    /// The reply being written had to wait for the client to read.
    stalled: bool,
    /// The client sent FIN: once the last bytes are out, the connection ends.
    eof: bool,
    last_active: Instant,
    drain_deadline: Option<Instant>,
    idle_timeout: Option<Duration>,
    linger_timeout: Duration,
    read_limit: usize,
    bytes_in: u64,
    bytes_out: u64,
}

impl Connection {
    /// A connection accepted at `now`, with nothing received yet.
    pub fn new(policy: &Policy, now: Instant) -> Self {
        Connection {
            up: Upcaser::new(policy.mode),
            phase: Phase::Reading,
            at_line_start: true,
            cut: false,
            interrupted: false,
            stalled: false,
            eof: false,
            last_active: now,
            drain_deadline: None,
            idle_timeout: policy.idle_timeout,
            linger_timeout: policy.linger_timeout,
            read_limit: policy.read_limit,
            bytes_in: 0,
            bytes_out: 0,
        }
    }

    /// The most bytes to read at once (and hand to [`received`](Self::received)).
    pub fn read_limit(&self) -> usize {
        self.read_limit
    }

    /// Bytes arrived at `now`: upper-cases `data` (in place when it can, else into `spill`)
    /// and returns the reply to write, all of it, before [`reply_sent`](Self::reply_sent).
    /// During a drain the reply stops after the first LF, and the connection closes once it
    /// is out.
    ///
    /// May be called again before `reply_sent` (replies gathered into one write): each reply
    /// follows the one before on the wire, and `spill` must not hold an earlier reply still
    /// owed. After the drain's cut, what arrives is not answered: the reply is empty.
    pub fn received<'b>(
        &mut self,
        now: Instant,
        data: &'b mut [u8],
        spill: &'b mut Vec<u8>,
    ) -> &'b [u8] {
        debug_assert_ne!(self.phase, Phase::Closed, "input after the close");
        debug_assert!(data.len() <= self.read_limit, "read more than read_limit");
        self.last_active = now;
        self.bytes_in += data.len() as u64;
        if self.cut {
            self.phase = Phase::Writing;
            return &[];
        }
        let mut out = self.up.push_in_place(data, spill);
        if self.drain_deadline.is_some() {
            // During a drain, a reply goes out up to and including the LF that ends the
            // current line; what the client sent after it is not answered.
            if let Some(i) = out.iter().position(|&b| b == b'\n') {
                out = &out[..=i];
                self.cut = true;
            }
        }
        if let Some(&last) = out.last() {
            self.at_line_start = last == b'\n';
        }
        self.phase = Phase::Writing;
        self.stalled = false;
        out
    }

    /// `n` bytes of the reply went out.
    #[inline]
    pub fn wrote(&mut self, n: usize) {
        self.bytes_out += n as u64;
    }

    /// The reply could not all be written: the client is not reading. Returns `true` the
    /// first time for this reply (worth a log line).
    pub fn write_stalled(&mut self) -> bool {
        !std::mem::replace(&mut self.stalled, true)
    }

    /// Bytes went out at `now` after a stall: the client reads again, which is activity.
    /// (Without a stall, the read that produced the reply has just counted as activity, so
    /// a driver need not look at the clock per write.)
    pub fn write_resumed(&mut self, now: Instant) {
        self.last_active = now;
    }

    /// The whole reply is out: read more, or close (the drain has reached a line boundary).
    pub fn reply_sent(&mut self) -> Next {
        if self.eof {
            self.phase = Phase::Closed;
            return Next::Close(End::Client);
        }
        self.phase = Phase::Reading;
        if self.cut || (self.drain_deadline.is_some() && self.at_line_boundary()) {
            self.phase = Phase::Closed;
            return Next::Close(End::Drained);
        }
        Next::Continue
    }

    /// The client sent FIN at `now`. Returns the bytes still owed (a held-back incomplete
    /// sequence, unchanged): write them, then [`reply_sent`](Self::reply_sent) says
    /// [`End::Client`]: shut down the write side.
    pub fn end_of_input<'b>(&mut self, now: Instant, spill: &'b mut Vec<u8>) -> &'b [u8] {
        self.last_active = now;
        spill.clear();
        self.up.finish(spill);
        self.phase = Phase::Writing;
        self.eof = true;
        spill
    }

    /// The drain began; every connection must be closed by `deadline`. While waiting for
    /// input at a line boundary the answer is to close now; otherwise the connection goes on
    /// until its line's LF has been echoed. A driver that holds freshly read input feeds it
    /// to [`received`](Self::received) first, whatever this says, and lets
    /// [`reply_sent`](Self::reply_sent) decide.
    pub fn drain_began(&mut self, deadline: Instant) -> Next {
        self.drain_deadline = Some(deadline);
        if self.phase == Phase::Reading && self.at_line_boundary() {
            return Next::Close(End::Drained);
        }
        Next::Continue
    }

    /// Whether the drain has begun for this connection.
    pub fn draining(&self) -> bool {
        self.drain_deadline.is_some()
    }

    /// Whether a drain may close here without cutting a line: the last byte echoed was LF
    /// (or nothing was echoed) and nothing is held back.
    fn at_line_boundary(&self) -> bool {
        self.at_line_start && self.up.held_back().is_empty()
    }

    /// When the driver must next call [`timer`](Self::timer): the idle deadline or the drain
    /// deadline, whichever is sooner; `None` for never.
    pub fn deadline(&self) -> Option<Instant> {
        let idle = self
            .idle_timeout
            .and_then(|t| self.last_active.checked_add(t));
        match (idle, self.drain_deadline) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// The timer fired at `now`.
    pub fn timer(&mut self, now: Instant) -> Timer {
        if self.drain_deadline.is_some_and(|d| now >= d) {
            return Timer::Close(self.close_by_server(End::DrainDeadline));
        }
        let idle = self
            .idle_timeout
            .and_then(|t| self.last_active.checked_add(t));
        if idle.is_some_and(|d| now >= d) {
            if self.phase == Phase::Writing {
                // The client has not read for the idle timeout: close, whatever it sends.
                return Timer::Close(self.close_by_server(End::Idle));
            }
            return Timer::Probe;
        }
        Timer::Wait
    }

    /// After [`Timer::Probe`]: input was waiting at `now`, so the connection is not idle.
    /// Wait for it (the driver's readiness will report it) with the timer set again.
    pub fn input_waiting(&mut self, now: Instant) {
        self.last_active = now;
    }

    /// After [`Timer::Probe`]: nothing was waiting. Close for idleness.
    pub fn nothing_waiting(&mut self) -> End {
        self.close_by_server(End::Idle)
    }

    fn close_by_server(&mut self, end: End) -> End {
        if self.phase == Phase::Writing {
            self.interrupted = true;
        }
        self.phase = Phase::Closed;
        end
    }

    /// What the server still owes when it closes: the held-back bytes of an incomplete
    /// sequence, unchanged, unless the close cut the stream (a drain's cut after an LF, or a
    /// reply that could not be delivered), in which case nothing.
    pub fn unanswered_tail(&self) -> &[u8] {
        if self.cut || self.interrupted {
            &[]
        } else {
            self.up.held_back()
        }
    }

    /// Until when a lingering close that starts at `now` may read and discard: the linger
    /// timeout, but never past the drain deadline. May be `now` or earlier: no linger.
    pub fn linger_until(&self, now: Instant) -> Instant {
        let until = now
            .checked_add(self.linger_timeout)
            .or_else(|| now.checked_add(crate::limits::MAX_DURATION))
            .unwrap_or(now);
        match self.drain_deadline {
            Some(d) => until.min(d),
            None => until,
        }
    }

    /// Whether the connection is in the middle of a line: something echoed since the last LF,
    /// something held back, or a reply in flight.
    pub fn mid_line(&self) -> bool {
        self.interrupted || !self.at_line_boundary()
    }

    /// Bytes received so far.
    pub fn bytes_in(&self) -> u64 {
        self.bytes_in
    }

    /// Bytes sent so far.
    pub fn bytes_out(&self) -> u64 {
        self.bytes_out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const IDLE: Duration = Duration::from_secs(10);

    fn policy() -> Policy {
        Policy {
            mode: Mode::Unicode,
            idle_timeout: Some(IDLE),
            linger_timeout: Duration::from_secs(2),
            read_limit: 1024,
        }
    }

    /// Feeds `input` as one read and returns the reply, as a driver would write it.
    fn feed(c: &mut Connection, input: &[u8]) -> Vec<u8> {
        let mut data = input.to_vec();
        let mut spill = Vec::new();
        let out = c.received(Instant::now(), &mut data, &mut spill).to_vec();
        c.wrote(out.len());
        out
    }

    #[tokio::test(start_paused = true)]
    async fn a_reply_is_the_upper_case_and_activity_moves_the_idle_deadline() {
        let t0 = Instant::now();
        let mut c = Connection::new(&policy(), t0);
        assert_eq!(c.deadline(), Some(t0 + IDLE));
        tokio::time::advance(Duration::from_secs(3)).await;
        assert_eq!(feed(&mut c, "straße\n".as_bytes()), "STRASSE\n".as_bytes());
        assert_eq!(c.reply_sent(), Next::Continue);
        assert_eq!(c.deadline(), Some(Instant::now() + IDLE));
        // The timer set for the old deadline fires: nothing has expired.
        tokio::time::advance(Duration::from_secs(7)).await;
        assert_eq!(c.timer(Instant::now()), Timer::Wait);
        assert_eq!((c.bytes_in(), c.bytes_out()), (8, 8));
    }

    #[tokio::test(start_paused = true)]
    async fn mid_line_drain_answers_up_to_the_lf_then_closes() {
        let mut c = Connection::new(&policy(), Instant::now());
        assert_eq!(feed(&mut c, b"first half "), b"FIRST HALF ");
        assert_eq!(c.reply_sent(), Next::Continue);
        let deadline = Instant::now() + Duration::from_secs(10);
        assert_eq!(c.drain_began(deadline), Next::Continue, "mid-line: go on");
        assert_eq!(c.deadline(), Some(deadline));
        assert_eq!(feed(&mut c, b"more"), b"MORE");
        assert_eq!(c.reply_sent(), Next::Continue);
        assert_eq!(
            feed(&mut c, b" end\nnext line\n"),
            b" END\n",
            "cut after the LF"
        );
        assert_eq!(c.reply_sent(), Next::Close(End::Drained));
        assert_eq!(c.unanswered_tail(), b"", "nothing after the cut");
    }

    #[tokio::test(start_paused = true)]
    async fn reads_handed_over_before_the_reply_is_out_are_answered_in_order() {
        let mut c = Connection::new(&policy(), Instant::now());
        // "ä" split across the two reads: the second reply begins with the held-back byte.
        assert_eq!(feed(&mut c, b"one \xc3"), b"ONE ");
        assert_eq!(feed(&mut c, b"\xa4 two\n"), "Ä TWO\n".as_bytes());
        assert_eq!(c.reply_sent(), Next::Continue);
        assert_eq!((c.bytes_in(), c.bytes_out()), (11, 11));
    }

    #[tokio::test(start_paused = true)]
    async fn after_the_drain_s_cut_further_reads_are_not_answered() {
        let mut c = Connection::new(&policy(), Instant::now());
        assert_eq!(feed(&mut c, b"half "), b"HALF ");
        assert_eq!(c.drain_began(Instant::now() + IDLE), Next::Continue);
        assert!(c.draining());
        assert_eq!(feed(&mut c, b"line\nafter"), b"LINE\n", "cut after the LF");
        assert_eq!(feed(&mut c, b" more\n"), b"", "after the cut: not answered");
        assert_eq!(c.reply_sent(), Next::Close(End::Drained));
        assert_eq!(c.unanswered_tail(), b"");
    }

    #[tokio::test(start_paused = true)]
    async fn drain_at_a_line_boundary_closes_at_once() {
        let mut c = Connection::new(&policy(), Instant::now());
        assert_eq!(feed(&mut c, b"done\n"), b"DONE\n");
        assert_eq!(c.reply_sent(), Next::Continue);
        let deadline = Instant::now() + Duration::from_secs(10);
        assert_eq!(c.drain_began(deadline), Next::Close(End::Drained));
        assert!(!c.mid_line());
        // A fresh connection (nothing echoed) is at a boundary too.
        let mut fresh = Connection::new(&policy(), Instant::now());
        assert_eq!(fresh.drain_began(deadline), Next::Close(End::Drained));
    }

    #[tokio::test(start_paused = true)]
    async fn input_read_as_the_drain_begins_is_answered_to_its_lf() {
        let mut c = Connection::new(&policy(), Instant::now());
        let deadline = Instant::now() + Duration::from_secs(10);
        // The driver has the bytes in hand when it notices the drain: it feeds them anyway.
        assert_eq!(c.drain_began(deadline), Next::Close(End::Drained));
        assert_eq!(feed(&mut c, b"last\nunanswered"), b"LAST\n");
        assert_eq!(c.reply_sent(), Next::Close(End::Drained));
    }

    #[tokio::test(start_paused = true)]
    async fn held_back_bytes_are_not_a_line_boundary() {
        let mut c = Connection::new(&policy(), Instant::now());
        assert_eq!(feed(&mut c, b"ok\n\xe2"), b"OK\n", "the lead byte waits");
        assert_eq!(c.reply_sent(), Next::Continue);
        let deadline = Instant::now() + Duration::from_secs(10);
        assert_eq!(
            c.drain_began(deadline),
            Next::Continue,
            "a character is half-sent"
        );
        assert_eq!(feed(&mut c, b"\x82\xac\n"), "€\n".as_bytes());
        assert_eq!(c.reply_sent(), Next::Close(End::Drained));
    }

    #[tokio::test(start_paused = true)]
    async fn a_drain_that_begins_while_a_reply_is_written_waits_for_it() {
        let mut c = Connection::new(&policy(), Instant::now());
        assert_eq!(feed(&mut c, b"a\n"), b"A\n");
        let deadline = Instant::now() + Duration::from_secs(10);
        assert_eq!(
            c.drain_began(deadline),
            Next::Continue,
            "the reply is in flight"
        );
        assert_eq!(
            c.reply_sent(),
            Next::Close(End::Drained),
            "then at a boundary"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn idle_expiry_while_a_write_is_stalled_closes_without_probing() {
        let t0 = Instant::now();
        let mut c = Connection::new(&policy(), t0);
        let _reply = feed(&mut c, b"abc\xe2");
        assert!(c.write_stalled(), "first stall is news");
        assert!(!c.write_stalled(), "the second is not");
        tokio::time::advance(IDLE).await;
        assert_eq!(c.timer(Instant::now()), Timer::Close(End::Idle));
        assert_eq!(
            c.unanswered_tail(),
            b"",
            "nothing after an undelivered reply"
        );
        assert!(c.mid_line());
    }

    #[tokio::test(start_paused = true)]
    async fn progress_after_a_stall_is_activity() {
        let mut c = Connection::new(&policy(), Instant::now());
        let _reply = feed(&mut c, b"abc");
        c.write_stalled();
        tokio::time::advance(IDLE - Duration::from_secs(1)).await;
        c.write_resumed(Instant::now());
        tokio::time::advance(Duration::from_secs(2)).await;
        assert_eq!(c.timer(Instant::now()), Timer::Wait);
    }

    #[tokio::test(start_paused = true)]
    async fn idle_expiry_while_waiting_probes_first_and_input_keeps_it_open() {
        let mut c = Connection::new(&policy(), Instant::now());
        assert_eq!(feed(&mut c, b"hi\n"), b"HI\n");
        c.reply_sent();
        tokio::time::advance(IDLE).await;
        assert_eq!(c.timer(Instant::now()), Timer::Probe);
        c.input_waiting(Instant::now());
        assert_eq!(c.deadline(), Some(Instant::now() + IDLE));
        assert_eq!(c.timer(Instant::now()), Timer::Wait);
        tokio::time::advance(IDLE).await;
        assert_eq!(c.timer(Instant::now()), Timer::Probe);
        assert_eq!(c.nothing_waiting(), End::Idle);
    }

    #[tokio::test(start_paused = true)]
    async fn idle_close_flushes_held_back_bytes() {
        let mut c = Connection::new(&policy(), Instant::now());
        assert_eq!(feed(&mut c, b"abc\xe2"), b"ABC");
        c.reply_sent();
        tokio::time::advance(IDLE).await;
        assert_eq!(c.timer(Instant::now()), Timer::Probe);
        assert_eq!(c.nothing_waiting(), End::Idle);
        assert_eq!(c.unanswered_tail(), b"\xe2");
    }

    #[tokio::test(start_paused = true)]
    async fn half_close_flushes_held_back_bytes_then_ends() {
        let mut c = Connection::new(&policy(), Instant::now());
        assert_eq!(feed(&mut c, b"end\xf0\x9f\x98"), b"END");
        c.reply_sent();
        let mut spill = Vec::new();
        assert_eq!(c.end_of_input(Instant::now(), &mut spill), b"\xf0\x9f\x98");
        assert_eq!(c.reply_sent(), Next::Close(End::Client));
        assert!(!End::Client.lingers());
    }

    #[tokio::test(start_paused = true)]
    async fn the_drain_deadline_closes_a_busy_connection_and_bounds_the_linger() {
        let mut c = Connection::new(&policy(), Instant::now());
        assert_eq!(feed(&mut c, b"never ends \xc3"), b"NEVER ENDS ");
        c.reply_sent();
        let deadline = Instant::now() + Duration::from_millis(500);
        assert_eq!(c.drain_began(deadline), Next::Continue);
        // A linger that starts before the deadline ends at it, not 2 s later.
        assert_eq!(c.linger_until(Instant::now()), deadline);
        tokio::time::advance(Duration::from_millis(499)).await;
        assert_eq!(c.timer(Instant::now()), Timer::Wait);
        tokio::time::advance(Duration::from_millis(1)).await;
        assert_eq!(c.timer(Instant::now()), Timer::Close(End::DrainDeadline));
        assert!(c.mid_line(), "worth a warning");
        assert_eq!(c.unanswered_tail(), b"\xc3", "held-back bytes still go out");
        assert!(
            c.linger_until(Instant::now()) <= Instant::now(),
            "no linger past it"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn the_drain_deadline_cuts_a_stalled_write() {
        let mut c = Connection::new(&policy(), Instant::now());
        let _reply = feed(&mut c, &[b'x'; 1000]);
        c.write_stalled();
        let deadline = Instant::now() + Duration::from_secs(1);
        assert_eq!(c.drain_began(deadline), Next::Continue);
        assert_eq!(
            c.deadline(),
            Some(deadline),
            "sooner than the idle deadline"
        );
        tokio::time::advance(Duration::from_secs(1)).await;
        assert_eq!(c.timer(Instant::now()), Timer::Close(End::DrainDeadline));
        assert_eq!(c.unanswered_tail(), b"");
    }

    #[tokio::test(start_paused = true)]
    async fn no_idle_timeout_means_no_deadline_and_huge_ones_do_not_overflow() {
        let off = Policy {
            idle_timeout: None,
            ..policy()
        };
        let c = Connection::new(&off, Instant::now());
        assert_eq!(c.deadline(), None);
        let huge = Policy {
            idle_timeout: Some(Duration::MAX),
            linger_timeout: Duration::MAX,
            ..policy()
        };
        let mut c = Connection::new(&huge, Instant::now());
        assert_eq!(
            c.deadline(),
            None,
            "a deadline past the clock's range is never"
        );
        assert_eq!(c.timer(Instant::now()), Timer::Wait);
        assert!(c.linger_until(Instant::now()) > Instant::now());
    }
}
