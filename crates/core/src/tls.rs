//! TLS to PostgreSQL ([`postgres`]), and to Redis: how a `rediss://` address is reached, with the CA, client certificate and
//! verification the settings name (`redis.tls_*`). Each URL's scheme says whether its hop is
//! encrypted. The files are read when a client is built: at start, and with Sentinel on each
//! reconnection to the primary; a client reconnecting by itself keeps what it read, so a renewed
//! certificate is used after a restart.

pub mod postgres;

use redis::{Client, ConnectionAddr, ConnectionInfo, IntoConnectionInfo, RedisError, RedisResult};
use redis::{ClientTlsConfig, TlsCertificates};

use crate::settings::RedisSettings;

/// The TLS settings every `rediss://` connection of a process uses.
#[derive(Debug, Clone, Default)]
pub struct RedisTls {
    ca_file: String,
    cert_file: String,
    key_file: String,
    insecure: bool,
}

impl RedisTls {
    /// `redis.tls_ca_file`, `tls_cert_file`, `tls_key_file` and `tls_insecure_skip_verify`.
    pub fn new(settings: &RedisSettings) -> Self {
        Self {
            ca_file: settings.tls_ca_file.clone(),
            cert_file: settings.tls_cert_file.clone(),
            key_file: settings.tls_key_file.clone(),
            insecure: settings.tls_insecure_skip_verify,
        }
    }

    /// A client for `info`: over TLS with these settings when its address is `rediss://`,
    /// plain otherwise.
    pub fn client(&self, info: impl IntoConnectionInfo) -> RedisResult<Client> {
        let info = info.into_connection_info()?;
        let ConnectionAddr::TcpTls { host, port, .. } = info.addr().clone() else {
            return Client::open(info);
        };
        let info = info.set_addr(self.tls_addr(host, port));
        match self.certificates()? {
            Some(certificates) => Client::build_with_tls(info, certificates),
            None => Client::open(info),
        }
    }

    /// `host:port` reached as `like` is: over TLS when `like` is a `rediss://` address.
    pub fn addr_like(&self, like: &ConnectionInfo, host: String, port: u16) -> ConnectionAddr {
        match like.addr() {
            ConnectionAddr::TcpTls { .. } => self.tls_addr(host, port),
            _ => ConnectionAddr::Tcp(host, port),
        }
    }

    /// The CA and client certificate for a cluster's nodes, when any is set.
    pub fn certificates(&self) -> RedisResult<Option<TlsCertificates>> {
        let root_cert = read(&self.ca_file, "redis.tls_ca_file")?;
        let client_cert = read(&self.cert_file, "redis.tls_cert_file")?;
        let client_key = read(&self.key_file, "redis.tls_key_file")?;
        let client_tls = match (client_cert, client_key) {
            (Some(cert), Some(key)) => Some(ClientTlsConfig {
                client_cert: cert,
                client_key: key,
            }),
            _ => None,
        };
        Ok(
            (root_cert.is_some() || client_tls.is_some()).then_some(TlsCertificates {
                client_tls,
                root_cert,
            }),
        )
    }

    /// Whether certificates go unverified (`redis.tls_insecure_skip_verify`).
    pub fn insecure(&self) -> bool {
        self.insecure
    }

    fn tls_addr(&self, host: String, port: u16) -> ConnectionAddr {
        ConnectionAddr::TcpTls {
            host,
            port,
            insecure: self.insecure,
            tls_params: None,
        }
    }
}

/// The bytes of the file at `path`; `None` when no file is set.
fn read(path: &str, setting: &str) -> RedisResult<Option<Vec<u8>>> {
    if path.is_empty() {
        return Ok(None);
    }
    std::fs::read(path).map(Some).map_err(|e| {
        RedisError::from((
            redis::ErrorKind::InvalidClientConfig,
            "cannot read a TLS file",
            format!("{setting} {path:?}: {e}"),
        ))
    })
}
