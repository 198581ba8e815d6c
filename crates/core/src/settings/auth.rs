//! `[auth]`: whether the ingest API and the gateway may serve unauthenticated callers beyond
//! this machine.

use std::net::SocketAddr;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{SettingsError, invalid};

/// Who may call the ingest API's data endpoints: `keys` needs an API key with the endpoint's
/// scope (`messages:write` to post, `messages:read` to read); `auto` (the default), as Redis's
/// protected mode, serves callers unauthenticated on loopback and refuses to start a server whose
/// listener is reachable from other machines while nothing authenticates them; `none` serves
/// them unauthenticated anywhere (a trusted network, or a proxy that authenticates).
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
    /// `auto` (the default), `none` or `keys`.
    pub mode: AuthMode,
}

impl AuthSettings {
    /// Whether the ingest API's data endpoints need a key.
    pub fn keys(&self) -> bool {
        self.mode == AuthMode::Keys
    }
}

impl AuthSettings {
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
