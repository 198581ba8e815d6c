//! HTTPS on a listener: [`ServerTls`] holds the rustls configuration built from a section's
//! `tls.cert_file`, `tls.key_file` and `tls.client_ca_file`, and builds it again when those files
//! change.
//!
//! Files are checked when a connection arrives, at most once per [`CHECK_EVERY`], so an idle
//! server reads nothing and a rotated certificate is served from the first connection after the
//! check. A new set of files is used only once it loads as a whole: a certificate renewed before
//! its key (two renames, a half-written file) keeps the previous pair in service, with one
//! warning, until the files agree. Connections already open keep the configuration they started
//! with; the handshake is theirs alone and never on a request's path.

use std::io;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use sluice_core::settings::ListenerTlsSettings;
use tokio_rustls::TlsAcceptor;

/// Longest time between two checks of the files, while connections arrive.
pub const CHECK_EVERY: Duration = Duration::from_secs(1);

/// A listener's TLS files could not be used.
#[derive(Debug, thiserror::Error)]
#[error("{setting} {path:?}: {reason}")]
pub struct TlsFileError {
    /// The setting that names the file, e.g. `ingest.tls.cert_file`.
    pub setting: String,
    /// The file.
    pub path: String,
    /// What is wrong with it.
    pub reason: String,
}

/// The paths of a listener's files, with the settings that name them.
#[derive(Debug, Clone)]
struct Files {
    section: &'static str,
    cert: String,
    key: String,
    client_ca: String,
}

/// The bytes of the files, as last read.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Contents {
    cert: Vec<u8>,
    key: Vec<u8>,
    client_ca: Option<Vec<u8>>,
}

/// The TLS side of a listener: the configuration new connections get, and its reloading.
#[derive(Debug)]
pub struct ServerTls {
    files: Files,
    current: RwLock<Arc<ServerConfig>>,
    /// When the files were last read, and what they held then (whether or not it loaded).
    checked: Mutex<(Instant, Contents)>,
}

impl ServerTls {
    /// The configuration of `section`'s `tls` settings (`ingest`, `gateway`, `worker`);
    /// `None` when the listener serves plain HTTP. Fails, naming the setting, when a file
    /// cannot be read or used.
    pub fn load(
        section: &'static str,
        settings: &ListenerTlsSettings,
    ) -> Result<Option<Arc<Self>>, TlsFileError> {
        if !settings.enabled() {
            return Ok(None);
        }
        let files = Files {
            section,
            cert: settings.cert_file.clone(),
            key: settings.key_file.clone(),
            client_ca: settings.client_ca_file.clone(),
        };
        let contents = files.read()?;
        let config = files.build(&contents)?;
        Ok(Some(Arc::new(Self {
            files,
            current: RwLock::new(Arc::new(config)),
            checked: Mutex::new((Instant::now(), contents)),
        })))
    }

    /// The acceptor for a new connection, with the files re-read first when they are due.
    pub fn acceptor(&self) -> TlsAcceptor {
        self.reload_if_due();
        let current = self.current.read().unwrap_or_else(|e| e.into_inner());
        TlsAcceptor::from(Arc::clone(&current))
    }

    /// Reads the files when the last check is [`CHECK_EVERY`] old, and swaps in what they hold
    /// when it changed and loads. One thread checks at a time; the others go on at once.
    fn reload_if_due(&self) {
        let Ok(mut checked) = self.checked.try_lock() else {
            return;
        };
        if checked.0.elapsed() < CHECK_EVERY {
            return;
        }
        checked.0 = Instant::now();
        let section = self.files.section;
        let contents = match self.files.read() {
            Ok(contents) if contents == checked.1 => return,
            Ok(contents) => contents,
            Err(e) => {
                tracing::debug!(section, error = %e, "cannot read the TLS files; serving the current certificate");
                return;
            }
        };
        match self.files.build(&contents) {
            Ok(config) => {
                *self.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(config);
                tracing::info!(section, cert_file = %self.files.cert, "serving the renewed TLS certificate");
            }
            Err(e) => tracing::warn!(
                section,
                error = %e,
                "the changed TLS files do not load; still serving the previous certificate"
            ),
        }
        checked.1 = contents;
    }
}

impl Files {
    fn setting(&self, name: &str) -> String {
        format!("{}.tls.{name}", self.section)
    }

    fn error(&self, name: &str, path: &str, reason: impl ToString) -> TlsFileError {
        TlsFileError {
            setting: self.setting(name),
            path: path.to_owned(),
            reason: reason.to_string(),
        }
    }

