//! One connected UDP socket under load: one datagram per message, one per reply.
//!
//! UDP may lose datagrams, so each socket times out its own oldest message (counted in
//! `timeouts`) and sends another in its place, instead of being abandoned as a stalled
//! TCP connection is.

use std::collections::VecDeque;
use std::future::poll_fn;
use std::io;
use std::rc::Rc;
use std::task::Poll;
use std::time::Duration;

use tokio::net::UdpSocket;
use tokio::time::{sleep_until, Instant};
use tracing::debug;

use super::{bump, later, Schedule, Shared, Watch, MAX_IN_FLIGHT, MAX_PIPELINE};

/// Drives one UDP socket until the run ends (the task is aborted) or the socket fails.
pub(super) struct UdpDriver {
    socket: UdpSocket,
    shared: Rc<Shared>,
    watch: Rc<Watch>,
    schedule: Option<Schedule>,
    /// Closed loop: free pipeline slots.
    free: usize,
    /// When each unanswered datagram started: sent (closed loop), or scheduled if that
    /// was earlier (open loop).
    starts: VecDeque<Instant>,
    /// Datagrams given up on whose replies may still arrive late; those are not wrong.
    given_up: usize,
}

impl UdpDriver {
    /// A driver for `socket`: closed loop with `pipeline` datagrams in flight, or open loop
    /// when a `schedule` is given.
    pub fn new(
        socket: UdpSocket,
        shared: Rc<Shared>,
        watch: Rc<Watch>,
        pipeline: usize,
        schedule: Option<Schedule>,
    ) -> UdpDriver {
        let free = if schedule.is_none() { pipeline } else { 0 };
        UdpDriver {
            socket,
            shared,
            watch,
            schedule,
            free,
            starts: VecDeque::with_capacity(pipeline.clamp(16, 64)),
            given_up: 0,
        }
    }

    /// Runs until the socket fails; a failure (such as ICMP port unreachable: the server
    /// went away) is counted as a reset.
    pub async fn run(mut self) {
        if let Err(error) = self.run_inner().await {
            debug!(%error, "UDP socket ended");
            let owed = self.watch.in_flight.get();
            self.shared.settle(&self.watch, owed);
            bump(&self.shared.resets);
        }
    }

    async fn run_inner(&mut self) -> io::Result<()> {
        let timeout = self.shared.timeout;
        loop {
            let blocked = self.send_due()?;
            let deadline = self.starts.front().map(|t| later(*t, timeout));
            let schedule = &mut self.schedule;
            tokio::select! {
                biased;
                r = self.socket.readable() => {
                    r?;
                    self.receive()?;
                }
                r = self.socket.writable(), if blocked => r?,
                () = poll_fn(|cx| match schedule {
                    // Ready once the count of datagrams due has moved.
                    Some(s) => {
                        let owed = s.owed();
                        s.poll_due(cx);
                        if s.owed() > owed { Poll::Ready(()) } else { Poll::Pending }
                    }
                    None => Poll::Pending,
                }) => {}
                () = sleep_until(deadline.unwrap_or_else(Instant::now)), if deadline.is_some() => {
                    self.starts.pop_front();
                    self.given_up += 1;
                    bump(&self.shared.timeouts);
                    self.shared.settle(&self.watch, 1);
                    self.free += 1;
                }
            }
        }
    }

    /// Whether another datagram may be sent now.
    fn may_begin(&self) -> bool {
        if !self.shared.sending.get() {
            return false;
        }
        match &self.schedule {
            None => self.free > 0,
            Some(s) => {
                s.owed() > 0
                    && self.starts.len() < MAX_PIPELINE as usize
                    && self.shared.in_flight.get() < MAX_IN_FLIGHT
            }
        }
    }

    /// Sends datagrams while they may go. True when the socket would block with more to
    /// send.
    fn send_due(&mut self) -> io::Result<bool> {
        while self.may_begin() {
            let now = Instant::now();
            match self.socket.try_send(&self.shared.payload.message) {
                Ok(_) => {
                    let start = match &mut self.schedule {
                        None => {
                            self.free -= 1;
                            now
                        }
                        Some(s) => {
                            let (start, late) = s.begin(now);
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
                    self.starts.push_back(start);
                    self.shared.owe(&self.watch);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(true),
                Err(e) => return Err(e),
            }
        }
        Ok(false)
    }

    /// Reads every datagram waiting and checks each against the expected reply.
    fn receive(&mut self) -> io::Result<()> {
        let shared = &*self.shared;
        let expected = &shared.payload.expected[..];
        let mut buf = shared.read_buf.borrow_mut();
        loop {
            let n = match self.socket.try_recv(&mut buf[..]) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) => return Err(e),
            };
            bump(&self.watch.received);
            let now = Instant::now();
            let got = &buf[..n];
            let right = got == expected;
            match self.starts.pop_front() {
                Some(start) => {
                    if !right {
                        shared.keep_wrong(&shared.payload.message, got);
                    }
                    shared.record(Some(now.saturating_duration_since(start)), right);
                    shared.settle(&self.watch, 1);
                    self.free += 1;
                }
                // A late reply to a datagram already counted as timed out.
                None if self.given_up > 0 => self.given_up -= 1,
                None => {
                    shared.keep_wrong(&[], got);
                    shared.record(None, false);
                }
            }
        }
    }
}

/// Sends `message` once and waits up to `timeout` for any reply: UDP has no handshake, so
/// this is how an absent server is told apart from a slow one before the run starts.
pub(super) async fn probe(
    socket: &UdpSocket,
    message: &[u8],
    timeout: Duration,
) -> Result<(), String> {
    let describe = |e: io::Error| match e.kind() {
        io::ErrorKind::ConnectionRefused => {
            "connection refused — is the server listening for UDP?".to_string()
        }
        _ => e.to_string(),
    };
    socket.send(message).await.map_err(describe)?;
    let mut buf = vec![0u8; message.len() + 1];
    match tokio::time::timeout(timeout, socket.recv(&mut buf)).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(describe(e)),
        Err(_) => Err(format!(
            "no reply within {} — is the server listening for UDP?",
            humantime::format_duration(timeout)
        )),
    }
}
