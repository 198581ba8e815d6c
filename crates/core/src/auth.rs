//! API keys: made, listed and revoked in PostgreSQL ([`store`]), and checked in memory
//! ([`Keyring`]).
//!
//! A key is `slk_<prefix>_<secret>`: 8 and 32 random letters and digits (about 190 bits of
//! secret). PostgreSQL keeps its SHA-256 and its public `slk_<prefix>` only. A server holds every
//! key's hash, scopes and dates in memory, so checking a key costs no round trip; it asks
//! PostgreSQL once a second for the keys changed since its last look (a revocation is refused
//! fleet-wide within about a second, whatever happened to Redis), and records when keys were
//! last used in one batched write every few seconds.

pub mod store;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use chrono::{DateTime, Utc};
use deadpool_postgres::Pool;
use rand::Rng;
use rand::distr::Alphanumeric;
use sluice_proto::keys::Scope;
use subtle::ConstantTimeEq;

use crate::CancellationToken;

/// The start of every key.
pub const KEY_MARK: &str = "slk_";
/// Letters of a key's public prefix, after [`KEY_MARK`].
pub const PREFIX_LEN: usize = 8;
/// Letters of a key's secret.
pub const SECRET_LEN: usize = 32;
/// How often a server asks PostgreSQL for the keys changed since its last look.
pub const REFRESH_EVERY: Duration = Duration::from_secs(1);
/// How often the keys' `last_used_at` is written.
pub const USED_EVERY: Duration = Duration::from_secs(5);

/// Why a credential was refused, each with its stable code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    /// No `Authorization: Bearer`.
    #[error("this endpoint needs a credential: Authorization: Bearer <key>")]
    Missing,
    /// Not a key this fleet made.
    #[error("the credential is not valid")]
    Invalid,
    /// The public prefix of a key this fleet made, with another secret: a guess at that key.
    /// Answered as [`Refused::Invalid`].
    #[error("the credential is not valid")]
    WrongSecret,
    /// Past its `expires_at`.
    #[error("the credential has expired")]
    Expired,
    /// Revoked.
    #[error("the credential has been revoked")]
    Revoked,
    /// A valid key without the scope the endpoint needs.
    #[error("the credential lacks the scope this endpoint needs")]
    InsufficientScope(Scope),
    /// A key bound to channels, used for another (or, to read, for none named).
    #[error("this key may not use channel {0}: name one of its channels")]
    ChannelNotAllowed(i64),
    /// A key bound to a user, posting as another.
    #[error("this key may not post as user {0}")]
    UserNotAllowed(i64),
}

impl Refused {
    /// The stable machine-readable code.
    pub fn code(self) -> &'static str {
        match self {
            Self::Missing => "missing_credentials",
            Self::Invalid | Self::WrongSecret => "invalid_credentials",
            Self::Expired => "credentials_expired",
            Self::Revoked => "credentials_revoked",
            Self::InsufficientScope(_) => "insufficient_scope",
            Self::ChannelNotAllowed(_) => "channel_not_allowed",
            Self::UserNotAllowed(_) => "user_not_allowed",
        }
    }

    /// Whether the answer is 403 (a valid key short of the scope) rather than 401.
    pub fn is_forbidden(self) -> bool {
        matches!(
            self,
            Self::InsufficientScope(_) | Self::ChannelNotAllowed(_) | Self::UserNotAllowed(_)
        )
    }

    /// The `WWW-Authenticate` challenge of the answer (RFC 6750): `invalid_token` for a
    /// credential that is not good, `insufficient_scope` with the scope needed, none for a
    /// missing one.
    pub fn challenge(self) -> String {
        match self {
            Self::Missing => r#"Bearer realm="sluice""#.to_owned(),
            Self::InsufficientScope(scope) => format!(
                r#"Bearer realm="sluice", error="insufficient_scope", scope="{}""#,
                scope.name()
            ),
            Self::ChannelNotAllowed(_) | Self::UserNotAllowed(_) => {
                r#"Bearer realm="sluice", error="insufficient_scope""#.to_owned()
            }
            Self::Invalid | Self::WrongSecret | Self::Expired | Self::Revoked => format!(
                r#"Bearer realm="sluice", error="invalid_token", error_description="{self}""#
            ),
        }
    }
}

