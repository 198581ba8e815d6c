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

/// A hop whose failures [`hint`] explains.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hop {
    /// To Redis; `tls` when its URL is `rediss://`.
    Redis {
        /// Whether the hop is meant to be encrypted.
        tls: bool,
    },
    /// To PostgreSQL.
    Postgres,
}

/// The setting to look at, and why, for a connection failure whose text is `error`: the words
/// of rustls, Redis and PostgreSQL for an untrusted, expired or misnamed certificate, a missing
/// client certificate, and a client and server that disagree on TLS. `None` when the failure is
/// not one of those.
pub fn hint(hop: Hop, error: &str) -> Option<&'static str> {
    let has = |words: &[&str]| words.iter().any(|w| error.contains(w));
    let redis = matches!(hop, Hop::Redis { .. });
    Some(match hop {
        _ if has(&["alert: UnknownCA", "alert: BadCertificate"]) && redis => {
            "the server does not trust this process's certificate: check redis.tls_cert_file"
        }
        _ if has(&["alert: UnknownCA", "alert: BadCertificate"]) => {
            "the server does not trust this process's certificate: check sslcert in postgres.url"
        }
        _ if has(&["UnknownIssuer", "unknown issuer"]) && redis => {
            "redis.tls_ca_file must hold the CA that signed the server's certificate"
        }
        _ if has(&["UnknownIssuer", "unknown issuer"]) => {
            "postgres.url's sslrootcert must hold the CA that signed the server's certificate"
        }
        _ if has(&["NotValidForName", "not valid for name"]) && redis => {
            "the host of the Redis URL must be a name the server's certificate carries"
        }
        _ if has(&["NotValidForName", "not valid for name"]) => {
            "the host of postgres.url must be a name the server's certificate carries (or use \
             sslmode=verify-ca)"
        }
        _ if has(&["Expired", "expired"]) => {
            "the server's certificate has expired (or this machine's clock is wrong): renew it"
        }
        _ if has(&["CertificateRequired", "certificate required"]) && redis => {
            "the server wants a client certificate: set redis.tls_cert_file and redis.tls_key_file"
        }
        _ if has(&["CertificateRequired", "certificate required"]) => {
            "the server wants a client certificate: set sslcert and sslkey in postgres.url"
        }
        Hop::Redis { tls: true }
            if has(&["corrupt message", "InvalidContentType", "CorruptMessage"]) =>
        {
            "the server does not speak TLS here: use a redis:// URL, or its TLS port"
        }
        Hop::Redis { tls: false }
            if has(&[
                "reset by peer",
                "unexpected end",
                "broken pipe",
                "Broken pipe",
            ]) =>
        {
            "if the server speaks only TLS, use a rediss:// URL"
        }
        Hop::Postgres if has(&["no encryption", "SSL off"]) => {
            "the server takes only TLS connections: set sslmode=require (or stricter) in postgres.url"
        }
        Hop::Postgres if has(&["does not support TLS", "server does not support"]) => {
            "the server offers no TLS: turn ssl on there, or lower sslmode in postgres.url"
        }
        _ => return None,
    })
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_tls_failure_names_the_setting_to_look_at() {
        let tls = Hop::Redis { tls: true };
        let plain = Hop::Redis { tls: false };
        let cases = [
            (
                tls,
                "invalid peer certificate: UnknownIssuer",
                "redis.tls_ca_file",
            ),
            (
                Hop::Postgres,
                "invalid peer certificate: UnknownIssuer",
                "sslrootcert",
            ),
            (
                tls,
                "invalid peer certificate: NotValidForName",
                "Redis URL",
            ),
            (
                Hop::Postgres,
                "certificate not valid for name \"db\"",
                "verify-ca",
            ),
            (tls, "invalid peer certificate: Expired", "renew"),
            (
                tls,
                "received fatal alert: CertificateRequired",
                "redis.tls_cert_file",
            ),
            (
                Hop::Postgres,
                "received fatal alert: CertificateRequired",
                "sslcert",
            ),
            (
                tls,
                "received fatal alert: UnknownCA",
                "this process's certificate",
            ),
            (
                tls,
                "received corrupt message of type InvalidContentType",
                "redis://",
            ),
            (
                plain,
                "Connection reset by peer (os error 104)",
                "rediss://",
            ),
            (
                Hop::Postgres,
                "no pg_hba.conf entry for host \"127.0.0.1\", no encryption",
                "sslmode=require",
            ),
            (
                Hop::Postgres,
                "error performing TLS handshake: server does not support TLS",
                "lower sslmode",
            ),
        ];
        for (hop, error, says) in cases {
            let hint = hint(hop, error).unwrap_or_default();
            assert!(hint.contains(says), "{error}: {hint}");
        }
        assert_eq!(hint(tls, "Connection refused (os error 111)"), None);
        assert_eq!(hint(plain, "timed out"), None);
    }
}
