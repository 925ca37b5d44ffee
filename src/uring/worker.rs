//! One worker's ring event loop: accepts, receives, sends, deadlines; the policy is the
//! [`Connection`]'s, the limits and counters the server's (through its [`Host`]).

use std::cell::Cell;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::io;
use std::net::{SocketAddr, TcpListener};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

use io_uring::{cqueue, opcode, squeue, types, IoUring};
use tokio::time::Instant;
use tracing::{debug, warn};

use super::bufring::BufRing;
use super::{Connection, End, Error, Handle, Next, Policy, Step, Timer};
use crate::limits::{
    ACCEPT_BACKOFF_MAX, ACCEPT_BACKOFF_MIN, URING_CQ_ENTRIES, URING_FILE_TABLE, URING_POOL_BYTES,
    URING_QUEUE_BYTES, URING_SQ_ENTRIES,
};
use crate::proxy::{Decoder, Progress, ProxyError};
use crate::server::{Host, Listener, ListenerSettings, Slot};

const OP_ACCEPT: u64 = 1;
const OP_RECV: u64 = 2;
const OP_SEND: u64 = 3;
/// A drain signal's poll; the index is the [`Step`].
const OP_WAKE: u64 = 4;
const OP_CANCEL: u64 = 5;

fn ud(op: u64, idx: usize) -> u64 {
    (op << 56) | idx as u64
}

/// The timer heap's key for the accept back-off (connections use their slot).
const ACCEPT_TIMER: usize = usize::MAX >> 8;

/// The most replies one send gathers (the C reference's `IOVMAX`); the connection's queue
/// bound limits it further.
const GATHER_MAX: usize = 32;

/// Completions copied out of the ring at a time.
const CQE_BATCH: usize = 256;

/// A reply being sent: the bytes of its segments (in the connection's `segs`), in order.
struct Reply {
    len: usize,
    sent: usize,
    /// The banner line, which the state machine knows nothing of.
    banner: bool,
}

/// One piece of a reply: from a ring buffer (`bid`, given back once the reply is out) or
/// from the connection's spill buffer (at most one per reply, the last).
struct Seg {
    bid: Option<u16>,
    ptr: *const u8,
    len: usize,
}

/// The `sendmsg` header and vector of a gathered send, boxed so that it stays put while the
/// send is in flight; allocated the first time a connection gathers.
struct Gather {
    hdr: libc::msghdr,
    iov: Vec<libc::iovec>,
}

/// Received bytes not yet handed on: `len` bytes from `off` in ring buffer `bid` (`off` is
/// past a PROXY header that came in the same segment).
#[derive(Clone, Copy)]
struct Chunk {
    bid: u16,
    off: u32,
    len: u32,
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

/// Before the stream: the PROXY header being read. Boxed, so that a connection on a plain
/// listener carries one pointer for it.
struct Pre {
    decoder: Decoder,
    /// The header timeout's deadline.
    until: Instant,
    /// The socket's peer (the balancer).
    peer: SocketAddr,
    listener: usize,
}

struct Conn {
    fd: OwnedFd,
    gen: u32,
    m: Connection,
    /// Received input not yet handed to the machine, oldest first.
    queue: VecDeque<Chunk>,
    reply: Option<Reply>,
    /// The reply's segments (empty without one); kept, with its capacity, between replies.
    segs: Vec<Seg>,
    gather: Option<Box<Gather>>,
    spill: Vec<u8>,
    /// Registered in the ring's file table at the connection's slot: receives and sends
    /// name it there, which spares the kernel a descriptor lookup per operation.
    fixed: bool,
    recv_armed: bool,
    recv_cancelling: bool,
    send_inflight: bool,
    eof: bool,
    eof_fed: bool,
    starved: bool,
    stalled: bool,
    /// Counted as served (so its end is counted too); not while its PROXY header is read.
    served: bool,
    /// In the worker's list of connections to settle: it is listed once however many of
    /// its events a turn brings.
    listed: bool,
    closing: Option<Closing>,
    timer_at: Option<Instant>,
    pre: Option<Box<Pre>>,
    /// Its place under the server's limits, given up when the connection is dropped.
    slot: Slot,
    /// `conn{peer=..}`, as on the readiness driver; only while debug logging is on.
    span: Option<Box<tracing::Span>>,
}

impl Conn {
    /// Makes the `len` bytes at `ptr` in the spill buffer the reply (none is in hand).
    fn reply_from_spill(&mut self, ptr: *const u8, len: usize, banner: bool) {
        self.segs.push(Seg {
            bid: None,
            ptr,
            len,
        });
        self.reply = Some(Reply {
            len,
            sent: 0,
            banner,
        });
    }

