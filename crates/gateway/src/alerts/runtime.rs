//! The gateway's side of alerting: evaluates each reading of the stream's poller, records
//! transitions in Redis, and tells this gateway's clients about Redis outages itself.

use std::sync::Arc;
use std::time::Duration;

use sluice_core::connect::RedisConnection;
use sluice_proto::stats::Stats;
use sluice_stream::snapshot::Reading;
use tokio::sync::watch;
use tokio::time::Instant;

use super::{Evaluator, Transition, firing, resolved_summary};
use sluice_proto::api::{Alert, Rule};
use sluice_stream::alerts::store::AlertStore;
use sluice_stream::alerts::{timestamp, timestamp_of};
use sluice_stream::hub::Hub;

/// How often, at most, a firing alert's text is refreshed (by the gateway that fired it).
pub const REFRESH_EVERY: Duration = Duration::from_secs(5);

/// An alert this gateway fired and keeps current.
struct Owned {
    /// Its `started_at`, as recorded.
    started_at: String,
    /// Its summary as last written.
    summary: String,
    /// When it was last written.
    written: Instant,
}

/// Evaluator, store and the outage this gateway is living through.
pub struct Alerting {
    evaluator: Evaluator,
    store: AlertStore,
    hub: Arc<Hub>,
    timeout: Duration,
    /// The `redis_down` alert this gateway's clients were told about, and when it began.
    outage: Option<(Alert, Instant)>,
    /// The alerts this gateway fired, by rule: it alone refreshes their text while they fire,
    /// so the cost does not grow with the number of gateways.
    owned: std::collections::HashMap<Rule, Owned>,
}

impl Alerting {
    /// Alerting for one gateway; `timeout` bounds each Redis call.
    pub fn new(evaluator: Evaluator, store: AlertStore, hub: Arc<Hub>, timeout: Duration) -> Self {
        Self {
            evaluator,
            store,
            hub,
            timeout,
            outage: None,
            owned: std::collections::HashMap::new(),
        }
    }

    /// Evaluates every outcome of the poller's reads until the poller stops.
    pub async fn run(mut self, mut readings: watch::Receiver<Reading>, mut conn: RedisConnection) {
        while readings.changed().await.is_ok() {
            let reading = readings.borrow_and_update().clone();
            match reading {
                Reading::Taken(snapshot) => self.on_reading(&snapshot.stats, &mut conn).await,
                Reading::Failed(began) => self.on_failure(began),
                Reading::None => {}
            }
        }
    }

    /// Evaluates a successful reading.
    pub async fn on_reading(&mut self, stats: &Stats, conn: &mut RedisConnection) {
        let now = Instant::now();
        if let Some(transition) = self.evaluator.evaluate_redis(false, now) {
            self.redis_back(conn).await;
            self.evaluator.applied(&transition);
        }
        for transition in self.evaluator.evaluate(stats, now) {
            if self.record(&transition, conn).await {
                self.evaluator.applied(&transition);
            }
        }
        self.refresh_owned(conn).await;
    }

    /// Rewrites the alerts this gateway fired whose text changed (a new dead-letter total, a
    /// deeper queue), at most every [`REFRESH_EVERY`]: what a firing alert says stays true.
    async fn refresh_owned(&mut self, conn: &mut RedisConnection) {
        let now = Instant::now();
        let mut due = Vec::new();
        for (rule, owned) in &self.owned {
            let Some(check) = self.evaluator.current(*rule) else {
                continue;
            };
            let alert = firing(*rule, &check, owned.started_at.clone());
            if alert.summary != owned.summary && now - owned.written >= REFRESH_EVERY {
                due.push(alert);
            }
        }
        for alert in due {
            let call = self.store.refresh(conn, &alert);
            let refreshed = matches!(tokio::time::timeout(self.timeout, call).await, Ok(Ok(true)));
            if !refreshed {
                // Resolved or fired anew meanwhile: no longer this gateway's to keep.
                self.owned.remove(&alert.rule);
            } else if let Some(owned) = self.owned.get_mut(&alert.rule) {
                owned.summary = alert.summary;
                owned.written = now;
            }
        }
    }

