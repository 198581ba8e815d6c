//! The fleet's one clock: Redis's `TIME`.
//!
//! Message ids (UUIDv7) and `created_at` are stamped by the ingest API, commit times by the
//! workers, partitions are laid out by the workers' idea of today, and POST→commit latency is
//! one process's time minus another's. A host whose clock is off would put rows in the wrong
//! partition, sort them out of order in `GET /messages`, and make every latency figure wrong
//! for the whole fleet. So each process measures how far its clock is from Redis's (at start,
//! and every [`CHECK_EVERY`]), and every timestamp it writes is its own clock corrected by that
//! offset: [`now`] and [`new_id`]. With every process on one reference, the figures agree
//! whatever each host's clock says.
//!
//! A clock further off than `redis.max_clock_skew_ms` is a broken host (its NTP is off, or so is
//! Redis's): [`start`] refuses to start such a process, saying by how much and why; past it
//! later, the process logs an error (once, then every [`CHECK_EVERY`] while it lasts) and goes
//! on, corrected. `sluice_clock_offset_seconds` exposes the offset.

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use chrono::{DateTime, SubsecRound, Utc};
use sluice_proto::message::{Envelope, NewMessage};
use uuid::Uuid;

use crate::CancellationToken;
use crate::connect::RedisConnection;
use crate::settings::RedisSettings;

/// How often each process measures its clock against Redis's: one `TIME` per process per
/// period, whatever the size of the fleet.
pub const CHECK_EVERY: Duration = Duration::from_secs(30);

/// Samples per measurement; the one with the shortest round trip is kept (its midpoint is the
/// closest to the moment Redis read its clock).
const SAMPLES: usize = 3;

/// Redis's clock minus this process's, in microseconds.
static OFFSET_US: AtomicI64 = AtomicI64::new(0);

/// A correction that moves the clock back by more than this starts the ids afresh: ids keep
/// increasing through the small adjustments of every check, but a clock found far off must not
/// leave every later id at its wrong time.
const ID_RESTART: Duration = Duration::from_secs(1);

/// One thread's ids: strictly increasing, through small corrections.
struct Ids {
    context: uuid::ContextV7,
    last_ms: u64,
}

thread_local! {
    static IDS: std::cell::RefCell<Ids> = const {
        std::cell::RefCell::new(Ids { context: uuid::ContextV7::new(), last_ms: 0 })
    };
}

/// The fleet's time: this process's clock corrected by its measured offset from Redis's.
pub fn now() -> DateTime<Utc> {
    DateTime::<Utc>::from(corrected())
}

/// [`now`] at the precision envelopes keep (microseconds, like PostgreSQL).
pub fn now_micros() -> DateTime<Utc> {
    now().trunc_subsecs(6)
}

/// `message` stamped with a fresh id and the fleet's time: how the ingest API queues it.
pub fn envelope(message: NewMessage) -> Envelope {
    envelope_at(message, now_micros())
}

/// `message` stamped with a fresh id and `created_at` (the messages of one batch share it;
/// their ids still increase in order).
pub fn envelope_at(message: NewMessage, created_at: DateTime<Utc>) -> Envelope {
    Envelope::stamped(message, new_id(), created_at)
}

/// A new UUIDv7 whose time is [`now`]'s; strictly increasing within a thread, unless a
/// correction moved the clock back by more than a second.
pub fn new_id() -> Uuid {
    let since = corrected().duration_since(UNIX_EPOCH).unwrap_or_default();
    let ms = since.as_millis() as u64;
    IDS.with_borrow_mut(|ids| {
        if ms + (ID_RESTART.as_millis() as u64) < ids.last_ms {
            ids.context = uuid::ContextV7::new();
        }
        ids.last_ms = ms;
        let time = uuid::Timestamp::from_unix(&ids.context, since.as_secs(), since.subsec_nanos());
        Uuid::new_v7(time)
    })
}

fn corrected() -> SystemTime {
    shift(SystemTime::now(), OFFSET_US.load(Ordering::Relaxed))
}

fn shift(time: SystemTime, offset_us: i64) -> SystemTime {
    let by = Duration::from_micros(offset_us.unsigned_abs());
    if offset_us >= 0 { time + by } else { time - by }
}

/// The current offset: Redis's clock minus this process's.
pub fn offset() -> Duration {
    Duration::from_micros(OFFSET_US.load(Ordering::Relaxed).unsigned_abs())
}

/// One measurement of this process's clock against Redis's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Skew {
    /// Redis's clock minus this process's, in microseconds.
    pub offset_us: i64,
    /// The round trip of the sample kept: the measurement is good to half of it.
    pub round_trip: Duration,
}

impl Skew {
    /// How far apart the clocks are, whichever is ahead.
    pub fn magnitude(&self) -> Duration {
        Duration::from_micros(self.offset_us.unsigned_abs())
    }

