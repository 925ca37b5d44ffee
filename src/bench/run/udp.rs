//! One connected UDP socket under load: one datagram per message, one per reply.
//!
//! UDP may lose datagrams, so each socket times out its own oldest message (counted in
//! `timeouts`) and sends another in its place, instead of being abandoned as a stalled
//! TCP connection is.

use std::collections::VecDeque;
use std::future::poll_fn;
use std::io;
use std::rc::Rc;
use std::time::Duration;

use tokio::net::UdpSocket;
use tokio::time::{sleep_until, Instant};
use tracing::debug;

use super::{bump, Schedule, Shared};

/// Drives one UDP socket until the run ends (the task is aborted) or the socket fails.
pub(super) struct UdpDriver {
    socket: UdpSocket,
    shared: Rc<Shared>,
    schedule: Option<Schedule>,
    /// Datagrams due and not yet sent (closed loop: free pipeline slots).
    queued: usize,
    /// When each unanswered datagram started: sent (closed loop) or scheduled (open loop).
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
        pipeline: usize,
        schedule: Option<Schedule>,
    ) -> UdpDriver {
        let queued = if schedule.is_none() { pipeline } else { 0 };
        UdpDriver {
            socket,
            shared,
            schedule,
            queued,
            starts: VecDeque::with_capacity(pipeline.max(16)),
            given_up: 0,
        }
    }

    /// Runs until the socket fails; a failure (such as ICMP port unreachable: the server
    /// went away) is counted as a reset.
    pub async fn run(mut self) {
        if let Err(error) = self.run_inner().await {
            debug!(%error, "UDP socket ended");
            bump(&self.shared.resets);
        }
    }

    async fn run_inner(&mut self) -> io::Result<()> {
        let closed_loop = self.schedule.is_none();
        let timeout = self.shared.timeout;
        loop {
            self.send_queued(closed_loop)?;
            let deadline = self.starts.front().map(|t| *t + timeout);
            let schedule = &mut self.schedule;
            tokio::select! {
                biased;
                r = self.socket.readable() => {
                    r?;
                    self.receive(closed_loop)?;
                }
                r = self.socket.writable(), if self.queued > 0 => r?,
                () = poll_fn(|cx| match schedule { Some(s) => s.poll_tick(cx), None => std::task::Poll::Pending }),
                    if !closed_loop => {
                    if let Some(s) = &mut self.schedule {
                        let (starts, queued) = (&mut self.starts, &mut self.queued);
                        s.take_due(|t| {
                            starts.push_back(t);
                            *queued += 1;
                        });
                    }
                }
                () = sleep_until(deadline.unwrap_or_else(Instant::now)), if deadline.is_some() => {
                    self.starts.pop_front();
                    self.given_up += 1;
                    bump(&self.shared.timeouts);
                    if closed_loop {
                        self.queued += 1;
                    }
                }
            }
        }
    }

    /// Sends queued datagrams until none is left or the socket would block.
    fn send_queued(&mut self, closed_loop: bool) -> io::Result<()> {
        while self.queued > 0 {
            let now = Instant::now();
            match self.socket.try_send(&self.shared.payload.message) {
                Ok(_) => {
                    if closed_loop {
                        self.starts.push_back(now);
                    }
                    self.queued -= 1;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Reads every datagram waiting and checks each against the expected reply.
    fn receive(&mut self, closed_loop: bool) -> io::Result<()> {
        let shared = &*self.shared;
        let expected = &shared.payload.expected[..];
        let mut buf = shared.read_buf.borrow_mut();
        loop {
            let n = match self.socket.try_recv(&mut buf[..]) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) => return Err(e),
            };
            let now = Instant::now();
            let right = buf[..n] == *expected;
            // In open loop, starts also holds datagrams due but not yet sent.
            let unsent = if closed_loop { 0 } else { self.queued };
            match self.starts.len() > unsent {
                true => {
                    let start = self.starts.pop_front();
                    shared.record(start.map(|s| now.saturating_duration_since(s)), right);
                    if closed_loop {
                        self.queued += 1;
                    }
                }
                // A late reply to a datagram already counted as timed out.
                false if self.given_up > 0 => self.given_up -= 1,
                false => shared.record(None, false),
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
