//! Brute force against the admin token (and, on the ingest API, guesses at a known API key)
//! slowed: [`Throttle`] counts the failures each client address causes, and past [`MAX_FAILURES`] in a [`WINDOW`] answers that address 429 without
//! looking at the token at all, so that a throttled guess tells nothing (a 429 is the same for a
//! right and a wrong token) until the window has passed. An IPv6 client is counted by its /64,
//! the block one host usually holds.
//!
//! Memory is bounded: at most [`MAX_TRACKED`] addresses are remembered; past it, windows that
//! have ended are forgotten first, and if none has, an address not yet tracked is throttled too
//! (an attack from that many addresses at once is refused, not remembered). Only failures are
//! tracked: a right token costs nothing here. Failures are counted in
//! [`sluice_core::metric::AUTH_FAILURES`] and logged as one summary line per [`LOG_EVERY`].

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Wrong tokens an address may send in one [`WINDOW`].
pub const MAX_FAILURES: u32 = 5;

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

#[derive(Debug, Default)]
struct State {
    by_address: HashMap<IpAddr, Failures>,
    /// Since the last summary line: wrong tokens, throttled calls, and the last address.
    wrong: u64,
    throttled: u64,
    last: Option<IpAddr>,
    logged_at: Option<Instant>,
}

/// Failed attempts per client address, shared by every worker thread of one server.
#[derive(Debug, Default)]
pub struct Throttle {
    state: Mutex<State>,
}

impl Throttle {
    /// Whether a call from `peer` may have its token checked at `now`.
    pub fn admit(&self, peer: Option<IpAddr>, now: Instant) -> Verdict {
        let block = peer.map(block_of);
        let mut state = self.lock();
        let verdict = match block.and_then(|b| state.by_address.get(&b).copied()) {
            Some(f) if now.duration_since(f.since) >= WINDOW => Verdict::Check,
            Some(f) if f.count >= MAX_FAILURES => {
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
            metrics::counter!(sluice_core::metric::AUTH_FAILURES, "reason" => "throttled")
                .increment(1);
            log_summary(&mut state, now);
        }
        verdict
    }

    /// Counts a wrong (or missing) token from `peer` at `now`.
    pub fn failed(&self, peer: Option<IpAddr>, now: Instant) {
        metrics::counter!(sluice_core::metric::AUTH_FAILURES, "reason" => "wrong_token")
            .increment(1);
        let mut state = self.lock();
        state.wrong += 1;
        state.last = peer;
        if let Some(block) = peer.map(block_of) {
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
        log_summary(&mut state, now);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
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
fn forget_ended(state: &mut State, now: Instant) -> bool {
    let before = state.by_address.len();
    state
        .by_address
        .retain(|_, f| now.duration_since(f.since) < WINDOW);
    state.by_address.len() < before
}

/// One warning with the counts since the last, at most once per [`LOG_EVERY`].
fn log_summary(state: &mut State, now: Instant) {
    if state
        .logged_at
        .is_some_and(|at| now.duration_since(at) < LOG_EVERY)
    {
        return;
    }
    state.logged_at = Some(now);
    tracing::warn!(
        wrong_tokens = state.wrong,
        throttled = state.throttled,
        addresses = state.by_address.len(),
        last_address = ?state.last,
        "calls refused: a wrong admin token or API key, and calls from addresses past \
         {MAX_FAILURES} failures a minute (one line per {} s at most)",
        LOG_EVERY.as_secs()
    );
    state.wrong = 0;
    state.throttled = 0;
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
