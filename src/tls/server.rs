//! The server's side of TLS: the certificate it serves (reloadable), its configuration, the
//! handshake with its timeout, and why a handshake failed.
//!
//! The connection core runs a TLS connection as it runs a TCP one, on the stream that
//! [`accept`] returns ([`ServerStream`], `AsyncRead + AsyncWrite`); or, for a driver that
//! does its own readiness, on the `rustls::ServerConnection` that
//! `ServerStream::into_inner()` hands back with the socket. Either way the handshake is
//! done first, here, under [`DEFAULT_TLS_HANDSHAKE_TIMEOUT`](crate::limits::DEFAULT_TLS_HANDSHAKE_TIMEOUT).

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::task::{Context, Poll};
use std::time::Duration;

use rustls::server::{
    ClientHello, ResolvesServerCert, ServerSessionMemoryCache, StoresServerSessions,
};
use rustls::sign::CertifiedKey;
use rustls::{ServerConfig, SupportedProtocolVersion};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_rustls::TlsAcceptor;

use super::{pem, provider, rustls_error, TlsError, ALL_VERSIONS};
use crate::limits::TLS_SESSION_CACHE;

/// The certificate and key the server presents, swappable while it runs.
///
/// It is the configuration's [`ResolvesServerCert`]: each handshake takes the pair current
/// when its client hello arrives, so [`CertStore::reload`] changes what the next handshake
/// sees and nothing that an established connection has (it keeps its session keys).
///
/// It also holds the configuration's session cache, and replacing the pair empties it: a
/// resumed session presents no certificate, so without that a client could go on resuming
/// into the old identity after the reload that was meant to retire it.
pub struct CertStore {
    current: RwLock<Arc<CertifiedKey>>,
    files: Option<(PathBuf, PathBuf)>,
    generation: AtomicU64,
    sessions: Arc<Sessions>,
}

impl fmt::Debug for CertStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CertStore")
            .field("files", &self.files)
            .field("generation", &self.generation())
            .finish_non_exhaustive()
    }
}

impl CertStore {
    /// Reads the pair from `cert` (a PEM chain) and `key` (a PEM key), to serve and to
    /// read again on [`reload`](Self::reload).
    pub fn from_files(cert: &Path, key: &Path) -> Result<Arc<Self>, TlsError> {
        let pair = pem::load_pair(cert, key)?;
        Ok(Arc::new(CertStore {
            current: RwLock::new(pair),
            files: Some((cert.to_path_buf(), key.to_path_buf())),
            generation: AtomicU64::new(1),
            sessions: Arc::default(),
        }))
    }

    /// Serves a pair made in memory (the self-signed one): nothing to reload.
    pub fn from_pair(pair: Arc<CertifiedKey>) -> Arc<Self> {
        Arc::new(CertStore {
            current: RwLock::new(pair),
            files: None,
            generation: AtomicU64::new(1),
            sessions: Arc::default(),
        })
    }

    /// The certificate and key files this store reads, if it was made from files.
    pub fn files(&self) -> Option<(&Path, &Path)> {
        self.files.as_ref().map(|(c, k)| (c.as_path(), k.as_path()))
    }

    /// Reads the files again and, if they hold a good pair, serves it from the next
    /// handshake on. What SIGHUP calls.
    ///
    /// Returns `Ok(true)` when the pair was replaced, `Ok(false)` when the store has no
    /// files (a self-signed pair), and the error when the new files are missing, malformed
    /// or do not match: the old pair is then kept and goes on being served.
    pub fn reload(&self) -> Result<bool, TlsError> {
        let Some((cert, key)) = &self.files else {
            return Ok(false);
        };
        let pair = pem::load_pair(cert, key)?;
        self.replace(pair);
        Ok(true)
    }

