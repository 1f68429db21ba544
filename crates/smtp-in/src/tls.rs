//! Loading the STARTTLS certificate and key.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::ServerConfig;
use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use thiserror::Error;

/// Why the TLS certificate or key could not be loaded. Each variant names the file.
#[derive(Debug, Error)]
pub enum TlsError {
    /// The certificate file could not be read or is not PEM.
    #[error("cannot read the TLS certificate file {}: {source}", path.display())]
    Certificate {
        /// The certificate file.
        path: PathBuf,
        /// What went wrong.
        #[source]
        source: pem::Error,
    },
    /// The certificate file holds no `CERTIFICATE` section.
    #[error("the TLS certificate file {} holds no PEM certificate", path.display())]
    NoCertificate {
        /// The certificate file.
        path: PathBuf,
    },
    /// The key file could not be read or holds no PEM private key.
    #[error("cannot read a TLS private key from {}: {source}", path.display())]
    PrivateKey {
        /// The key file.
        path: PathBuf,
        /// What went wrong.
        #[source]
        source: pem::Error,
    },
    /// rustls refused the pair, for instance because the key does not match the certificate.
    #[error("the TLS certificate {} and key {} cannot be used: {source}", cert.display(), key.display())]
    Config {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
        /// What rustls said.
        #[source]
        source: rustls::Error,
    },
}

/// Builds the STARTTLS configuration from a PEM certificate chain and a PEM private key
/// (PKCS#8, PKCS#1 or SEC1), on the aws-lc-rs crypto provider.
///
/// # Errors
/// A [`TlsError`] naming the file that could not be read or the pair rustls refused.
pub fn load_tls(cert_pem: &Path, key_pem: &Path) -> Result<Arc<ServerConfig>, TlsError> {
    let cert_error = |source| TlsError::Certificate {
        path: cert_pem.to_owned(),
        source,
    };
    let certs = CertificateDer::pem_file_iter(cert_pem)
        .map_err(cert_error)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(cert_error)?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate {
            path: cert_pem.to_owned(),
        });
    }
    let key = PrivateKeyDer::from_pem_file(key_pem).map_err(|source| TlsError::PrivateKey {
        path: key_pem.to_owned(),
        source,
    })?;
    let config_error = |source| TlsError::Config {
        cert: cert_pem.to_owned(),
        key: key_pem.to_owned(),
        source,
    };
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(config_error)?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(config_error)?;
    Ok(Arc::new(config))
}
