//! `[ingest.tls]`, `[gateway.tls]` and `[worker.tls]`: HTTPS on a server's listener.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{SettingsError, invalid};

/// HTTPS on a listener: served when a certificate and its key are set, plain HTTP otherwise.
/// The files are re-read when they change (checked at most once a second, when a connection
/// arrives), so a renewed certificate is served without a restart; open connections keep the
/// one they started with.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct ListenerTlsSettings {
    /// PEM file of the server's certificate chain, its own certificate first; set with
    /// `key_file`. Empty (the default): plain HTTP.
    pub cert_file: String,
    /// PEM file of the private key of `cert_file` (PKCS#8, PKCS#1 or SEC1).
    pub key_file: String,
    /// PEM file of the CA(s) that client certificates must chain to; set, every client must
    /// present one (mutual TLS). Needs `cert_file`.
    pub client_ca_file: String,
}

impl ListenerTlsSettings {
    /// Whether the listener serves HTTPS.
    pub fn enabled(&self) -> bool {
        !self.cert_file.is_empty()
    }

    /// The certificate with its key, a client CA only with them, and readable files. `section`
    /// is the server's section, e.g. `ingest`.
    pub(super) fn validate(&self, section: &str) -> Result<(), SettingsError> {
        let key = |name: &str| format!("{section}.tls.{name}");
        if self.cert_file.is_empty() != self.key_file.is_empty() {
            return Err(invalid(
                &key("key_file"),
                format!(
                    "a certificate needs its key: set both {} and {}, or neither",
                    key("cert_file"),
                    key("key_file")
                ),
            ));
        }
        if !self.client_ca_file.is_empty() && !self.enabled() {
            return Err(invalid(
                &key("client_ca_file"),
                format!(
                    "client certificates are checked over HTTPS only: set {} and {} too",
                    key("cert_file"),
                    key("key_file")
                ),
            ));
        }
        for (name, path) in [
            ("cert_file", &self.cert_file),
            ("key_file", &self.key_file),
            ("client_ca_file", &self.client_ca_file),
        ] {
            if !path.is_empty()
                && let Err(e) = std::fs::File::open(path)
            {
                return Err(invalid(&key(name), format!("cannot read {path:?}: {e}")));
            }
        }
        Ok(())
    }
}