    /// Serves `pair` from the next handshake on, and forgets every session made with the
    /// old one so that none is resumed.
    pub fn replace(&self, pair: Arc<CertifiedKey>) {
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = pair;
        self.sessions.clear();
        self.generation.fetch_add(1, Ordering::Relaxed);
    }

    /// The pair served now.
    pub fn current(&self) -> Arc<CertifiedKey> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// How many pairs this store has served: 1 at first, one more for each replacement.
    /// For logs ("certificate reloaded, generation 3").
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Relaxed)
    }
}

/// The server's session cache: rustls's own, behind a lock so that a reload can swap in an
/// empty one. The lock is taken once per handshake (to store or find a session), never per
/// byte.
#[derive(Debug)]
struct Sessions(RwLock<Arc<dyn StoresServerSessions>>);

impl Default for Sessions {
    fn default() -> Self {
        Sessions(RwLock::new(ServerSessionMemoryCache::new(
            TLS_SESSION_CACHE,
        )))
    }
}

impl Sessions {
    fn cache(&self) -> Arc<dyn StoresServerSessions> {
        self.0.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn clear(&self) {
        *self.0.write().unwrap_or_else(|e| e.into_inner()) =
            ServerSessionMemoryCache::new(TLS_SESSION_CACHE);
    }
}

impl StoresServerSessions for Sessions {
    fn put(&self, key: Vec<u8>, value: Vec<u8>) -> bool {
        self.cache().put(key, value)
    }

    fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        self.cache().get(key)
    }

    fn take(&self, key: &[u8]) -> Option<Vec<u8>> {
        self.cache().take(key)
    }

    fn can_cache(&self) -> bool {
        true
    }
}

impl ResolvesServerCert for CertStore {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }
}

/// The server configuration for TLS 1.3 and 1.2, serving whatever `store` holds.
pub fn server_config(store: Arc<CertStore>) -> Result<Arc<ServerConfig>, TlsError> {
    server_config_for(store, ALL_VERSIONS)
}

/// [`server_config`] restricted to `versions` (tests use it to force TLS 1.2).
pub fn server_config_for(
    store: Arc<CertStore>,
    versions: &[&'static SupportedProtocolVersion],
) -> Result<Arc<ServerConfig>, TlsError> {
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(versions)
        .map_err(TlsError::Config)?
        .with_no_client_auth()
        .with_cert_resolver(store.clone());
    config.session_storage = store.sessions.clone();
    Ok(Arc::new(config))
}

/// The names the self-signed certificate is made for: what a client on this machine types.
pub const SELF_SIGNED_NAMES: [&str; 3] = ["localhost", "127.0.0.1", "::1"];

/// Makes a self-signed certificate for [`SELF_SIGNED_NAMES`] with a fresh P-256 key, writes
/// the certificate (PEM) to `path` for clients' `--ca`, and returns the store that serves it.
///
/// The key never leaves memory: a restart makes a new pair, and clients need the new file.
pub fn self_signed(path: &Path) -> Result<Arc<CertStore>, TlsError> {
    let key = rcgen::KeyPair::generate()?;
    let mut params = rcgen::CertificateParams::new(SELF_SIGNED_NAMES.map(String::from).to_vec())?;
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "upcased self-signed");
    let cert = params.self_signed(&key)?;
    std::fs::write(path, cert.pem()).map_err(|source| TlsError::Write {
        path: path.to_path_buf(),
        source,
    })?;
    let der = rustls_pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into());
    let signing = provider()
        .key_provider
        .load_private_key(der)
        .map_err(TlsError::Config)?;
    Ok(CertStore::from_pair(Arc::new(CertifiedKey::new(
        vec![cert.der().clone()],
        signing,
    ))))
}

