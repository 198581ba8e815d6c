//! Brute force against the admin token (and, on the ingest API, guesses at a known API key)
//! slowed: [`Throttle`] counts the failures each client address causes, and past [`MAX_FAILURES`] in a [`WINDOW`] answers that address 429 without
//! looking at the token at all, so that a throttled guess tells nothing (a 429 is the same for a
//! right and a wrong token) until the window has passed. An IPv6 client is counted by its /64,
//! the block one host usually holds.
//!
//! The same count runs per API key prefix ([`Throttle::per_key`]), so that guesses at one key
//! spread over many addresses are slowed too: past [`MAX_KEY_FAILURES`] wrong secrets a minute
//! on one prefix, calls with that prefix are answered 429 until the window ends, the right
//! secret's included. That holds the key's own client up for at most a minute, the price of
//! capping the guesses at any key; revoking the key and making another ends it at once.
//!
//! Memory is bounded: at most [`MAX_TRACKED`] addresses are remembered; past it, windows that
//! have ended are forgotten first, and if none has, an address not yet tracked is throttled too
//! (an attack from that many addresses at once is refused, not remembered). Only failures are
//! tracked: a right token costs nothing here. Failures are counted in
//! [`sluice_core::metric::AUTH_FAILURES`] and logged as one summary line per [`LOG_EVERY`].

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Wrong tokens an address may send in one [`WINDOW`].
pub const MAX_FAILURES: u32 = 5;

/// Wrong secrets one API key prefix may get in one [`WINDOW`], from any addresses.
pub const MAX_KEY_FAILURES: u32 = 50;

/// How long an address's failures are remembered, from its first.
pub const WINDOW: Duration = Duration::from_secs(60);

/// Most addresses remembered at once.
pub const MAX_TRACKED: usize = 65_536;

/// At most one summary line per this long.
pub const LOG_EVERY: Duration = Duration::from_secs(10);

/// The `Retry-After` of a throttled call: `wait` in whole seconds, rounded up, at least 1.
pub fn retry_after(wait: Duration) -> String {
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    secs.max(1).to_string()
}

/// What [`Throttle::admit`] decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The token may be checked.
    Check,
    /// Too many failures: refused for this long, the token unread.
    Throttled(Duration),
}

#[derive(Debug, Clone, Copy)]
struct Failures {
    count: u32,
    since: Instant,
}

/// What failures are counted by: a client address (its /64 for IPv6), or a key prefix.
pub trait Counted: Hash + Eq + Clone + std::fmt::Debug {
    /// What this one is counted as.
    fn counted_as(&self) -> Self;
}

impl Counted for IpAddr {
    fn counted_as(&self) -> Self {
        block_of(*self)
    }
}

impl Counted for String {
    fn counted_as(&self) -> Self {
        self.clone()
    }
}

#[derive(Debug)]
struct State<K> {
    by_address: HashMap<K, Failures>,
    /// Since the last summary line: wrong tokens, throttled calls, and the last address.
    wrong: u64,
    throttled: u64,
    last: Option<K>,
    logged_at: Option<Instant>,
    /// When the ended windows were last forgotten.
    swept_at: Option<Instant>,
}

impl<K> Default for State<K> {
    fn default() -> Self {
        Self {
            by_address: HashMap::new(),
            wrong: 0,
            throttled: 0,
            last: None,
            logged_at: None,
            swept_at: None,
        }
    }
}

/// Failed attempts per client address (or per key prefix), shared by every worker thread of
/// one server.
#[derive(Debug)]
pub struct Throttle<K = IpAddr> {
    state: Mutex<State<K>>,
    /// How many it tracks, as last written under the lock: none lets a call through without
    /// taking the lock (the common case, every request).
    tracked: AtomicUsize,
    /// Failures allowed in a window.
    max_failures: u32,
    /// Whether this one counts in `/metrics` (the per-address one; the per-key one would count
    /// the same failures twice).
    metered: bool,
    /// What it counts by, as its log line says.
    counted_by: &'static str,
}

