//! The TLS pieces on real loopback sockets: a tokio-rustls server built from
//! `tls::server_config`, clients from `tls::client_config`, certificates made here with rcgen.

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use upcase::tls::{self, CertStore, HandshakeFailure, PipeError, TlsError};

/// Generous bound for anything a test waits on: the machine is small and shared.
const PATIENCE: Duration = Duration::from_secs(20);

// ---- certificates -------------------------------------------------------------------------

struct Ca {
    issuer: Issuer<'static, KeyPair>,
    pem: String,
}

fn ca(name: &str) -> Ca {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let cert = params.self_signed(&key).unwrap();
    Ca {
        issuer: Issuer::new(params, key),
        pem: cert.pem(),
    }
}

struct Leaf {
    cert_pem: String,
    key_pem: String,
    der: Vec<u8>,
    key: KeyPair,
}

fn leaf(ca: &Ca, names: &[&str], expired: bool) -> Leaf {
    let key = KeyPair::generate().unwrap();
    let mut params =
        CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap();
    params.distinguished_name.push(DnType::CommonName, names[0]);
    if expired {
        params.not_before = rcgen::date_time_ymd(2000, 1, 1);
        params.not_after = rcgen::date_time_ymd(2001, 1, 1);
    }
    let cert = params.signed_by(&key, &ca.issuer).unwrap();
    Leaf {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
        der: cert.der().to_vec(),
        key,
    }
}

/// A directory of PEM files that goes away with the test.
struct Files {
    dir: tempfile::TempDir,
}

impl Files {
    fn new() -> Files {
        Files {
            dir: tempfile::tempdir().unwrap(),
        }
    }
    fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path
    }
    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

/// Writes `leaf` as `cert.pem` + `key.pem` and the CA as `ca.pem`.
fn write_pair(files: &Files, ca: &Ca, leaf: &Leaf) -> (PathBuf, PathBuf, PathBuf) {
    (
        files.write("cert.pem", &leaf.cert_pem),
        files.write("key.pem", &leaf.key_pem),
        files.write("ca.pem", &ca.pem),
    )
}

// ---- a TLS upcasing server on 127.0.0.1:0 --------------------------------------------------

/// What the test server saw of each connection, in order.
#[derive(Debug, PartialEq)]
enum Seen {
    /// The handshake failed for this reason.
    Failed(HandshakeFailure),
    /// The connection was served; `close_notify` is whether the client's end of input came
    /// with one (a read of 0) rather than a bare FIN (`UnexpectedEof`).
    Served { close_notify: bool },
}

struct TlsServer {
    addr: SocketAddr,
    seen: mpsc::UnboundedReceiver<Seen>,
}

impl TlsServer {
    async fn next(&mut self) -> Seen {
        tokio::time::timeout(PATIENCE, self.seen.recv())
            .await
            .expect("the server reports each connection")
            .expect("the server is running")
    }
}

/// Upper-cases ASCII and echoes until the client's end of input, then sends
/// `close_notify` and FIN.
async fn serve(config: Arc<rustls::ServerConfig>, handshake_timeout: Duration) -> TlsServer {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, seen) = mpsc::unbounded_channel();
    let acceptor = tokio_rustls::TlsAcceptor::from(config);
    tokio::spawn(async move {
        loop {
            let (tcp, _) = listener.accept().await.unwrap();
            let acceptor = acceptor.clone();
            let tx = tx.clone();
            tokio::spawn(async move {
                let mut stream = match tls::accept(&acceptor, tcp, handshake_timeout).await {
                    Ok(s) => s,
                    Err(e) => {
                        let _ = tx.send(Seen::Failed(e.reason));
                        return;
                    }
                };
                let mut buf = vec![0u8; 64 * 1024];
                let close_notify = loop {
                    match stream.read(&mut buf).await {
                        Ok(0) => break true,
                        Ok(n) => {
                            buf[..n].make_ascii_uppercase();
                            if stream.write_all(&buf[..n]).await.is_err() {
                                return;
                            }
                        }
                        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => break false,
                        Err(_) => return,
                    }
                };
                let _ = stream.shutdown().await;
                let _ = tx.send(Seen::Served { close_notify });
            });
        }
    });
    TlsServer { addr, seen }
}

async fn serve_files(cert: &Path, key: &Path) -> (Arc<CertStore>, TlsServer) {
    let store = CertStore::from_files(cert, key).unwrap();
    let server = serve(tls::server_config(store.clone()).unwrap(), PATIENCE).await;
    (store, server)
}

async fn tls_connect(
    addr: SocketAddr,
    config: &Arc<rustls::ClientConfig>,
    name: &str,
) -> Result<tokio_rustls::client::TlsStream<TcpStream>, TlsError> {
    let tcp = TcpStream::connect(addr).await.unwrap();
    tls::connect(tcp, config, tls::server_name(name, None)?, PATIENCE).await
}

