//! Who may read the stream: the server's `sluice_core::auth::Verifier`, when it has one, checks
//! the credential of every request for `stats:read` (an API key, or a token: the older
//! `stream.auth.jwt_secret` or `auth.jwt`). The credential comes from `?token=` (browsers
//! cannot set headers on a WebSocket) or `Authorization: Bearer`.
//!
//! A stream stays open only while its credential would still be accepted ([`Validity`]): one
//! whose credential expires, or whose key is revoked (looked at once a second, in memory), is
//! closed: a WebSocket session with [`TOKEN_EXPIRED_CLOSE_CODE`], an SSE stream by ending it.

use std::sync::Arc;
use std::time::Duration;

use sluice_core::auth::Verifier;
use sluice_proto::keys::Scope;
use tokio::time::Instant;

/// Close code of a session whose credential expired or was revoked (application range
/// 4000–4999).
pub const TOKEN_EXPIRED_CLOSE_CODE: u16 = 4401;

/// How often an open stream's key is checked again.
pub const RECHECK_EVERY: Duration = Duration::from_secs(1);

/// How long a stream's caller may go on reading.
#[derive(Clone, Default)]
pub struct Validity {
    /// When its credential expires.
    expires: Option<Instant>,
    /// Its key, checked again every [`RECHECK_EVERY`] (a revoked key ends the stream).
    key: Option<(Arc<Verifier>, String)>,
    /// When the key is next checked.
    next_check: Option<Instant>,
}

impl std::fmt::Debug for Validity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Validity")
            .field("expires", &self.expires)
            .field("rechecked", &self.key.is_some())
            .finish()
    }
}

impl Validity {
    /// A caller whose credential expires after `ttl` (if ever) and, when `key` is given, is
    /// checked again every second.
    pub fn new(ttl: Option<Duration>, key: Option<(Arc<Verifier>, String)>) -> Self {
        let now = Instant::now();
        Self {
            expires: ttl.map(|ttl| now + ttl),
            next_check: key.as_ref().map(|_| now + RECHECK_EVERY),
            key,
        }
    }

    /// Resolves once the caller's credential is no longer accepted: expired, or its key
    /// revoked (or otherwise refused). Never, for a caller whose credential does neither.
    /// Cancel-safe: a stream's `select!` may drop it and call it again.
    pub async fn ended(&mut self) {
        loop {
            let wake = match (self.expires, self.next_check) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            let Some(wake) = wake else {
                return std::future::pending().await;
            };
            tokio::time::sleep_until(wake).await;
            if self.expires.is_some_and(|at| at <= Instant::now()) {
                return;
            }
            if let Some((verifier, key)) = &self.key {
                let now = chrono::Utc::now();
                if verifier.check(Some(key), Scope::StatsRead, now).is_err() {
                    return;
                }
                self.next_check = Some(Instant::now() + RECHECK_EVERY);
            }
        }
    }
}
