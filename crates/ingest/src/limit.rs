//! Per-caller rate limits that hold across every ingest API together.
//!
//! A caller's allowance is one token bucket in Redis (`allowance:<key id>`,
//! [`crate::lua::take_allowance`]), on Redis's clock. Asking Redis for every request would add
//! a round trip to each; instead each ingest API takes a lease of about a tenth of a second's
//! worth ([`LEASE_SHARE`]) and spends it in memory, so a caller costs Redis at most about ten
//! calls a second per ingest API, whatever its request rate. A lease not spent within
//! [`LEASE_LIFE`] is dropped rather than spent late, so no ingest API can hoard a burst: what
//! the fleet admits over any window is at most the bucket's `burst + rate × window`, and falls
//! short of it by at most one unspent lease per ingest API.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use sluice_core::Keys;
use sluice_core::auth::Limit;
use sluice_core::connect::RedisConnection;

use crate::error::ApiError;
use crate::lua::take_allowance::TakeAllowance;
use crate::state::AppState;

/// The share of a second's rate taken ahead at once.
pub const LEASE_SHARE: u32 = 10;
/// How long an unspent lease may be spent.
pub const LEASE_LIFE: Duration = Duration::from_secs(1);
/// Callers whose leases a process holds at most; past it, the stale ones are dropped.
pub const MAX_CALLERS: usize = 65_536;

/// Why a request was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limited {
    /// The caller's limit.
    pub limit: Limit,
    /// Until the allowance holds the request's messages again (at least the next token).
    pub wait: Duration,
    /// Whether the request holds more messages than the burst: it can never be admitted whole.
    pub beyond_burst: bool,
}

/// A lease: messages this process may admit for a caller without asking Redis.
#[derive(Debug, Clone, Copy)]
struct Lease {
    tokens: u32,
    taken_at: Instant,
}

/// A caller's rate limit, taken from its credential before its body is read.
#[derive(Debug, Clone)]
pub struct Quota {
    /// The caller's id (`slk_…`, `jwt:<sub>`).
    pub id: String,
    /// Its limit.
    pub limit: Limit,
}

impl Quota {
    /// Admits `count` messages ([`Limiter::admit`]); 429 `rate_limited` past the limit.
    pub async fn admit(&self, state: &AppState, count: usize) -> Result<(), ApiError> {
        let mut redis = state.redis.clone();
        let count = u32::try_from(count).unwrap_or(u32::MAX);
        let (keys, timeout) = (&state.keys, state.redis_timeout);
        state
            .limiter
            .admit(&mut redis, keys, &self.id, self.limit, count, timeout)
            .await
            .map_err(|limited| {
                metrics::counter!(sluice_core::metric::RATE_LIMITED).increment(1);
                ApiError::RateLimited(limited)
            })
    }
}

/// The leases of one ingest API.
#[derive(Debug, Default)]
pub struct Limiter {
    leases: Mutex<HashMap<String, Lease>>,
}

impl Limiter {
    /// Admits `count` messages of the caller `id` under `limit`: from its lease, else from a new
    /// lease taken from Redis. Redis unreachable admits (the push that follows fails anyway).
    pub async fn admit(
        &self,
        redis: &mut RedisConnection,
        keys: &Keys,
        id: &str,
        limit: Limit,
        count: u32,
        timeout: Duration,
    ) -> Result<(), Limited> {
        if count > limit.burst {
            let wait = Duration::from_secs(1);
            return Err(Limited {
                limit,
                wait,
                beyond_burst: true,
            });
        }
        let now = Instant::now();
        let held = match self.spend(id, count, now) {
            Ok(()) => return Ok(()),
            Err(held) => held,
        };
        let chunk = (limit.rate / LEASE_SHARE).max(1);
        let want = (count - held).saturating_add(chunk).min(limit.burst);
        let key = keys.allowance(id);
        let call = TakeAllowance {
            key: &key,
            limit,
            want,
        };
        let taken = sluice_core::connect::within(timeout, "take_allowance", async {
            sluice_core::lua::call(redis, keys, &call).await
        })
        .await;
        let Ok(granted) = taken else {
            return Ok(());
        };
        self.add(id, granted.granted, now);
        self.spend(id, count, Instant::now())
            .map_err(|held| Limited {
                limit,
                wait: granted
                    .wait
                    .max(wait_for(count - held, limit))
                    .max(Duration::from_millis(1)),
                beyond_burst: false,
            })
    }

    /// Spends `count` from the caller's lease; else what the lease holds.
    fn spend(&self, id: &str, count: u32, now: Instant) -> Result<(), u32> {
        let mut leases = self.leases.lock().unwrap_or_else(|e| e.into_inner());
        let Some(lease) = leases.get_mut(id) else {
            return Err(0);
        };
        if now.duration_since(lease.taken_at) > LEASE_LIFE {
            lease.tokens = 0;
        }
        if lease.tokens >= count {
            lease.tokens -= count;
            return Ok(());
        }
        Err(lease.tokens)
    }

    /// Adds `granted` to the caller's lease, taken at `now`.
    fn add(&self, id: &str, granted: u32, now: Instant) {
        let mut leases = self.leases.lock().unwrap_or_else(|e| e.into_inner());
        if leases.len() >= MAX_CALLERS && !leases.contains_key(id) {
            leases.retain(|_, lease| now.duration_since(lease.taken_at) <= LEASE_LIFE);
            if leases.len() >= MAX_CALLERS {
                return;
            }
        }
        let lease = leases.entry(id.to_owned()).or_insert(Lease {
            tokens: 0,
            taken_at: now,
        });
        if now.duration_since(lease.taken_at) > LEASE_LIFE {
            lease.tokens = 0;
        }
        lease.tokens = lease.tokens.saturating_add(granted);
        lease.taken_at = now;
    }
}

/// How long `missing` messages take to accrue at `limit`'s rate.
fn wait_for(missing: u32, limit: Limit) -> Duration {
    Duration::from_secs_f64(f64::from(missing) / f64::from(limit.rate))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lease_is_spent_in_memory_and_dropped_when_stale() {
        let limiter = Limiter::default();
        let start = Instant::now();
        assert_eq!(limiter.spend("k", 1, start), Err(0), "no lease yet");
        limiter.add("k", 5, start);
        assert_eq!(limiter.spend("k", 3, start), Ok(()));
        assert_eq!(limiter.spend("k", 3, start), Err(2), "2 left");
        assert_eq!(limiter.spend("k", 2, start), Ok(()));
        limiter.add("k", 5, start);
        let late = start + LEASE_LIFE + Duration::from_millis(1);
        assert_eq!(
            limiter.spend("k", 1, late),
            Err(0),
            "a stale lease is not spent"
        );
        assert_eq!(wait_for(5, Limit::new(10, 10)), Duration::from_millis(500));
    }
}