async fn round_trip(stream: &mut tokio_rustls::client::TlsStream<TcpStream>, text: &[u8]) {
    stream.write_all(text).await.unwrap();
    let mut reply = vec![0u8; text.len()];
    tokio::time::timeout(PATIENCE, stream.read_exact(&mut reply))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(reply, text.to_ascii_uppercase());
}

fn peer_cert(stream: &tokio_rustls::client::TlsStream<TcpStream>) -> Vec<u8> {
    stream.get_ref().1.peer_certificates().unwrap()[0].to_vec()
}

// ---- round trips ---------------------------------------------------------------------------

#[tokio::test]
async fn async_round_trip_speaks_tls13_and_tls12() {
    let ca = ca("test CA");
    let leaf = leaf(&ca, &["localhost", "127.0.0.1"], false);
    let files = Files::new();
    let (cert, key, ca_file) = write_pair(&files, &ca, &leaf);
    let (_store, mut server) = serve_files(&cert, &key).await;

    let config = tls::client_config(Some(&ca_file), false).unwrap();
    let mut s = tls_connect(server.addr, &config, "localhost:2278")
        .await
        .unwrap();
    let info = tls::session_info(s.get_ref().1);
    assert_eq!(info.version, "TLSv1.3");
    assert!(info.cipher_suite.starts_with("TLS13_"), "{info:?}");
    round_trip(&mut s, b"hello, world\n").await;
    s.shutdown().await.unwrap();
    assert_eq!(server.next().await, Seen::Served { close_notify: true });

    let tls12 = tls::client_config_for(Some(&ca_file), false, &[&rustls::version::TLS12]).unwrap();
    let mut s = tls_connect(server.addr, &tls12, "127.0.0.1").await.unwrap();
    let info = tls::session_info(s.get_ref().1);
    assert_eq!(info.version, "TLSv1.2");
    assert!(info.cipher_suite.starts_with("TLS_ECDHE_"), "{info:?}");
    round_trip(&mut s, b"twelve\n").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocking_round_trip_and_half_close() {
    let ca = ca("test CA");
    let leaf = leaf(&ca, &["localhost"], false);
    let files = Files::new();
    let (cert, key, ca_file) = write_pair(&files, &ca, &leaf);
    let (_store, mut server) = serve_files(&cert, &key).await;
    let addr = server.addr;

    let reply = tokio::task::spawn_blocking(move || {
        let config = tls::client_config(Some(&ca_file), false).unwrap();
        let tcp = std::net::TcpStream::connect(addr).unwrap();
        tcp.set_read_timeout(Some(PATIENCE)).unwrap();
        let name = tls::server_name("localhost:1", None).unwrap();
        let mut s = tls::connect_blocking(tcp, &config, name, PATIENCE).unwrap();
        // The socket's own timeout is put back after the handshake.
        assert_eq!(s.sock.read_timeout().unwrap(), Some(PATIENCE));
        s.write_all(b"abc\xff\x00xyz").unwrap();
        tls::client::close_write(&mut s).unwrap();
        let mut reply = Vec::new();
        s.read_to_end(&mut reply).unwrap();
        reply
    })
    .await
    .unwrap();
    assert_eq!(reply, b"ABC\xff\x00XYZ");
    assert_eq!(server.next().await, Seen::Served { close_notify: true });
}

#[tokio::test]
async fn self_signed_certificate_serves_every_loopback_name() {
    let files = Files::new();
    let ca_file = files.path("ca.pem");
    let store = tls::self_signed(&ca_file).unwrap();
    assert!(std::fs::read_to_string(&ca_file)
        .unwrap()
        .starts_with("-----BEGIN CERTIFICATE-----"));
    assert!(!store.reload().unwrap(), "nothing to reload");
    let mut server = serve(tls::server_config(store).unwrap(), PATIENCE).await;
    let config = tls::client_config(Some(&ca_file), false).unwrap();
    for name in ["localhost", "127.0.0.1", "::1"] {
        let mut s = tls_connect(server.addr, &config, name).await.unwrap();
        round_trip(&mut s, name.as_bytes()).await;
        s.shutdown().await.unwrap();
        assert_eq!(server.next().await, Seen::Served { close_notify: true });
    }
}

#[tokio::test]
async fn insecure_accepts_an_expired_certificate_for_another_name() {
    let ca = ca("nobody trusts this");
    let leaf = leaf(&ca, &["other.example"], true);
    let files = Files::new();
    let (cert, key, _) = write_pair(&files, &ca, &leaf);
    let (_store, _server) = serve_files(&cert, &key).await;
    let config = tls::client_config(None, true).unwrap();
    let mut s = tls_connect(_server.addr, &config, "localhost")
        .await
        .unwrap();
    round_trip(&mut s, b"anyway").await;
}

// ---- reload ------------------------------------------------------------------------------

#[tokio::test]
async fn reload_is_seen_by_the_next_handshake_and_not_by_an_established_connection() {
    let old_ca = ca("old CA");
    let new_ca = ca("new CA");
    let old = leaf(&old_ca, &["localhost"], false);
    let new = leaf(&new_ca, &["localhost"], false);
    let files = Files::new();
    let (cert, key, _) = write_pair(&files, &old_ca, &old);
    let both = files.write("both.pem", &format!("{}{}", old_ca.pem, new_ca.pem));
    let (store, server) = serve_files(&cert, &key).await;
    let config = tls::client_config(Some(&both), false).unwrap();

    let mut before = tls_connect(server.addr, &config, "localhost")
        .await
        .unwrap();
    assert_eq!(peer_cert(&before), old.der);
    round_trip(&mut before, b"before").await;
    // Without a reload, the client resumes (so the check below is not vacuous).
    let mut resumed = tls_connect(server.addr, &config, "localhost")
        .await
        .unwrap();
    round_trip(&mut resumed, b"resumed").await;
    assert_eq!(
        resumed.get_ref().1.handshake_kind(),
        Some(rustls::HandshakeKind::Resumed)
    );

    files.write("cert.pem", &new.cert_pem);
    files.write("key.pem", &new.key_pem);
    assert_eq!(store.generation(), 1);
    assert!(store.reload().unwrap());
    assert_eq!(store.generation(), 2);

    // The same client config would resume the first session, which presents no certificate:
    // the reload forgot it, so this is a full handshake with the new pair.
    let mut after = tls_connect(server.addr, &config, "localhost")
        .await
        .unwrap();
    assert_eq!(
        after.get_ref().1.handshake_kind(),
        Some(rustls::HandshakeKind::Full)
    );
    assert_eq!(peer_cert(&after), new.der);
    round_trip(&mut after, b"after").await;
    // The connection made before the reload goes on, with the certificate it had.
    round_trip(&mut before, b"still there").await;
    assert_eq!(peer_cert(&before), old.der);
}

#[tokio::test]
async fn a_bad_new_pair_is_refused_and_the_old_one_kept() {
    let ca = ca("test CA");
    let good = leaf(&ca, &["localhost"], false);
    let other = leaf(&ca, &["localhost"], false);
    let files = Files::new();
    let (cert, key, ca_file) = write_pair(&files, &ca, &good);
    let (store, server) = serve_files(&cert, &key).await;
    let config = tls::client_config(Some(&ca_file), false).unwrap();

    // Each bad pair in turn: the error says what is wrong with which file.
    files.write("key.pem", &other.key_pem);
    let e = store.reload().unwrap_err().to_string();
    assert!(e.starts_with("key does not match certificate"), "{e}");
    assert!(e.contains("key.pem") && e.contains("cert.pem"), "{e}");

    files.write("key.pem", &good.key_pem);
    files.write("cert.pem", "no PEM here\n");
    let e = store.reload().unwrap_err().to_string();
    assert_eq!(e, format!("no certificate in {}", cert.display()));

    files.write("cert.pem", &good.cert_pem);
    files.write("key.pem", &good.cert_pem);
    let e = store.reload().unwrap_err().to_string();
    assert!(
        e.starts_with(&format!("no private key in {}", key.display())),
        "{e}"
    );

    std::fs::remove_file(&key).unwrap();
    let e = store.reload().unwrap_err().to_string();
    assert!(
        e.starts_with(&format!("could not read {}", key.display())),
        "{e}"
    );

    files.write("cert.pem", "-----BEGIN CERTIFICATE-----\nAAAA\n");
    let e = store.reload().unwrap_err().to_string();
    assert!(e.contains("is not valid PEM"), "{e}");

    assert_eq!(store.generation(), 1);
    let mut s = tls_connect(server.addr, &config, "localhost")
        .await
        .unwrap();
    assert_eq!(peer_cert(&s), good.der);
    round_trip(&mut s, b"old pair").await;
}

// ---- key formats -------------------------------------------------------------------------

/// The contents of the PKCS#8 `privateKey` OCTET STRING: the SEC1 `ECPrivateKey` of an EC
/// key, the PKCS#1 `RSAPrivateKey` of an RSA one.
fn inner_key(pkcs8: &[u8]) -> Vec<u8> {
    // One DER element at `at`: (header length, content length).
    fn element(der: &[u8], at: usize) -> (usize, usize) {
        let first = der[at + 1] as usize;
        if first < 0x80 {
            (2, first)
        } else {
            let n = first & 0x7f;
            let len = der[at + 2..at + 2 + n]
                .iter()
                .fold(0usize, |acc, &b| acc << 8 | b as usize);
            (2 + n, len)
        }
    }
    let (outer_header, _) = element(pkcs8, 0);
    let mut at = outer_header;
    for _ in 0..2 {
        // version INTEGER, then the AlgorithmIdentifier SEQUENCE
        let (h, l) = element(pkcs8, at);
        at += h + l;
    }
    assert_eq!(pkcs8[at], 0x04, "an OCTET STRING");
    let (h, l) = element(pkcs8, at);
    pkcs8[at + h..at + h + l].to_vec()
}

/// Minimal PEM encoding (base64, 64 columns) for the test's own key files.
fn pem_of(label: &str, der: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut b64 = String::new();
    for chunk in der.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, &b)| acc | (b as u32) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                b64.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                b64.push('=');
            }
        }
    }
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).unwrap());
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

