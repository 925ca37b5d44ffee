//! Reading a certificate chain and a private key from PEM files, through
//! `rustls-pki-types`' [`PemObject`].
//!
//! Each file is read whole first, so that an error names the file and says whether it was
//! missing, not PEM, or PEM without the wanted section. The certificate and the key may be
//! the same file (sections of other kinds are skipped).

use std::path::Path;
use std::sync::Arc;

use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::{self, PemObject};
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use super::{provider, TlsError};

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.to_path_buf(),
        source,
    })
}

fn pem_error(path: &Path, e: pem::Error) -> TlsError {
    match e {
        pem::Error::Io(source) => TlsError::Read {
            path: path.to_path_buf(),
            source,
        },
        other => TlsError::Pem {
            path: path.to_path_buf(),
            reason: match other {
                pem::Error::MissingSectionEnd { end_marker } => format!(
                    "a section has no {:?} line",
                    String::from_utf8_lossy(&end_marker)
                ),
                pem::Error::IllegalSectionStart { line } => {
                    format!("bad section start {:?}", String::from_utf8_lossy(&line))
                }
                pem::Error::Base64Decode(e) => format!("bad base64: {e}"),
                e => format!("{e:?}"),
            },
        },
    }
}

/// Every `CERTIFICATE` section of a PEM file, in order (the server's own certificate first,
/// then its intermediates). Fails with [`TlsError::NoCertificate`] if there is none.
pub fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let text = read(path)?;
    let certs = CertificateDer::pem_slice_iter(&text)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem_error(path, e))?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate {
            path: path.to_path_buf(),
        });
    }
    Ok(certs)
}

/// The first private key of a PEM file: `PRIVATE KEY` (PKCS#8), `RSA PRIVATE KEY` (PKCS#1)
/// or `EC PRIVATE KEY` (SEC1). Fails with [`TlsError::NoPrivateKey`] if there is none,
/// saying so when the file holds an encrypted key instead.
pub fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let text = read(path)?;
    match PrivateKeyDer::from_pem_slice(&text) {
        Ok(key) => Ok(key),
        Err(pem::Error::NoItemsFound) => Err(TlsError::NoPrivateKey {
            path: path.to_path_buf(),
            encrypted: text
                .windows(b"ENCRYPTED PRIVATE KEY".len())
                .any(|w| w == b"ENCRYPTED PRIVATE KEY"),
        }),
        Err(e) => Err(pem_error(path, e)),
    }
}

/// The chain of `cert` and the key in `key`, checked to belong together, ready to serve.
///
/// Fails with [`TlsError::KeyMismatch`] when the key is not the first certificate's, since
/// rustls would otherwise accept the pair and every handshake would fail at the client.
pub fn load_pair(cert: &Path, key: &Path) -> Result<Arc<CertifiedKey>, TlsError> {
    let chain = load_certs(cert)?;
    let der = load_key(key)?;
    let signing = provider()
        .key_provider
        .load_private_key(der)
        .map_err(|e| TlsError::BadKey {
            path: key.to_path_buf(),
            reason: e.to_string(),
        })?;
    let pair = CertifiedKey::new(chain, signing);
    check_pair(&pair, cert, key)?;
    Ok(Arc::new(pair))
}

/// Checks that the key of `pair` is that of its first certificate.
pub(crate) fn check_pair(pair: &CertifiedKey, cert: &Path, key: &Path) -> Result<(), TlsError> {
    use rustls::{Error, InconsistentKeys};
    match pair.keys_match() {
        // The ring provider always knows its keys' public halves; Unknown would mean a key
        // type that cannot be compared, which is not a reason to refuse it.
        Ok(()) | Err(Error::InconsistentKeys(InconsistentKeys::Unknown)) => Ok(()),
        Err(Error::InconsistentKeys(InconsistentKeys::KeyMismatch)) => Err(TlsError::KeyMismatch {
            cert: cert.to_path_buf(),
            key: key.to_path_buf(),
        }),
        Err(e) => Err(TlsError::BadCertificate {
            path: cert.to_path_buf(),
            reason: e.to_string(),
        }),
    }
}