/// Why a handshake failed: the `reason` label of `upcased_tls_handshake_failures_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HandshakeFailure {
    /// The handshake did not finish within the handshake timeout.
    Timeout,
    /// The client sent something that is not TLS: plain text on the TLS port.
    NotTls,
    /// The client spoke TLS, wrongly or with nothing in common (bad client hello, no shared
    /// version or cipher suite, an unexpected message).
    Protocol,
    /// The client refused the handshake with an alert: usually it does not trust the
    /// certificate (`unknown_ca`, `bad_certificate`).
    Rejected,
    /// The client closed or reset the connection during the handshake.
    Closed,
    /// Any other I/O error on the socket.
    Io,
}

impl HandshakeFailure {
    /// Every reason, to register each label at zero before the first failure.
    pub const ALL: [HandshakeFailure; 6] = [
        HandshakeFailure::Timeout,
        HandshakeFailure::NotTls,
        HandshakeFailure::Protocol,
        HandshakeFailure::Rejected,
        HandshakeFailure::Closed,
        HandshakeFailure::Io,
    ];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            HandshakeFailure::Timeout => "timeout",
            HandshakeFailure::NotTls => "not_tls",
            HandshakeFailure::Protocol => "protocol",
            HandshakeFailure::Rejected => "rejected",
            HandshakeFailure::Closed => "closed",
            HandshakeFailure::Io => "io",
        }
    }

    /// Classifies the error of a failed server handshake, as tokio-rustls or
    /// `rustls::ServerConnection::read_tls`/`process_new_packets` report it (a rustls
    /// error inside an I/O error, or a plain I/O error).
    pub fn classify(e: &io::Error) -> HandshakeFailure {
        if let Some(tls) = rustls_error(e) {
            return Self::classify_rustls(tls);
        }
        if e.get_ref().is_some_and(|inner| inner.is::<NotTls>()) {
            return HandshakeFailure::NotTls;
        }
        match e.kind() {
            io::ErrorKind::TimedOut => HandshakeFailure::Timeout,
            io::ErrorKind::UnexpectedEof
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::BrokenPipe => HandshakeFailure::Closed,
            _ => HandshakeFailure::Io,
        }
    }

    /// Classifies a rustls error met during a server handshake.
    pub fn classify_rustls(e: &rustls::Error) -> HandshakeFailure {
        use rustls::{Error, InvalidMessage};
        match e {
            // The record header is not TLS's: a content type or version no TLS sends.
            Error::InvalidMessage(
                InvalidMessage::InvalidContentType | InvalidMessage::UnknownProtocolVersion,
            ) => HandshakeFailure::NotTls,
            Error::AlertReceived(_) => HandshakeFailure::Rejected,
            _ => HandshakeFailure::Protocol,
        }
    }
}

impl fmt::Display for HandshakeFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A server handshake that failed: why, for the counter, and the error, for the log.
#[derive(Debug, thiserror::Error)]
#[error("TLS handshake failed ({reason}): {error}")]
pub struct HandshakeError {
    /// The label.
    pub reason: HandshakeFailure,
    /// What rustls or the socket said.
    #[source]
    pub error: io::Error,
}

/// The marker error of [`Sniffed`]: the first byte from the client cannot start TLS.
#[derive(Debug, thiserror::Error)]
#[error("the client did not speak TLS (first byte {0:#04x}, a TLS client hello starts with 0x16)")]
pub struct NotTls(pub u8);

/// The first byte of every TLS client's first record: content type `handshake`.
const TLS_HANDSHAKE_RECORD: u8 = 0x16;

/// The client's stream under the server's TLS, checking only the first byte read.
///
/// A plain-text client that sends a short line ("hi\n") and waits would otherwise hold its
/// slot until the handshake timeout, since rustls waits for a whole 5-byte record header;
/// this fails it at once as [`HandshakeFailure::NotTls`]. After the first byte it is a
/// pass-through (one branch per read).
///
/// It also yields, before anything from `inner`, the client's bytes that were read with a
/// PROXY protocol header ([`Sniffed::with_early`]): the start of its client hello.
#[derive(Debug)]
pub struct Sniffed<IO> {
    inner: IO,
    checked: bool,
    /// Bytes read before the handshake began, not yet handed to rustls.
    early: Vec<u8>,
}