    fn read(&self) -> Result<Contents, TlsFileError> {
        let read =
            |name: &str, path: &str| std::fs::read(path).map_err(|e| self.error(name, path, e));
        Ok(Contents {
            cert: read("cert_file", &self.cert)?,
            key: read("key_file", &self.key)?,
            client_ca: match self.client_ca.as_str() {
                "" => None,
                path => Some(read("client_ca_file", path)?),
            },
        })
    }

    /// The rustls configuration of `contents`: HTTP/1.1 over TLS 1.2 or 1.3, client certificates
    /// required when a client CA is set.
    fn build(&self, contents: &Contents) -> Result<ServerConfig, TlsFileError> {
        let chain =
            certificates(&contents.cert).map_err(|e| self.error("cert_file", &self.cert, e))?;
        let key = PrivateKeyDer::from_pem_slice(&contents.key).map_err(|e| {
            self.error(
                "key_file",
                &self.key,
                format!("no usable PEM private key: {e}"),
            )
        })?;
        let builder = ServerConfig::builder();
        let builder = match &contents.client_ca {
            None => builder.with_no_client_auth(),
            Some(pem) => {
                let ca =
                    |e: &dyn std::fmt::Display| self.error("client_ca_file", &self.client_ca, e);
                let mut roots = rustls::RootCertStore::empty();
                for certificate in certificates(pem).map_err(|e| ca(&e))? {
                    roots.add(certificate).map_err(|e| ca(&e))?;
                }
                let verifier = WebPkiClientVerifier::builder(Arc::new(roots))
                    .build()
                    .map_err(|e| ca(&e))?;
                builder.with_client_cert_verifier(verifier)
            }
        };
        let mut config = builder.with_single_cert(chain, key).map_err(|e| {
            self.error(
                "key_file",
                &self.key,
                format!("does not go with {}: {e}", self.setting("cert_file")),
            )
        })?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(config)
    }
}

/// The certificates of a PEM file, at least one.
fn certificates(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, String> {
    let chain = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("not a PEM certificate file: {e}"))?;
    if chain.is_empty() {
        return Err("holds no PEM certificate".to_owned());
    }
    Ok(chain)
}

/// The first byte of a TLS record carrying a handshake (a `ClientHello`).
const HANDSHAKE_RECORD: u8 = 0x16;

/// The answer to a plain-HTTP request on an HTTPS listener: 400, with the error body.
fn plain_http_answer() -> String {
    let body = serde_json::to_string(&sluice_proto::error::ErrorBody::new(
        "https_required",
        "this server speaks HTTPS only: use an https:// address".to_owned(),
    ))
    .unwrap_or_default();
    format!(
        "HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\nconnection: close\r\n\
         content-length: {}\r\n\r\n{body}",
        body.len()
    )
}

/// Answers a client that sent plain HTTP to an HTTPS listener (its first byte is a letter,
/// where a TLS client sends a handshake record) with a 400 saying to use `https://`, instead of
/// the TLS alert it could not read, and fails; fails with `UnexpectedEof` for a peer that
/// closed before sending anything. Anything else goes on to the handshake.
pub(crate) async fn refuse_plain_http(io: &tokio::net::TcpStream) -> io::Result<()> {
    let mut first = [0u8; 1];
    if io.peek(&mut first).await? == 0 {
        return Err(io::ErrorKind::UnexpectedEof.into());
    }
    if first[0] == HANDSHAKE_RECORD {
        return Ok(());
    }
    if first[0].is_ascii_uppercase() {
        // Best effort: the answer fits any socket buffer, and the connection closes either way.
        let _ = io.try_write(plain_http_answer().as_bytes());
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "a plain HTTP request on the HTTPS listener, answered 400 https_required",
        ));
    }
    Ok(())
}