    /// Whether the clocks are surely further apart than `bound`: by more than it plus the
    /// measurement's own uncertainty (half its round trip), so that a distant Redis never makes
    /// a good clock look off.
    pub fn past(&self, bound: Duration) -> bool {
        self.magnitude().saturating_sub(self.round_trip / 2) > bound
    }

    /// `"this host's clock is 7199999 ms (2.0 h) behind Redis's"`, for a log line or an error.
    pub fn describe(&self) -> String {
        let ms = self.offset_us.unsigned_abs() / 1_000;
        let side = if self.offset_us > 0 {
            "behind"
        } else {
            "ahead of"
        };
        let secs = ms as f64 / 1_000.0;
        let human = match secs {
            s if s >= 86_400.0 => format!(" ({:.1} days)", s / 86_400.0),
            s if s >= 3_600.0 => format!(" ({:.1} h)", s / 3_600.0),
            s if s >= 60.0 => format!(" ({:.1} min)", s / 60.0),
            _ => String::new(),
        };
        format!("this host's clock is {ms} ms{human} {side} Redis's")
    }
}

/// Measures the offset of the clock `local` against Redis's `TIME` on `conn`.
pub async fn measure_with(
    conn: &mut RedisConnection,
    local: impl Fn() -> SystemTime,
) -> redis::RedisResult<Skew> {
    let mut best: Option<Skew> = None;
    for _ in 0..SAMPLES {
        let (sent, started) = (local(), Instant::now());
        let (secs, micros): (i64, i64) = redis::cmd("TIME").query_async(conn).await?;
        let round_trip = started.elapsed();
        let midpoint = sent + round_trip / 2;
        let local_us = match midpoint.duration_since(UNIX_EPOCH) {
            Ok(since) => since.as_micros() as i64,
            Err(before) => -(before.duration().as_micros() as i64),
        };
        let skew = Skew {
            offset_us: secs * 1_000_000 + micros - local_us,
            round_trip,
        };
        if best.is_none_or(|b| skew.round_trip < b.round_trip) {
            best = Some(skew);
        }
    }
    Ok(best.unwrap_or(Skew {
        offset_us: 0,
        round_trip: Duration::ZERO,
    }))
}

/// Adopts `skew` as this process's offset, and exposes it.
fn adopt(skew: Skew) {
    OFFSET_US.store(skew.offset_us, Ordering::Relaxed);
    metrics::gauge!(crate::metric::CLOCK_OFFSET).set(skew.offset_us as f64 / 1e6);
}

/// Why a process refuses to start.
#[derive(Debug, thiserror::Error)]
#[error(
    "{skew}, more than redis.max_clock_skew_ms ({bound} ms): fix this host's time (NTP) or \
     Redis's, or raise the bound (SLUICE__REDIS__MAX_CLOCK_SKEW_MS)",
    skew = .0.describe(),
    bound = .1.as_millis()
)]
pub struct TooFarOff(pub Skew, pub Duration);

