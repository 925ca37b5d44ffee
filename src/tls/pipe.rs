//! Pipe mode over TLS: input → server → output on one TLS stream, full duplex.
//!
//! A TLS connection is one state machine, so the plain pipe's trick of a cloned socket per
//! direction is not available. Instead both directions run as two futures in one task over
//! [`tokio::io::split`] halves of the stream: the sender copies input to the stream and, at
//! input EOF, shuts its half down, which sends `close_notify` and then FIN; the receiver
//! copies the stream to the output until the server's `close_notify`. Neither waits for the
//! other, so a server that answers while input is still coming is read at once.

use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::Instant;

use crate::limits::PIPE_BUFFER;

/// Bytes moved by one pipe session.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PipeStats {
    /// Bytes of input sent to the server.
    pub sent: u64,
    /// Bytes of reply written to the output.
    pub received: u64,
}

/// How a TLS pipe session failed. The client maps each to its own error and exit status.
#[derive(Debug, thiserror::Error)]
pub enum PipeError {
    /// Reading the input failed.
    #[error("reading input: {0}")]
    Input(#[source] io::Error),
    /// Writing the output failed (a broken pipe here is the reader of our stdout leaving).
    #[error("writing output: {0}")]
    Output(#[source] io::Error),
    /// The server closed before all the input was sent: the rest would go unanswered.
    #[error("the server closed the connection before all the input was sent")]
    ClosedEarly,
    /// The server closed its side without `close_notify`: the reply may be cut short, and
    /// nothing tells a cut from an end.
    #[error("the server closed the connection without close_notify: the reply may be truncated")]
    Truncated,
    /// After the input ended, the server sent nothing for this long.
    #[error("no reply within {} after the input ended", humantime::format_duration(*.0))]
    Timeout(Duration),
    /// The connection failed (a reset, a TLS error).
    #[error("{0}")]
    Io(#[source] io::Error),
}

/// Streams `input` through the server on `stream` into `output`, until the server closes
/// its side with `close_notify`.
///
/// At input EOF the stream's write side is shut down (`close_notify`, then FIN): the server
/// answers what it still owes and closes. `timeout` bounds only the wait after the input has
/// ended, counted from the later of that and the last reply byte; while input may still
/// come, a quiet server is not late. The output is flushed after each write, so an
/// interactive reader sees each reply as it comes.
pub async fn pipe<R, W, S>(
    mut input: R,
    mut output: W,
    stream: S,
    timeout: Duration,
) -> Result<PipeStats, PipeError>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
    S: AsyncRead + AsyncWrite + Unpin,
{
    let (mut from_server, mut to_server) = tokio::io::split(stream);
    // When the last reply byte came, as nanoseconds after `base`: shared by the receiver
    // (which sets it) and the timeout (which reads it), and Send, unlike a Cell.
    let base = Instant::now();
    let last_reply = AtomicU64::new(0);
    let last_byte = || base + Duration::from_nanos(last_reply.load(Ordering::Relaxed));

    let send = async {
        let mut buf = vec![0u8; PIPE_BUFFER];
        let mut sent = 0u64;
        loop {
            let n = match input.read(&mut buf).await {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(PipeError::Input(e)),
            };
            to_server
                .write_all(&buf[..n])
                .await
                .map_err(|_| PipeError::ClosedEarly)?;
            sent += n as u64;
        }
        // close_notify, flush, then FIN: the server sees the end of input either way.
        to_server.shutdown().await.map_err(PipeError::Io)?;
        Ok(sent)
    };

    let receive = async {
        let mut buf = vec![0u8; PIPE_BUFFER];
        let mut received = 0u64;
        loop {
            let n = match from_server.read(&mut buf).await {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                    return Err(PipeError::Truncated)
                }
                Err(e) => return Err(PipeError::Io(e)),
            };
            let since = Instant::now().saturating_duration_since(base);
            last_reply.store(
                u64::try_from(since.as_nanos()).unwrap_or(u64::MAX),
                Ordering::Relaxed,
            );
            received += n as u64;
            output
                .write_all(&buf[..n])
                .await
                .map_err(PipeError::Output)?;
            output.flush().await.map_err(PipeError::Output)?;
        }
        Ok::<u64, PipeError>(received)
    };

    tokio::pin!(send, receive);
    let mut sent: Option<u64> = None;
    let mut input_ended = Instant::now();
    loop {
        let deadline = input_ended.max(last_byte()) + timeout;
        tokio::select! {
            r = &mut send, if sent.is_none() => {
                sent = Some(r?);
                input_ended = Instant::now();
            }
            r = &mut receive => {
                let received = r?;
                // The server has closed. If input may still come, the server closed first
                // and whatever comes next would go unanswered.
                return match sent {
                    Some(sent) => Ok(PipeStats { sent, received }),
                    None => Err(PipeError::ClosedEarly),
                };
            }
            () = tokio::time::sleep_until(deadline), if sent.is_some() => {
                // A reply byte may have moved the deadline since this sleep was armed.
                if Instant::now() >= input_ended.max(last_byte()) + timeout {
                    return Err(PipeError::Timeout(timeout));
                }
            }
        }
    }
}
