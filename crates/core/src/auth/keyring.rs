//! Every key of the fleet, held in memory by each server and kept current from PostgreSQL.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

use chrono::{DateTime, Utc};
use deadpool_postgres::Pool;
use sluice_proto::keys::Scope;
use subtle::ConstantTimeEq;

use super::{
    Binding, Caller, Limit, REFRESH_EVERY, Refused, USED_EVERY, digest, prefix_of, store, unhex,
};
use crate::CancellationToken;

/// What a server holds of one key.
#[derive(Debug)]
struct Held {
    name: String,
    prefix: Arc<str>,
    digest: [u8; 32],
    scopes: Vec<Scope>,
    binding: Binding,
    limit: Option<Limit>,
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
    /// Checks `key` for `scope` at `now`.
    pub fn check(&self, key: &str, scope: Scope, now: DateTime<Utc>) -> Result<Caller, Refused> {
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
            id: prefix.to_owned(),
            binding: held.binding.clone(),
            expires_at: held.expires_at,
            limit: held.limit,
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
    pub(super) fn merge(&self, changed: Vec<store::Row>) -> Option<DateTime<Utc>> {
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
                    limit: row.limit(),
                    name: row.name,
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

    /// The name of the key whose public prefix is `prefix`.
    pub fn name_of(&self, prefix: &str) -> Option<String> {
        let keys = self.keys.read().unwrap_or_else(|e| e.into_inner());
        keys.get(prefix).map(|held| held.name.clone())
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