/// A caller whose key was accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The user and channels the key is bound to. (Nothing else is copied per request: a
    /// shared counter touched by every thread on every request would cost more than the check.)
    pub binding: Binding,
}

/// The user and the channels a key is bound to; unbound, anything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Binding {
    /// The one `user_id` the key may post as.
    pub user_id: Option<i64>,
    /// The `channel_id`s it may post into and read.
    pub channels: Option<Arc<[i64]>>,
}

impl Binding {
    /// Whether a message of `user_id` into `channel_id` may be posted.
    pub fn may_post(&self, user_id: i64, channel_id: i64) -> Result<(), Refused> {
        if self.user_id.is_some_and(|bound| bound != user_id) {
            return Err(Refused::UserNotAllowed(user_id));
        }
        self.may_use(channel_id)
    }

    /// Whether messages may be read in `channel_id` (`None`: every channel, which a key bound
    /// to channels may not).
    pub fn may_read(&self, channel_id: Option<i64>) -> Result<(), Refused> {
        match (&self.channels, channel_id) {
            (None, _) => Ok(()),
            (Some(_), Some(channel)) => self.may_use(channel),
            (Some(channels), None) => Err(Refused::ChannelNotAllowed(channels[0])),
        }
    }

    fn may_use(&self, channel_id: i64) -> Result<(), Refused> {
        match &self.channels {
            Some(channels) if !channels.contains(&channel_id) => {
                Err(Refused::ChannelNotAllowed(channel_id))
            }
            _ => Ok(()),
        }
    }
}

/// A new key: the key, its public prefix and its hash.
pub struct Minted {
    /// The key, shown once.
    pub key: String,
    /// `slk_` and the public letters.
    pub prefix: String,
    /// SHA-256 of the key, hex.
    pub hash: String,
}

/// Makes a key from the operating system's random generator.
pub fn mint() -> Minted {
    let mut letters = rand::rng().sample_iter(Alphanumeric).map(char::from);
    let public: String = letters.by_ref().take(PREFIX_LEN).collect();
    let secret: String = letters.take(SECRET_LEN).collect();
    let prefix = format!("{KEY_MARK}{public}");
    let key = format!("{prefix}_{secret}");
    Minted {
        hash: hash(&key),
        prefix,
        key,
    }
}

/// SHA-256 of `key`, hex, as PostgreSQL keeps it.
pub fn hash(key: &str) -> String {
    digest(key).iter().map(|b| format!("{b:02x}")).collect()
}

/// SHA-256 of `key`.
fn digest(key: &str) -> [u8; 32] {
    let digest = ring::digest::digest(&ring::digest::SHA256, key.as_bytes());
    let mut bytes = [0u8; 32];
    bytes.copy_from_slice(digest.as_ref());
    bytes
}

