//! Pipe mode: input → server → output, full duplex and binary-safe, as `nc` does it.
//!
//! One thread copies the input to the socket and half-closes it at input EOF; the calling
//! thread copies the socket to the output until the server closes, and is the one that
//! watches the clock. Both use large buffers and plain blocking calls (with a short
//! timeout, so that the clock is looked at), so a bulk transfer costs two system calls per
//! buffer each way.
//!
//! Every LF of the input comes back as one LF of the reply (upper-casing never makes or
//! removes one), so counting them in both directions tells a reply cut short from a
//! complete one without understanding the bytes.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use super::{is_wait, peer, ClientError};
use crate::limits::PIPE_BUFFER;

/// How often each side wakes up while the other end is quiet, to look at the clock.
const TICK: Duration = Duration::from_millis(200);

/// How long the reading side waits, once the server has closed, for the sending side to
/// reach the end of its input: a server that closes right after the last reply can be a
/// moment ahead of the sender's own EOF.
const SETTLE: Duration = Duration::from_millis(100);

/// Bytes moved by one pipe session, and what they say about the reply.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PipeStats {
    /// Bytes of input sent to the server.
    pub sent: u64,
    /// Bytes of reply written to the output.
    pub received: u64,
    /// Lines sent: LFs, plus one for a last line without LF.
    pub sent_lines: u64,
    /// Lines received, counted the same way. A reply is complete when it has as many LFs
    /// as the input, and bytes after the last one exactly when the input had; more than
    /// `sent_lines` means the server sent something nobody asked for.
    pub received_lines: u64,
    /// The server closed the connection while the input was still open (a drain, a
    /// restart), after answering every line sent: nothing was lost, but no more input
    /// could be sent.
    pub closed_by_server: bool,
}

/// Counts lines in a byte stream: LFs, and whether the bytes since the last LF make one
/// more.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Lines {
    lf: u64,
    open: bool,
}

impl Lines {
    fn add(&mut self, b: &[u8]) {
        if let Some(&last) = b.last() {
            self.lf += b.iter().filter(|&&c| c == b'\n').count() as u64;
            self.open = last != b'\n';
        }
    }

    fn count(&self) -> u64 {
        self.lf + u64::from(self.open)
    }
}

/// Where the sending side is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sender {
    /// Waiting for input; `any` once some was read. The server owes nothing for the wait.
    Reading { any: bool },
    /// Holding input the server has not taken yet.
    Writing,
    /// At the end of the input, since this instant: FIN is sent.
    Done(Instant),
    /// Stopped by an error (it returns it when joined).
    Failed,
}

#[derive(Debug)]
struct State {
    sender: Sender,
    /// The last time a byte moved in either direction (or the output took one).
    progress: Instant,
    lines: Lines,
    /// Bytes of input the server has taken.
    sent: u64,
}

