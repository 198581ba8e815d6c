//! Certificates made at test time, and a private Redis that speaks only TLS.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use sluice_core::settings::RedisSettings;
use sluice_core::tls::RedisTls;
use tokio::process::Child;

use crate::process::free_port;

/// A test CA, a server certificate it signed for `localhost` and `127.0.0.1`, a client
/// certificate it signed, and a second CA that signed nothing here, as PEM files in a fresh
/// directory (removed on drop).
#[derive(Debug)]
pub struct Certificates {
    /// The directory holding them.
    pub dir: PathBuf,
    /// The CA that signed the others.
    pub ca: PathBuf,
    /// The server's certificate and key.
    pub server: (PathBuf, PathBuf),
    /// A client's certificate and key.
    pub client: (PathBuf, PathBuf),
    /// A CA that signed none of them.
    pub stranger_ca: PathBuf,
}

impl Certificates {
    /// Makes them.
    pub fn make() -> anyhow::Result<Self> {
        let dir = std::env::temp_dir().join(format!("sluice-tls-{}", crate::unique_prefix("c")));
        std::fs::create_dir_all(&dir)?;
        let (ca_params, ca_key) = authority("Sluice test CA")?;
        let ca_pem = ca_params.self_signed(&ca_key)?.pem();
        let write = |name: &str, pem: &str| write(&dir.join(name), pem);
        write("ca.key", &ca_key.serialize_pem())?;
        let issuer = Issuer::new(ca_params, ca_key);
        let leaf = |name: &str, names: &[&str]| -> anyhow::Result<(PathBuf, PathBuf)> {
            let (cert, key) = leaf(&issuer, name, names)?;
            Ok((
                write(&format!("{name}.crt"), &cert)?,
                write(&format!("{name}.key"), &key)?,
            ))
        };
        let server = leaf("server", &SERVER_NAMES)?;
        let client = leaf("client", &["sluice-client"])?;
        let (stranger, stranger_key) = authority("Another CA")?;
        Ok(Self {
            ca: write("ca.crt", &ca_pem)?,
            stranger_ca: write("stranger.crt", &stranger.self_signed(&stranger_key)?.pem())?,
            server,
            client,
            dir,
        })
    }

    /// Replaces the server's certificate and key by a new pair the same CA signed, as
    /// cert-manager renews one: each file written aside and renamed over the old, the
    /// certificate first. Returns the new certificate's PEM.
    pub fn renew_server(&self) -> anyhow::Result<String> {
        let (ca_params, _) = authority("Sluice test CA")?;
        let ca_key = KeyPair::from_pem(&std::fs::read_to_string(self.dir.join("ca.key"))?)?;
        let issuer = Issuer::new(ca_params, ca_key);
        let (cert, key) = leaf(&issuer, "server", &SERVER_NAMES)?;
        for (path, pem) in [(&self.server.0, &cert), (&self.server.1, &key)] {
            let aside = path.with_extension("new");
            write(&aside, pem)?;
            std::fs::rename(&aside, path)?;
        }
        Ok(cert)
    }

    /// `{INGEST,GATEWAY,WORKER}__TLS__{CERT,KEY}_FILE`: every listener serves HTTPS with the
    /// server's certificate.
    pub fn listener_settings(&self) -> Vec<(&'static str, String)> {
        vec![
            ("INGEST__TLS__CERT_FILE", path(&self.server.0)),
            ("INGEST__TLS__KEY_FILE", path(&self.server.1)),
            ("GATEWAY__TLS__CERT_FILE", path(&self.server.0)),
            ("GATEWAY__TLS__KEY_FILE", path(&self.server.1)),
            ("WORKER__TLS__CERT_FILE", path(&self.server.0)),
            ("WORKER__TLS__KEY_FILE", path(&self.server.1)),
        ]
    }

    /// `REDIS__TLS_*` settings trusting the CA, with the client certificate.
    pub fn redis_settings(&self) -> Vec<(&'static str, String)> {
        vec![
            ("REDIS__TLS_CA_FILE", path(&self.ca)),
            ("REDIS__TLS_CERT_FILE", path(&self.client.0)),
            ("REDIS__TLS_KEY_FILE", path(&self.client.1)),
        ]
    }
}

/// The names a server certificate is made for.
const SERVER_NAMES: [&str; 2] = ["localhost", "127.0.0.1"];

/// A certificate for `names`, signed by `issuer`, and its key, as PEM.
fn leaf(
    issuer: &Issuer<'_, KeyPair>,
    name: &str,
    names: &[&str],
) -> anyhow::Result<(String, String)> {
    let key = KeyPair::generate()?;
    let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
    let mut params = CertificateParams::new(names)?;
    params.distinguished_name.push(DnType::CommonName, name);
    let cert = params.signed_by(&key, issuer)?;
    Ok((cert.pem(), key.serialize_pem()))
}

/// Writes `pem` to `path`.
fn write(path: &Path, pem: &str) -> anyhow::Result<PathBuf> {
    std::fs::write(path, pem).with_context(|| format!("writing {}", path.display()))?;
    Ok(path.to_owned())
}

impl Drop for Certificates {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn authority(name: &str) -> anyhow::Result<(CertificateParams, KeyPair)> {
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    Ok((params, KeyPair::generate()?))
}

fn path(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

/// A private `redis-server` on 127.0.0.1 with no plain port, only TLS, which also requires a
/// client certificate signed by the CA.
#[derive(Debug)]
pub struct TlsRedis {
    /// Its TLS port.
    pub port: u16,
    _child: Child,
}

impl TlsRedis {
    /// Starts it with the server certificate of `certs`, answering once it does.
    pub async fn start(certs: &Certificates) -> anyhow::Result<Self> {
        let port = free_port();
        let log = std::fs::File::create(certs.dir.join(format!("redis-{port}.log")))?;
        let child = tokio::process::Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--port", "0"])
            .args(["--tls-port", &port.to_string()])
            .args(["--tls-cert-file", &path(&certs.server.0)])
            .args(["--tls-key-file", &path(&certs.server.1)])
            .args(["--tls-ca-cert-file", &path(&certs.ca)])
            .args(["--tls-auth-clients", "yes"])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(&certs.dir)
            .stdin(std::process::Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .context("starting redis-server with TLS")?;
        let server = Self {
            port,
            _child: child,
        };
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while server.connect(certs).await.is_err() {
            if tokio::time::Instant::now() > deadline {
                bail!(
                    "the TLS redis-server did not answer; see {}",
                    certs.dir.display()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(server)
    }

    /// `rediss://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("rediss://127.0.0.1:{}", self.port)
    }

    /// A connection with the client certificate of `certs`.
    pub async fn connect(
        &self,
        certs: &Certificates,
    ) -> anyhow::Result<redis::aio::MultiplexedConnection> {
        let settings = RedisSettings {
            url: self.url().into(),
            tls_ca_file: path(&certs.ca),
            tls_cert_file: path(&certs.client.0),
            tls_key_file: path(&certs.client.1),
            ..RedisSettings::default()
        };
        let client = RedisTls::new(&settings).client(settings.url.expose())?;
        let config = redis::AsyncConnectionConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(5)))
            .set_response_timeout(Some(Duration::from_secs(5)));
        let mut conn = client
            .get_multiplexed_async_connection_with_config(&config)
            .await?;
        let _: String = redis::cmd("PING").query_async(&mut conn).await?;
        Ok(conn)
    }
}
