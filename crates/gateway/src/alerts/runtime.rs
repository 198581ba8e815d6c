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

/// Evaluator, store and the outage this gateway is living through.
pub struct Alerting {
    evaluator: Evaluator,
    store: AlertStore,
    hub: Arc<Hub>,
    timeout: Duration,
    /// The `redis_down` alert this gateway's clients were told about, and when it began.
    outage: Option<(Alert, Instant)>,
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
        }
    }

    /// Evaluates every outcome of the poller's reads until the poller stops.
    pub async fn run(mut self, mut readings: watch::Receiver<Reading>, mut conn: RedisConnection) {
        while readings.changed().await.is_ok() {
            let reading = readings.borrow_and_update().clone();
            match reading {
                Reading::Taken(snapshot) => self.on_reading(&snapshot.stats, &mut conn).await,
                Reading::Failed => self.on_failure(),
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
    }

    /// Evaluates a failed reading: past `redis_down_for_secs`, this gateway's clients hear of
    /// it directly.
    pub fn on_failure(&mut self) {
        let now = Instant::now();
        let Some(transition) = self.evaluator.evaluate_redis(true, now) else {
            return;
        };
        if let Transition::Fire(rule, check) = &transition {
            // Its start is the first failed read, not this one.
            let began = self.evaluator.breaching_since(*rule).unwrap_or(now);
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
    async fn record(&self, transition: &Transition, conn: &mut RedisConnection) -> bool {
        let call = async {
            match transition {
                Transition::Fire(rule, check) => {
                    let began = self.evaluator.breaching_since(*rule);
                    let alert = firing(*rule, check, began.map_or_else(timestamp, timestamp_of));
                    let fired = self.store.fire(conn, &alert).await?;
                    if fired {
                        tracing::warn!(rule = rule.name(), value = check.value, "alert firing");
                    }
                    Ok(fired)
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
                    Ok::<_, redis::RedisError>(resolved)
                }
            }
        };
        match tokio::time::timeout(self.timeout, call).await {
            Ok(Ok(_)) => true,
            Ok(Err(e)) => {
                tracing::debug!(%e, "cannot record an alert transition; retrying next tick");
                false
            }
            Err(_) => false,
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