impl Default for Throttle<IpAddr> {
    fn default() -> Self {
        Self {
            state: Mutex::default(),
            tracked: AtomicUsize::new(0),
            max_failures: MAX_FAILURES,
            metered: true,
            counted_by: "addresses",
        }
    }
}

impl Throttle<String> {
    /// Wrong secrets per API key prefix: [`MAX_KEY_FAILURES`] a window.
    pub fn per_key() -> Self {
        Self {
            state: Mutex::default(),
            tracked: AtomicUsize::new(0),
            max_failures: MAX_KEY_FAILURES,
            metered: false,
            counted_by: "key prefixes",
        }
    }
}

impl<K: Counted> Throttle<K> {
    /// Whether it tracks no failure now: every call may be checked.
    pub fn is_quiet(&self) -> bool {
        self.tracked.load(Ordering::Relaxed) == 0
    }

    /// Whether a call from `peer` may have its token checked at `now`.
    pub fn admit(&self, peer: Option<K>, now: Instant) -> Verdict {
        if self.is_quiet() {
            return Verdict::Check;
        }
        let block = peer.as_ref().map(K::counted_as);
        let mut state = self.lock();
        // Once a second at most, the windows that ended are forgotten, so that a quiet spell
        // lets calls through without the lock again.
        if state
            .swept_at
            .is_none_or(|at| now.duration_since(at) >= LOG_EVERY / 10)
        {
            state.swept_at = Some(now);
            forget_ended(&mut state, now);
            self.tracked
                .store(state.by_address.len(), Ordering::Relaxed);
        }
        let verdict = match block.and_then(|b| state.by_address.get(&b).copied()) {
            Some(f) if now.duration_since(f.since) >= WINDOW => Verdict::Check,
            Some(f) if f.count >= self.max_failures => {
                Verdict::Throttled(WINDOW.saturating_sub(now.duration_since(f.since)))
            }
            Some(_) => Verdict::Check,
            None if state.by_address.len() >= MAX_TRACKED && !forget_ended(&mut state, now) => {
                Verdict::Throttled(WINDOW)
            }
            None => Verdict::Check,
        };
        if let Verdict::Throttled(_) = verdict {
            state.throttled += 1;
            state.last = peer;
            if self.metered {
                metrics::counter!(sluice_core::metric::AUTH_FAILURES, "reason" => "throttled")
                    .increment(1);
            }
            self.log_summary(&mut state, now);
        }
        verdict
    }

    /// Counts a wrong (or missing) token from `peer` at `now`.
    pub fn failed(&self, peer: Option<K>, now: Instant) {
        if self.metered {
            metrics::counter!(sluice_core::metric::AUTH_FAILURES, "reason" => "wrong_token")
                .increment(1);
        }
        let mut state = self.lock();
        state.wrong += 1;
        let block = peer.as_ref().map(K::counted_as);
        state.last = peer;
        if let Some(block) = block {
            if state.by_address.len() >= MAX_TRACKED {
                forget_ended(&mut state, now);
            }
            if state.by_address.len() < MAX_TRACKED || state.by_address.contains_key(&block) {
                let entry = state.by_address.entry(block).or_insert(Failures {
                    count: 0,
                    since: now,
                });
                if now.duration_since(entry.since) >= WINDOW {
                    *entry = Failures {
                        count: 0,
                        since: now,
                    };
                }
                entry.count += 1;
            }
        }
        self.tracked
            .store(state.by_address.len(), Ordering::Relaxed);
        self.log_summary(&mut state, now);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State<K>> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// One warning with the counts since the last, at most once per [`LOG_EVERY`].
    fn log_summary(&self, state: &mut State<K>, now: Instant) {
        if state
            .logged_at
            .is_some_and(|at| now.duration_since(at) < LOG_EVERY)
        {
            return;
        }
        state.logged_at = Some(now);
        let (max, by) = (self.max_failures, self.counted_by);
        tracing::warn!(
            wrong_tokens = state.wrong,
            throttled = state.throttled,
            tracked = state.by_address.len(),
            last = ?state.last,
            "calls refused: a wrong admin token or API key, and calls past {max} failures a \
             minute, counted by {by} (one line per {} s at most)",
            LOG_EVERY.as_secs()
        );
        state.wrong = 0;
        state.throttled = 0;
    }
}

/// The address an IPv4 client is counted by, or the /64 of an IPv6 one.
fn block_of(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let bits = u128::from(v6) & !((1u128 << 64) - 1);
                IpAddr::V6(bits.into())
            }
        },
    }
}

