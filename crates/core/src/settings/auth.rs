//! `[auth]`: whether the ingest API and the gateway may serve unauthenticated callers beyond
//! this machine.

use std::net::SocketAddr;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{Secret, SettingsError, invalid};

/// Who may call the ingest API's data endpoints ([`AuthSettings::mode`] says how each reads).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum AuthMode {
    /// As Redis's protected mode: a server whose listener is reachable from other machines (not
    /// a loopback address) refuses to start unless its callers are authenticated; on loopback
    /// it serves as `none`.
    #[default]
    Auto,
    /// Serve unauthenticated callers on any address: a trusted network, or a proxy in front
    /// that authenticates them.
    None,
    /// The ingest API's data endpoints need an API key with their scope.
    Keys,
}

/// `[auth]`
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct AuthSettings {
    /// Who may call the ingest API's data endpoints: `keys` needs an API key with the endpoint's
    /// scope (`messages:write` to post, `messages:read` to read); `auto` (the default), as
    /// Redis's protected mode, serves callers unauthenticated on loopback and refuses to start a
    /// server whose listener is reachable from other machines while nothing authenticates them;
    /// `none` serves them unauthenticated anywhere (a trusted network, or a proxy that
    /// authenticates).
    pub mode: AuthMode,
    /// Tokens (JWT) that the servers accept beside API keys, for organisations that already
    /// issue them; with `auth.mode = keys` only.
    pub jwt: JwtSettings,
}

/// `[auth.jwt]`: which signed tokens are accepted. Any of `secret`, `public_key_file` and
/// `jwks_file` may be set; a token is checked against the one its header's `alg` (and, in a
/// JWKS, its `kid`) names, never against a key of another kind.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct JwtSettings {
    /// HS256 shared secret, at least 32 bytes. Empty: no HS256 tokens.
    pub secret: Secret,
    /// PEM file of an RSA (RS256) or P-256 (ES256) public key. Empty: none.
    pub public_key_file: String,
    /// JWKS file (RFC 7517) of RSA (RS256) and P-256 (ES256) public keys, chosen by the token's
    /// `kid`; re-read when it changes, at most once a second. Empty: none.
    pub jwks_file: String,
    /// The `aud` a token must name; empty: not checked.
    pub audience: String,
    /// The `iss` a token must carry; empty: not checked.
    pub issuer: String,
}

impl JwtSettings {
    /// Whether any way to check a token is set.
    pub fn is_set(&self) -> bool {
        !self.secret.is_empty() || !self.public_key_file.is_empty() || !self.jwks_file.is_empty()
    }
}

impl AuthSettings {
    /// Whether the servers' data endpoints need a credential.
    pub fn keys(&self) -> bool {
        self.mode == AuthMode::Keys
    }

    /// Tokens only with `auth.mode = keys`; an HS256 secret long enough; `aud` and `iss` only
    /// with a way to check tokens; `stream.auth.jwt_secret` (the older dashboards-only
    /// secret, `legacy_secret`) not beside `auth.jwt.secret`.
    pub(super) fn validate(&self, legacy_secret: &Secret) -> Result<(), SettingsError> {
        let jwt = &self.jwt;
        if jwt.is_set() && !self.keys() {
            return Err(invalid(
                "auth.mode",
                "must be keys when auth.jwt is set: tokens are accepted beside API keys, so \
                 set SLUICE__AUTH__MODE=keys"
                    .to_owned(),
            ));
        }
        let secret = jwt.secret.expose().len();
        if secret > 0 && secret < 32 {
            return Err(invalid(
                "auth.jwt.secret",
                format!("must be at least 32 bytes for HS256 (or empty), got {secret}"),
            ));
        }
        if !jwt.is_set() && (!jwt.audience.is_empty() || !jwt.issuer.is_empty()) {
            return Err(invalid(
                "auth.jwt.audience",
                "and auth.jwt.issuer need auth.jwt.secret, public_key_file or jwks_file".into(),
            ));
        }
        if !jwt.secret.is_empty() && !legacy_secret.is_empty() {
            return Err(invalid(
                "auth.jwt.secret",
                "is set twice: give auth.jwt.secret (every endpoint) or the older \
                 stream.auth.jwt_secret (the stats stream only), not both"
                    .into(),
            ));
        }
        Ok(())
    }

    /// Refuses `listen` (the setting `key`) when it is reachable from other machines, nothing
    /// authenticates `server`'s callers (`protected` false) and the mode is `auto`. `exposed`
    /// says what anyone could then do, and `protect` how to authenticate them, if there is a way.
    pub fn check_exposure(
        &self,
        key: &str,
        listen: SocketAddr,
        protected: bool,
        exposed: &str,
        protect: Option<&str>,
    ) -> Result<(), SettingsError> {
        if self.mode == AuthMode::None || protected || listen.ip().is_loopback() {
            return Ok(());
        }
        let listen_or = "listen on a loopback address";
        let ways = match protect {
            Some(protect) => format!("{protect}, {listen_or}"),
            None => listen_or.to_owned(),
        };
        let mut ways = ways.chars();
        let ways: String = ways
            .next()
            .map(|c| c.to_ascii_uppercase())
            .into_iter()
            .chain(ways)
            .collect();
        Err(invalid(
            key,
            format!(
                "{listen} is reachable from other machines and nothing authenticates its \
                 callers: {exposed}. {ways}, or set SLUICE__AUTH__MODE=none to serve them \
                 unauthenticated (a trusted network, or a proxy that authenticates)"
            ),
        ))
    }

    /// What `./scripts/up` and the start-up line say: how a server on `listen` serves.
    pub fn describe(&self, listen: SocketAddr, protected: bool) -> &'static str {
        match (protected, self.mode, listen.ip().is_loopback()) {
            (true, _, _) => "authenticated",
            (false, AuthMode::None, false) => {
                "unauthenticated, reachable from other machines (auth.mode = none)"
            }
            (false, _, _) => "unauthenticated, on loopback only",
        }
    }
}
