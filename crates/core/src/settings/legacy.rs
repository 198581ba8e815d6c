//! Names Sluice still accepts for compatibility: the variables of the Python stack it replaces,
//! and the stream settings that lived under `[gateway]` before `[stream]` existed.

use std::collections::HashMap;

use config::{Map, Value, ValueKind};

use super::{ENV_PREFIX, ENV_SEPARATOR, SettingsError};

/// The keys of `[stream]` that were once `[gateway]`'s: `gateway.<key>` (in a file) and
/// `SLUICE__GATEWAY__<KEY>` (in the environment) still set `stream.<key>`. The new name wins
/// when a layer holds both.
pub const MOVED_TO_STREAM: [&str; 9] = [
    "interval_ms",
    "heartbeat_interval_ms",
    "client_timeout_ms",
    "max_connections",
    "max_connections_per_ip",
    "client_max_messages_per_sec",
    "max_frame_bytes",
    "client_queue",
    "auth",
];

/// Renames the old `SLUICE__GATEWAY__…` variables of [`MOVED_TO_STREAM`] to their
/// `SLUICE__STREAM__…` names, unless the new name is set too.
pub(super) fn rename_env(own: &mut Map<String, String>) {
    let old = format!("{ENV_PREFIX}{ENV_SEPARATOR}GATEWAY{ENV_SEPARATOR}");
    let moved: Vec<String> = own
        .keys()
        .filter(|name| {
            name.strip_prefix(&old).is_some_and(|rest| {
                MOVED_TO_STREAM.iter().any(|key| {
                    let key = key.to_uppercase();
                    rest == key || rest.starts_with(&format!("{key}{ENV_SEPARATOR}"))
                })
            })
        })
        .cloned()
        .collect();
    for name in moved {
        let new = format!(
            "{ENV_PREFIX}{ENV_SEPARATOR}STREAM{ENV_SEPARATOR}{}",
            &name[old.len()..]
        );
        if let Some(value) = own.remove(&name) {
            own.entry(new).or_insert(value);
        }
    }
}

/// Moves a file's `[gateway]` keys of [`MOVED_TO_STREAM`] into its `[stream]`, unless
/// `[stream]` sets them too.
pub(super) fn move_file_keys(root: &mut Value) {
    let ValueKind::Table(top) = &mut root.kind else {
        return;
    };
    let moved: Vec<(String, Value)> = match top.get_mut("gateway") {
        Some(Value {
            kind: ValueKind::Table(gateway),
            ..
        }) => MOVED_TO_STREAM
            .iter()
            .filter_map(|key| gateway.remove(*key).map(|v| ((*key).to_owned(), v)))
            .collect(),
        _ => return,
    };
    let stream = top
        .entry("stream".to_owned())
        .or_insert_with(|| Value::new(None, ValueKind::Table(Map::new())));
    if let ValueKind::Table(stream) = &mut stream.kind {
        for (key, value) in moved {
            stream.entry(key).or_insert(value);
        }
    }
}

/// The Python stack's variables [`python_aliases`] reads, each with the setting it sets.
pub const PYTHON_ALIASES: [(&str, &str); 6] = [
    ("REDIS_URL", "redis.url"),
    ("REDIS_HOST", "redis.url"),
    ("REDIS_PORT", "redis.url"),
    ("DATABASE_URL", "postgres.url"),
    ("BATCH_SIZE", "worker.batch_max_size"),
    ("BATCH_TIMEOUT", "worker.batch_max_wait_ms"),
];

/// Turns the Python stack's variables into a configuration layer that sits below `SLUICE__…`.
pub(super) fn python_aliases(
    env: &HashMap<String, String>,
) -> Result<config::Config, SettingsError> {
    let get = |name: &str| env.get(name).map(|v| v.trim()).filter(|v| !v.is_empty());
    let mut layer = config::Config::builder();
    if let Some(url) = get("REDIS_URL") {
        layer = layer.set_override("redis.url", url)?;
    } else if get("REDIS_HOST").is_some() || get("REDIS_PORT").is_some() {
        let host = get("REDIS_HOST").unwrap_or("127.0.0.1");
        let port = get("REDIS_PORT").unwrap_or("6379");
        if port.parse::<u16>().map_or(true, |p| p == 0) {
            return Err(SettingsError::Alias {
                name: "REDIS_PORT",
                reason: format!("must be a TCP port between 1 and 65535, got {port:?}"),
            });
        }
        let host = if host.contains(':') && !host.starts_with('[') {
            format!("[{host}]")
        } else {
            host.to_owned()
        };
        layer = layer.set_override("redis.url", format!("redis://{host}:{port}"))?;
    }
    if let Some(url) = get("DATABASE_URL") {
        layer = layer.set_override("postgres.url", url)?;
    }
    if let Some(size) = get("BATCH_SIZE") {
        let size: u64 = size.parse().map_err(|_| SettingsError::Alias {
            name: "BATCH_SIZE",
            reason: format!("must be a whole number of messages, got {size:?}"),
        })?;
        layer = layer.set_override("worker.batch_max_size", size)?;
    }
    if let Some(secs) = get("BATCH_TIMEOUT") {
        let ms = secs
            .parse::<f64>()
            .ok()
            .filter(|s| s.is_finite() && *s >= 0.0 && *s <= 3_600.0)
            .map(|s| (s * 1_000.0).round() as u64)
            .ok_or_else(|| SettingsError::Alias {
                name: "BATCH_TIMEOUT",
                reason: format!("must be a number of seconds between 0 and 3600, got {secs:?}"),
            })?;
        layer = layer.set_override("worker.batch_max_wait_ms", ms)?;
    }
    Ok(layer.build()?)
}