/// Why a handshake failed, in the words of its error.
pub(crate) fn handshake_error(e: &io::Error) -> String {
    match e.get_ref() {
        Some(inner) => inner.to_string(),
        None => e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{CertificateParams, KeyPair};
    use rustls::pki_types::ServerName;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A self-signed certificate for `localhost` and its key, as PEM.
    fn self_signed() -> (String, String) {
        let key = KeyPair::generate().expect("key");
        let params = CertificateParams::new(vec!["localhost".to_owned()]).expect("params");
        (
            params.self_signed(&key).expect("cert").pem(),
            key.serialize_pem(),
        )
    }

    struct Dir(std::path::PathBuf);

    impl Dir {
        fn new(name: &str) -> Self {
            let dir =
                std::env::temp_dir().join(format!("sluice-http-{name}-{}", std::process::id()));
            std::fs::create_dir_all(&dir).expect("dir");
            Self(dir)
        }

        fn write(&self, name: &str, pem: &str) -> String {
            let path = self.0.join(name);
            std::fs::write(&path, pem).expect("write");
            path.to_string_lossy().into_owned()
        }
    }

    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    /// The certificate a handshake with `tls` is served, trusting `trusted`.
    async fn served(tls: &ServerTls, trusted: &str) -> Vec<u8> {
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(CertificateDer::from_pem_slice(trusted.as_bytes()).expect("PEM"))
            .expect("root");
        let client = rustls::ClientConfig::builder()
            .with_root_certificates(roots)
            .with_no_client_auth();
        let (client_io, server_io) = tokio::io::duplex(64 * 1024);
        let acceptor = tls.acceptor();
        let server = tokio::spawn(async move {
            let mut stream = acceptor.accept(server_io).await.expect("accepted");
            stream.write_all(b"ok").await.expect("write");
            stream.flush().await.expect("flush");
        });
        let name = ServerName::try_from("localhost").expect("name");
        let mut stream = tokio_rustls::TlsConnector::from(Arc::new(client))
            .connect(name, client_io)
            .await
            .expect("handshake");
        let mut ok = [0u8; 2];
        stream.read_exact(&mut ok).await.expect("read");
        server.await.expect("server");
        stream.get_ref().1.peer_certificates().expect("served")[0].to_vec()
    }

    fn der(pem: &str) -> Vec<u8> {
        CertificateDer::from_pem_slice(pem.as_bytes())
            .expect("PEM")
            .to_vec()
    }

    impl ServerTls {
        /// Makes the next connection check the files.
        fn make_due(&self) {
            let mut checked = self.checked.lock().expect("lock");
            checked.0 = Instant::now() - CHECK_EVERY;
        }
    }

    #[tokio::test]
    async fn a_renewed_pair_is_served_once_both_files_agree() {
        let dir = Dir::new("renew");
        let (old_cert, old_key) = self_signed();
        let settings = ListenerTlsSettings {
            cert_file: dir.write("tls.crt", &old_cert),
            key_file: dir.write("tls.key", &old_key),
            client_ca_file: String::new(),
        };
        let tls = ServerTls::load("ingest", &settings)
            .expect("loads")
            .expect("enabled");
        assert_eq!(served(&tls, &old_cert).await, der(&old_cert));

        // The certificate is renewed before its key: the old pair stays in service.
        let (new_cert, new_key) = self_signed();
        dir.write("tls.crt", &new_cert);
        tls.make_due();
        assert_eq!(served(&tls, &old_cert).await, der(&old_cert));
        // Not due yet: the files are not read again.
        dir.write("tls.key", &new_key);
        assert_eq!(served(&tls, &old_cert).await, der(&old_cert));
        tls.make_due();
        assert_eq!(served(&tls, &new_cert).await, der(&new_cert));
    }

    #[test]
    fn unusable_files_are_refused_naming_the_setting() {
        let dir = Dir::new("refused");
        let (cert, key) = self_signed();
        let (_, other_key) = self_signed();
        let settings = |cert_file: String, key_file: String| ListenerTlsSettings {
            cert_file,
            key_file,
            client_ca_file: String::new(),
        };
        let cases = [
            (
                settings(dir.write("a.crt", "not PEM"), dir.write("a.key", &key)),
                "gateway.tls.cert_file",
            ),
            (
                settings(dir.write("b.crt", &cert), dir.write("b.key", "nothing")),
                "gateway.tls.key_file",
            ),
            (
                settings(dir.write("c.crt", &cert), dir.write("c.key", &other_key)),
                "does not go with",
            ),
            (
                settings(
                    dir.0.join("none.crt").to_string_lossy().into_owned(),
                    dir.write("d.key", &key),
                ),
                "gateway.tls.cert_file",
            ),
        ];
        for (settings, says) in cases {
            let e = ServerTls::load("gateway", &settings)
                .expect_err("refused")
                .to_string();
            assert!(e.contains(says), "{e}");
        }
        let off = ServerTls::load("gateway", &ListenerTlsSettings::default()).expect("plain");
        assert!(off.is_none());
    }
}