#[tokio::test]
async fn pkcs8_sec1_and_pkcs1_keys_are_read() {
    let ca = ca("test CA");
    let ec = leaf(&ca, &["localhost"], false);
    let files = Files::new();
    let ca_file = files.write("ca.pem", &ca.pem);
    let cert = files.write("cert.pem", &ec.cert_pem);
    let config = tls::client_config(Some(&ca_file), false).unwrap();

    let pkcs8 = files.write("pkcs8.pem", &ec.key_pem);
    assert!(matches!(
        tls::load_key(&pkcs8).unwrap(),
        rustls::pki_types::PrivateKeyDer::Pkcs8(_)
    ));
    let sec1 = files.write(
        "sec1.pem",
        &pem_of("EC PRIVATE KEY", &inner_key(&ec.key.serialize_der())),
    );
    assert!(matches!(
        tls::load_key(&sec1).unwrap(),
        rustls::pki_types::PrivateKeyDer::Sec1(_)
    ));
    let (_store, server) = serve_files(&cert, &sec1).await;
    let mut s = tls_connect(server.addr, &config, "localhost")
        .await
        .unwrap();
    round_trip(&mut s, b"sec1").await;

    // The certificate and key in one file work too.
    let both = files.write("both.pem", &format!("{}{}", ec.key_pem, ec.cert_pem));
    tls::load_pair(&both, &both).unwrap();

    // An encrypted key is named as such.
    let enc = files.write(
        "enc.pem",
        "-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n",
    );
    let e = tls::load_key(&enc).unwrap_err().to_string();
    assert!(e.contains("encrypted"), "{e}");

    // PKCS#1 needs an RSA key, which ring cannot make: openssl makes it where it exists.
    let rsa_pkcs8 = files.path("rsa.pem");
    let made = std::process::Command::new("openssl")
        .args([
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
            "-out",
        ])
        .arg(&rsa_pkcs8)
        .stderr(std::process::Stdio::null())
        .status();
    if !matches!(made, Ok(s) if s.success()) {
        eprintln!("SKIPPED: the PKCS#1 case needs `openssl` to make an RSA key");
        return;
    }
    let rsa = KeyPair::from_pem(&std::fs::read_to_string(&rsa_pkcs8).unwrap()).unwrap();
    let rsa_cert = CertificateParams::new(vec!["localhost".to_string()])
        .unwrap()
        .signed_by(&rsa, &ca.issuer)
        .unwrap();
    let cert = files.write("rsa-cert.pem", &rsa_cert.pem());
    let pkcs1 = files.write(
        "pkcs1.pem",
        &pem_of("RSA PRIVATE KEY", &inner_key(&rsa.serialize_der())),
    );
    assert!(matches!(
        tls::load_key(&pkcs1).unwrap(),
        rustls::pki_types::PrivateKeyDer::Pkcs1(_)
    ));
    let (_store, server) = serve_files(&cert, &pkcs1).await;
    let mut s = tls_connect(server.addr, &config, "localhost")
        .await
        .unwrap();
    round_trip(&mut s, b"pkcs1").await;
}