    /// The connection's span, to enter around what is logged for it.
    fn span(&self) -> Option<tracing::Span> {
        self.span.as_deref().cloned()
    }
}

/// The `conn` span of a connection from `peer`, when debug logging is on (else none: it
/// would cost every idle connection a pointer's worth more than nothing).
fn conn_span(peer: Option<SocketAddr>) -> Option<Box<tracing::Span>> {
    let peer = peer?;
    tracing::enabled!(tracing::Level::DEBUG).then(|| Box::new(tracing::debug_span!("conn", %peer)))
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

/// One listener of this worker.
struct Lst {
    /// Closed (set to `None`) when the drain begins, so that new connections are refused.
    socket: Option<TcpListener>,
    fd: RawFd,
    settings: ListenerSettings,
    /// `{server}` in the banner.
    local: SocketAddr,
    armed: bool,
}

/// What every connection of this worker shares: the server's host and the policy.
struct Ctx<'a> {
    host: &'a Host,
    policy: Policy,
    /// Bytes received and sent since the last [`flush_bytes`](Self::flush_bytes): added to
    /// the host's counters once per turn of the loop, not per message.
    moved: Cell<(u64, u64)>,
}

impl Ctx<'_> {
    fn bytes(&self, received: u64, sent: u64) {
        let (r, s) = self.moved.get();
        self.moved.set((r + received, s + sent));
    }

    fn flush_bytes(&self) {
        let (r, s) = self.moved.take();
        self.host.bytes(r, s);
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
    lst: Vec<Lst>,
    accept_blocked: bool,
    backoff: Duration,
    /// The drain's first step: the listeners are closed (or closing).
    stopped: bool,
    /// The drain's second step, and its deadline: connections close.
    draining: Option<Instant>,
    dirty: Vec<usize>,
    starved: Vec<usize>,
    cx: Ctx<'a>,
    handle: &'a Handle,
    queue_limit: usize,
    /// Slots in the ring's file table (0: none registered).
    files: u32,
}

/// Serves `listeners` (plain TCP; PROXY headers and the banner included) on a ring of this
/// thread's own until the drain `handle` signals has closed every connection, with the
/// limits, counters and logs of `host`'s server. Blocks the calling thread; call it once per
/// worker thread. `started` is called once the accepts are armed.
///
/// The listeners are closed when the drain begins. TCP_NODELAY is set on them so that
/// accepted sockets inherit it.
pub(crate) fn run(
    listeners: Vec<Listener>,
    host: &Host,
    handle: &Handle,
    started: impl FnOnce(),
) -> Result<(), Error> {
    let ring = build_ring().map_err(|e| Error::Setup("io_uring_setup", e))?;
    let policy = host.policy();
    let read_limit = policy.read_limit.clamp(64, 1 << 30);
    let count = (URING_POOL_BYTES / read_limit)
        .clamp(16, 4096)
        .next_power_of_two() as u16;
    let bufs = BufRing::new(&ring, count, read_limit as u32)
        .map_err(|e| Error::Setup("IORING_REGISTER_PBUF_RING", e))?;
    let mut lst = Vec::with_capacity(listeners.len());
    for l in listeners {
        let _ = socket2::SockRef::from(&l.socket).set_nodelay(true);
        let local = l
            .socket
            .local_addr()
            .map_err(|e| Error::Setup("getsockname", e))?;
        lst.push(Lst {
            fd: l.socket.as_raw_fd(),
            socket: Some(l.socket),
            settings: l.settings,
            local,
            armed: false,
        });
    }
    let mut w = Worker {
        io: Io { ring },
        queue_limit: (URING_QUEUE_BYTES / bufs.size()).max(2),
        bufs,
        conns: Vec::new(),
        free_slots: Vec::new(),
        live: 0,
        next_gen: 0,
        timers: BinaryHeap::new(),
        lst,
        accept_blocked: false,
        backoff: ACCEPT_BACKOFF_MIN,
        stopped: false,
        draining: None,
        dirty: Vec::new(),
        starved: Vec::new(),
        cx: Ctx {
            host,
            policy,
            moved: Cell::new((0, 0)),
        },
        handle,
        files: 0,
    };
    w.register_file_table();
    let r = w.run(started);
    w.cx.flush_bytes();
    r
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
    b.setup_cqsize(URING_CQ_ENTRIES)
        .setup_submit_all()
        .setup_single_issuer()
        .setup_defer_taskrun();
    if let Ok(r) = b.build(URING_SQ_ENTRIES) {
        return Ok(r);
    }
    build_ring_from(1)
}

fn build_ring_from(first: u8) -> io::Result<IoUring> {
    let mut b = IoUring::builder();
    b.setup_cqsize(URING_CQ_ENTRIES)
        .setup_submit_all()
        .setup_single_issuer()
        .setup_coop_taskrun();
    if first > 1 {
        let mut b = IoUring::builder();
        b.setup_cqsize(URING_CQ_ENTRIES);
        return b.build(URING_SQ_ENTRIES);
    }
    if let Ok(r) = b.build(URING_SQ_ENTRIES) {
        return Ok(r);
    }
    let mut b = IoUring::builder();
    b.setup_cqsize(URING_CQ_ENTRIES);
    b.build(URING_SQ_ENTRIES)
}

fn is_resource_error(errno: i32) -> bool {
    matches!(
        errno,
        libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM
    )
}

/// The peer of an accepted socket (one `getpeername`, asked only where a limit, a header or
/// the banner needs it).
fn peer_of(fd: &OwnedFd) -> Option<SocketAddr> {
    socket2::SockRef::from(fd).peer_addr().ok()?.as_socket()
}

impl Worker<'_> {
    /// A sparse file table with a slot per connection the descriptor limit allows (at most
    /// [`URING_FILE_TABLE`]); without one (an old kernel), connections are named by
    /// descriptor.
    fn register_file_table(&mut self) {
        let nofile = crate::net::nofile_limit().unwrap_or(0);
        let n = nofile.min(URING_FILE_TABLE as u64) as u32;
        match self.io.ring.submitter().register_files_sparse(n) {
            Ok(()) => self.files = n,
            Err(e) => debug!(error = %e, "no io_uring file table; connections by descriptor"),
        }
    }

