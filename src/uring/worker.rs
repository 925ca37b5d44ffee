//! One worker's ring event loop: accepts, receives, sends, deadlines; the policy is the
//! [`Connection`]'s.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::io;
use std::net::TcpListener;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::Ordering;
use std::time::Duration;

use io_uring::{cqueue, opcode, squeue, types, IoUring};
use tokio::time::Instant;
use tracing::{debug, warn};

use super::bufring::BufRing;
use super::{Connection, End, Error, Handle, Next, Options, Stats, Timer};
use super::{COMPLETION_ENTRIES, POOL_BYTES, QUEUE_BYTES, SUBMISSION_ENTRIES};
use crate::limits::{ACCEPT_BACKOFF_MAX, ACCEPT_BACKOFF_MIN};

const OP_ACCEPT: u64 = 1;
const OP_RECV: u64 = 2;
const OP_SEND: u64 = 3;
const OP_WAKE: u64 = 4;
const OP_CANCEL: u64 = 5;

fn ud(op: u64, idx: usize) -> u64 {
    (op << 56) | idx as u64
}

/// The timer heap's key for the accept back-off (connections use their slot).
const ACCEPT_TIMER: usize = usize::MAX >> 8;

/// A reply being sent: from a ring buffer (`bid`) or from the connection's spill buffer.
struct Reply {
    bid: Option<u16>,
    ptr: *const u8,
    len: usize,
    sent: usize,
}

/// How far a close has got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// Owed held-back bytes are to be sent.
    Tail,
    /// The tail's send is in flight.
    TailSent,
    /// FIN is to be sent.
    Shut,
    /// Reading and discarding until the client's FIN or the linger deadline.
    Linger,
    /// Close once no operation is in flight.
    Done,
}

struct Closing {
    end: End,
    until: Instant,
    stage: Stage,
}

struct Conn {
    fd: OwnedFd,
    gen: u32,
    m: Connection,
    /// Received ring buffers (id, length) not yet handed to the machine, oldest first.
    queue: VecDeque<(u16, u32)>,
    reply: Option<Reply>,
    spill: Vec<u8>,
    recv_armed: bool,
    recv_cancelling: bool,
    send_inflight: bool,
    eof: bool,
    eof_fed: bool,
    starved: bool,
    stalled: bool,
    closing: Option<Closing>,
    timer_at: Option<Instant>,
}

/// The submission side, pushing early when the queue is full.
struct Io {
    ring: IoUring,
}

impl Io {
    /// Queues `e`.
    ///
    /// # Safety
    ///
    /// Whatever memory `e` points to stays valid until its completion arrives.
    unsafe fn push(&mut self, e: squeue::Entry) -> io::Result<()> {
        loop {
            // SAFETY: the caller's promise, passed on.
            if unsafe { self.ring.submission().push(&e) }.is_ok() {
                return Ok(());
            }
            self.ring.submit()?;
        }
    }

    fn cancel(&mut self, target: u64) -> io::Result<()> {
        let e = opcode::AsyncCancel::new(target)
            .build()
            .user_data(ud(OP_CANCEL, 0));
        // SAFETY: a cancel points to no memory.
        unsafe { self.push(e) }
    }
}

struct Worker<'a> {
    // Field order is drop order: the ring goes before the buffers it was given.
    io: Io,
    bufs: BufRing,
    conns: Vec<Option<Conn>>,
    free_slots: Vec<usize>,
    live: usize,
    next_gen: u32,
    timers: BinaryHeap<Reverse<(Instant, usize, u32)>>,
    listeners: Vec<RawFd>,
    accept_armed: Vec<bool>,
    accept_blocked: bool,
    backoff: Duration,
    draining: Option<Instant>,
    dirty: Vec<usize>,
    starved: Vec<usize>,
    opts: &'a Options,
    stats: &'a Stats,
    handle: &'a Handle,
    queue_limit: usize,
}