// ---- verification failures: one line, with the address and the reason ----------------------

async fn failure_line(server_leaf: &Leaf, server_ca: &Ca, client_ca: &Ca, name: &str) -> String {
    let files = Files::new();
    let (cert, key, _) = write_pair(&files, server_ca, server_leaf);
    let client_ca_file = files.write("client-ca.pem", &client_ca.pem);
    let (_store, mut server) = serve_files(&cert, &key).await;
    let config = tls::client_config(Some(&client_ca_file), false).unwrap();
    let e = tls_connect(server.addr, &config, name).await.unwrap_err();
    assert!(
        matches!(e.rustls(), Some(rustls::Error::InvalidCertificate(_))),
        "{e:?}"
    );
    // The client says why with an alert; the server counts that as `rejected`.
    assert_eq!(
        server.next().await,
        Seen::Failed(HandshakeFailure::Rejected)
    );
    let line = e.to_string();
    assert!(!line.contains('\n'), "one line: {line}");
    assert!(
        line.starts_with(&format!("TLS handshake with {} failed: ", server.addr)),
        "{line}"
    );
    line
}

#[tokio::test]
async fn a_wrong_ca_is_an_unknown_issuer() {
    let server_ca = ca("server CA");
    let line = failure_line(
        &leaf(&server_ca, &["localhost"], false),
        &server_ca,
        &ca("some other CA"),
        "localhost",
    )
    .await;
    assert!(line.contains(": unknown issuer"), "{line}");
    assert!(line.contains("--ca FILE"), "{line}");
}

