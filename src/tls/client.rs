//! The client's side of TLS: whom to trust, which name to ask for, the handshake, and one
//! line for a person when it fails.
//!
//! `send` and the interactive session use the blocking [`connect_blocking`] (a
//! [`BlockingStream`] reads and writes like a `TcpStream`; its socket is `.sock`); `bench`,
//! `check` and pipe mode use the async [`connect`]. Both finish the handshake before they
//! return, so a certificate the client does not trust is reported at connect, with the
//! address, and never as a failed read later.

use std::io::{self, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, ClientConnection, DigitallySignedStruct, RootCertStore,
    SignatureScheme, StreamOwned, SupportedProtocolVersion,
};

use super::{pem, provider, rustls_error, TlsError, ALL_VERSIONS};

/// A TLS connection for the blocking client modes. `stream.sock` is the `TcpStream`
/// underneath (for `set_read_timeout`, `peer_addr`); reads end with `Ok(0)` at the server's
/// `close_notify`, and fail with `UnexpectedEof` if the server closed without one.
pub type BlockingStream = StreamOwned<ClientConnection, TcpStream>;

/// The client configuration: TLS 1.3 and 1.2, verifying the server against the system's
/// roots, or only against the certificates in `ca` (`--ca FILE`), or not at all
/// (`insecure`, which wins over `ca`).
pub fn client_config(ca: Option<&Path>, insecure: bool) -> Result<Arc<ClientConfig>, TlsError> {
    client_config_for(ca, insecure, ALL_VERSIONS)
}

/// [`client_config`] restricted to `versions` (`check` uses it to try each version alone).
pub fn client_config_for(
    ca: Option<&Path>,
    insecure: bool,
    versions: &[&'static SupportedProtocolVersion],
) -> Result<Arc<ClientConfig>, TlsError> {
    let provider = provider();
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(versions)
        .map_err(TlsError::Config)?;
    let config = if insecure {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAnyCertificate(provider)))
            .with_no_client_auth()
    } else {
        let roots = match ca {
            Some(path) => ca_roots(path)?,
            None => system_roots()?,
        };
        builder.with_root_certificates(roots).with_no_client_auth()
    };
    Ok(Arc::new(config))
}

/// The roots in a `--ca` file: every certificate in it is trusted, and nothing else.
fn ca_roots(path: &Path) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    for cert in pem::load_certs(path)? {
        roots.add(cert).map_err(|e| TlsError::BadCertificate {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
    }
    Ok(roots)
}

/// The system's roots, as openssl finds them (`SSL_CERT_FILE`, `SSL_CERT_DIR`, then the
/// distribution's bundle). Certificates the store holds but webpki cannot parse are skipped.
fn system_roots() -> Result<RootCertStore, TlsError> {
    let found = rustls_native_certs::load_native_certs();
    let mut roots = RootCertStore::empty();
    roots.add_parsable_certificates(found.certs);
    if roots.is_empty() {
        let detail = match found.errors.first() {
            Some(e) => format!(": {e}"),
            None => String::new(),
        };
        return Err(TlsError::NoRoots { detail });
    }
    Ok(roots)
}

/// The line the client writes to stderr, once per run, when `--insecure` is on.
pub const INSECURE_WARNING: &str = "upcase: warning: --insecure: the server's certificate is \
    not verified; anyone on the path can read and change this connection";

/// `--insecure`: a verifier that accepts **any** certificate for **any** name, expired or
/// not, signed by anyone.
///
/// **This gives up everything TLS authenticates**: anyone between the client and the server
/// can read and change the traffic. It only keeps the handshake's signatures checked, so that
/// the connection is at least encrypted to whoever answered. The client says so on stderr
/// once per run; it exists for trying a server whose CA file is not at hand.
#[derive(Debug)]
struct AcceptAnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// The name to ask for (SNI) and to verify the certificate against: `sni` if given
/// (`--sni NAME`), else the host part of `target` (`localhost:2278` → `localhost`,
/// `[::1]:2278` → `::1`). An IP address is verified against the certificate's IP names and
/// sends no SNI, as RFC 6066 says.
pub fn server_name(target: &str, sni: Option<&str>) -> Result<ServerName<'static>, TlsError> {
    let name = sni.unwrap_or_else(|| host_of(target));
    ServerName::try_from(name.to_owned()).map_err(|_| TlsError::BadServerName {
        name: name.to_owned(),
    })
}

