//! Who is calling: every credential a server accepts, checked in memory by one [`Verifier`].
//!
//! - API keys: made, listed and revoked in PostgreSQL ([`store`]), and held by each server in
//!   its [`Keyring`].
//! - Tokens (JWT) that an organisation already issues ([`token`]), with `auth.jwt`.
//!
//! A key is `slk_<prefix>_<secret>`: 8 and 32 random letters and digits (about 190 bits of
//! secret). PostgreSQL keeps its SHA-256 and its public `slk_<prefix>` only. A server holds every
//! key's hash, scopes and dates in memory, so checking a key costs no round trip; it asks
//! PostgreSQL once a second for the keys changed since its last look (a revocation is refused
//! fleet-wide within about a second, whatever happened to Redis), and records when keys were
//! last used in one batched write every few seconds.

mod keyring;
pub mod store;
pub mod token;

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use rand::Rng;
use rand::distr::Alphanumeric;
use sluice_proto::keys::Scope;

pub use keyring::Keyring;
pub use token::{TokenError, Tokens};

use crate::Settings;

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
    /// Past its `expires_at` (a token: its `exp`).
    #[error("the credential has expired")]
    Expired,
    /// A token whose `nbf` (not before) is still ahead.
    #[error("the credential is not valid yet (nbf)")]
    NotYetValid,
    /// Revoked.
    #[error("the credential has been revoked")]
    Revoked,
    /// A valid key without the scope the endpoint needs.
    #[error("the credential lacks the scope this endpoint needs")]
    InsufficientScope(Scope),
    /// A key bound to channels, used for another (or, to read, for none named).
    #[error("this key may not use channel {0}: name one of its channels")]
    ChannelNotAllowed(i64),
    /// A credential bound to channels, asking for what spans every channel (messages without
    /// `channel_id`, a stream's message ids).
    #[error(
        "this credential is bound to channels: name one of them (it may not read every channel)"
    )]
    EveryChannel,
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
            Self::NotYetValid => "credentials_not_yet_valid",
            Self::Revoked => "credentials_revoked",
            Self::InsufficientScope(_) => "insufficient_scope",
            Self::ChannelNotAllowed(_) | Self::EveryChannel => "channel_not_allowed",
            Self::UserNotAllowed(_) => "user_not_allowed",
        }
    }

    /// Whether the answer is 403 (a valid key short of the scope) rather than 401.
    pub fn is_forbidden(self) -> bool {
        matches!(
            self,
            Self::InsufficientScope(_)
                | Self::ChannelNotAllowed(_)
                | Self::EveryChannel
                | Self::UserNotAllowed(_)
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
            Self::ChannelNotAllowed(_) | Self::EveryChannel | Self::UserNotAllowed(_) => {
                r#"Bearer realm="sluice", error="insufficient_scope""#.to_owned()
            }
            Self::Invalid
            | Self::WrongSecret
            | Self::Expired
            | Self::NotYetValid
            | Self::Revoked => format!(
                r#"Bearer realm="sluice", error="invalid_token", error_description="{self}""#
            ),
        }
    }
}

/// A caller whose credential was accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// Who: a key's public prefix (`slk_…`), or `jwt:<sub>` for a token; recorded with what it
    /// sends, never the credential.
    pub id: String,
    /// The user and channels the credential is bound to.
    pub binding: Binding,
    /// When the credential stops being accepted: a stream it opened is closed then.
    pub expires_at: Option<DateTime<Utc>>,
    /// How fast it may post, when limited.
    pub limit: Option<Limit>,
}

impl Caller {
    /// Whether the caller's credential is an API key (else a token).
    pub fn is_key(&self) -> bool {
        self.id.starts_with(KEY_MARK)
    }
}

/// A caller's rate limit: `rate` messages a second, with bursts of up to `burst`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    /// Messages a second, sustained.
    pub rate: u32,
    /// Messages at once, after a quiet spell.
    pub burst: u32,
}

impl Limit {
    /// `rate` a second with bursts of `burst`, each at least 1.
    pub fn new(rate: u32, burst: u32) -> Self {
        Self {
            rate: rate.max(1),
            burst: burst.max(1),
        }
    }
}

/// Every credential a server accepts: API keys, and tokens when `auth.jwt` sets a way to check
/// them. The one place a credential is checked, for every endpoint of both servers.
pub struct Verifier {
    keyring: Option<Arc<Keyring>>,
    tokens: Option<Tokens>,
}

impl Verifier {
    /// What the data endpoints need with `auth.mode = keys`: API keys, and tokens when
    /// `auth.jwt` (or the older `stream.auth.jwt_secret`) sets a way to check them. `None` in
    /// the other modes: callers are not checked.
    pub fn for_callers(settings: &Settings) -> Result<Option<Arc<Self>>, TokenError> {
        if !settings.auth.keys() {
            return Ok(None);
        }
        let legacy = settings.stream.auth.jwt_secret.expose();
        Ok(Some(Arc::new(Self {
            keyring: Some(Arc::default()),
            tokens: Tokens::new(&settings.auth.jwt, legacy)?,
        })))
    }