#[tokio::test]
async fn a_wrong_name_is_a_name_mismatch_naming_the_certificate_s_names() {
    let server_ca = ca("server CA");
    let line = failure_line(
        &leaf(&server_ca, &["other.example", "10.1.2.3"], false),
        &server_ca,
        &server_ca,
        "localhost",
    )
    .await;
    assert!(
        line.contains(": name mismatch: certificate is for other.example, 10.1.2.3, not localhost"),
        "{line}"
    );
}

#[tokio::test]
async fn an_expired_certificate_is_expired() {
    let server_ca = ca("server CA");
    let line = failure_line(
        &leaf(&server_ca, &["localhost"], true),
        &server_ca,
        &server_ca,
        "localhost",
    )
    .await;
    assert!(
        line.contains(": expired: the certificate was valid until 2001-01-01T00:00:00Z"),
        "{line}"
    );
}

#[tokio::test]
async fn a_plain_text_server_is_named_as_such() {
    // A plain upcasing echo, as upcased's plain port is: it answers the client hello
    // upper-cased.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut tcp, _) = listener.accept().await.unwrap();
        let mut buf = vec![0u8; 64 * 1024];
        while let Ok(n) = tcp.read(&mut buf).await {
            if n == 0 {
                break;
            }
            buf[..n].make_ascii_uppercase();
            if tcp.write_all(&buf[..n]).await.is_err() {
                break;
            }
        }
    });
    let config = tls::client_config(None, true).unwrap();
    let line = tls_connect(addr, &config, "localhost")
        .await
        .unwrap_err()
        .to_string();
    assert!(line.contains("did not answer in TLS"), "{line}");
}

// ---- server-side failure reasons -----------------------------------------------------------

async fn plain_client(addr: SocketAddr, bytes: &[u8]) {
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(bytes).await.unwrap();
    // Hold the connection open: the server must close it, not wait for us.
    let mut sink = Vec::new();
    let _ = tokio::time::timeout(PATIENCE, tcp.read_to_end(&mut sink)).await;
}