/// The host of `host:port`, `[v6]:port`, `[v6]`, or a bare host.
fn host_of(target: &str) -> &str {
    if let Some(rest) = target.strip_prefix('[') {
        if let Some(end) = rest.find(']') {
            return &rest[..end];
        }
    }
    match target.rsplit_once(':') {
        // A bare IPv6 address has more than one colon and no port.
        Some((host, port))
            if !host.contains(':')
                && !port.is_empty()
                && port.bytes().all(|b| b.is_ascii_digit()) =>
        {
            host
        }
        _ => target,
    }
}

/// Shakes hands on a connected `tcp`, blocking, within `timeout`, and returns the stream.
/// The socket's own timeouts are put back as they were afterwards.
pub fn connect_blocking(
    mut tcp: TcpStream,
    config: &Arc<ClientConfig>,
    name: ServerName<'static>,
    timeout: Duration,
) -> Result<BlockingStream, TlsError> {
    let addr = peer(&tcp);
    let fail = |e: io::Error| handshake_error(addr, timeout, e);
    let before = (tcp.read_timeout(), tcp.write_timeout());
    let mut conn = ClientConnection::new(config.clone(), name).map_err(TlsError::Config)?;
    tcp.set_read_timeout(Some(timeout)).map_err(fail)?;
    tcp.set_write_timeout(Some(timeout)).map_err(fail)?;
    while conn.is_handshaking() {
        conn.complete_io(&mut tcp).map_err(fail)?;
    }
    if let (Ok(read), Ok(write)) = before {
        tcp.set_read_timeout(read).map_err(fail)?;
        tcp.set_write_timeout(write).map_err(fail)?;
    }
    Ok(StreamOwned::new(conn, tcp))
}

/// Half-closes a blocking TLS stream: `close_notify`, then FIN. The server answers what it
/// still owes and closes; reads go on until then.
pub fn close_write(stream: &mut BlockingStream) -> io::Result<()> {
    stream.conn.send_close_notify();
    stream.flush()?;
    stream.sock.shutdown(Shutdown::Write)
}

/// Shakes hands on a connected `tcp` within `timeout`, and returns the tokio stream.
pub async fn connect(
    tcp: tokio::net::TcpStream,
    config: &Arc<ClientConfig>,
    name: ServerName<'static>,
    timeout: Duration,
) -> Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>, TlsError> {
    let addr = tcp
        .peer_addr()
        .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
    let connector = tokio_rustls::TlsConnector::from(config.clone());
    match tokio::time::timeout(timeout, connector.connect(name, tcp)).await {
        Ok(Ok(stream)) => Ok(stream),
        Ok(Err(e)) => Err(handshake_error(addr, timeout, e)),
        Err(_) => Err(handshake_error(
            addr,
            timeout,
            io::Error::from(io::ErrorKind::TimedOut),
        )),
    }
}

fn peer(tcp: &TcpStream) -> SocketAddr {
    tcp.peer_addr()
        .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)))
}

/// The [`TlsError::Handshake`] for a client handshake with `addr` that failed with `e`.
pub fn handshake_error(addr: SocketAddr, timeout: Duration, e: io::Error) -> TlsError {
    let tls = rustls_error(&e).cloned();
    let reason = match &tls {
        Some(tls) => describe(tls),
        None => match e.kind() {
            io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => format!(
                "no answer within {} (is it a TLS port?)",
                humantime::format_duration(timeout)
            ),
            io::ErrorKind::UnexpectedEof => {
                "the server closed the connection during the handshake (is it a TLS port?)".into()
            }
            io::ErrorKind::ConnectionReset => {
                "the server reset the connection during the handshake".into()
            }
            _ => e.to_string(),
        },
    };
    TlsError::Handshake { addr, reason, tls }
}

/// What a rustls error means for a person, in one line, with the fix where there is one:
/// "unknown issuer: ...", "name mismatch: certificate is for X, Y", "expired: ...".
pub fn describe(e: &rustls::Error) -> String {
    use rustls::Error;
    match e {
        Error::InvalidCertificate(c) => describe_certificate(c),
        Error::AlertReceived(alert) => {
            format!("the server refused the handshake (alert {alert:?})")
        }
        Error::InvalidMessage(_)
        | Error::InappropriateMessage { .. }
        | Error::InappropriateHandshakeMessage { .. } => {
            "the server did not answer in TLS (is it a plain-text port?)".into()
        }
        Error::PeerIncompatible(why) => {
            format!("no TLS version or cipher suite in common with the server ({why:?})")
        }
        other => other.to_string(),
    }
}