/// Serves `listeners` on a ring of this thread's own until the drain `handle` signals has
/// closed every connection. Blocks the calling thread; call it once per worker thread.
///
/// The listeners stay the caller's (they are not closed). TCP_NODELAY is set on them so that
/// accepted sockets inherit it.
pub fn run(
    listeners: &[TcpListener],
    opts: &Options,
    stats: &Stats,
    handle: &Handle,
) -> Result<(), Error> {
    let ring = build_ring().map_err(|e| Error::Setup("io_uring_setup", e))?;
    let read_limit = opts.policy.read_limit.clamp(64, 1 << 30);
    let count = (POOL_BYTES / read_limit)
        .clamp(16, 4096)
        .next_power_of_two() as u16;
    let bufs = BufRing::new(&ring, count, read_limit as u32)
        .map_err(|e| Error::Setup("IORING_REGISTER_PBUF_RING", e))?;
    for l in listeners {
        let _ = socket2::SockRef::from(l).set_nodelay(true);
    }
    let mut w = Worker {
        io: Io { ring },
        queue_limit: (QUEUE_BYTES / bufs.size()).max(2),
        bufs,
        conns: Vec::new(),
        free_slots: Vec::new(),
        live: 0,
        next_gen: 0,
        timers: BinaryHeap::new(),
        listeners: listeners.iter().map(|l| l.as_raw_fd()).collect(),
        accept_armed: vec![false; listeners.len()],
        accept_blocked: false,
        backoff: ACCEPT_BACKOFF_MIN,
        draining: None,
        dirty: Vec::new(),
        starved: Vec::new(),
        opts,
        stats,
        handle,
    };
    w.run()
}

/// A ring with the cheapest task-running mode the kernel has.
fn build_ring() -> io::Result<IoUring> {
    // For experiments, as the C reference's UR_TASKRUN: `coop` or `none` skips the faster modes.
    let first = match std::env::var("UPCASE_URING_TASKRUN").as_deref() {
        Ok("coop") => 1,
        Ok("none") => 2,
        _ => 0,
    };
    let mut b = IoUring::builder();
    if first > 0 {
        return build_ring_from(first);
    }
    b.setup_cqsize(COMPLETION_ENTRIES)
        .setup_submit_all()
        .setup_single_issuer()
        .setup_defer_taskrun();
    if let Ok(r) = b.build(SUBMISSION_ENTRIES) {
        return Ok(r);
    }
    build_ring_from(1)
}

fn build_ring_from(first: u8) -> io::Result<IoUring> {
    let mut b = IoUring::builder();
    b.setup_cqsize(COMPLETION_ENTRIES)
        .setup_submit_all()
        .setup_single_issuer()
        .setup_coop_taskrun();
    if first > 1 {
        let mut b = IoUring::builder();
        b.setup_cqsize(COMPLETION_ENTRIES);
        return b.build(SUBMISSION_ENTRIES);
    }
    if let Ok(r) = b.build(SUBMISSION_ENTRIES) {
        return Ok(r);
    }
    let mut b = IoUring::builder();
    b.setup_cqsize(COMPLETION_ENTRIES);
    b.build(SUBMISSION_ENTRIES)
}

fn is_resource_error(errno: i32) -> bool {
    matches!(
        errno,
        libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM
    )
}