impl<IO> Sniffed<IO> {
    /// Wraps `inner`, whose next byte is the client's first.
    pub fn new(inner: IO) -> Self {
        Self::with_early(inner, Vec::new())
    }

    /// Wraps `inner`, after `early`: the client's first bytes, already read from `inner`
    /// (with the PROXY header they followed).
    pub fn with_early(inner: IO, early: Vec<u8>) -> Self {
        Sniffed {
            inner,
            checked: false,
            early,
        }
    }

    /// Whether some of the early bytes have not been read yet: input waiting that the
    /// socket's readiness does not show.
    pub fn early_pending(&self) -> bool {
        !self.early.is_empty()
    }

    /// The stream underneath (for `peer_addr`, socket options).
    pub fn get_ref(&self) -> &IO {
        &self.inner
    }

    /// The stream underneath, mutably.
    pub fn get_mut(&mut self) -> &mut IO {
        &mut self.inner
    }

    /// The stream underneath, for a driver that goes on without the wrapper.
    pub fn into_inner(self) -> IO {
        self.inner
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for Sniffed<IO> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.checked && this.early.is_empty() {
            return Pin::new(&mut this.inner).poll_read(cx, buf);
        }
        let start = buf.filled().len();
        let poll = if this.early.is_empty() {
            Pin::new(&mut this.inner).poll_read(cx, buf)
        } else {
            let n = this.early.len().min(buf.remaining());
            buf.put_slice(&this.early[..n]);
            this.early.drain(..n);
            if this.early.is_empty() {
                this.early = Vec::new();
            }
            Poll::Ready(Ok(()))
        };
        if let Poll::Ready(Ok(())) = poll {
            if let Some(&first) = buf.filled().get(start) {
                this.checked = true;
                if first != TLS_HANDSHAKE_RECORD {
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        NotTls(first),
                    )));
                }
            }
        }
        poll
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for Sniffed<IO> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

/// A server-side TLS connection after its handshake.
pub type ServerStream<IO> = tokio_rustls::server::TlsStream<Sniffed<IO>>;

/// Runs the server handshake on `io` (the client's stream, after any PROXY header), bounded
/// by `timeout`, and returns the established stream or why it failed.
///
/// A failed handshake has already sent the client whatever alert rustls owed it; the caller
/// drops the stream (closing it), counts `reason` and logs at most once a second.
pub async fn accept<IO>(
    acceptor: &TlsAcceptor,
    io: IO,
    timeout: Duration,
) -> Result<ServerStream<IO>, HandshakeError>
where
    IO: AsyncRead + AsyncWrite + Unpin,
{
    accept_after(acceptor, Vec::new(), io, timeout).await
}

/// [`accept`] on a stream whose first bytes, `early`, were already read from `io`: what
/// followed a PROXY protocol header in its read. The handshake reads them first; `timeout`
/// runs from this call, so it does not include the time the header took.
pub async fn accept_after<IO>(
    acceptor: &TlsAcceptor,
    early: Vec<u8>,
    io: IO,
    timeout: Duration,
) -> Result<ServerStream<IO>, HandshakeError>
where
    IO: AsyncRead + AsyncWrite + Unpin,
{
    let io = Sniffed::with_early(io, early);
    match tokio::time::timeout(timeout, acceptor.accept(io)).await {
        Ok(Ok(stream)) => Ok(stream),
        Ok(Err(error)) => Err(HandshakeError {
            reason: HandshakeFailure::classify(&error),
            error,
        }),
        Err(_) => Err(HandshakeError {
            reason: HandshakeFailure::Timeout,
            error: io::Error::new(
                io::ErrorKind::TimedOut,
                format!(
                    "no handshake within {}",
                    humantime::format_duration(timeout)
                ),
            ),
        }),
    }
}