    /// Registers connection `idx`'s socket in the file table, where there is a slot (one
    /// `io_uring_register` per connection, against one descriptor lookup saved per
    /// receive and send).
    fn register_file(&mut self, idx: usize) {
        let Some(c) = self.conns.get_mut(idx).and_then(Option::as_mut) else {
            return;
        };
        if idx < self.files as usize {
            let fd = c.fd.as_raw_fd();
            c.fixed = self
                .io
                .ring
                .submitter()
                .register_files_update(idx as u32, &[fd])
                .is_ok_and(|n| n == 1);
        }
    }

    fn run(&mut self, started: impl FnOnce()) -> Result<(), Error> {
        let enter = Error::Enter;
        for i in 0..self.lst.len() {
            self.arm_accept(i).map_err(enter)?;
        }
        self.arm_wake(Step::StopAccepting).map_err(enter)?;
        self.arm_wake(Step::Drain).map_err(enter)?;
        started();
        // Completions are copied out of the ring a batch at a time, so that handling them
        // may submit (the ring is borrowed only while copying).
        let mut cqes = Box::<[cqueue::Entry]>::new_uninit_slice(CQE_BATCH);
        // One clock read per turn, after the wait: the next wait's timeout counts from it,
        // so a deadline fires at most one turn's work late.
        let mut now = Instant::now();
        loop {
            if self.draining.is_some() && self.live == 0 {
                return Ok(());
            }
            self.wait(now).map_err(enter)?;
            now = Instant::now();
            loop {
                let batch = self.io.ring.completion().fill(&mut cqes);
                for e in batch.iter() {
                    self.on_cqe(now, e.user_data(), e.result(), e.flags())
                        .map_err(enter)?;
                }
                if batch.len() < CQE_BATCH {
                    break;
                }
            }
            self.settle(now).map_err(enter)?;
            self.bufs.refill();
            if !self.starved.is_empty() && self.bufs.has_buffers_in_ring() {
                for idx in std::mem::take(&mut self.starved) {
                    if let Some(c) = self.conns.get_mut(idx).and_then(Option::as_mut) {
                        c.starved = false;
                        list(&mut self.dirty, c, idx);
                    }
                }
                self.settle(now).map_err(enter)?;
            }
            self.fire_timers(now).map_err(enter)?;
            self.cx.flush_bytes();
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
        if self.lst[i].socket.is_none() {
            return Ok(());
        }
        let e = opcode::AcceptMulti::new(types::Fd(self.lst[i].fd))
            .flags(libc::SOCK_CLOEXEC)
            .build()
            .user_data(ud(OP_ACCEPT, i));
        // SAFETY: a multishot accept without an address points to no memory.
        unsafe { self.io.push(e)? };
        self.lst[i].armed = true;
        Ok(())
    }

    /// Re-arms every ended accept, unless blocked or stopped.
    fn rearm_accepts(&mut self) -> io::Result<()> {
        if self.accept_blocked || self.stopped {
            return Ok(());
        }
        for i in 0..self.lst.len() {
            if !self.lst[i].armed {
                self.arm_accept(i)?;
            }
        }
        Ok(())
    }

    fn arm_wake(&mut self, step: Step) -> io::Result<()> {
        let fd = self.handle.wake_fd(step);
        let e = opcode::PollAdd::new(types::Fd(fd), libc::POLLIN as u32)
            .build()
            .user_data(ud(OP_WAKE, step as usize));
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
            OP_WAKE if idx == Step::StopAccepting as usize => self.stop_accepting(),
            OP_WAKE => self.on_drain(now),
            _ => Ok(()), // a cancel's own completion: nothing to do
        }
    }