/// Why [`start`] failed.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The clock is further off than the bound.
    #[error(transparent)]
    TooFarOff(#[from] TooFarOff),
    /// The Redis settings do not make a connection (a URL that does not parse).
    #[error("invalid Redis settings: {0}")]
    Redis(#[from] redis::RedisError),
}

/// This process's clock check: the connection it reads Redis's `TIME` on, the bound, and
/// whether the clock was measured yet.
pub struct Clock {
    conn: RedisConnection,
    bound: Duration,
    measured: bool,
}

/// Until the first measurement, how often [`Clock::keep`] tries again: timestamps are
/// uncorrected meanwhile.
const FIRST_RETRY: Duration = Duration::from_secs(1);

/// Measures this process's clock against Redis's and adopts the offset; refuses (an error) a
/// clock further off than `redis.max_clock_skew_ms`. When Redis does not answer within the
/// connect and response timeouts, starts uncorrected (a service starts while Redis is down):
/// [`Clock::keep`] then measures every second until Redis answers.
pub async fn start(settings: &RedisSettings) -> Result<Clock, StartError> {
    let mut clock = Clock {
        conn: crate::connect::redis_manager(settings)?,
        bound: settings.max_clock_skew(),
        measured: false,
    };
    let budget = settings.connect_timeout() + settings.response_timeout() * SAMPLES as u32;
    match tokio::time::timeout(budget, measure_with(&mut clock.conn, SystemTime::now)).await {
        Ok(Ok(skew)) if skew.past(clock.bound) => {
            return Err(TooFarOff(skew, clock.bound).into());
        }
        Ok(Ok(skew)) => clock.adopt(skew, tracing::Level::WARN),
        _ => tracing::info!("cannot read Redis's clock yet; measuring it once Redis answers"),
    }
    Ok(clock)
}

/// [`start`], then [`Clock::keep`] in the background until `shutdown`: what every service
/// binary does before it serves.
pub async fn follow_redis(
    settings: &RedisSettings,
    shutdown: CancellationToken,
) -> Result<(), StartError> {
    let clock = start(settings).await?;
    tokio::spawn(clock.keep(shutdown));
    Ok(())
}

impl Clock {
    /// Measures again every [`CHECK_EVERY`] (every second until the first measurement) until
    /// `shutdown`, adopting each offset.
    pub async fn keep(mut self, shutdown: CancellationToken) {
        loop {
            let pause = if self.measured {
                CHECK_EVERY
            } else {
                FIRST_RETRY
            };
            tokio::select! {
                () = tokio::time::sleep(pause) => {}
                () = shutdown.cancelled() => return,
            }
            let measured =
                tokio::time::timeout(pause, measure_with(&mut self.conn, SystemTime::now)).await;
            if let Ok(Ok(skew)) = measured {
                self.adopt(skew, tracing::Level::ERROR);
            }
        }
    }

    /// Adopts `skew` as the process's offset; says so at `level` when it is past the bound,
    /// and as a warning when it is past a tenth of it.
    fn adopt(&mut self, skew: Skew, level: tracing::Level) {
        self.measured = true;
        adopt(skew);
        let offset_ms = skew.offset_us / 1_000;
        let bound_ms = self.bound.as_millis();
        if skew.past(self.bound) && level == tracing::Level::ERROR {
            tracing::error!(
                offset_ms,
                "{}, past redis.max_clock_skew_ms ({bound_ms} ms); ids and timestamps follow \
                 Redis's clock, but fix this host's time",
                skew.describe()
            );
        } else if skew.past(self.bound / 10) {
            tracing::warn!(
                offset_ms,
                "{}; ids and timestamps follow Redis's clock",
                skew.describe()
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn redis() -> RedisConnection {
        let settings = RedisSettings {
            url: std::env::var("SLUICE_TEST_REDIS_URL")
                .unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
                .into(),
            ..Default::default()
        };
        crate::connect::redis_manager(&settings).expect("connection")
    }

    #[tokio::test]
    async fn a_clock_two_hours_behind_is_measured_and_corrected() {
        let mut conn = redis().await;
        let behind = Duration::from_secs(2 * 3_600);
        let skew = measure_with(&mut conn, || SystemTime::now() - behind)
            .await
            .expect("TIME");
        let error = skew.magnitude().abs_diff(behind);
        assert!(error < Duration::from_millis(50), "{skew:?}");
        assert!(
            skew.describe().contains("behind Redis's"),
            "{}",
            skew.describe()
        );
        // The skewed clock, corrected, reads the true time.
        let corrected = shift(SystemTime::now() - behind, skew.offset_us);
        let off = corrected
            .duration_since(SystemTime::now())
            .unwrap_or_else(|e| e.duration());
        assert!(off < Duration::from_millis(50), "{off:?}");
        assert!(skew.past(Duration::from_secs(5)) && !skew.past(behind + Duration::from_secs(1)));
        let slow = Skew {
            offset_us: 30_000,
            round_trip: Duration::from_millis(80),
        };
        assert!(
            !slow.past(Duration::from_millis(10)),
            "within the measurement's uncertainty"
        );
        let refused = TooFarOff(skew, Duration::from_secs(5)).to_string();
        assert!(
            refused.contains("(2.0 h) behind") && refused.contains("MAX_CLOCK_SKEW_MS"),
            "{refused}"
        );
    }

    fn id_secs(id: Uuid) -> u64 {
        id.get_timestamp().expect("a v7 id has a time").to_unix().0
    }

    fn secs_now() -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("after 1970")
            .as_secs()
    }

    #[test]
    fn ids_follow_the_corrected_clock_through_small_and_large_corrections() {
        // A thread of its own: the offset is process-wide, and other tests read the clock.
        std::thread::spawn(|| {
            let ahead = 30 * 24 * 3_600;
            OFFSET_US.store(ahead * 1_000_000, Ordering::Relaxed);
            let late = new_id();
            assert!(id_secs(late).abs_diff(secs_now() + ahead as u64) <= 1);
            // A small step back: the ids keep increasing.
            OFFSET_US.store(ahead * 1_000_000 - 300_000, Ordering::Relaxed);
            let after_small = new_id();
            assert!(
                after_small > late,
                "strictly increasing through a small correction"
            );
            // Found a month off: the ids start again at the right time.
            OFFSET_US.store(0, Ordering::Relaxed);
            let first = new_id();
            let second = new_id();
            OFFSET_US.store(0, Ordering::Relaxed);
            assert!(second > first, "strictly increasing within a thread");
            assert!(id_secs(first).abs_diff(secs_now()) <= 1, "{first}");
        })
        .join()
        .expect("the thread");
    }
}
