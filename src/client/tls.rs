//! The client over TLS: [`TlsClient`], the configuration and name every connection of a
//! run uses, on [`crate::tls`]'s configurations and handshakes; and pipe mode over TLS.
//!
//! `send`, the interactive session and the banner are the plain ones run on the blocking
//! [`tls::BlockingStream`] that [`TlsClient::connect`] returns (a
//! [`Connection`](super::Connection)). Pipe mode is not: it runs [`tls::pipe`] on a
//! current-thread runtime, both directions on the one stream, since a TLS connection cannot
//! be cloned per direction the way a socket can. A server that closes without
//! `close_notify` may have cut its reply short: that is reported as
//! [`ClientError::Truncated`].

use std::io::{self, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite};

use super::banner::read_banner_async;
use super::{connect, ClientError};
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

/// [`pipe`](super::pipe) over TLS: `input` through the server into `output`, full duplex
/// and binary-safe, on a current-thread runtime of its own. At input EOF it sends
/// `close_notify` and FIN; it ends at the server's `close_notify`.
///
/// With `banner` (`--banner`), the server's banner line is read first, inside TLS after the
/// handshake, within `timeout`, and written there as it came; then the pipe begins. The
/// errors are [`read_banner`](super::read_banner)'s.
pub fn pipe_tls<R, W>(
    target: &str,
    timeout: Duration,
    client: &TlsClient,
    banner: Option<&mut dyn Write>,
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
        let mut stream = tls::connect(tcp, &client.config, client.name.clone(), timeout).await?;
        if let Some(to) = banner {
            let line = read_banner_async(&mut stream, (addr, true), timeout).await?;
            to.write_all(&line)
                .and_then(|()| to.flush())
                .map_err(local("writing the banner"))?;
        }
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
