//! Alert transitions in Redis: `alerts_active`, `alerts_recent` and `alert_events`.

use sluice_core::Keys;
use sluice_core::keys::ALERTS_RECENT_MAX;
use sluice_core::lua;

use sluice_proto::api::{Alert, AlertList, Rule};

use crate::lua::alert_fire::Fire;
use crate::lua::alert_outage::Outage;
use crate::lua::alert_refresh::Refresh;
use crate::lua::alert_resolve::Resolve;

/// The alert keys of one deployment, changed atomically by the scripts of [`crate::lua`].
#[derive(Debug, Clone)]
pub struct AlertStore {
    keys: Keys,
}

impl AlertStore {
    /// A store for the keys under `keys`' prefix.
    pub fn new(keys: Keys) -> Self {
        Self { keys }
    }

    /// Fires `alert` unless its rule is active; returns whether this call fired it.
    pub async fn fire<C>(&self, conn: &mut C, alert: &Alert) -> redis::RedisResult<bool>
    where
        C: redis::aio::ConnectionLike + Send,
    {
        let json = serde_json::to_string(alert).unwrap_or_default();
        let fire = Fire {
            rule: alert.rule.name(),
            alert: &json,
        };
        lua::call(conn, &self.keys, &fire).await
    }

    /// Refreshes `alert` (its value and summary) if the same alert, by rule and start, is still
    /// active; returns whether it was.
    pub async fn refresh<C>(&self, conn: &mut C, alert: &Alert) -> redis::RedisResult<bool>
    where
        C: redis::aio::ConnectionLike + Send,
    {
        let json = serde_json::to_string(alert).unwrap_or_default();
        let refresh = Refresh {
            rule: alert.rule.name(),
            started_at: &alert.started_at,
            alert: &json,
        };
        lua::call(conn, &self.keys, &refresh).await
    }

    /// Resolves `rule` if it is active, as of `resolved_at` (when its condition ended); returns
    /// whether this call resolved it.
    pub async fn resolve<C>(
        &self,
        conn: &mut C,
        rule: Rule,
        value: f64,
        summary: &str,
        resolved_at: &str,
    ) -> redis::RedisResult<bool>
    where
        C: redis::aio::ConnectionLike + Send,
    {
        let resolve = Resolve {
            rule: rule.name(),
            resolved_at,
            value,
            summary,
        };
        lua::call(conn, &self.keys, &resolve).await
    }

    /// Records an outage of Redis this gateway lived through, unless another gateway has.
    pub async fn record_outage<C>(
        &self,
        conn: &mut C,
        firing: &Alert,
        resolved: &Alert,
    ) -> redis::RedisResult<bool>
    where
        C: redis::aio::ConnectionLike + Send,
    {
        let firing_json = serde_json::to_string(firing).unwrap_or_default();
        let resolved_json = serde_json::to_string(resolved).unwrap_or_default();
        let outage = Outage {
            firing: &firing_json,
            resolved: &resolved_json,
            started_at: &firing.started_at,
        };
        lua::call(conn, &self.keys, &outage).await
    }

    /// The active alerts (ordered by when they fired) and the recent transitions, in one
    /// round trip. Entries that do not parse are skipped.
    pub async fn list<C>(&self, conn: &mut C) -> redis::RedisResult<AlertList>
    where
        C: redis::aio::ConnectionLike + Send,
    {
        let (active, recent): (Vec<String>, Vec<String>) = redis::pipe()
            .cmd("HVALS")
            .arg(&self.keys.alerts_active)
            .cmd("LRANGE")
            .arg(&self.keys.alerts_recent)
            .arg(0)
            .arg(ALERTS_RECENT_MAX - 1)
            .query_async(conn)
            .await?;
        let parse = |raw: Vec<String>| -> Vec<Alert> {
            raw.iter()
                .filter_map(|s| serde_json::from_str(s).ok())
                .collect()
        };
        let mut active = parse(active);
        active.sort_by(|a, b| a.started_at.cmp(&b.started_at));
        Ok(AlertList {
            active,
            recent: parse(recent),
        })
    }
}
