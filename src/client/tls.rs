//! The client's three ways of talking, over TLS: `send`, the interactive session and pipe
//! mode, on [`crate::tls`]'s configurations and handshakes.
//!
//! `send` and the session use the blocking [`tls::BlockingStream`] (its `.sock` is the
//! socket, for timeouts and peeks); pipe mode runs [`tls::pipe`] on a current-thread
//! runtime, both directions on the one stream, since a TLS connection cannot be cloned per
//! direction the way a socket can. A server that closes without `close_notify` may have
//! cut its reply short: that is reported as [`ClientError::Truncated`].

use std::io::{self, Read, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite};

use super::{connect, interactive::LineSource, ClientError};
use crate::tls::{self, BlockingStream, PipeError, PipeStats};

/// What `--tls`, `--ca`, `--sni` and `--insecure` ask for.
#[derive(Debug, Clone, Default)]
pub struct TlsOptions {
    /// Trust only the certificates in this PEM file, instead of the system's roots.
    pub ca: Option<PathBuf>,
    /// The name to send and verify, instead of the host of the address.
    pub sni: Option<String>,
    /// Verify nothing (the binary says so once on stderr).
    pub insecure: bool,
}

/// A client configuration and the server name it verifies: made once, used for every
/// connection of a session.
#[derive(Debug, Clone)]
pub struct TlsClient {
    config: Arc<rustls::ClientConfig>,
    name: ServerName<'static>,
}

impl TlsClient {
    /// The configuration for `target` (`HOST:PORT`) under `opts`: the roots to trust and
    /// the name to verify.
    pub fn new(target: &str, opts: &TlsOptions) -> Result<Self, ClientError> {
        let config = tls::client_config(opts.ca.as_deref(), opts.insecure)?;
        let name = tls::server_name(target, opts.sni.as_deref())?;
        Ok(TlsClient { config, name })
    }

    /// The rustls configuration (for `bench` and `check`).
    pub fn config(&self) -> &Arc<rustls::ClientConfig> {
        &self.config
    }

    /// The server name sent and verified.
    pub fn name(&self) -> &ServerName<'static> {
        &self.name
    }

    /// Connects to `target` and shakes hands, each bounded by `timeout`. A certificate the
    /// client does not trust fails here, as one line naming the address and the reason.
    pub fn connect(&self, target: &str, timeout: Duration) -> Result<BlockingStream, ClientError> {
        let tcp = connect(target, timeout)?;
        Ok(tls::connect_blocking(
            tcp,
            &self.config,
            self.name.clone(),
            timeout,
        )?)
    }
}

/// [`send`](super::send) over TLS: one message, and the reply up to as many LFs as the
/// message holds, or up to the server's `close_notify`.
pub fn send_tls(
    stream: &mut BlockingStream,
    message: &[u8],
    timeout: Duration,
) -> Result<Vec<u8>, ClientError> {
    let addr = super::peer(&stream.sock);
    let io_err = |source: io::Error, got: &[u8]| match source.kind() {
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => ClientError::Timeout {
            addr,
            after: timeout,
            got: got.to_vec(),
        },
        _ => ClientError::Io { addr, source },
    };
    stream
        .write_all(message)
        .and_then(|()| stream.flush())
        .map_err(|e| io_err(e, &[]))?;
    let want_lf = message.iter().filter(|&&b| b == b'\n').count();
    stream
        .sock
        .set_read_timeout(Some(timeout))
        .map_err(|e| io_err(e, &[]))?;
    let mut reply = Vec::with_capacity(message.len());
    let mut buf = [0u8; 16 * 1024];
    let mut seen_lf = 0;
    loop {
        if want_lf > 0 && seen_lf >= want_lf {
            return Ok(reply);
        }
        let n = match stream.read(&mut buf) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                return Err(if reply.is_empty() {
                    ClientError::Closed { addr, tls: true }
                } else {
                    ClientError::Truncated { addr }
                })
            }
            Err(e) => return Err(io_err(e, &reply)),
        };
        if n == 0 {
            return if reply.is_empty() {
                Err(ClientError::Closed { addr, tls: true })
            } else {
                Ok(reply)
            };
        }
        seen_lf += buf[..n].iter().filter(|&&b| b == b'\n').count();
        reply.extend_from_slice(&buf[..n]);
    }
}

