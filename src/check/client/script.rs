//! The scripted server of `check-client`: what it does with each connection in a case,
//! and a record of every byte it received.
//!
//! Each connection is read all the time (the record must hold what the client sent even
//! when the script is busy waiting or has closed its side), and the script writes from
//! what was read: echo it upper-cased, answer the first message late or in pieces, or
//! close without answering.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, Notify};
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::{sleep, sleep_until, timeout, Instant};

use super::PIECE_GAP;
use crate::transform::{Mode, Upcaser};

/// A message is taken as complete at its LF, at the client's EOF, or after this long with
/// no more bytes (for a client that sends its line without LF and waits).
const QUIET: Duration = Duration::from_millis(300);

/// What the scripted server does on each connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Script {
    /// Sends back the upper-case of every byte as it arrives, and closes after the
    /// client's EOF.
    Echo,
    /// Reads the first message, waits `delay`, sends its upper-case in `pieces` writes
    /// [`PIECE_GAP`] apart, then echoes the rest.
    Reply {
        /// Before the first piece.
        delay: Duration,
        /// How many writes the reply is cut into.
        pieces: usize,
    },
    /// Reads the first message and closes without replying.
    Close,
    /// Nothing listens.
    Nothing,
}

/// The scripted server during one case.
pub(super) struct CaseServer {
    accept: JoinHandle<()>,
    record: Arc<Mutex<Vec<u8>>>,
    open: Arc<AtomicUsize>,
    idle: Arc<Notify>,
}

impl CaseServer {
    /// Drops connections left queued from an earlier case, then serves `script` on
    /// every connection that comes.
    pub(super) async fn start(listener: Arc<TcpListener>, script: Script) -> CaseServer {
        while let Ok(Ok(stale)) = timeout(Duration::ZERO, listener.accept()).await {
            drop(stale);
        }
        let record = Arc::new(Mutex::new(Vec::new()));
        let open = Arc::new(AtomicUsize::new(0));
        let idle = Arc::new(Notify::new());
        let (r, o, i) = (record.clone(), open.clone(), idle.clone());
        let accept = tokio::spawn(async move {
            // Dropped with the accept task: aborting it ends every connection.
            let mut conns = JoinSet::new();
            while let Ok((stream, _)) = listener.accept().await {
                o.fetch_add(1, Ordering::SeqCst);
                conns.spawn(connection(stream, script, r.clone(), o.clone(), i.clone()));
            }
        });
        CaseServer {
            accept,
            record,
            open,
            idle,
        }
    }

    /// Waits (at most `grace`) until every connection has been read to its end, stops
    /// serving, and returns every byte received.
    pub(super) async fn stop(self, grace: Duration) -> Vec<u8> {
        let end = Instant::now() + grace;
        loop {
            let notified = self.idle.notified();
            if self.open.load(Ordering::SeqCst) == 0 {
                break;
            }
            tokio::select! {
                () = notified => {}
                () = sleep_until(end) => break,
            }
        }
        self.accept.abort();
        let _ = self.accept.await;
        std::mem::take(&mut *self.record.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

async fn connection(
    stream: TcpStream,
    script: Script,
    record: Arc<Mutex<Vec<u8>>>,
    open: Arc<AtomicUsize>,
    idle: Arc<Notify>,
) {
    let _ = stream.set_nodelay(true);
    let (mut rd, wr) = stream.into_split();
    let (tx, rx) = mpsc::unbounded_channel::<Vec<u8>>();
    let reader = async move {
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            match rd.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    record
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .extend_from_slice(&buf[..n]);
                    let _ = tx.send(buf[..n].to_vec());
                }
            }
        }
        drop(tx);
        open.fetch_sub(1, Ordering::SeqCst);
        idle.notify_waiters();
    };
    tokio::join!(reader, write_script(wr, rx, script));
}

async fn write_script(
    mut wr: OwnedWriteHalf,
    mut rx: mpsc::UnboundedReceiver<Vec<u8>>,
    script: Script,
) {
    let mut up = Upcaser::new(Mode::Unicode);
    match script {
        Script::Echo | Script::Nothing => echo(wr, rx, up).await,
        Script::Reply { delay, pieces } => {
            let (message, more) = first_message(&mut rx).await;
            let mut out = Vec::new();
            up.push(&message, &mut out);
            if !more {
                up.finish(&mut out);
            }
            sleep(delay).await;
            let size = out.len().div_ceil(pieces.max(1)).max(1);
            for (i, piece) in out.chunks(size).enumerate() {
                if i > 0 {
                    sleep(PIECE_GAP).await;
                }
                if wr.write_all(piece).await.is_err() {
                    return;
                }
            }
            if more {
                echo(wr, rx, up).await;
            } else {
                let _ = wr.shutdown().await;
            }
        }
        Script::Close => {
            let _ = first_message(&mut rx).await;
            // Dropping the write half sends FIN: the client's recv returns 0.
            drop(wr);
        }
    }
}

/// Echoes every chunk upper-cased; at the client's EOF, the held-back bytes, then FIN.
async fn echo(mut wr: OwnedWriteHalf, mut rx: mpsc::UnboundedReceiver<Vec<u8>>, mut up: Upcaser) {
    let mut out = Vec::new();
    while let Some(chunk) = rx.recv().await {
        out.clear();
        up.push(&chunk, &mut out);
        if wr.write_all(&out).await.is_err() {
            return;
        }
    }
    out.clear();
    up.finish(&mut out);
    let _ = wr.write_all(&out).await;
    let _ = wr.shutdown().await;
}

/// Reads the first message: up to its LF, the client's EOF, or [`QUIET`] without bytes
/// once some have come. Returns it, and whether the connection may still bring more.
async fn first_message(rx: &mut mpsc::UnboundedReceiver<Vec<u8>>) -> (Vec<u8>, bool) {
    let mut message = Vec::new();
    loop {
        let next = if message.is_empty() {
            rx.recv().await
        } else {
            match timeout(QUIET, rx.recv()).await {
                Ok(next) => next,
                Err(_) => return (message, true),
            }
        };
        match next {
            Some(chunk) => {
                message.extend_from_slice(&chunk);
                if chunk.contains(&b'\n') {
                    return (message, true);
                }
            }
            None => return (message, false),
        }
    }
}
