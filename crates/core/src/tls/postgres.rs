//! TLS to PostgreSQL as libpq means it: a URL's `sslmode` (`disable`, `allow`, `prefer`,
//! `require`, `verify-ca`, `verify-full`), `sslrootcert` (a CA file, or `system`), and
//! `sslcert`/`sslkey` (a client certificate), over rustls. tokio-postgres knows only
//! `disable`, `prefer` and `require` and none of the files, so they are read here and the rest
//! of the URL is left to it.
//!
//! | `sslmode` | encrypted | the server's certificate |
//! |---|---|---|
//! | `disable` | never | — |
//! | `allow`, `prefer` (the default) | when the server offers it | not verified |
//! | `require` | always | not verified; verified as `verify-ca` when `sslrootcert` is given |
//! | `verify-ca` | always | signed by `sslrootcert` |
//! | `verify-full` | always | signed by `sslrootcert` and naming the host |
//!
//! `allow` tries TLS first (libpq tries plain first); either way it accepts both.

use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore};
use rustls::{Error as TlsError, SignatureScheme};
use tokio_postgres::config::SslMode as DriverMode;
use tokio_postgres_rustls::MakeRustlsConnect;

/// libpq's `sslmode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    /// No TLS.
    Disable,
    /// TLS when the server offers it, unverified.
    Allow,
    /// TLS when the server offers it, unverified (libpq's default).
    Prefer,
    /// TLS, verified only with a CA file.
    Require,
    /// TLS, the chain verified.
    VerifyCa,
    /// TLS, the chain and the host name verified.
    VerifyFull,
}

/// A PostgreSQL URL read as libpq reads it: the driver's config and the TLS connector.
pub struct Target {
    /// The URL without the TLS parameters, with the driver's `sslmode`.
    pub config: tokio_postgres::Config,
    /// What makes each connection's TLS.
    pub tls: MakeRustlsConnect,
    /// The URL's `sslmode`.
    pub mode: SslMode,
}

/// The TLS parameters a URL gave.
#[derive(Debug, Default)]
struct Params {
    mode: Option<String>,
    root_cert: Option<String>,
    cert: Option<String>,
    key: Option<String>,
}

/// Reads `url`; the error says which part is wrong.
pub fn target(url: &str) -> Result<Target, String> {
    let (rest, params) = split(url)?;
    let mode = match params.mode.as_deref().unwrap_or("prefer") {
        "disable" => SslMode::Disable,
        "allow" => SslMode::Allow,
        "prefer" => SslMode::Prefer,
        "require" => SslMode::Require,
        "verify-ca" => SslMode::VerifyCa,
        "verify-full" => SslMode::VerifyFull,
        other => {
            return Err(format!(
                "sslmode must be disable, allow, prefer, require, verify-ca or verify-full, \
                 got {other:?}"
            ));
        }
    };
    let mut config: tokio_postgres::Config = rest.parse().map_err(|e| format!("{e}"))?;
    config.ssl_mode(match mode {
        SslMode::Disable => DriverMode::Disable,
        SslMode::Allow | SslMode::Prefer => DriverMode::Prefer,
        _ => DriverMode::Require,
    });
    let tls = MakeRustlsConnect::new(client_config(mode, &params)?);
    Ok(Target { config, tls, mode })
}

/// `url` without `sslmode`, `sslrootcert`, `sslcert` and `sslkey`, and their values.
fn split(url: &str) -> Result<(String, Params), String> {
    let Some((base, query)) = url.split_once('?') else {
        return Ok((url.to_owned(), Params::default()));
    };
    let mut params = Params::default();
    let mut kept = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let value = decode(value)?;
        match key {
            "sslmode" => params.mode = Some(value),
            "sslrootcert" => params.root_cert = Some(value),
            "sslcert" => params.cert = Some(value),
            "sslkey" => params.key = Some(value),
            _ => kept.push(pair),
        }
    }
    let rest = match kept.is_empty() {
        true => base.to_owned(),
        false => format!("{base}?{}", kept.join("&")),
    };
    Ok((rest, params))
}

/// A percent-encoded query value, decoded.
fn decode(value: &str) -> Result<String, String> {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = value.get(i + 1..i + 3).ok_or("a truncated %-escape")?;
            out.push(u8::from_str_radix(hex, 16).map_err(|_| format!("a bad %-escape %{hex}"))?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| "a value that is not UTF-8".to_owned())
}

/// The rustls configuration for `mode` and the files `params` names.
fn client_config(mode: SslMode, params: &Params) -> Result<ClientConfig, String> {
    let builder = ClientConfig::builder();
    let provider = Arc::clone(builder.crypto_provider());
    let roots = match params.root_cert.as_deref() {
        None => None,
        Some("system") => Some(system_roots()),
        Some(path) => Some(file_roots(path)?),
    };
    let check = match (mode, roots) {
        (SslMode::VerifyCa | SslMode::VerifyFull, None) => {
            return Err(format!(
                "sslmode={} needs sslrootcert: a PEM file of the CAs to trust, or system",
                if mode == SslMode::VerifyCa {
                    "verify-ca"
                } else {
                    "verify-full"
                }
            ));
        }
        (SslMode::VerifyFull, Some(roots)) => Check::Full(roots),
        (SslMode::VerifyCa | SslMode::Require, Some(roots)) => Check::Chain(roots),
        _ => Check::Nothing,
    };
    let verifier = Verifier::new(check, provider)?;
    let builder = builder
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier));
    match (&params.cert, &params.key) {
        (None, None) => Ok(builder.with_no_client_auth()),
        (Some(cert), Some(key)) => {
            let certs = CertificateDer::pem_file_iter(cert)
                .and_then(|c| c.collect::<Result<Vec<_>, _>>())
                .map_err(|e| format!("cannot read sslcert {cert:?}: {e}"))?;
            let key = PrivateKeyDer::from_pem_file(key)
                .map_err(|e| format!("cannot read sslkey {key:?}: {e}"))?;
            builder
                .with_client_auth_cert(certs, key)
                .map_err(|e| format!("sslcert and sslkey do not make a client certificate: {e}"))
        }
        _ => Err("a client certificate needs both sslcert and sslkey".to_owned()),
    }
}

