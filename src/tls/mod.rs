//! TLS for both sides, with rustls: certificates, configurations, handshakes and the
//! full-duplex pipe, so that the server's connection core and the client's modes only have
//! to put a TLS stream where a TCP stream was.
//!
//! # Pieces
//!
//! | file | job |
//! | --- | --- |
//! | [`pem`](mod@pem) | reading a PEM certificate chain and private key (PKCS#8, PKCS#1, SEC1), with errors that name the file |
//! | [`server`](mod@server) | the reloadable certificate ([`CertStore`]), the [`ServerConfig`](rustls::ServerConfig), the self-signed pair, the handshake with its timeout and the failure `reason` |
//! | [`client`](mod@client) | the [`ClientConfig`](rustls::ClientConfig) (system roots, `--ca`, `--insecure`), SNI, blocking and async connects, one-line verification errors |
//! | [`transport`](mod@transport) | [`ServerTransport`]: an established server connection in the shape of the connection core's `Transport` seam |
//! | [`pipe`](mod@pipe) | pipe mode over TLS: full duplex on one stream, half-close by `close_notify` and FIN |
//!
//! # Choices
//!
//! - **Provider: `ring`.** rustls's default, `aws-lc-rs`, builds a large C library (and wants
//!   cmake and nasm on some targets); `ring` builds in seconds on the 2-core machines this is
//!   made on. Every configuration here names the provider explicitly
//!   ([`provider`]), so nothing depends on a process-wide default being installed.
//! - **Versions: TLS 1.3 and TLS 1.2**, the ring provider's default cipher suites.
//! - **Client roots: `rustls-native-certs`**, not `webpki-roots`. The system store is what
//!   curl, openssl and the rest of the machine trust: a company CA installed there is trusted
//!   here too, and `SSL_CERT_FILE` / `SSL_CERT_DIR` point it elsewhere as they do for openssl.
//!   `webpki-roots` would compile Mozilla's list into the binary and trust no private CA,
//!   which is the usual case for a test service; its one advantage (working where no store
//!   exists, as in a bare container) is covered by `--ca FILE`, and the error for an empty
//!   store says so.
//! - **No kTLS** (the kernel here has none) and no 0-RTT: early data could be replayed.

pub mod client;
pub mod pem;
pub mod pipe;
pub mod server;
pub mod transport;

use std::io;
use std::path::PathBuf;
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::SupportedProtocolVersion;

pub use client::{
    client_config, client_config_for, close_write, connect, connect_blocking, describe,
    handshake_error, server_name, session_info, BlockingStream, SessionInfo,
};
pub use pem::{load_certs, load_key, load_pair};
pub use pipe::{pipe, PipeError, PipeStats};
pub use server::{
    accept, accept_after, self_signed, server_config, server_config_for, CertStore, HandshakeError,
    HandshakeFailure, ServerStream,
};
pub use transport::{ServerTransport, Socket};

/// The protocol versions spoken by default, newest first.
pub static ALL_VERSIONS: &[&SupportedProtocolVersion] =
    &[&rustls::version::TLS13, &rustls::version::TLS12];

/// The crypto provider every configuration here is built with: `ring` and its default
/// cipher suites and key exchange groups.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Everything that can go wrong setting TLS up or shaking hands, as one line each.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A certificate or key file could not be read at all.
    #[error("could not read {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// What the system said.
        source: io::Error,
    },
    /// A file is not valid PEM.
    #[error("{} is not valid PEM: {reason}", path.display())]
    Pem {
        /// The file.
        path: PathBuf,
        /// What is wrong, as the PEM reader says it.
        reason: String,
    },
    /// A certificate file holds no `CERTIFICATE` section.
    #[error("no certificate in {}", path.display())]
    NoCertificate {
        /// The file.
        path: PathBuf,
    },
    /// A key file holds no usable private key section.
    #[error("no private key in {}{}", path.display(), if *encrypted { " (it is encrypted: decrypt it first, e.g. `openssl pkey -in KEY -out KEY.plain`)" } else { " (PKCS#8, PKCS#1 and SEC1 PEM are read)" })]
    NoPrivateKey {
        /// The file.
        path: PathBuf,
        /// The file holds an `ENCRYPTED PRIVATE KEY`, which is not read.
        encrypted: bool,
    },
    /// A private key was found but is of a kind the provider cannot sign with.
    #[error("unusable private key in {}: {reason}", path.display())]
    BadKey {
        /// The file.
        path: PathBuf,
        /// What rustls said.
        reason: String,
    },
    /// A certificate was found but could not be parsed.
    #[error("bad certificate in {}: {reason}", path.display())]
    BadCertificate {
        /// The file.
        path: PathBuf,
        /// What rustls or webpki said.
        reason: String,
    },
    /// The private key is not the key of the first certificate in the chain.
    #[error("key does not match certificate: {} is not the key of the first certificate in {}", key.display(), cert.display())]
    KeyMismatch {
        /// The certificate chain file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
    },
    /// The system store has no root certificate the client could trust.
    #[error("no trusted root certificates in the system store{detail} (install ca-certificates, set SSL_CERT_FILE, or pass --ca FILE)")]
    NoRoots {
        /// What the store's loader reported, if anything, with a leading separator.
        detail: String,
    },
    /// A host name or `--sni` value that is neither a DNS name nor an IP address.
    #[error("{name:?} is not a valid TLS server name (a DNS name or an IP address)")]
    BadServerName {
        /// The name as given.
        name: String,
    },
    /// rcgen could not make the self-signed certificate.
    #[error("could not make a self-signed certificate: {0}")]
    Generate(#[from] rcgen::Error),
    /// The self-signed certificate could not be written for the clients.
    #[error("could not write the certificate to {}: {source}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// What the system said.
        source: io::Error,
    },
    /// rustls refused the configuration (a version or suite the provider lacks).
    #[error("TLS configuration: {0}")]
    Config(rustls::Error),
    /// The handshake with a server failed: the certificate was not trusted, the server spoke
    /// no TLS, or the connection broke. `reason` is [`describe`]'s one line.
    #[error("TLS handshake with {addr} failed: {reason}")]
    Handshake {
        /// The server's address, as the client resolved it.
        addr: std::net::SocketAddr,
        /// What went wrong, for a person, with the likely fix.
        reason: String,
        /// The rustls error, where there is one (a verification failure, a protocol error).
        tls: Option<rustls::Error>,
    },
}

impl TlsError {
    /// The rustls error behind a failed handshake, if it was one: lets a caller tell a
    /// certificate failure from a broken connection without matching strings.
    pub fn rustls(&self) -> Option<&rustls::Error> {
        match self {
            TlsError::Handshake { tls, .. } => tls.as_ref(),
            TlsError::Config(e) => Some(e),
            _ => None,
        }
    }
}

/// The rustls error inside an I/O error, as tokio-rustls and `StreamOwned` report them.
pub fn rustls_error(e: &io::Error) -> Option<&rustls::Error> {
    e.get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
}
