//! HTTPS and `wss://` for every client of this crate: one rustls configuration that trusts the
//! system's CAs and, with `--cacert`, a private CA's certificates, shared by the typed client
//! ([`crate::api`]), the feed ([`crate::feed`]) and the load engine ([`crate::load`]).

use std::path::Path;
use std::sync::{Arc, OnceLock};

use rustls::ClientConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use crate::ClientError;

/// The certificates a client trusts.
#[derive(Debug, Clone)]
pub struct Tls {
    config: Arc<ClientConfig>,
}

impl Tls {
    /// Trusts the system's CAs, and the certificates of the PEM file `cacert` when given (a
    /// private CA). Fails, naming the file, when it cannot be read or holds no certificate.
    pub fn new(cacert: Option<&Path>) -> Result<Self, ClientError> {
        let Some(path) = cacert else {
            return Ok(Self::system());
        };
        let bad = |reason: String| ClientError::CaFile {
            path: path.display().to_string(),
            reason,
        };
        let pem = std::fs::read(path).map_err(|e| bad(e.to_string()))?;
        let mut roots = system_roots();
        let mut added = 0;
        for certificate in CertificateDer::pem_slice_iter(&pem) {
            let certificate = certificate.map_err(|e| bad(format!("not a PEM file: {e}")))?;
            roots
                .add(certificate)
                .map_err(|e| bad(format!("holds a certificate rustls cannot use: {e}")))?;
            added += 1;
        }
        if added == 0 {
            return Err(bad("holds no PEM certificate".to_owned()));
        }
        Ok(Self::with_roots(roots))
    }

    /// Trusts the system's CAs (read once per process).
    pub fn system() -> Self {
        static SYSTEM: OnceLock<Tls> = OnceLock::new();
        SYSTEM
            .get_or_init(|| Self::with_roots(system_roots()))
            .clone()
    }

    fn with_roots(roots: rustls::RootCertStore) -> Self {
        let mut config = ClientConfig::builder()
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Self {
            config: Arc::new(config),
        }
    }

    /// A reqwest client builder that trusts what this trusts.
    pub fn reqwest(&self) -> reqwest::ClientBuilder {
        reqwest::Client::builder().use_preconfigured_tls((*self.config).clone())
    }

    /// The rustls configuration, for reqwest and tungstenite.
    pub fn config(&self) -> Arc<ClientConfig> {
        Arc::clone(&self.config)
    }

    /// A TLS connection to `host` over `stream`: the certificate must name `host`.
    pub async fn connect(
        &self,
        host: &str,
        stream: TcpStream,
    ) -> std::io::Result<TlsStream<TcpStream>> {
        let name = ServerName::try_from(host.to_owned())
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
        TlsConnector::from(self.config())
            .connect(name, stream)
            .await
    }
}

/// The system's trusted CAs; those it cannot read are skipped.
fn system_roots() -> rustls::RootCertStore {
    let mut roots = rustls::RootCertStore::empty();
    let found = rustls_native_certs::load_native_certs();
    roots.add_parsable_certificates(found.certs);
    roots
}

/// The host part of `host:port` (an IPv6 address without its brackets).
pub fn host_of(addr: &str) -> &str {
    let host = addr.rsplit_once(':').map_or(addr, |(host, _)| host);
    host.trim_start_matches('[').trim_end_matches(']')
}