/// The bytes of a hex SHA-256; `None` when `hex` is not one.
fn unhex(hex: &str) -> Option<[u8; 32]> {
    let mut bytes = [0u8; 32];
    if hex.len() != 64 {
        return None;
    }
    for (i, byte) in bytes.iter_mut().enumerate() {
        *byte = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(bytes)
}

/// The public prefix of something shaped like a key.
pub fn prefix_of(key: &str) -> Option<&str> {
    let rest = key.strip_prefix(KEY_MARK)?;
    let (public, secret) = rest.split_once('_')?;
    (public.len() == PREFIX_LEN && secret.len() == SECRET_LEN)
        .then(|| &key[..KEY_MARK.len() + PREFIX_LEN])
}

/// What a server holds of one key.
#[derive(Debug)]
struct Held {
    prefix: Arc<str>,
    digest: [u8; 32],
    scopes: Vec<Scope>,
    binding: Binding,
    expires_at: Option<DateTime<Utc>>,
    revoked: bool,
    /// Accepted since the last `last_used_at` write.
    used: AtomicBool,
}

/// Every key of the fleet, in memory, kept current from PostgreSQL by [`Keyring::run`].
#[derive(Debug, Default)]
pub struct Keyring {
    /// By public prefix.
    keys: RwLock<HashMap<String, Held>>,
    /// Whether the keys were read from PostgreSQL at least once: until then every key is
    /// refused, so the server is not ready.
    loaded: AtomicBool,
}

impl Keyring {
    /// Checks `bearer` (the `Authorization: Bearer` value, if any) for `scope` at `now`.
    pub fn check(
        &self,
        bearer: Option<&str>,
        scope: Scope,
        now: DateTime<Utc>,
    ) -> Result<Caller, Refused> {
        let key = bearer.ok_or(Refused::Missing)?;
        let prefix = prefix_of(key).ok_or(Refused::Invalid)?;
        let keys = self.keys.read().unwrap_or_else(|e| e.into_inner());
        let held = keys.get(prefix).ok_or(Refused::Invalid)?;
        if !bool::from(digest(key).ct_eq(&held.digest)) {
            return Err(Refused::WrongSecret);
        }
        if held.revoked {
            return Err(Refused::Revoked);
        }
        if held.expires_at.is_some_and(|at| at <= now) {
            return Err(Refused::Expired);
        }
        if !held.scopes.contains(&scope) {
            return Err(Refused::InsufficientScope(scope));
        }
        // Written only when it changes: no cache line bounces between threads per request.
        if !held.used.load(Ordering::Relaxed) {
            held.used.store(true, Ordering::Relaxed);
        }
        Ok(Caller {
            binding: held.binding.clone(),
        })
    }

    /// Keeps the ring current until `shutdown`: the keys changed since the last look, every
    /// [`REFRESH_EVERY`], and the last uses, every [`USED_EVERY`]. A failed look is retried at
    /// the next tick; meanwhile the ring serves what it holds.
    pub async fn run(self: Arc<Self>, pool: Pool, shutdown: CancellationToken) {
        let mut since: Option<DateTime<Utc>> = None;
        let mut tick = tokio::time::interval(REFRESH_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_used_write = tokio::time::Instant::now();
        let mut failing = false;
        loop {
            tokio::select! {
                () = shutdown.cancelled() => break,
                _ = tick.tick() => {}
            }
            match store::changed_since(&pool, since).await {
                Ok(changed) => {
                    failing = false;
                    since = self.merge(changed).or(since);
                    self.loaded.store(true, Ordering::Release);
                }
                Err(e) if !std::mem::replace(&mut failing, true) => {
                    tracing::warn!(error = %e, "cannot refresh the API keys from PostgreSQL; serving those held");
                }
                Err(_) => {}
            }
            if last_used_write.elapsed() >= USED_EVERY {
                last_used_write = tokio::time::Instant::now();
                self.write_used(&pool).await;
            }
        }
        self.write_used(&pool).await;
    }

    /// Takes in the keys of a look; the newest `updated_at` among them.
    fn merge(&self, changed: Vec<store::Row>) -> Option<DateTime<Utc>> {
        let newest = changed.iter().map(|row| row.updated_at).max();
        let mut keys = self.keys.write().unwrap_or_else(|e| e.into_inner());
        for row in changed {
            let Some(digest) = unhex(&row.hash) else {
                tracing::warn!(name = %row.name, "API key with an unreadable hash; refusing it");
                continue;
            };
            keys.insert(
                row.prefix.clone(),
                Held {
                    prefix: Arc::from(row.prefix),
                    digest,
                    used: AtomicBool::new(false),
                    scopes: row.scopes,
                    binding: Binding {
                        user_id: row.user_id,
                        channels: row.channels.map(Arc::from),
                    },
                    expires_at: row.expires_at,
                    revoked: row.revoked_at.is_some(),
                },
            );
        }
        newest
    }

    /// Records when the keys accepted since the last write were used.
    async fn write_used(&self, pool: &Pool) {
        let used: Vec<String> = {
            let keys = self.keys.read().unwrap_or_else(|e| e.into_inner());
            keys.values()
                .filter(|held| held.used.swap(false, Ordering::Relaxed))
                .map(|held| held.prefix.to_string())
                .collect()
        };
        if used.is_empty() {
            return;
        }
        if let Err(e) = store::mark_used(pool, &used).await {
            tracing::debug!(error = %e, "cannot record the keys' last use");
        }
    }

    /// Whether the keys were read from PostgreSQL at least once.
    pub fn is_loaded(&self) -> bool {
        self.loaded.load(Ordering::Acquire)
    }

    /// How many keys the ring holds.
    pub fn len(&self) -> usize {
        self.keys.read().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Whether the ring holds no key.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ring_with(
        minted: &Minted,
        scopes: Vec<Scope>,
        expires_at: Option<DateTime<Utc>>,
    ) -> Keyring {
        let ring = Keyring::default();
        ring.merge(vec![store::Row {
            name: "app".into(),
            prefix: minted.prefix.clone(),
            hash: minted.hash.clone(),
            scopes,
            user_id: None,
            channels: None,
            created_at: Utc::now(),
            expires_at,
            revoked_at: None,
            last_used_at: None,
            updated_at: Utc::now(),
        }]);
        ring
    }

    #[test]
    fn a_key_is_high_entropy_and_only_its_hash_and_prefix_are_kept() {
        let a = mint();
        let b = mint();
        assert_ne!(a.key, b.key);
        assert_eq!(a.key.len(), KEY_MARK.len() + PREFIX_LEN + 1 + SECRET_LEN);
        assert_eq!(prefix_of(&a.key), Some(a.prefix.as_str()));
        assert!(!a.hash.contains(&a.key[a.prefix.len() + 1..]));
        assert_eq!(a.hash, hash(&a.key));
        assert_eq!(prefix_of("slk_short_x"), None);
        assert_eq!(prefix_of("Bearer"), None);
    }

    #[test]
    fn a_bound_key_posts_as_its_user_into_its_channels_and_reads_only_those() {
        let binding = Binding {
            user_id: Some(7),
            channels: Some(Arc::from([3, 4])),
        };
        assert_eq!(binding.may_post(7, 3), Ok(()));
        assert_eq!(binding.may_post(8, 3), Err(Refused::UserNotAllowed(8)));
        assert_eq!(binding.may_post(7, 5), Err(Refused::ChannelNotAllowed(5)));
        assert_eq!(binding.may_read(Some(4)), Ok(()));
        assert_eq!(
            binding.may_read(Some(5)),
            Err(Refused::ChannelNotAllowed(5))
        );
        assert!(
            binding.may_read(None).is_err(),
            "a bound key names its channel"
        );
        let unbound = Binding::default();
        assert_eq!(
            (unbound.may_post(1, 1), unbound.may_read(None)),
            (Ok(()), Ok(()))
        );
        assert!(Refused::ChannelNotAllowed(5).is_forbidden());
        assert!(
            Refused::UserNotAllowed(8)
                .challenge()
                .contains("insufficient_scope")
        );
    }

    #[test]
    fn every_refusal_has_its_reason() {
        let minted = mint();
        let now = Utc::now();
        let ring = ring_with(&minted, vec![Scope::MessagesWrite], None);
        let key = Some(minted.key.as_str());
        assert_eq!(
            ring.check(key, Scope::MessagesWrite, now),
            Ok(Caller {
                binding: Binding::default()
            })
        );
        assert_eq!(
            ring.check(None, Scope::MessagesWrite, now),
            Err(Refused::Missing)
        );
        let forged = format!("{}_{}", minted.prefix, "x".repeat(SECRET_LEN));
        assert_eq!(
            ring.check(Some(&forged), Scope::MessagesWrite, now),
            Err(Refused::WrongSecret)
        );
        assert_eq!(Refused::WrongSecret.code(), Refused::Invalid.code());
        assert_eq!(
            ring.check(Some(&mint().key), Scope::MessagesWrite, now),
            Err(Refused::Invalid)
        );
        assert_eq!(
            ring.check(key, Scope::MessagesRead, now),
            Err(Refused::InsufficientScope(Scope::MessagesRead))
        );
        let expired = ring_with(&minted, vec![Scope::MessagesWrite], Some(now));
        assert_eq!(
            expired.check(key, Scope::MessagesWrite, now),
            Err(Refused::Expired)
        );
    }
}