    /// The drain's first step: close the listeners, so that new connections are refused
    /// (its balancer, or the kernel's `SO_REUSEPORT` group, sends a client to another
    /// instance). Connections go on until every listener of the server is closed.
    fn stop_accepting(&mut self) -> io::Result<()> {
        if self.stopped {
            return Ok(());
        }
        self.stopped = true;
        for i in 0..self.lst.len() {
            if self.lst[i].armed {
                self.io.cancel(ud(OP_ACCEPT, i))?;
            }
            if let Some(s) = self.lst[i].socket.take() {
                debug!(local = %self.lst[i].local, "listener closed");
                drop(s);
            }
        }
        self.check_listeners_closed();
        Ok(())
    }

    /// Once the drain stopped accepting and every accept's cancellation has completed (the
    /// kernel lets go of a listening socket then), this worker's listeners are closed.
    fn check_listeners_closed(&mut self) {
        if self.stopped && self.lst.iter().all(|l| !l.armed) {
            self.cx.host.listeners_closed();
        }
    }

    /// The drain's second step: every listener of the server is closed; each connection
    /// closes at its next line boundary, or at the deadline.
    fn on_drain(&mut self, now: Instant) -> io::Result<()> {
        let Some(deadline) = self.handle.drain_deadline() else {
            return Ok(()); // cannot happen: the deadline is set before the signal
        };
        if self.draining.is_some() {
            return Ok(());
        }
        self.stop_accepting()?;
        self.draining = Some(deadline);
        debug!("drain began");
        for idx in 0..self.conns.len() {
            let Some(c) = self.conns[idx].as_mut() else {
                continue;
            };
            if let Some(cl) = c.closing.as_mut() {
                // A linger never outlasts the drain deadline.
                cl.until = cl.until.min(deadline);
                list(&mut self.dirty, c, idx);
                continue;
            }
            if c.pre.is_some() {
                debug!("drain began while the PROXY header was incomplete; closed");
                abort(c, now);
                list(&mut self.dirty, c, idx);
                continue;
            }
            // Queued input waits only behind a reply in flight, so a connection the machine
            // closes here holds no unanswered input.
            if let Next::Close(end) = c.m.drain_began(deadline) {
                start_close(&mut self.io, &mut self.bufs, &self.cx, c, idx, end, now)?;
            }
            list(&mut self.dirty, c, idx);
        }
        Ok(())
    }

    fn on_accept(&mut self, now: Instant, i: usize, res: i32, flags: u32) -> io::Result<()> {
        if !cqueue::more(flags) {
            self.lst[i].armed = false;
            self.check_listeners_closed();
        }
        if res >= 0 {
            // SAFETY: a successful accept returns a new descriptor that nothing else owns.
            let fd = unsafe { OwnedFd::from_raw_fd(res) };
            if self.draining.is_some() {
                // Cannot happen (connections drain once every accept has ended): closed.
                return Ok(());
            }
            self.backoff = ACCEPT_BACKOFF_MIN;
            self.admit(now, i, fd);
        } else if is_resource_error(-res) {
            if !self.accept_blocked {
                self.cx
                    .host
                    .accept_failed(&io::Error::from_raw_os_error(-res), self.backoff);
                self.accept_blocked = true;
                self.timers
                    .push(Reverse((now + self.backoff, ACCEPT_TIMER, 0)));
                self.backoff = (self.backoff * 2).min(ACCEPT_BACKOFF_MAX);
            }
            return Ok(());
        } else if res != -libc::ECANCELED {
            // ECONNABORTED and the like concern one connection that is already gone.
            debug!(error = %io::Error::from_raw_os_error(-res), "accept failed; carrying on");
        }
        self.rearm_accepts()
    }