fn file_roots(path: &str) -> Result<RootCertStore, String> {
    let mut roots = RootCertStore::empty();
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|c| c.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("cannot read sslrootcert {path:?}: {e}"))?;
    let (added, _) = roots.add_parsable_certificates(certs);
    if added == 0 {
        return Err(format!("sslrootcert {path:?} holds no certificate"));
    }
    Ok(roots)
}

fn system_roots() -> RootCertStore {
    let mut roots = RootCertStore::empty();
    roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
    roots
}

/// What is checked of the server's certificate.
enum Check {
    /// Nothing: the connection is encrypted, not authenticated.
    Nothing,
    /// Its chain, to these roots, whatever name it bears.
    Chain(RootCertStore),
    /// Its chain and that it names the host.
    Full(RootCertStore),
}

/// The server-certificate check of one `sslmode`; the handshake's signatures are always checked.
#[derive(Debug)]
struct Verifier {
    webpki: Option<Arc<WebPkiServerVerifier>>,
    check_name: bool,
    provider: Arc<CryptoProvider>,
}

impl Verifier {
    fn new(check: Check, provider: Arc<CryptoProvider>) -> Result<Self, String> {
        let (roots, check_name) = match check {
            Check::Nothing => {
                return Ok(Self {
                    webpki: None,
                    check_name: false,
                    provider,
                });
            }
            Check::Chain(roots) => (roots, false),
            Check::Full(roots) => (roots, true),
        };
        let webpki =
            WebPkiServerVerifier::builder_with_provider(Arc::new(roots), Arc::clone(&provider))
                .build()
                .map_err(|e| format!("cannot use sslrootcert: {e}"))?;
        Ok(Self {
            webpki: Some(webpki),
            check_name,
            provider,
        })
    }
}

impl Verifier {
    /// The provider's algorithms, which check every handshake's signatures whatever `sslmode`.
    fn algorithms(&self) -> &rustls::crypto::WebPkiSupportedAlgorithms {
        &self.provider.signature_verification_algorithms
    }
}

impl ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, TlsError> {
        let Some(webpki) = &self.webpki else {
            return Ok(ServerCertVerified::assertion());
        };
        match webpki.verify_server_cert(end_entity, intermediates, server_name, ocsp, now) {
            Err(TlsError::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) if !self.check_name => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, TlsError> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, self.algorithms())
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, TlsError> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, self.algorithms())
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms().supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(url: &str) -> (SslMode, DriverMode) {
        let target = target(url).expect(url);
        (target.mode, target.config.get_ssl_mode())
    }

    #[test]
    fn sslmode_means_what_libpq_says_and_the_rest_of_the_url_is_kept() {
        let base = "postgres://app@db.internal:5432/sluice";
        assert_eq!(mode(base), (SslMode::Prefer, DriverMode::Prefer));
        assert_eq!(
            mode(&format!("{base}?sslmode=disable")),
            (SslMode::Disable, DriverMode::Disable)
        );
        assert_eq!(
            mode(&format!("{base}?sslmode=allow")),
            (SslMode::Allow, DriverMode::Prefer)
        );
        let target = target(&format!("{base}?application_name=x&sslmode=require")).expect("ok");
        assert_eq!(target.mode, SslMode::Require);
        assert_eq!(
            target.config.get_ssl_mode(),
            DriverMode::Require,
            "never plain"
        );
        assert_eq!(target.config.get_application_name(), Some("x"));
    }

    #[test]
    fn a_verified_mode_needs_its_ca_and_a_client_certificate_its_key() {
        let base = "postgres://app@db/sluice";
        for url in [
            format!("{base}?sslmode=verify-ca"),
            format!("{base}?sslmode=verify-full"),
        ] {
            let e = target(&url).err().expect("refused");
            assert!(e.contains("needs sslrootcert"), "{e}");
        }
        let e = target(&format!(
            "{base}?sslmode=verify-full&sslrootcert=/nonexistent/ca.crt"
        ))
        .err()
        .expect("refused");
        assert!(
            e.contains("cannot read sslrootcert \"/nonexistent/ca.crt\""),
            "{e}"
        );
        let e = target(&format!("{base}?sslmode=strict"))
            .err()
            .expect("refused");
        assert!(e.contains("verify-full, got \"strict\""), "{e}");
        let e = target(&format!("{base}?sslcert=/tmp/c.crt"))
            .err()
            .expect("refused");
        assert!(e.contains("both sslcert and sslkey"), "{e}");
        assert_eq!(decode("%2Ftmp%2Fca.crt").as_deref(), Ok("/tmp/ca.crt"));
        assert!(decode("%zz").is_err());
    }
}
