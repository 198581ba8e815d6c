//! Alert transitions in Redis: `alerts_active`, `alerts_recent` and `alert_events`.

use sluice_core::Keys;
use sluice_core::keys::ALERTS_RECENT_MAX;
use sluice_core::lua::LuaScript;

use sluice_proto::api::{Alert, AlertList, Rule};

/// The alert keys of one deployment and the scripts that change them atomically.
#[derive(Debug, Clone)]
pub struct AlertStore {
    keys: Keys,
    fire: LuaScript,
    resolve: LuaScript,
    outage: LuaScript,
}

impl AlertStore {
    /// A store for the keys under `keys`' prefix.
    pub fn new(keys: Keys) -> Self {
        Self {
            keys,
            fire: LuaScript::new(include_str!("../lua/alert_fire.lua")),
            resolve: LuaScript::new(include_str!("../lua/alert_resolve.lua")),
            outage: LuaScript::new(include_str!("../lua/alert_outage.lua")),
        }
    }

    /// Fires `alert` unless its rule is active; returns whether this call fired it.
    pub async fn fire<C>(&self, conn: &mut C, alert: &Alert) -> redis::RedisResult<bool>
    where
        C: redis::aio::ConnectionLike + Send,
    {
        let json = serde_json::to_string(alert).unwrap_or_default();
        let mut invocation = self.fire.keyed(&self.keys, &[])?;
        invocation
            .arg(alert.rule.name())
            .arg(json)
            .arg(ALERTS_RECENT_MAX);
        Ok(invocation.invoke_async::<u8>(conn).await? == 1)
    }

    /// Resolves `rule` if it is active; returns whether this call resolved it.
    pub async fn resolve<C>(
        &self,
        conn: &mut C,
        rule: Rule,
        value: f64,
        summary: &str,
    ) -> redis::RedisResult<bool>
    where
        C: redis::aio::ConnectionLike + Send,
    {
        let mut invocation = self.resolve.keyed(&self.keys, &[])?;
        invocation
            .arg(rule.name())
            .arg(super::timestamp())
            .arg(value)
            .arg(summary)
            .arg(ALERTS_RECENT_MAX);
        Ok(invocation.invoke_async::<u8>(conn).await? == 1)
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
        let mut invocation = self.outage.keyed(&self.keys, &[])?;
        invocation
            .arg(serde_json::to_string(firing).unwrap_or_default())
            .arg(serde_json::to_string(resolved).unwrap_or_default())
            .arg(&firing.started_at)
            .arg(ALERTS_RECENT_MAX);
        Ok(invocation.invoke_async::<u8>(conn).await? == 1)
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

#[cfg(test)]
mod tests {
    use sluice_core::Keys;
    use sluice_core::lua::LuaScript;

    #[test]
    fn every_stream_script_names_only_keys_it_is_given() {
        let keys = Keys::new("");
        for source in [
            include_str!("../lua/alert_fire.lua"),
            include_str!("../lua/alert_resolve.lua"),
            include_str!("../lua/alert_outage.lua"),
            include_str!("../lua/workers.lua"),
        ] {
            let script = LuaScript::new(source);
            assert!(!script.key_names().is_empty());
            assert!(script.keyed(&keys, &[]).is_ok(), "{:?}", script.key_names());
        }
    }
}