    /// Admits a connection accepted on listener `i` under the server's limits, or refuses
    /// it (closing it once counted).
    fn admit(&mut self, now: Instant, i: usize, fd: OwnedFd) {
        let host = self.cx.host;
        let slot = match host.admit() {
            Ok(slot) => slot,
            Err(why) => {
                host.refuse(peer_of(&fd), why);
                return;
            }
        };
        let settings = self.lst[i].settings;
        let decoder = settings.proxy.decoder();
        let banner = host.banner();
        let debug = tracing::enabled!(tracing::Level::DEBUG);
        let peer = if decoder.is_some() || banner.is_some() || host.per_ip() || debug {
            match peer_of(&fd) {
                Some(p) => Some(p),
                None => {
                    debug!("connection gone before it was served");
                    return;
                }
            }
        } else {
            None
        };
        let mut c = Conn {
            fd,
            gen: 0,
            m: Connection::new(&self.cx.policy, now),
            queue: VecDeque::new(),
            reply: None,
            segs: Vec::new(),
            gather: None,
            spill: Vec::new(),
            fixed: false,
            recv_armed: false,
            recv_cancelling: false,
            send_inflight: false,
            eof: false,
            eof_fed: false,
            starved: false,
            stalled: false,
            served: false,
            listed: false,
            closing: None,
            timer_at: None,
            pre: None,
            slot,
            span: None,
        };
        match (decoder, peer) {
            (Some(decoder), Some(peer)) => {
                // The client's address is in the header: the per-IP limit once it is read.
                c.pre = Some(Box::new(Pre {
                    decoder,
                    until: now + settings.proxy.header_timeout,
                    peer,
                    listener: i,
                }));
            }
            (_, peer) => {
                if let (true, Some(p)) = (host.per_ip(), peer) {
                    if let Err(why) = c.slot.place(p.ip()) {
                        host.refuse(Some(p), why);
                        return;
                    }
                }
                c.span = conn_span(peer);
                serve(&self.cx, &mut c, self.lst[i].local, peer);
            }
        }
        self.next_gen = self.next_gen.wrapping_add(1);
        c.gen = self.next_gen;
        c.listed = true;
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
        self.register_file(idx);
        self.dirty.push(idx);
    }