fn describe_certificate(c: &CertificateError) -> String {
    match c {
        CertificateError::UnknownIssuer => "unknown issuer: the certificate is not signed by \
            a CA this client trusts (pass --ca FILE with that CA, or --insecure)"
            .into(),
        CertificateError::NotValidForNameContext {
            expected,
            presented,
        } => format!(
            "name mismatch: certificate is for {}, not {} (connect by one of those names, or \
             pass --sni NAME)",
            if presented.is_empty() {
                "no name".to_owned()
            } else {
                presented
                    .iter()
                    .map(|n| tidy_name(n))
                    .collect::<Vec<_>>()
                    .join(", ")
            },
            expected.to_str()
        ),
        CertificateError::NotValidForName => {
            "name mismatch: the certificate is not for this name (pass --sni NAME)".into()
        }
        CertificateError::ExpiredContext { time, not_after } => format!(
            "expired: the certificate was valid until {}, and it is {} now",
            rfc3339(*not_after),
            rfc3339(*time)
        ),
        CertificateError::Expired => "expired: the certificate is no longer valid".into(),
        CertificateError::NotValidYetContext { time, not_before } => format!(
            "not yet valid: the certificate is valid from {}, and it is {} now",
            rfc3339(*not_before),
            rfc3339(*time)
        ),
        CertificateError::NotValidYet => "not yet valid: the certificate's time has not come \
            (is this machine's clock right?)"
            .into(),
        CertificateError::Revoked => "revoked: the certificate has been revoked".into(),
        CertificateError::BadSignature => "bad signature on the certificate".into(),
        CertificateError::InvalidPurpose | CertificateError::InvalidPurposeContext { .. } => {
            "the certificate is not one for a TLS server".into()
        }
        other => format!("bad certificate: {other:?}"),
    }
}

/// webpki presents a certificate's names in their `Debug` form (`DnsName("a.example")`,
/// `IpAddress(10.0.0.1)`); a person wants the name alone.
fn tidy_name(presented: &str) -> &str {
    for (open, close) in [("DnsName(\"", "\")"), ("IpAddress(", ")")] {
        if let Some(name) = presented
            .strip_prefix(open)
            .and_then(|rest| rest.strip_suffix(close))
        {
            return name;
        }
    }
    presented
}

fn rfc3339(t: UnixTime) -> humantime::Rfc3339Timestamp {
    humantime::format_rfc3339_seconds(std::time::UNIX_EPOCH + Duration::from_secs(t.as_secs()))
}

/// What a connection negotiated, for reports: `bench` and `check` print and serialize it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SessionInfo {
    /// `TLSv1.3` or `TLSv1.2`.
    pub version: String,
    /// The cipher suite's IANA name, e.g. `TLS13_AES_256_GCM_SHA384`.
    pub cipher_suite: String,
}

/// The version and cipher suite of an established connection (`conn` is a
/// `ClientConnection` or `ServerConnection`, or `TlsStream::get_ref().1`).
pub fn session_info(conn: &rustls::CommonState) -> SessionInfo {
    let version = match conn.protocol_version() {
        Some(rustls::ProtocolVersion::TLSv1_3) => "TLSv1.3".to_owned(),
        Some(rustls::ProtocolVersion::TLSv1_2) => "TLSv1.2".to_owned(),
        Some(other) => format!("{other:?}"),
        None => "none".to_owned(),
    };
    let cipher_suite = conn
        .negotiated_cipher_suite()
        .map(|s| format!("{:?}", s.suite()))
        .unwrap_or_else(|| "none".to_owned());
    SessionInfo {
        version,
        cipher_suite,
    }
}

#[cfg(test)]
mod tests {
    use super::{host_of, tidy_name};

    #[test]
    fn presented_names_lose_their_debug_wrapping() {
        assert_eq!(tidy_name("DnsName(\"a.example\")"), "a.example");
        assert_eq!(tidy_name("IpAddress(10.1.2.3)"), "10.1.2.3");
        assert_eq!(tidy_name("DirectoryName"), "DirectoryName");
    }

    #[test]
    fn host_is_taken_from_each_target_form() {
        assert_eq!(host_of("localhost:2278"), "localhost");
        assert_eq!(host_of("127.0.0.1:2278"), "127.0.0.1");
        assert_eq!(host_of("[::1]:2278"), "::1");
        assert_eq!(host_of("[::1]"), "::1");
        assert_eq!(host_of("::1"), "::1");
        assert_eq!(host_of("example.com"), "example.com");
    }
}