/// Forgets the addresses whose window has ended; whether any was.
fn forget_ended<K>(state: &mut State<K>, now: Instant) -> bool {
    let before = state.by_address.len();
    state
        .by_address
        .retain(|_, f| now.duration_since(f.since) < WINDOW);
    state.by_address.len() < before
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> Option<IpAddr> {
        Some(s.parse().expect("an address"))
    }

    #[test]
    fn an_address_past_its_failures_is_refused_until_its_window_ends() {
        let throttle = Throttle::default();
        let start = Instant::now();
        let attacker = ip("203.0.113.9");
        for _ in 0..MAX_FAILURES {
            assert_eq!(throttle.admit(attacker, start), Verdict::Check);
            throttle.failed(attacker, start);
        }
        let later = start + Duration::from_secs(20);
        assert_eq!(
            throttle.admit(attacker, later),
            Verdict::Throttled(Duration::from_secs(40))
        );
        // Another address is not held up, nor another host of the same IPv4 /24.
        assert_eq!(throttle.admit(ip("203.0.113.10"), later), Verdict::Check);
        assert_eq!(throttle.admit(attacker, start + WINDOW), Verdict::Check);
    }

    #[test]
    fn an_ipv6_client_is_counted_by_its_64() {
        let throttle = Throttle::default();
        let now = Instant::now();
        for host in 1..=MAX_FAILURES {
            throttle.failed(ip(&format!("2001:db8:1:2::{host}")), now);
        }
        let neighbour = ip("2001:db8:1:2:ffff::1");
        assert!(matches!(
            throttle.admit(neighbour, now),
            Verdict::Throttled(_)
        ));
        assert_eq!(throttle.admit(ip("2001:db8:1:3::1"), now), Verdict::Check);
        assert_eq!(
            block_of("::ffff:10.0.0.1".parse().expect("v4 mapped")),
            IpAddr::from([10, 0, 0, 1])
        );
    }

    #[test]
    fn memory_is_bounded_and_a_full_table_refuses_strangers() {
        let throttle = Throttle::default();
        let now = Instant::now();
        for i in 0..MAX_TRACKED as u32 {
            throttle.failed(Some(IpAddr::from(i.to_be_bytes())), now);
        }
        throttle.failed(ip("198.51.100.1"), now);
        assert_eq!(throttle.lock().by_address.len(), MAX_TRACKED);
        assert_eq!(
            throttle.admit(ip("198.51.100.2"), now),
            Verdict::Throttled(WINDOW)
        );
        // Once their windows have ended, room is made again.
        assert_eq!(
            throttle.admit(ip("198.51.100.2"), now + WINDOW),
            Verdict::Check
        );
    }
}

#[cfg(test)]
mod per_key {
    use super::*;

    #[test]
    fn guesses_at_one_key_from_many_addresses_are_slowed_by_its_prefix() {
        let throttle = Throttle::per_key();
        let start = Instant::now();
        let prefix = Some("slk_Ab3dEf9h".to_owned());
        for _ in 0..MAX_KEY_FAILURES {
            assert_eq!(throttle.admit(prefix.clone(), start), Verdict::Check);
            throttle.failed(prefix.clone(), start);
        }
        assert!(matches!(
            throttle.admit(prefix.clone(), start),
            Verdict::Throttled(_)
        ));
        let other = Some("slk_Zz9yXw8v".to_owned());
        assert_eq!(throttle.admit(other, start), Verdict::Check);
        assert_eq!(throttle.admit(prefix, start + WINDOW), Verdict::Check);
    }
}