#[tokio::test]
async fn plain_text_on_the_tls_port_is_not_tls_and_others_are_served() {
    let files = Files::new();
    let ca_file = files.path("ca.pem");
    let store = tls::self_signed(&ca_file).unwrap();
    let mut server = serve(tls::server_config(store).unwrap(), PATIENCE).await;

    // Short enough that rustls alone would wait for the rest of a record header.
    plain_client(server.addr, b"hi\n").await;
    assert_eq!(server.next().await, Seen::Failed(HandshakeFailure::NotTls));
    plain_client(server.addr, b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n").await;
    assert_eq!(server.next().await, Seen::Failed(HandshakeFailure::NotTls));
    // A handshake record with a version no TLS has.
    plain_client(server.addr, b"\x16\x00\x00\x00\x05hello").await;
    assert_eq!(server.next().await, Seen::Failed(HandshakeFailure::NotTls));
    // A TLS record that is no client hello.
    plain_client(server.addr, b"\x16\x03\x01\x00\x08\x01\x00\x00\x04abcd").await;
    assert_eq!(
        server.next().await,
        Seen::Failed(HandshakeFailure::Protocol)
    );
    // A client that leaves mid-handshake.
    drop(TcpStream::connect(server.addr).await.unwrap());
    assert_eq!(server.next().await, Seen::Failed(HandshakeFailure::Closed));

    let config = tls::client_config(Some(&ca_file), false).unwrap();
    let mut s = tls_connect(server.addr, &config, "localhost")
        .await
        .unwrap();
    round_trip(&mut s, b"served").await;
}

#[tokio::test(start_paused = true)]
async fn a_stalled_handshake_is_closed_at_the_timeout() {
    let files = Files::new();
    let store = tls::self_signed(&files.path("ca.pem")).unwrap();
    let timeout = upcase::limits::DEFAULT_TLS_HANDSHAKE_TIMEOUT;
    let mut server = serve(tls::server_config(store).unwrap(), timeout).await;

    let start = tokio::time::Instant::now();
    let mut tcp = TcpStream::connect(server.addr).await.unwrap();
    assert_eq!(server.next().await, Seen::Failed(HandshakeFailure::Timeout));
    assert!(start.elapsed() >= timeout, "not before the timeout");
    // The server closed the connection: the client reads its end.
    let mut sink = Vec::new();
    let n = tcp.read_to_end(&mut sink).await.unwrap_or(0);
    assert_eq!(n, 0);
}

#[test]
fn every_reason_has_its_label() {
    let labels: Vec<&str> = HandshakeFailure::ALL.iter().map(|r| r.as_str()).collect();
    assert_eq!(
        labels,
        ["timeout", "not_tls", "protocol", "rejected", "closed", "io"]
    );
    assert_eq!(
        serde_json::to_string(&HandshakeFailure::NotTls).unwrap(),
        "\"not_tls\""
    );
}

// ---- the TLS pipe --------------------------------------------------------------------------

async fn pipe_server() -> (TlsServer, Arc<rustls::ClientConfig>, tempfile::TempDir) {
    let files = Files::new();
    let ca_file = files.path("ca.pem");
    let store = tls::self_signed(&ca_file).unwrap();
    let server = serve(tls::server_config(store).unwrap(), PATIENCE).await;
    let config = tls::client_config(Some(&ca_file), false).unwrap();
    (server, config, files.dir)
}

#[tokio::test]
async fn pipe_is_binary_safe_and_half_closes_with_close_notify() {
    let (mut server, _, dir) = pipe_server().await;
    let ca_file = dir.path().join("ca.pem");
    let input: Vec<u8> = (0..4 * 1024 * 1024u32)
        .map(|i| (i * 7 + i / 255) as u8)
        .collect();
    // TLS 1.2 too: there, answering after the peer's close_notify is a rustls liberty that
    // RFC 5246 did not promise, and the server relies on it.
    for version in [&rustls::version::TLS13, &rustls::version::TLS12] {
        let config = tls::client_config_for(Some(&ca_file), false, &[version]).unwrap();
        let stream = tls_connect(server.addr, &config, "localhost")
            .await
            .unwrap();
        let mut output = Vec::new();
        let stats = tls::pipe(&input[..], &mut output, stream, PATIENCE)
            .await
            .unwrap();
        assert_eq!(stats.sent, input.len() as u64);
        assert_eq!(stats.received, input.len() as u64);
        assert!(
            output == input.to_ascii_uppercase(),
            "the reply is the input upper-cased"
        );
        // The server saw the end of input as close_notify, and the pipe ended at the
        // server's own close_notify (without it, the pipe fails as Truncated).
        assert_eq!(server.next().await, Seen::Served { close_notify: true });
    }
}

#[tokio::test]
async fn after_a_bare_fin_the_server_can_still_answer_and_close_notify() {
    let (mut server, config, _dir) = pipe_server().await;
    let stream = tls_connect(server.addr, &config, "localhost")
        .await
        .unwrap();
    let (mut tcp, mut conn) = stream.into_inner();
    // Send a record, then FIN with no close_notify, straight on the socket.
    conn.writer().write_all(b"bare fin\n").unwrap();
    let mut wire = Vec::new();
    while conn.wants_write() {
        conn.write_tls(&mut wire).unwrap();
    }
    tcp.write_all(&wire).await.unwrap();
    tcp.shutdown().await.unwrap();
    // The reply and the server's close_notify still arrive.
    let mut got = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut closed = false;
    while !closed {
        let n = tokio::time::timeout(PATIENCE, tcp.read(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert!(n > 0, "close_notify before FIN");
        conn.read_tls(&mut &buf[..n]).unwrap();
        let state = conn.process_new_packets().unwrap();
        closed = state.peer_has_closed();
        let mut plain = vec![0u8; state.plaintext_bytes_to_read()];
        conn.reader().read_exact(&mut plain).unwrap();
        got.extend_from_slice(&plain);
    }
    assert_eq!(got, b"BARE FIN\n");
    assert_eq!(
        server.next().await,
        Seen::Served {
            close_notify: false
        }
    );
}

#[tokio::test]
async fn pipe_is_full_duplex() {
    let (_server, config, _dir) = pipe_server().await;
    let stream = tls_connect(_server.addr, &config, "localhost")
        .await
        .unwrap();
    let (mut keyboard, input) = tokio::io::duplex(1024);
    let (output, mut screen) = tokio::io::duplex(1024);
    let pipe = tokio::spawn(tls::pipe(input, output, stream, PATIENCE));
    // Each reply arrives while the input is still open.
    for line in ["one\n", "two\n", "three\n"] {
        keyboard.write_all(line.as_bytes()).await.unwrap();
        let mut reply = vec![0u8; line.len()];
        tokio::time::timeout(PATIENCE, screen.read_exact(&mut reply))
            .await
            .expect("a reply before the input ends")
            .unwrap();
        assert_eq!(reply, line.to_uppercase().as_bytes());
    }
    drop(keyboard);
    let stats = pipe.await.unwrap().unwrap();
    assert_eq!(stats.sent, 14);
    assert_eq!(stats.received, 14);
}

/// A TLS server that answers the first read, then closes as `how` says.
async fn one_shot_server(
    close_notify: bool,
) -> (SocketAddr, Arc<rustls::ClientConfig>, tempfile::TempDir) {
    let files = Files::new();
    let ca_file = files.path("ca.pem");
    let store = tls::self_signed(&ca_file).unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(tls::server_config(store).unwrap());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let mut s = tls::accept(&acceptor, tcp, PATIENCE).await.unwrap();
        let mut buf = [0u8; 1024];
        let n = s.read(&mut buf).await.unwrap();
        s.write_all(&buf[..n].to_ascii_uppercase()).await.unwrap();
        if close_notify {
            s.shutdown().await.unwrap();
            // Keep reading so no reset destroys the reply.
            let _ = s.read(&mut buf).await;
        } else {
            s.flush().await.unwrap();
            // FIN without close_notify.
            let (tcp, _) = s.into_inner();
            let mut tcp = tcp.into_inner();
            tcp.shutdown().await.unwrap();
            let _ = tcp.read(&mut buf).await;
        }
    });
    let config = tls::client_config(Some(&ca_file), false).unwrap();
    (addr, config, files.dir)
}

#[tokio::test]
async fn pipe_reports_a_reply_cut_without_close_notify() {
    let (addr, config, _dir) = one_shot_server(false).await;
    let stream = tls_connect(addr, &config, "localhost").await.unwrap();
    let mut output = Vec::new();
    let e = tls::pipe(&b"cut"[..], &mut output, stream, PATIENCE)
        .await
        .unwrap_err();
    assert!(matches!(e, PipeError::Truncated), "{e:?}");
    assert_eq!(output, b"CUT", "what came is still written");
}

#[tokio::test]
async fn pipe_reports_a_server_that_closes_before_the_input_ends() {
    let (addr, config, _dir) = one_shot_server(true).await;
    let stream = tls_connect(addr, &config, "localhost").await.unwrap();
    let (mut keyboard, input) = tokio::io::duplex(1024);
    keyboard.write_all(b"more to come").await.unwrap();
    let mut output = Vec::new();
    let e = tls::pipe(input, &mut output, stream, PATIENCE)
        .await
        .unwrap_err();
    assert!(matches!(e, PipeError::ClosedEarly), "{e:?}");
    drop(keyboard);
}

#[tokio::test(start_paused = true)]
async fn pipe_times_out_only_after_the_input_ends() {
    // A server that shakes hands and then never answers nor closes.
    let files = Files::new();
    let ca_file = files.path("ca.pem");
    let store = tls::self_signed(&ca_file).unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(tls::server_config(store).unwrap());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let _s = tls::accept(&acceptor, tcp, PATIENCE).await.unwrap();
        std::future::pending::<()>().await;
    });
    let config = tls::client_config(Some(&ca_file), false).unwrap();
    let stream = tls_connect(addr, &config, "localhost").await.unwrap();

    let timeout = Duration::from_secs(5);
    let (mut keyboard, input) = tokio::io::duplex(1024);
    let mut output = Vec::new();
    let pipe = tls::pipe(input, &mut output, stream, timeout);
    tokio::pin!(pipe);
    // While the input is open, a quiet server is not late.
    tokio::select! {
        r = &mut pipe => panic!("the pipe ended while input was open: {r:?}"),
        () = tokio::time::sleep(timeout * 10) => {}
    }
    let start = tokio::time::Instant::now();
    keyboard.shutdown().await.unwrap();
    let e = pipe.await.unwrap_err();
    assert!(matches!(e, PipeError::Timeout(t) if t == timeout), "{e:?}");
    assert!(start.elapsed() >= timeout);
}