fn lock(m: &Mutex<State>) -> MutexGuard<'_, State> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Streams `input` through the server on `stream` into `output`, until the server closes.
///
/// `timeout` bounds waiting on the server, never on our own input or output: while the
/// client holds input the server does not take, the longest stretch in which no byte moves
/// either way ([`ClientError::NotReading`]); after the input has ended, the whole time the
/// server takes to finish the reply and close ([`ClientError::Timeout`]). While the input
/// is quiet, a quiet server is not late.
///
/// When the server closes first, the lines are counted: a reply with fewer lines than the
/// input is [`ClientError::ShortReply`] (or [`ClientError::Closed`] if nothing came back
/// at all), input the server never took is [`ClientError::InputRefused`], and a close
/// after every line sent was answered is a success with
/// [`PipeStats::closed_by_server`] set.
pub fn pipe<R, W>(
    stream: TcpStream,
    input: R,
    output: &mut W,
    timeout: Duration,
) -> Result<PipeStats, ClientError>
where
    R: Read + Send + 'static,
    W: Write + ?Sized,
{
    let addr = peer(&stream);
    let io = |source| ClientError::Io { addr, source };
    let to_server = stream.try_clone().map_err(io)?;
    to_server.set_write_timeout(Some(TICK)).map_err(io)?;
    stream.set_read_timeout(Some(TICK)).map_err(io)?;
    let state = Arc::new(Mutex::new(State {
        sender: Sender::Reading { any: false },
        progress: Instant::now(),
        lines: Lines::default(),
        sent: 0,
    }));
    let abort = Arc::new(AtomicBool::new(false));
    let sender = {
        let (state, abort) = (state.clone(), abort.clone());
        thread::Builder::new()
            .name("upcase-pipe-send".into())
            .spawn(move || send_all(input, to_server, addr, &state, &abort))
            .map_err(|source| ClientError::Local {
                what: "starting the sender thread",
                source,
            })?
    };
    let stop = |stream: &TcpStream| {
        abort.store(true, Ordering::Relaxed);
        let _ = stream.shutdown(Shutdown::Both);
    };

    let mut from_server = &stream;
    let mut buf = vec![0u8; PIPE_BUFFER];
    let mut received = 0u64;
    let mut got = Lines::default();
    // Time spent waiting on the server since the input ended.
    let mut waited = Duration::ZERO;
    loop {
        let t0 = Instant::now();
        let r = from_server.read(&mut buf);
        let now = Instant::now();
        let sender_state = lock(&state).sender;
        if let Sender::Done(at) = sender_state {
            waited += now.saturating_duration_since(t0.max(at));
        }
        match r {
            Ok(0) => break,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::ConnectionReset | io::ErrorKind::ConnectionAborted
                ) =>
            {
                break
            }
            Ok(n) => {
                lock(&state).progress = now;
                received += n as u64;
                got.add(&buf[..n]);
                if let Err(source) = output.write_all(&buf[..n]).and_then(|()| output.flush()) {
                    stop(&stream);
                    return Err(ClientError::Local {
                        what: "writing output",
                        source,
                    });
                }
                // Our output taking its time is no fault of the server's.
                lock(&state).progress = Instant::now();
            }
            Err(e) if is_wait(&e) => {
                let st = lock(&state);
                if st.sender == Sender::Writing && now.duration_since(st.progress) >= timeout {
                    drop(st);
                    stop(&stream);
                    return Err(ClientError::NotReading {
                        addr,
                        after: timeout,
                    });
                }
            }
            Err(source) => {
                stop(&stream);
                return Err(ClientError::Io { addr, source });
            }
        }
        if waited >= timeout {
            stop(&stream);
            return Err(ClientError::Unfinished {
                addr,
                after: timeout,
            });
        }
    }

    // The server has closed. Give the sender a moment to reach its own end of input, or to
    // find that it holds input that can no longer be sent.
    let settle = Instant::now() + SETTLE;
    while !matches!(lock(&state).sender, Sender::Done(_) | Sender::Failed)
        && Instant::now() < settle
    {
        thread::sleep(Duration::from_millis(5));
    }
    let (sender_state, sent_lines, sent) = {
        let st = lock(&state);
        (st.sender, st.lines, st.sent)
    };
    let mut stats = PipeStats {
        sent,
        received,
        sent_lines: sent_lines.count(),
        received_lines: got.count(),
        closed_by_server: false,
    };
    // Fewer LFs, or as many but the input's last line without LF got no reply at all.
    let cut = got < sent_lines;
    let short = |stats: &PipeStats| {
        if !cut {
            None
        } else if stats.received == 0 {
            Some(ClientError::Closed { addr, tls: false })
        } else {
            Some(ClientError::ShortReply {
                addr,
                sent_lf: sent_lines.lf,
                received_lf: got.lf,
            })
        }
    };
    match sender_state {
        Sender::Done(_) | Sender::Failed => {
            let r = join(sender);
            if let Some(e) = short(&stats) {
                return Err(e);
            }
            stats.sent = r?;
            Ok(stats)
        }
        Sender::Writing => {
            stop(&stream);
            Err(short(&stats).unwrap_or(ClientError::InputRefused { addr }))
        }
        Sender::Reading { .. } => {
            // Still waiting for input (perhaps for good: `sleep 30 | upcase`). Whatever was
            // sent has been answered unless the lines say otherwise; nothing else is owed.
            stop(&stream);
            if let Some(e) = short(&stats) {
                return Err(e);
            }
            stats.closed_by_server = true;
            Ok(stats)
        }
    }
}

fn join(sender: thread::JoinHandle<Result<u64, ClientError>>) -> Result<u64, ClientError> {
    match sender.join() {
        Ok(r) => r,
        Err(_) => Err(ClientError::Local {
            what: "sending input",
            source: io::Error::other("the sender thread panicked"),
        }),
    }
}

/// The sending side: input to the server, FIN at the end. Publishes where it is in
/// `state`; stops when `abort` is set.
fn send_all<R: Read>(
    mut input: R,
    to_server: TcpStream,
    addr: SocketAddr,
    state: &Mutex<State>,
    abort: &AtomicBool,
) -> Result<u64, ClientError> {
    let fail = |e: ClientError| {
        lock(state).sender = Sender::Failed;
        // Wake the reading side, which is waiting for a server that waits for us.
        let _ = to_server.shutdown(Shutdown::Both);
        Err(e)
    };
    let mut writer = &to_server;
    let mut buf = vec![0u8; PIPE_BUFFER];
    let mut sent = 0u64;
    loop {
        let n = match input.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(source) => {
                return fail(ClientError::Local {
                    what: "reading input",
                    source,
                })
            }
        };
        {
            let mut st = lock(state);
            st.sender = Sender::Writing;
            st.lines.add(&buf[..n]);
        }
        let mut off = 0;
        while off < n {
            if abort.load(Ordering::Relaxed) {
                return Ok(sent);
            }
            match writer.write(&buf[off..n]) {
                Ok(0) => return fail(ClientError::InputRefused { addr }),
                Ok(k) => {
                    off += k;
                    lock(state).progress = Instant::now();
                }
                Err(e) if is_wait(&e) => {}
                Err(_) => return fail(ClientError::InputRefused { addr }),
            }
        }
        sent += n as u64;
        let mut st = lock(state);
        st.sender = Sender::Reading { any: true };
        st.sent = sent;
    }
    lock(state).sender = Sender::Done(Instant::now());
    // FIN tells the server the input is over; it answers the rest, then closes.
    let _ = to_server.shutdown(Shutdown::Write);
    Ok(sent)
}