    /// Evaluates a failed reading, the read having begun at `began`: past
    /// `redis_down_for_secs`, this gateway's clients hear of it directly.
    pub fn on_failure(&mut self, began: Instant) {
        let Some(transition) = self.evaluator.evaluate_redis(true, began) else {
            return;
        };
        if let Transition::Fire(rule, check) = &transition {
            // Its start is the first failed read, not this one.
            let began = self.evaluator.breaching_since(*rule).unwrap_or(began);
            let alert = firing(*rule, check, timestamp_of(began));
            tracing::warn!(rule = rule.name(), "alert firing");
            self.publish(&alert);
            self.hub.set_outage(Some(alert.clone()));
            self.outage = Some((alert, began));
        }
        self.evaluator.applied(&transition);
    }

    /// Records a transition in Redis; returns whether the store took it (fired or resolved,
    /// by this gateway or another).
    async fn record(&mut self, transition: &Transition, conn: &mut RedisConnection) -> bool {
        let call = async {
            match transition {
                Transition::Fire(rule, check) => {
                    let began = self.evaluator.breaching_since(*rule);
                    let alert = firing(*rule, check, began.map_or_else(timestamp, timestamp_of));
                    let fired = self.store.fire(conn, &alert).await?;
                    if fired {
                        tracing::warn!(rule = rule.name(), value = check.value, "alert firing");
                    }
                    Ok(fired.then_some(alert))
                }
                Transition::Resolve(rule, check) => {
                    let text = resolved_summary(*rule, check);
                    let ended = self.evaluator.clear_since(*rule);
                    let at = ended.map_or_else(timestamp, timestamp_of);
                    let resolved = self.store.resolve(conn, *rule, check.value, &text, &at);
                    let resolved = resolved.await?;
                    if resolved {
                        tracing::info!(rule = rule.name(), "alert resolved");
                    }
                    Ok::<_, redis::RedisError>(None)
                }
            }
        };
        match tokio::time::timeout(self.timeout, call).await {
            Ok(Ok(fired)) => {
                self.own(transition, fired);
                true
            }
            Ok(Err(e)) => {
                tracing::debug!(%e, "cannot record an alert transition; retrying next tick");
                false
            }
            Err(_) => false,
        }
    }

    /// Keeps (a fire this gateway made) or forgets (a resolution) the alert of `transition`.
    fn own(&mut self, transition: &Transition, fired: Option<Alert>) {
        match (transition, fired) {
            (Transition::Fire(rule, _), Some(alert)) => {
                let owned = Owned {
                    started_at: alert.started_at,
                    summary: alert.summary,
                    written: Instant::now(),
                };
                self.owned.insert(*rule, owned);
            }
            (Transition::Resolve(rule, _), _) => {
                self.owned.remove(rule);
            }
            _ => {}
        }
    }

    /// Redis answers again: resolves this gateway's `redis_down` for its clients and records
    /// the outage in `alerts_recent`.
    async fn redis_back(&mut self, conn: &mut RedisConnection) {
        let Some((firing, began)) = self.outage.take() else {
            return;
        };
        // From the first failed read to the first good one, not to this resolution.
        let ended = self.evaluator.clear_since(Rule::RedisDown);
        let ended = ended.unwrap_or_else(Instant::now);
        let seconds = (ended.saturating_duration_since(began).as_secs_f64() * 10.0).round() / 10.0;
        let resolved = Alert {
            state: "resolved".into(),
            resolved_at: Some(timestamp_of(ended)),
            value: seconds,
            summary: format!("Redis was unreadable for {seconds} s"),
            ..firing.clone()
        };
        tracing::info!(rule = Rule::RedisDown.name(), "alert resolved");
        self.publish(&resolved);
        self.hub.set_outage(None);
        let record = self.store.record_outage(conn, &firing, &resolved);
        if !matches!(tokio::time::timeout(self.timeout, record).await, Ok(Ok(_))) {
            tracing::debug!("cannot record the Redis outage in alerts_recent");
        }
    }

    fn publish(&self, alert: &Alert) {
        let frame = serde_json::to_string(alert).unwrap_or_default();
        self.hub.publish_alert(frame.into());
    }
}