// ---- the transport for the connection core's readiness driver ------------------------------

/// A readiness driver in miniature, as the connection core's drives a transport: wait for
/// readiness without a buffer, read until `Pending`, write each reply whole and flush it,
/// and at the end of input shut down (`close_notify`, FIN). Returns whether the input
/// ended with a bare FIN.
async fn drive(mut t: tls::ServerTransport, read_size: usize) -> bool {
    use std::future::poll_fn;
    use std::task::Poll;
    let mut buf = vec![0u8; read_size];
    loop {
        poll_fn(|cx| t.poll_read_ready(cx)).await.unwrap();
        loop {
            let n = match poll_fn(|cx| Poll::Ready(t.poll_read(cx, &mut buf))).await {
                Poll::Pending => break,
                Poll::Ready(r) => r.unwrap(),
            };
            if n == 0 {
                poll_fn(|cx| t.poll_shutdown(cx)).await.unwrap();
                return t.bare_fin();
            }
            buf[..n].make_ascii_uppercase();
            let mut rest = &buf[..n];
            while !rest.is_empty() {
                let w = poll_fn(|cx| t.poll_write(cx, rest)).await.unwrap();
                rest = &rest[w..];
            }
            poll_fn(|cx| t.poll_flush(cx)).await.unwrap();
        }
    }
}

