//! TLS for `-H tcp://` with client verification (dockerd's `--tlsverify --tlscacert
//! --tlscert --tlskey`): only clients with a certificate signed by the given CA get in.

use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::io;
use std::path::PathBuf;
use std::sync::Arc;

/// The files of `--tlscacert`, `--tlscert`, `--tlskey`.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

fn bad(what: &str, p: &std::path::Path, e: impl std::fmt::Display) -> io::Error {
    io::Error::other(format!("{what} {}: {e}", p.display()))
}

/// A server configuration that requires a client certificate from the CA.
pub fn server_config(f: &TlsFiles) -> io::Result<Arc<ServerConfig>> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(&f.ca).map_err(|e| bad("reading the CA", &f.ca, e))? {
        roots
            .add(c.map_err(|e| bad("reading the CA", &f.ca, e))?)
            .map_err(|e| bad("using the CA", &f.ca, e))?;
    }
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .map_err(|e| bad("using the CA", &f.ca, e))?;
    let certs = CertificateDer::pem_file_iter(&f.cert)
        .map_err(|e| bad("reading the certificate", &f.cert, e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad("reading the certificate", &f.cert, e))?;
    let key =
        PrivateKeyDer::from_pem_file(&f.key).map_err(|e| bad("reading the key", &f.key, e))?;
    let cfg = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(io::Error::other)?
        .with_client_cert_verifier(verifier)
        .with_single_cert(certs, key)
        .map_err(|e| bad("using the certificate", &f.cert, e))?;
    Ok(Arc::new(cfg))
}