impl Worker<'_> {
    fn run(&mut self) -> Result<(), Error> {
        let enter = Error::Enter;
        for i in 0..self.listeners.len() {
            self.arm_accept(i).map_err(enter)?;
        }
        self.arm_wake().map_err(enter)?;
        let mut cqes: Vec<(u64, i32, u32)> = Vec::with_capacity(1024);
        loop {
            if self.draining.is_some() && self.live == 0 {
                return Ok(());
            }
            self.wait(Instant::now()).map_err(enter)?;
            let now = Instant::now();
            cqes.clear();
            cqes.extend(
                self.io
                    .ring
                    .completion()
                    .map(|c| (c.user_data(), c.result(), c.flags())),
            );
            for &(data, res, flags) in &cqes {
                self.on_cqe(now, data, res, flags).map_err(enter)?;
            }
            self.settle(now).map_err(enter)?;
            self.bufs.refill();
            if !self.starved.is_empty() && self.bufs.has_buffers_in_ring() {
                for idx in std::mem::take(&mut self.starved) {
                    if let Some(c) = self.conns.get_mut(idx).and_then(Option::as_mut) {
                        c.starved = false;
                        self.dirty.push(idx);
                    }
                }
                self.settle(now).map_err(enter)?;
            }
            self.fire_timers(Instant::now()).map_err(enter)?;
        }
    }

    /// One `io_uring_enter`: submit what is queued, and wait for a completion or the
    /// nearest deadline. Always with `GETEVENTS`: on a `DEFER_TASKRUN` ring that is when the
    /// kernel runs the work that posts completions (a cancelled receive's, for one).
    fn wait(&mut self, now: Instant) -> io::Result<()> {
        let next = self.timers.peek().map(|Reverse((at, _, _))| *at);
        let r = match next {
            Some(at) => {
                let d = at.saturating_duration_since(now);
                let ts = types::Timespec::new()
                    .sec(d.as_secs())
                    .nsec(d.subsec_nanos());
                let args = types::SubmitArgs::new().timespec(&ts);
                self.io.ring.submitter().submit_with_args(1, &args)
            }
            None => self.io.ring.submit_and_wait(1),
        };
        match r {
            Ok(_) => Ok(()),
            Err(e)
                if matches!(
                    e.raw_os_error(),
                    Some(libc::ETIME | libc::EINTR | libc::EBUSY)
                ) =>
            {
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    fn arm_accept(&mut self, i: usize) -> io::Result<()> {
        let e = opcode::AcceptMulti::new(types::Fd(self.listeners[i]))
            .flags(libc::SOCK_CLOEXEC)
            .build()
            .user_data(ud(OP_ACCEPT, i));
        // SAFETY: a multishot accept without an address points to no memory.
        unsafe { self.io.push(e)? };
        self.accept_armed[i] = true;
        Ok(())
    }

    /// Re-arms every ended accept, unless blocked or draining.
    fn rearm_accepts(&mut self) -> io::Result<()> {
        if self.accept_blocked || self.draining.is_some() {
            return Ok(());
        }
        for i in 0..self.listeners.len() {
            if !self.accept_armed[i] {
                self.arm_accept(i)?;
            }
        }
        Ok(())
    }

    fn arm_wake(&mut self) -> io::Result<()> {
        let e = opcode::PollAdd::new(types::Fd(self.handle.wake_fd()), libc::POLLIN as u32)
            .build()
            .user_data(ud(OP_WAKE, 0));
        // SAFETY: a poll points to no memory.
        unsafe { self.io.push(e) }
    }

    fn on_cqe(&mut self, now: Instant, data: u64, res: i32, flags: u32) -> io::Result<()> {
        let op = data >> 56;
        let idx = (data & ((1 << 56) - 1)) as usize;
        match op {
            OP_ACCEPT => self.on_accept(now, idx, res, flags),
            OP_RECV => {
                self.on_recv(idx, res, flags);
                Ok(())
            }
            OP_SEND => self.on_send(now, idx, res),
            OP_WAKE => self.on_wake(now, res),
            _ => Ok(()), // a cancel's own completion: nothing to do
        }
    }

    fn on_wake(&mut self, now: Instant, res: i32) -> io::Result<()> {
        let Some(deadline) = self.handle.drain_deadline() else {
            // Woken without a drain (cannot happen today): poll again.
            if res >= 0 || res == -libc::ECANCELED {
                return self.arm_wake();
            }
            return Ok(());
        };
        if self.draining.is_some() {
            return Ok(());
        }
        self.draining = Some(deadline);
        debug!("drain began");
        for i in 0..self.listeners.len() {
            if self.accept_armed[i] {
                self.io.cancel(ud(OP_ACCEPT, i))?;
            }
        }
        for idx in 0..self.conns.len() {
            let Some(c) = self.conns[idx].as_mut() else {
                continue;
            };
            if let Some(cl) = c.closing.as_mut() {
                // A linger never outlasts the drain deadline.
                cl.until = cl.until.min(deadline);
                self.dirty.push(idx);
                continue;
            }
            // Queued input waits only behind a reply in flight, so a connection the machine
            // closes here holds no unanswered input.
            if let Next::Close(end) = c.m.drain_began(deadline) {
                start_close(&mut self.io, &mut self.bufs, c, idx, end, now)?;
            }
            self.dirty.push(idx);
        }
        Ok(())
    }

    fn on_accept(&mut self, now: Instant, i: usize, res: i32, flags: u32) -> io::Result<()> {
        if !cqueue::more(flags) {
            self.accept_armed[i] = false;
        }
        if res >= 0 {
            // SAFETY: a successful accept returns a new descriptor that nothing else owns.
            let fd = unsafe { OwnedFd::from_raw_fd(res) };
            if self.draining.is_some() {
                return Ok(());
            }
            if self.live >= self.opts.max_connections {
                self.stats
                    .rejected_over_limit
                    .fetch_add(1, Ordering::Relaxed);
                return self.rearm_accepts();
            }
            self.add_conn(fd, now);
            self.backoff = ACCEPT_BACKOFF_MIN;
        } else if is_resource_error(-res) {
            self.stats
                .accept_resource_errors
                .fetch_add(1, Ordering::Relaxed);
            if !self.accept_blocked {
                warn!(
                    error = %io::Error::from_raw_os_error(-res),
                    backoff = ?self.backoff,
                    "accept failed for want of resources; backing off"
                );
                self.accept_blocked = true;
                self.timers
                    .push(Reverse((now + self.backoff, ACCEPT_TIMER, 0)));
                self.backoff = (self.backoff * 2).min(ACCEPT_BACKOFF_MAX);
            }
            return Ok(());
        } else if res != -libc::ECANCELED {
            debug!(error = %io::Error::from_raw_os_error(-res), "accept failed");
        }
        self.rearm_accepts()
    }

    fn add_conn(&mut self, fd: OwnedFd, now: Instant) {
        self.next_gen = self.next_gen.wrapping_add(1);
        let c = Conn {
            fd,
            gen: self.next_gen,
            m: Connection::new(&self.opts.policy, now),
            queue: VecDeque::new(),
            reply: None,
            spill: Vec::new(),
            recv_armed: false,
            recv_cancelling: false,
            send_inflight: false,
            eof: false,
            eof_fed: false,
            starved: false,
            stalled: false,
            closing: None,
            timer_at: None,
        };
        let idx = match self.free_slots.pop() {
            Some(i) => {
                self.conns[i] = Some(c);
                i
            }
            None => {
                self.conns.push(Some(c));
                self.conns.len() - 1
            }
        };
        self.live += 1;
        self.stats.served.fetch_add(1, Ordering::Relaxed);
        self.stats.active.fetch_add(1, Ordering::Relaxed);
        self.dirty.push(idx);
    }

    fn on_recv(&mut self, idx: usize, res: i32, flags: u32) {
        let Some(c) = self.conns.get_mut(idx).and_then(Option::as_mut) else {
            return;
        };
        if let Some(bid) = cqueue::buffer_select(flags) {
            self.bufs.taken(bid);
            if res > 0 && c.closing.is_none() {
                self.stats
                    .bytes_received
                    .fetch_add(res as u64, Ordering::Relaxed);
                c.queue.push_back((bid, res as u32));
            } else {
                self.bufs.give_back(bid);
            }
        }
        if !cqueue::more(flags) {
            c.recv_armed = false;
            c.recv_cancelling = false;
            if res == 0 {
                c.eof = true;
            } else if res == -libc::ENOBUFS {
                c.starved = true;
                self.bufs.ran_dry();
                self.starved.push(idx);
            } else if res < 0 && res != -libc::ECANCELED && c.closing.is_none() {
                debug!(error = %io::Error::from_raw_os_error(-res), "receive failed");
                c.closing = Some(Closing {
                    end: End::Error,
                    until: Instant::now(),
                    stage: Stage::Done,
                });
            } else if res < 0 && res != -libc::ECANCELED {
                // During a close, an error ends the linger.
                c.eof = true;
            }
        }
        self.dirty.push(idx);
    }

    fn on_send(&mut self, now: Instant, idx: usize, res: i32) -> io::Result<()> {
        let Some(c) = self.conns.get_mut(idx).and_then(Option::as_mut) else {
            return Ok(());
        };
        c.send_inflight = false;
        self.dirty.push(idx);
        if let Some(cl) = c.closing.as_mut() {
            if cl.stage == Stage::TailSent {
                if res > 0 {
                    c.m.wrote(res as usize);
                    self.stats
                        .bytes_sent
                        .fetch_add(res as u64, Ordering::Relaxed);
                }
                cl.stage = Stage::Shut;
            }
            // Otherwise a reply the close interrupted: advance gives its buffer back.
            return Ok(());
        }
        if res <= 0 {
            if res < 0 {
                debug!(error = %io::Error::from_raw_os_error(-res), "send failed");
            }
            return start_close(&mut self.io, &mut self.bufs, c, idx, End::Error, now);
        }
        let n = res as usize;
        c.m.wrote(n);
        self.stats.bytes_sent.fetch_add(n as u64, Ordering::Relaxed);
        if c.stalled {
            c.m.write_resumed(now);
            c.stalled = false;
        }
        let Some(r) = c.reply.as_mut() else {
            return Ok(());
        };
        r.sent += n;
        if r.sent < r.len {
            // A short send: the client's window is full.
            if c.m.write_stalled() {
                debug!(
                    unsent = r.len - r.sent,
                    "client is not reading; reads paused until it does"
                );
            }
            c.stalled = true;
            return Ok(());
        }
        if let Some(bid) = r.bid {
            self.bufs.give_back(bid);
        }
        c.reply = None;
        if let Next::Close(end) = c.m.reply_sent() {
            return start_close(&mut self.io, &mut self.bufs, c, idx, end, now);
        }
        Ok(())
    }

    /// Moves every connection an event touched as far as it can go.
    fn settle(&mut self, now: Instant) -> io::Result<()> {
        let dirty = std::mem::take(&mut self.dirty);
        let low = self.bufs.available() < self.bufs.count() / 4;
        let limit = if low { 1 } else { self.queue_limit };
        for &idx in &dirty {
            let Some(c) = self.conns.get_mut(idx).and_then(Option::as_mut) else {
                continue;
            };
            let closed = advance(&mut self.io, &mut self.bufs, c, idx, now, limit, self.stats)?;
            if closed {
                self.conns[idx] = None;
                self.free_slots.push(idx);
                self.live -= 1;
                if self.accept_blocked {
                    // A descriptor came free: try accepting again now.
                    self.accept_blocked = false;
                    self.rearm_accepts()?;
                }
                continue;
            }
            let want = match &c.closing {
                // A close waits on a deadline only while it lingers or sends the tail.
                Some(cl) if matches!(cl.stage, Stage::Linger | Stage::TailSent) => Some(cl.until),
                Some(_) => None,
                None => c.m.deadline(),
            };
            if let Some(at) = want {
                if c.timer_at.is_none_or(|t| at < t) {
                    c.timer_at = Some(at);
                    self.timers.push(Reverse((at, idx, c.gen)));
                }
            }
        }
        // Reuse the list's allocation.
        let mut dirty = dirty;
        dirty.clear();
        if self.dirty.is_empty() {
            self.dirty = dirty;
        }
        Ok(())
    }

    fn fire_timers(&mut self, now: Instant) -> io::Result<()> {
        while let Some(&Reverse((at, idx, gen))) = self.timers.peek() {
            if at > now {
                break;
            }
            self.timers.pop();
            if idx == ACCEPT_TIMER {
                if self.accept_blocked {
                    self.accept_blocked = false;
                    self.rearm_accepts()?;
                }
                continue;
            }
            let Some(c) = self.conns.get_mut(idx).and_then(Option::as_mut) else {
                continue;
            };
            if c.gen != gen || c.timer_at != Some(at) {
                continue; // stale
            }
            c.timer_at = None;
            self.dirty.push(idx);
            if let Some(cl) = c.closing.as_mut() {
                if cl.until <= now {
                    // The linger (or the tail's chance to go out) is over.
                    cl.stage = Stage::Done;
                    if c.send_inflight {
                        self.io.cancel(ud(OP_SEND, idx))?;
                    }
                }
                continue;
            }
            let end = match c.m.timer(now) {
                Timer::Wait => continue,
                Timer::Probe => {
                    if input_waiting(c.fd.as_raw_fd()) {
                        c.m.input_waiting(now);
                        continue;
                    }
                    c.m.nothing_waiting()
                }
                Timer::Close(end) => end,
            };
            start_close(&mut self.io, &mut self.bufs, c, idx, end, now)?;
        }
        self.settle(now)
    }
}

/// Starts closing `c` the way `end` says.
fn start_close(
    io: &mut Io,
    bufs: &mut BufRing,
    c: &mut Conn,
    idx: usize,
    end: End,
    now: Instant,
) -> io::Result<()> {
    if c.closing.is_some() {
        return Ok(());
    }
    if end == End::Idle {
        debug!("idle timeout");
    }
    for (bid, _) in c.queue.drain(..) {
        bufs.give_back(bid);
    }
    if c.send_inflight {
        // A reply the close interrupted (the machine owes nothing after it).
        io.cancel(ud(OP_SEND, idx))?;
    }
    let stage = match end {
        End::Error => Stage::Done,
        End::Client => Stage::Shut,
        _ => {
            let tail = c.m.unanswered_tail();
            if tail.is_empty() || c.send_inflight {
                Stage::Shut
            } else {
                c.spill.clear();
                c.spill.extend_from_slice(tail);
                Stage::Tail
            }
        }
    };
    let until = if end.lingers() {
        c.m.linger_until(now)
    } else {
        now
    };
    c.closing = Some(Closing { end, until, stage });
    Ok(())
}

/// Moves `c` on: feeds queued input to the machine and sends its replies, arms or pauses
/// the receive, carries a close through. `Ok(true)` once the connection is closed.
fn advance(
    io: &mut Io,
    bufs: &mut BufRing,
    c: &mut Conn,
    idx: usize,
    now: Instant,
    limit: usize,
    stats: &Stats,
) -> io::Result<bool> {
    loop {
        if c.closing.is_some() {
            return advance_close(io, bufs, c, idx, now, stats);
        }
        if c.send_inflight {
            break;
        }
        if let Some(r) = &c.reply {
            let e = opcode::Send::new(
                types::Fd(c.fd.as_raw_fd()),
                // SAFETY: `sent` < `len`, inside the reply.
                unsafe { r.ptr.add(r.sent) },
                (r.len - r.sent) as u32,
            )
            .flags(libc::MSG_NOSIGNAL)
            .build()
            .user_data(ud(OP_SEND, idx));
            // SAFETY: the reply's memory (a ring buffer this connection holds, or its spill
            // buffer, untouched until the reply is out) outlives the send.
            unsafe { io.push(e)? };
            c.send_inflight = true;
            break;
        }
        if let Some((bid, len)) = c.queue.pop_front() {
            // SAFETY: `bid` came from a receive completion and is held by this connection
            // alone until given back below or after its reply's send.
            let data = unsafe { bufs.buffer(bid, len as usize) };
            let base = data.as_ptr() as usize;
            let out = c.m.received(now, data, &mut c.spill);
            let (ptr, n) = (out.as_ptr(), out.len());
            let in_place = (ptr as usize) >= base && (ptr as usize) < base + len as usize;
            let bid = if in_place {
                Some(bid)
            } else {
                bufs.give_back(bid);
                None
            };
            if n == 0 {
                if let Some(b) = bid {
                    bufs.give_back(b);
                }
                if let Next::Close(end) = c.m.reply_sent() {
                    start_close(io, bufs, c, idx, end, now)?;
                }
                continue;
            }
            c.reply = Some(Reply {
                bid,
                ptr,
                len: n,
                sent: 0,
            });
            continue;
        }
        if c.eof && !c.eof_fed {
            c.eof_fed = true;
            let tail = c.m.end_of_input(now, &mut c.spill);
            let (ptr, n) = (tail.as_ptr(), tail.len());
            if n == 0 {
                if let Next::Close(end) = c.m.reply_sent() {
                    start_close(io, bufs, c, idx, end, now)?;
                }
                continue;
            }
            c.reply = Some(Reply {
                bid: None,
                ptr,
                len: n,
                sent: 0,
            });
            continue;
        }
        break;
    }
    // Backpressure: pause the receive while the unanswered queue is at its bound.
    if c.recv_armed {
        if c.queue.len() >= limit && !c.recv_cancelling {
            io.cancel(ud(OP_RECV, idx))?;
            c.recv_cancelling = true;
        }
    } else if !c.eof && !c.starved && c.queue.len() < limit {
        arm_recv(io, c, idx)?;
    }
    Ok(false)
}

fn arm_recv(io: &mut Io, c: &mut Conn, idx: usize) -> io::Result<()> {
    let e = opcode::RecvMulti::new(types::Fd(c.fd.as_raw_fd()), BufRing::GROUP)
        .build()
        .user_data(ud(OP_RECV, idx));
    // SAFETY: the receive writes only into ring buffers, which outlive the ring.
    unsafe { io.push(e)? };
    c.recv_armed = true;
    Ok(())
}

fn advance_close(
    io: &mut Io,
    bufs: &mut BufRing,
    c: &mut Conn,
    idx: usize,
    now: Instant,
    stats: &Stats,
) -> io::Result<bool> {
    if c.send_inflight {
        return Ok(false);
    }
    if let Some(r) = c.reply.take() {
        if let Some(bid) = r.bid {
            bufs.give_back(bid);
        }
    }
    for (bid, _) in c.queue.drain(..) {
        bufs.give_back(bid);
    }
    let fd = c.fd.as_raw_fd();
    let Some(cl) = c.closing.as_mut() else {
        return Ok(false);
    };
    loop {
        match cl.stage {
            Stage::Tail => {
                if cl.until <= now {
                    // No time left: one attempt without waiting.
                    // SAFETY: sends from the connection's own spill buffer.
                    let n = unsafe {
                        libc::send(
                            fd,
                            c.spill.as_ptr().cast(),
                            c.spill.len(),
                            libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
                        )
                    };
                    if n > 0 {
                        c.m.wrote(n as usize);
                        stats.bytes_sent.fetch_add(n as u64, Ordering::Relaxed);
                    }
                    cl.stage = Stage::Shut;
                    continue;
                }
                let e = opcode::Send::new(types::Fd(fd), c.spill.as_ptr(), c.spill.len() as u32)
                    .flags(libc::MSG_NOSIGNAL)
                    .build()
                    .user_data(ud(OP_SEND, idx));
                // SAFETY: the spill buffer is not touched until this send completes.
                unsafe { io.push(e)? };
                c.send_inflight = true;
                cl.stage = Stage::TailSent;
                return Ok(false);
            }
            Stage::TailSent => return Ok(false),
            Stage::Shut => {
                // SAFETY: shutdown takes no pointers; the descriptor is this connection's.
                unsafe { libc::shutdown(fd, libc::SHUT_WR) };
                cl.stage = if cl.end.lingers() && cl.until > now {
                    Stage::Linger
                } else {
                    Stage::Done
                };
            }
            Stage::Linger => {
                if c.eof {
                    cl.stage = Stage::Done;
                    continue;
                }
                if !c.recv_armed && !c.starved {
                    arm_recv(io, c, idx)?;
                }
                return Ok(false);
            }
            Stage::Done => {
                if c.recv_armed {
                    if !c.recv_cancelling {
                        io.cancel(ud(OP_RECV, idx))?;
                        c.recv_cancelling = true;
                    }
                    return Ok(false);
                }
                let end = cl.end;
                stats.closed(end);
                if end == End::DrainDeadline && c.m.mid_line() {
                    stats.drain_cut.fetch_add(1, Ordering::Relaxed);
                    warn!("shutdown timeout cut a line in progress");
                }
                debug!(
                    reason = end.as_str(),
                    bytes_in = c.m.bytes_in(),
                    bytes_out = c.m.bytes_out(),
                    "closed"
                );
                return Ok(true);
            }
        }
    }
}

/// Whether input (or FIN) waits on `fd`, asked without waiting.
fn input_waiting(fd: RawFd) -> bool {
    let mut byte = 0u8;
    // SAFETY: peeks at most one byte into a local.
    let n = unsafe {
        libc::recv(
            fd,
            (&mut byte as *mut u8).cast(),
            1,
            libc::MSG_PEEK | libc::MSG_DONTWAIT,
        )
    };
    n >= 0
}