    /// What the stats stream needs: `callers` (the verifier of the data endpoints) when there
    /// is one, else the tokens of `stream.auth.jwt_secret` alone, else nothing.
    pub fn for_stream(
        settings: &Settings,
        callers: Option<&Arc<Self>>,
    ) -> Result<Option<Arc<Self>>, TokenError> {
        if let Some(callers) = callers {
            return Ok(Some(Arc::clone(callers)));
        }
        let secret = settings.stream.auth.jwt_secret.expose();
        let tokens = Tokens::new(&crate::settings::JwtSettings::default(), secret)?;
        Ok(tokens.map(|tokens| {
            Arc::new(Self {
                keyring: None,
                tokens: Some(tokens),
            })
        }))
    }

    /// Checks `bearer` (the request's credential, if any) for `scope` at `now`: an API key when
    /// it is shaped like one, else a token.
    pub fn check(
        &self,
        bearer: Option<&str>,
        scope: Scope,
        now: DateTime<Utc>,
    ) -> Result<Caller, Refused> {
        let credential = bearer.ok_or(Refused::Missing)?;
        if prefix_of(credential).is_some() {
            let ring = self.keyring.as_deref().ok_or(Refused::Invalid)?;
            return ring.check(credential, scope, now);
        }
        let tokens = self.tokens.as_ref().ok_or(Refused::Invalid)?;
        tokens.verify(credential, scope, now)
    }

    /// The API keys, when it checks them.
    pub fn keyring(&self) -> Option<&Arc<Keyring>> {
        self.keyring.as_ref()
    }

    /// Starts the task that keeps the keys current from `pool` until `shutdown`
    /// ([`Keyring::run`]), when it checks keys.
    pub fn keep_current(
        &self,
        pool: &deadpool_postgres::Pool,
        shutdown: &crate::CancellationToken,
    ) -> Option<tokio::task::JoinHandle<()>> {
        let ring = Arc::clone(self.keyring.as_ref()?);
        Some(tokio::spawn(ring.run(pool.clone(), shutdown.clone())))
    }

    /// Whether every credential it accepts can be checked: the keys were read from PostgreSQL
    /// at least once.
    pub fn is_ready(&self) -> bool {
        self.keyring.as_ref().is_none_or(|ring| ring.is_loaded())
    }
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
            (Some(_), None) => Err(Refused::EveryChannel),
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

#[cfg(test)]
mod tests {
    use super::*;

    fn keys_with(
        minted: &Minted,
        scopes: Vec<Scope>,
        expires_at: Option<DateTime<Utc>>,
    ) -> Verifier {
        let ring = Keyring::default();
        ring.merge(vec![store::Row {
            name: "app".into(),
            prefix: minted.prefix.clone(),
            hash: minted.hash.clone(),
            scopes,
            user_id: None,
            channels: None,
            rate: Some(50),
            burst: None,
            created_at: Utc::now(),
            expires_at,
            revoked_at: None,
            last_used_at: None,
            updated_at: Utc::now(),
        }]);
        Verifier {
            keyring: Some(Arc::new(ring)),
            tokens: None,
        }
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
        let keys = keys_with(&minted, vec![Scope::MessagesWrite], None);
        let key = Some(minted.key.as_str());
        assert_eq!(
            keys.check(key, Scope::MessagesWrite, now),
            Ok(Caller {
                id: minted.prefix.clone(),
                binding: Binding::default(),
                expires_at: None,
                limit: Some(Limit::new(50, 50)),
            })
        );
        assert_eq!(
            keys.check(None, Scope::MessagesWrite, now),
            Err(Refused::Missing)
        );
        let forged = format!("{}_{}", minted.prefix, "x".repeat(SECRET_LEN));
        assert_eq!(
            keys.check(Some(&forged), Scope::MessagesWrite, now),
            Err(Refused::WrongSecret)
        );
        assert_eq!(Refused::WrongSecret.code(), Refused::Invalid.code());
        assert_eq!(
            keys.check(Some(&mint().key), Scope::MessagesWrite, now),
            Err(Refused::Invalid)
        );
        assert_eq!(
            keys.check(Some("not.a.token"), Scope::MessagesWrite, now),
            Err(Refused::Invalid),
            "no tokens configured: anything not shaped like a key is not valid"
        );
        assert_eq!(
            keys.check(key, Scope::MessagesRead, now),
            Err(Refused::InsufficientScope(Scope::MessagesRead))
        );
        let expired = keys_with(&minted, vec![Scope::MessagesWrite], Some(now));
        assert_eq!(
            expired.check(key, Scope::MessagesWrite, now),
            Err(Refused::Expired)
        );
        assert_eq!(
            keys.keyring().and_then(|ring| ring.name_of(&minted.prefix)),
            Some("app".to_owned())
        );
    }
}