    fn on_recv(&mut self, idx: usize, res: i32, flags: u32) {
        let Some(c) = self.conns.get_mut(idx).and_then(Option::as_mut) else {
            return;
        };
        if let Some(bid) = cqueue::buffer_select(flags) {
            self.bufs.taken(bid);
            if res > 0 && c.closing.is_none() {
                c.queue.push_back(Chunk {
                    bid,
                    off: 0,
                    len: res as u32,
                });
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
                if let Some(span) = c.span() {
                    span.in_scope(
                        || debug!(error = %io::Error::from_raw_os_error(-res), "receive failed"),
                    );
                }
                if c.served {
                    self.cx.host.closed(End::Error);
                }
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
        list(&mut self.dirty, c, idx);
    }

    fn on_send(&mut self, now: Instant, idx: usize, res: i32) -> io::Result<()> {
        let Some(c) = self.conns.get_mut(idx).and_then(Option::as_mut) else {
            return Ok(());
        };
        if Self::send_done(&mut self.io, &mut self.bufs, &self.cx, c, idx, res, now)? {
            list(&mut self.dirty, c, idx);
        }
        Ok(())
    }

    /// Handles `c`'s send completion `res`. Returns whether `c` needs a settle: not after
    /// the usual request and reply, whose send leaves nothing to do (skipping the settle
    /// saves a pass per message).
    fn send_done(
        io: &mut Io,
        bufs: &mut BufRing,
        cx: &Ctx<'_>,
        c: &mut Conn,
        idx: usize,
        res: i32,
        now: Instant,
    ) -> io::Result<bool> {
        c.send_inflight = false;
        if let Some(cl) = c.closing.as_mut() {
            if cl.stage == Stage::TailSent {
                if res > 0 {
                    c.m.wrote(res as usize);
                    cx.bytes(0, res as u64);
                }
                cl.stage = Stage::Shut;
            }
            // Otherwise a reply the close interrupted: advance gives its buffer back.
            return Ok(true);
        }
        if res <= 0 {
            if let (true, Some(span)) = (res < 0, c.span()) {
                span.in_scope(
                    || debug!(error = %io::Error::from_raw_os_error(-res), "send failed"),
                );
            }
            start_close(io, bufs, cx, c, idx, End::Error, now)?;
            return Ok(true);
        }
        let n = res as usize;
        cx.bytes(0, n as u64);
        let Some(r) = c.reply.as_mut() else {
            return Ok(true);
        };
        if !r.banner {
            c.m.wrote(n);
            if c.stalled {
                c.m.write_resumed(now);
            }
        }
        c.stalled = false;
        r.sent += n;
        if r.sent < r.len {
            // A short send: the client's window is full.
            if !r.banner && c.m.write_stalled() {
                debug!(
                    unsent = r.len - r.sent,
                    "client is not reading; reads paused until it does"
                );
            }
            c.stalled = true;
            return Ok(true); // the rest is sent by the settle
        }
        let banner = r.banner;
        c.reply = None;
        for seg in c.segs.drain(..) {
            if let Some(bid) = seg.bid {
                bufs.give_back(bid);
            }
        }
        if banner {
            return Ok(true);
        }
        if let Next::Close(end) = c.m.reply_sent() {
            start_close(io, bufs, cx, c, idx, end, now)?;
            return Ok(true);
        }
        // Input to answer, or the receive to arm again.
        Ok(!c.queue.is_empty() || !c.recv_armed || c.recv_cancelling || c.eof)
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
            c.listed = false;
            let span = c.span();
            let _entered = span.as_ref().map(tracing::Span::enter);
            let closed = advance(
                &mut self.io,
                &mut self.bufs,
                &self.cx,
                &self.lst,
                c,
                idx,
                now,
                limit,
            )?;
            if closed {
                if c.fixed {
                    // The table holds the socket open too: let go of it before the close.
                    let _ = self
                        .io
                        .ring
                        .submitter()
                        .register_files_update(idx as u32, &[-1]);
                }
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
            let want = match (&c.closing, &c.pre) {
                // A close waits on a deadline only while it lingers or sends the tail.
                (Some(cl), _) if matches!(cl.stage, Stage::Linger | Stage::TailSent) => {
                    Some(cl.until)
                }
                (Some(_), _) => None,
                (None, Some(pre)) => Some(pre.until),
                (None, None) => c.m.deadline(),
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
            list(&mut self.dirty, c, idx);
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
            if let Some(pre) = &c.pre {
                if pre.until <= now {
                    let timeout = self.lst[pre.listener].settings.proxy.header_timeout;
                    refuse_header(&self.cx, c, ProxyError::TimedOut(timeout), now);
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
            let span = c.span();
            let _entered = span.as_ref().map(tracing::Span::enter);
            start_close(&mut self.io, &mut self.bufs, &self.cx, c, idx, end, now)?;
        }
        self.settle(now)
    }
}

/// Lists connection `idx` (`c`) for the next settle, unless it is listed already.
fn list(dirty: &mut Vec<usize>, c: &mut Conn, idx: usize) {
    if !c.listed {
        c.listed = true;
        dirty.push(idx);
    }
}

/// The connection is admitted and its stream begins: count it, and queue the banner, if
/// there is one, as the first reply. `peer` is the client (the PROXY header's, if any); it
/// is known whenever there is a banner.
fn serve(cx: &Ctx<'_>, c: &mut Conn, server: SocketAddr, peer: Option<SocketAddr>) {
    if let Some(span) = c.span() {
        span.in_scope(|| debug!("accepted"));
    }
    cx.host.served();
    c.served = true;
    if let (Some(banner), Some(client)) = (cx.host.banner(), peer) {
        c.spill.clear();
        banner.render_into(server, client, &mut c.spill);
        let (ptr, len) = (c.spill.as_ptr(), c.spill.len());
        c.reply_from_spill(ptr, len, true);
    }
}

/// Closes a connection that was never served (its PROXY header refused or unfinished): no
/// reply, no FIN first, no count of its end.
fn abort(c: &mut Conn, now: Instant) {
    c.closing = Some(Closing {
        end: End::Error,
        until: now,
        stage: Stage::Done,
    });
}

/// Refuses a connection's PROXY header: counted, logged, closed unanswered.
fn refuse_header(cx: &Ctx<'_>, c: &mut Conn, e: ProxyError, now: Instant) {
    let peer = c.pre.as_ref().map(|p| p.peer);
    if let Some(peer) = peer {
        cx.host.proxy_refused(peer, &e);
    }
    abort(c, now);
}

/// Starts closing `c` the way `end` says, counting its end.
fn start_close(
    io: &mut Io,
    bufs: &mut BufRing,
    cx: &Ctx<'_>,
    c: &mut Conn,
    idx: usize,
    end: End,
    now: Instant,
) -> io::Result<()> {
    if c.closing.is_some() {
        return Ok(());
    }
    if c.served {
        cx.host.closed(end);
    }
    if end == End::Idle {
        debug!("idle timeout");
    }
    if end == End::DrainDeadline && c.m.mid_line() {
        let peer = peer_of(&c.fd).map_or_else(|| "?".to_owned(), |p| p.to_string());
        warn!(%peer, "shutdown timeout cut a line in progress");
    }
    for ch in c.queue.drain(..) {
        bufs.give_back(ch.bid);
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

/// Feeds a received chunk to the PROXY header decoder. On the header's end, the connection
/// is admitted under the per-IP limit and served, and what followed the header in the same
/// chunk goes back to the front of the queue.
fn feed_header(
    cx: &Ctx<'_>,
    lst: &[Lst],
    bufs: &mut BufRing,
    c: &mut Conn,
    ch: Chunk,
    now: Instant,
) {
    let Some(pre) = c.pre.as_mut() else { return };
    // SAFETY: `ch.bid` came from a receive completion and is held by this connection alone
    // until given back below.
    let data = unsafe { bufs.buffer(ch.bid, (ch.off + ch.len) as usize) };
    let data = &data[ch.off as usize..];
    match pre.decoder.feed(data) {
        Ok(Progress::NeedMore) => bufs.give_back(ch.bid),
        Err(e) => {
            bufs.give_back(ch.bid);
            refuse_header(cx, c, e, now);
        }
        Ok(Progress::Done { header, consumed }) => {
            let Some(pre) = c.pre.take() else { return };
            let client = header.client_or(pre.peer);
            if cx.host.per_ip() {
                if let Err(why) = c.slot.place(client.ip()) {
                    bufs.give_back(ch.bid);
                    cx.host.refuse(Some(client), why);
                    abort(c, now);
                    return;
                }
            }
            debug!(peer = %pre.peer, %client, version = %header.version, local = header.local, "PROXY header read");
            if consumed < ch.len as usize {
                c.queue.push_front(Chunk {
                    bid: ch.bid,
                    off: ch.off + consumed as u32,
                    len: ch.len - consumed as u32,
                });
            } else {
                bufs.give_back(ch.bid);
            }
            // The stream, and its idle timeout, begin now.
            c.m = Connection::new(&cx.policy, now);
            c.span = conn_span(Some(client));
            serve(cx, c, lst[pre.listener].local, Some(client));
        }
    }
}

/// Moves `c` on: feeds queued input to the machine and sends its replies, arms or pauses
/// the receive, carries a close through. `Ok(true)` once the connection is closed.
#[allow(clippy::too_many_arguments)]
fn advance(
    io: &mut Io,
    bufs: &mut BufRing,
    cx: &Ctx<'_>,
    lst: &[Lst],
    c: &mut Conn,
    idx: usize,
    now: Instant,
    limit: usize,
) -> io::Result<bool> {
    loop {
        if c.closing.is_some() {
            return advance_close(io, bufs, cx, c, idx, now);
        }
        if c.send_inflight {
            break;
        }
        if c.reply.is_some() {
            push_send(io, c, idx)?;
            break;
        }
        if c.pre.is_some() {
            if let Some(ch) = c.queue.pop_front() {
                feed_header(cx, lst, bufs, c, ch, now);
                continue;
            }
        } else if !c.queue.is_empty() {
            let len = gather_replies(bufs, cx, c, now, limit.min(GATHER_MAX));
            if len == 0 {
                if let Next::Close(end) = c.m.reply_sent() {
                    start_close(io, bufs, cx, c, idx, end, now)?;
                }
                continue;
            }
            c.reply = Some(Reply {
                len,
                sent: 0,
                banner: false,
            });
            continue;
        }
        if c.eof && !c.eof_fed {
            c.eof_fed = true;
            if let Some(pre) = &c.pre {
                let e = pre.decoder.truncated();
                refuse_header(cx, c, e, now);
                continue;
            }
            let tail = c.m.end_of_input(now, &mut c.spill);
            let (ptr, n) = (tail.as_ptr(), tail.len());
            if n == 0 {
                if let Next::Close(end) = c.m.reply_sent() {
                    start_close(io, bufs, cx, c, idx, end, now)?;
                }
                continue;
            }
            c.reply_from_spill(ptr, n, false);
            continue;
        }
        break;
    }
    // Backpressure: pause the receive while the unanswered input (queued, or in the reply
    // being sent) is at its bound.
    let mut held = c.queue.len() + c.segs.len();
    if held >= limit {
        // Counted exactly only near the bound: a segment from the spill holds no buffer.
        held -= c.segs.iter().filter(|s| s.bid.is_none()).count();
    }
    if c.recv_armed {
        if held >= limit && !c.recv_cancelling {
            io.cancel(ud(OP_RECV, idx))?;
            c.recv_cancelling = true;
        }
    } else if !c.eof && !c.starved && held < limit {
        arm_recv(io, c, idx)?;
    }
    Ok(false)
}

/// Hands queued input to the machine, buffer by buffer, and gathers the replies into the
/// connection's segments: up to `max` buffers, stopping after a reply that had to be
/// written to the spill buffer (there is one) and, during a drain, after the first (as the
/// readiness driver, which reads once per reply). Returns the reply's length; 0 when the
/// input produced no reply (held back, or after the drain's cut).
fn gather_replies(
    bufs: &mut BufRing,
    cx: &Ctx<'_>,
    c: &mut Conn,
    now: Instant,
    max: usize,
) -> usize {
    let mut total = 0;
    while c.segs.len() < max {
        let Some(ch) = c.queue.pop_front() else { break };
        // SAFETY: `ch.bid` came from a receive completion and is held by this connection
        // alone until given back below or after its reply's send.
        let data = unsafe { bufs.buffer(ch.bid, (ch.off + ch.len) as usize) };
        let data = &mut data[ch.off as usize..];
        let base = data.as_ptr() as usize;
        // The client's bytes: counted here, not at the receive, so that a PROXY header is
        // not (as on the readiness driver).
        cx.bytes(u64::from(ch.len), 0);
        let out = c.m.received(now, data, &mut c.spill);
        let (ptr, n) = (out.as_ptr(), out.len());
        let in_place = (ptr as usize) >= base && (ptr as usize) < base + ch.len as usize;
        if n > 0 {
            c.segs.push(Seg {
                bid: in_place.then_some(ch.bid),
                ptr,
                len: n,
            });
            total += n;
        }
        if n == 0 || !in_place {
            bufs.give_back(ch.bid);
        }
        if (n > 0 && !in_place) || c.m.draining() {
            break;
        }
    }
    total
}

/// Sends what is left of the reply: one `send` from a segment, or one `sendmsg` gathering
/// several.
fn push_send(io: &mut Io, c: &mut Conn, idx: usize) -> io::Result<()> {
    let Some(r) = &c.reply else { return Ok(()) };
    // The first segment not yet all sent, and how much of it was.
    let (mut first, mut off) = (0, r.sent);
    while off >= c.segs[first].len {
        off -= c.segs[first].len;
        first += 1;
    }
    let (fd, fixed) = (types::Fd(c.fd.as_raw_fd()), types::Fixed(idx as u32));
    let e = if first + 1 == c.segs.len() {
        let seg = &c.segs[first];
        // SAFETY: `off` < `seg.len`, inside the segment.
        let (ptr, len) = (unsafe { seg.ptr.add(off) }, (seg.len - off) as u32);
        if c.fixed {
            opcode::Send::new(fixed, ptr, len)
        } else {
            opcode::Send::new(fd, ptr, len)
        }
        .flags(libc::MSG_NOSIGNAL)
        .build()
    } else {
        let g = c.gather.get_or_insert_with(|| {
            Box::new(Gather {
                // SAFETY: an all-zero msghdr is a valid empty one (no name, no control).
                hdr: unsafe { std::mem::zeroed() },
                iov: Vec::with_capacity(GATHER_MAX),
            })
        });
        g.iov.clear();
        for (i, seg) in c.segs[first..].iter().enumerate() {
            let skip = if i == 0 { off } else { 0 };
            g.iov.push(libc::iovec {
                // SAFETY: `skip` < `seg.len`, inside the segment.
                iov_base: unsafe { seg.ptr.add(skip) } as *mut libc::c_void,
                iov_len: seg.len - skip,
            });
        }
        g.hdr.msg_iov = g.iov.as_mut_ptr();
        g.hdr.msg_iovlen = g.iov.len() as _;
        if c.fixed {
            opcode::SendMsg::new(fixed, &g.hdr)
        } else {
            opcode::SendMsg::new(fd, &g.hdr)
        }
        .flags(libc::MSG_NOSIGNAL as u32)
        .build()
    };
    // SAFETY: the reply's memory (ring buffers this connection holds, or its spill buffer,
    // untouched until the reply is out) and the boxed header and vector (neither touched
    // nor dropped while the send is in flight: the connection is dropped only once nothing
    // is) outlive the send.
    unsafe { io.push(e.user_data(ud(OP_SEND, idx)))? };
    c.send_inflight = true;
    Ok(())
}

fn arm_recv(io: &mut Io, c: &mut Conn, idx: usize) -> io::Result<()> {
    let e = if c.fixed {
        opcode::RecvMulti::new(types::Fixed(idx as u32), BufRing::GROUP).build()
    } else {
        opcode::RecvMulti::new(types::Fd(c.fd.as_raw_fd()), BufRing::GROUP).build()
    };
    let e = e.user_data(ud(OP_RECV, idx));
    // SAFETY: the receive writes only into ring buffers, which outlive the ring.
    unsafe { io.push(e)? };
    c.recv_armed = true;
    Ok(())
}

fn advance_close(
    io: &mut Io,
    bufs: &mut BufRing,
    cx: &Ctx<'_>,
    c: &mut Conn,
    idx: usize,
    now: Instant,
) -> io::Result<bool> {
    if c.send_inflight {
        return Ok(false);
    }
    c.reply = None;
    for seg in c.segs.drain(..) {
        if let Some(bid) = seg.bid {
            bufs.give_back(bid);
        }
    }
    for ch in c.queue.drain(..) {
        bufs.give_back(ch.bid);
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
                        cx.bytes(0, n as u64);
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
                debug!(
                    reason = cl.end.as_str(),
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