/// [`interactive`](super::interactive) over TLS: each line is sent with an LF and its reply
/// written to `out`; a connection the server has closed is replaced (a new handshake) at
/// the next line, and `notes` says so.
pub fn interactive_tls<L, W, N>(
    target: &str,
    timeout: Duration,
    client: &TlsClient,
    lines: &mut L,
    out: &mut W,
    notes: &mut N,
) -> Result<(), ClientError>
where
    L: LineSource + ?Sized,
    W: Write + ?Sized,
    N: Write + ?Sized,
{
    let local = |what| move |source| ClientError::Local { what, source };
    let mut stream = client.connect(target, timeout)?;
    let _ = writeln!(
        notes,
        "connected to {} over {}; type a line, Ctrl-D to quit",
        super::peer(&stream.sock),
        tls::session_info(&stream.conn).version
    );
    while let Some(line) = lines.next_line().map_err(local("reading input"))? {
        let mut message = line.into_bytes();
        message.push(b'\n');
        if is_closed(&stream.sock) {
            stream = reconnect(target, timeout, client, &stream, notes)?;
        }
        let reply = match send_tls(&mut stream, &message, timeout) {
            Ok(r) => r,
            Err(ClientError::Closed { .. } | ClientError::Io { .. }) => {
                // Gone between the check and the send (a close_notify waiting unread
                // looks like data to the check): once more on a new connection.
                stream = reconnect(target, timeout, client, &stream, notes)?;
                send_tls(&mut stream, &message, timeout)?
            }
            Err(e) => return Err(e),
        };
        out.write_all(&reply)
            .and_then(|()| out.flush())
            .map_err(local("writing output"))?;
    }
    let _ = tls::close_write(&mut stream);
    Ok(())
}

/// Whether the server has closed its side (or reset) while we waited for the user, asked of
/// the socket with a peek: over TLS nothing may be read past rustls. A `close_notify`
/// waiting unread looks like data here; the send that follows finds it.
fn is_closed(sock: &std::net::TcpStream) -> bool {
    if sock.set_nonblocking(true).is_err() {
        return true;
    }
    let mut b = [0u8; 1];
    let closed = match sock.peek(&mut b) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => e.kind() != io::ErrorKind::WouldBlock,
    };
    closed || sock.set_nonblocking(false).is_err()
}

fn reconnect<N: Write + ?Sized>(
    target: &str,
    timeout: Duration,
    client: &TlsClient,
    old: &BlockingStream,
    notes: &mut N,
) -> Result<BlockingStream, ClientError> {
    let _ = writeln!(
        notes,
        "the server at {} closed the connection",
        super::peer(&old.sock)
    );
    let stream = client.connect(target, timeout)?;
    let _ = writeln!(notes, "reconnected to {}", super::peer(&stream.sock));
    Ok(stream)
}

/// [`pipe`](super::pipe) over TLS: `input` through the server into `output`, full duplex
/// and binary-safe, on a current-thread runtime of its own. At input EOF it sends
/// `close_notify` and FIN; it ends at the server's `close_notify`.
pub fn pipe_tls<R, W>(
    target: &str,
    timeout: Duration,
    client: &TlsClient,
    input: R,
    output: W,
) -> Result<PipeStats, ClientError>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let local = |what| move |source| ClientError::Local { what, source };
    let tcp = connect(target, timeout)?;
    let addr = super::peer(&tcp);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(local("starting the runtime"))?;
    let result = rt.block_on(async {
        tcp.set_nonblocking(true)
            .map_err(|source| ClientError::Io { addr, source })?;
        let tcp = tokio::net::TcpStream::from_std(tcp)
            .map_err(|source| ClientError::Io { addr, source })?;
        let stream = tls::connect(tcp, &client.config, client.name.clone(), timeout).await?;
        tls::pipe(input, output, stream, timeout)
            .await
            .map_err(|e| pipe_error(addr, e))
    });
    // Tokio's stdin reads on a blocking thread that may be parked in read(2) for good.
    rt.shutdown_background();
    result
}

fn pipe_error(addr: std::net::SocketAddr, e: PipeError) -> ClientError {
    match e {
        PipeError::Input(source) => ClientError::Local {
            what: "reading input",
            source,
        },
        PipeError::Output(source) => ClientError::Local {
            what: "writing output",
            source,
        },
        PipeError::ClosedEarly => ClientError::Io {
            addr,
            source: io::Error::other(PipeError::ClosedEarly.to_string()),
        },
        PipeError::Truncated => ClientError::Truncated { addr },
        PipeError::Timeout(after) => ClientError::Timeout {
            addr,
            after,
            got: Vec::new(),
        },
        PipeError::Io(source) => ClientError::Io { addr, source },
    }
}