async fn transport_server(
    read_size: usize,
) -> (
    SocketAddr,
    Arc<rustls::ClientConfig>,
    mpsc::UnboundedReceiver<bool>,
    tempfile::TempDir,
) {
    let files = Files::new();
    let ca_file = files.path("ca.pem");
    let store = tls::self_signed(&ca_file).unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(tls::server_config(store).unwrap());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            let (tcp, _) = listener.accept().await.unwrap();
            let stream = tls::accept(&acceptor, tcp, PATIENCE).await.unwrap();
            let transport = tls::ServerTransport::new(stream);
            assert!(transport.tcp().peer_addr().is_ok());
            assert_eq!(tls::session_info(transport.tls()).version, "TLSv1.3");
            let tx = tx.clone();
            tokio::spawn(async move {
                let _ = tx.send(drive(transport, read_size).await);
            });
        }
    });
    let config = tls::client_config(Some(&ca_file), false).unwrap();
    (addr, config, rx, files.dir)
}

#[tokio::test]
async fn the_transport_serves_a_readiness_driver_with_backpressure_and_close_notify() {
    // A read buffer smaller than a record: the rest of each record waits decrypted in
    // rustls between reads. (tokio's cached socket readiness happens to cover that case
    // too, so this does not prove the transport's own check of rustls's buffer.)
    let (addr, config, mut ends, _dir) = transport_server(1000).await;
    let input: Vec<u8> = (0..3 * 1024 * 1024u32).map(|i| (i % 251) as u8).collect();
    let stream = tls_connect(addr, &config, "localhost").await.unwrap();
    let mut output = Vec::new();
    let stats = tls::pipe(&input[..], &mut output, stream, PATIENCE)
        .await
        .unwrap();
    assert_eq!(stats.received, input.len() as u64);
    assert!(output == input.to_ascii_uppercase());
    assert!(!ends.recv().await.unwrap(), "ended by close_notify");
}

#[tokio::test]
async fn the_transport_reads_a_bare_fin_as_the_end_of_input() {
    let (addr, config, mut ends, _dir) = transport_server(64 * 1024).await;
    let stream = tls_connect(addr, &config, "localhost").await.unwrap();
    let (mut tcp, mut conn) = stream.into_inner();
    conn.writer().write_all(b"owed\n").unwrap();
    let mut wire = Vec::new();
    while conn.wants_write() {
        conn.write_tls(&mut wire).unwrap();
    }
    tcp.write_all(&wire).await.unwrap();
    tcp.shutdown().await.unwrap();
    let mut raw = Vec::new();
    tokio::time::timeout(PATIENCE, tcp.read_to_end(&mut raw))
        .await
        .unwrap()
        .unwrap();
    conn.read_tls(&mut &raw[..]).unwrap();
    let state = conn.process_new_packets().unwrap();
    assert!(state.peer_has_closed(), "the server sent close_notify");
    let mut reply = Vec::new();
    conn.reader().read_to_end(&mut reply).unwrap();
    assert_eq!(reply, b"OWED\n");
    assert!(ends.recv().await.unwrap(), "ended by a bare FIN");
}

#[tokio::test]
async fn the_transport_says_when_input_is_waiting() {
    let files = Files::new();
    let ca_file = files.path("ca.pem");
    let store = tls::self_signed(&ca_file).unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(tls::server_config(store).unwrap());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let config = tls::client_config(Some(&ca_file), false).unwrap();
    let client =
        tokio::spawn(async move { tls_connect(addr, &config, "localhost").await.unwrap() });
    let (tcp, _) = listener.accept().await.unwrap();
    let mut t = tls::ServerTransport::new(tls::accept(&acceptor, tcp, PATIENCE).await.unwrap());
    let mut client = client.await.unwrap();
    // Nothing sent since the handshake (the client's last flight was read by it).
    assert!(!t.input_waiting().unwrap(), "idle");
    client.write_all(b"x").await.unwrap();
    client.flush().await.unwrap();
    let waited = tokio::time::timeout(PATIENCE, async {
        while !t.input_waiting().unwrap() {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    })
    .await;
    assert!(waited.is_ok(), "the record is seen without reading it");
    let mut buf = [0u8; 1];
    let n = std::future::poll_fn(|cx| t.poll_read(cx, &mut buf))
        .await
        .unwrap();
    assert_eq!((n, buf[0]), (1, b'x'));
}
