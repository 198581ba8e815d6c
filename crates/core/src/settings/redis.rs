//! `[redis]`: where Redis is and how Sluice names its keys there.

use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use smart_default::SmartDefault;

use super::{Secret, SettingsError, check_url, invalid};

/// `[redis]`
#[derive(Debug, Clone, SmartDefault, Deserialize, Serialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct RedisSettings {
    /// Connection URL, `redis://[user:password@]host:port[/db]`.
    #[default("redis://127.0.0.1:6379".into())]
    pub url: Secret,
    /// Prepended to every key and channel name, so tenants and tests can share one Redis.
    pub key_prefix: String,
    /// How long one command may take before the caller treats Redis as unavailable.
    #[default(1_000)]
    #[schemars(range(min = 1, max = 60_000))]
    pub response_timeout_ms: u64,
    /// How long establishing a connection may take.
    #[default(1_000)]
    #[schemars(range(min = 1, max = 60_000))]
    pub connect_timeout_ms: u64,
    /// Comma-separated URLs of Redis Cluster nodes (any few of them; the rest are discovered).
    /// When set, every service uses the cluster client instead of `url`, and every key carries
    /// the hash tag `{<key_prefix>}` (`{sluice}` when the prefix is empty) so that all of them,
    /// and so every script, live in one slot. Empty (the default): one Redis at `url`.
    pub cluster_nodes: Secret,
    /// Comma-separated URLs of Redis Sentinels (`redis://[:password@]host:port`, the
    /// sentinels' own credentials). When set, every service asks them where the primary named
    /// `sentinel_primary` is, connects there with `url`'s credentials and database (its host
    /// is not used), and asks again after losing it, so it follows a failover by itself.
    /// Empty (the default): no Sentinel.
    pub sentinels: Secret,
    /// The name the sentinels monitor the primary under (`sentinel monitor <name> …`).
    #[default("mymaster".into())]
    pub sentinel_primary: String,
    /// Replicas that must hold a push before the ingest API answers 202 (Redis's `WAIT`), and
    /// that must hold a worker's take and commit record before it moves on. 0 (the default):
    /// answer as soon as the primary has the push; a failover can then lose the last
    /// acknowledged messages.
    #[schemars(range(min = 0, max = 100))]
    pub ack_replicas: u32,
    /// How long the replicas have to confirm a push (`WAIT`'s timeout). Past it the ingest API
    /// answers 503 `not_replicated` (the push may still be queued: retry with the same
    /// `Idempotency-Key`).
    #[default(1_000)]
    #[schemars(range(min = 1, max = 60_000))]
    pub ack_timeout_ms: u64,
    /// Largest difference between this host's clock and Redis's `TIME` a process starts with.
    /// Every process stamps ids and times with its own clock corrected to Redis's (measured at
    /// start and every 30 s; `sluice_clock_offset_seconds`), so the fleet agrees whatever each
    /// host's clock says, but a clock this far off is a broken host: the process refuses to
    /// start, and logs an error while it stays past the bound.
    #[default(5_000)]
    #[schemars(range(min = 10, max = 86_400_000))]
    pub max_clock_skew_ms: u64,
    /// PEM file of the certificate authorities that sign the Redis servers' certificates, for
    /// every `rediss://` URL (`url`, `cluster_nodes`, `sentinels`); empty (the default): the
    /// system's. Each URL's scheme says whether its hop is encrypted.
    pub tls_ca_file: String,
    /// PEM file of this process's client certificate, for servers that verify their clients
    /// (`tls-auth-clients yes`); set with `tls_key_file`.
    pub tls_cert_file: String,
    /// PEM file of the private key of `tls_cert_file`.
    pub tls_key_file: String,
    /// Accepts any certificate a `rediss://` server presents, unverified: anyone on the path
    /// can then read and change what Sluice sends. Off (the default); a process with it on
    /// logs a warning at start.
    pub tls_insecure_skip_verify: bool,
}

/// The non-empty items of a comma-separated list, trimmed.
pub(super) fn comma_list(list: &str) -> Vec<&str> {
    list.split(',')
        .map(str::trim)
        .filter(|u| !u.is_empty())
        .collect()
}

/// The `host:port` of a URL (`scheme://[user[:password]@]host:port[/…]`), without its
/// credentials, for messages that must say where a connection went.
pub fn url_address(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let rest = rest.rsplit_once('@').map_or(rest, |(_, host)| host);
    rest.split(['/', '?']).next().unwrap_or(rest)
}

impl RedisSettings {
    /// Where Redis is, for messages: `Redis at host:port`, or `Redis Cluster at a, b`; never
    /// a password.
    pub fn describe(&self) -> String {
        let nodes = self.cluster_node_urls();
        let sentinels = self.sentinel_urls();
        let tls = if self.uses_tls() { " over TLS" } else { "" };
        if !sentinels.is_empty() {
            let sentinels: Vec<&str> = sentinels.into_iter().map(url_address).collect();
            return format!(
                "Redis primary {:?} of Sentinel at {}{tls}",
                self.sentinel_primary,
                sentinels.join(", ")
            );
        }
        if nodes.is_empty() {
            return format!("Redis at {}{tls}", url_address(self.url.expose()));
        }
        let nodes: Vec<&str> = nodes.into_iter().map(url_address).collect();
        format!("Redis Cluster at {}{tls}", nodes.join(", "))
    }

    /// The cluster nodes' URLs; empty when Redis is a single server.
    pub fn cluster_node_urls(&self) -> Vec<&str> {
        comma_list(self.cluster_nodes.expose())
    }

    /// The sentinels' URLs; empty when Sentinel is not used.
    pub fn sentinel_urls(&self) -> Vec<&str> {
        comma_list(self.sentinels.expose())
    }

    /// [`Self::max_clock_skew_ms`] as a duration.
    pub fn max_clock_skew(&self) -> Duration {
        Duration::from_millis(self.max_clock_skew_ms)
    }

    /// [`Self::ack_timeout_ms`] as a duration.
    pub fn ack_timeout(&self) -> Duration {
        Duration::from_millis(self.ack_timeout_ms)
    }

    /// `redis.ack_replicas` and `redis.ack_timeout_ms`, when acknowledgements are on.
    pub fn acks(&self) -> Option<(u32, Duration)> {
        (self.ack_replicas > 0).then(|| (self.ack_replicas, self.ack_timeout()))
    }

    /// How long a command followed by its `WAIT` may take: the response timeout, plus the
    /// replicas' with acknowledgements on.
    pub fn confirmed_timeout(&self) -> Duration {
        self.response_timeout() + self.acks().map_or(Duration::ZERO, |(_, wait)| wait)
    }

    /// The prefix every key is built with: [`Self::key_prefix`], made a hash tag in cluster
    /// mode unless it already holds one.
    pub fn effective_key_prefix(&self) -> String {
        if self.cluster_node_urls().is_empty() {
            return self.key_prefix.clone();
        }
        let has_tag = self
            .key_prefix
            .split_once('{')
            .is_some_and(|(_, rest)| rest.find('}').is_some_and(|end| end > 0));
        match self.key_prefix.as_str() {
            _ if has_tag => self.key_prefix.clone(),
            "" => "{sluice}".into(),
            prefix => format!("{{{prefix}}}"),
        }
    }

    /// [`Self::response_timeout_ms`] as a duration.
    pub fn response_timeout(&self) -> Duration {
        Duration::from_millis(self.response_timeout_ms)
    }

    /// [`Self::connect_timeout_ms`] as a duration.
    pub fn connect_timeout(&self) -> Duration {
        Duration::from_millis(self.connect_timeout_ms)
    }

    /// Whether any URL asks for TLS (`rediss://`).
    pub fn uses_tls(&self) -> bool {
        std::iter::once(self.url.expose())
            .chain(self.cluster_node_urls())
            .chain(self.sentinel_urls())
            .any(|url| url.starts_with("rediss://"))
    }

    /// The TLS files: readable, a certificate with its key, and only for `rediss://` URLs.
    fn validate_tls(&self) -> Result<(), SettingsError> {
        let files = [
            ("redis.tls_ca_file", &self.tls_ca_file),
            ("redis.tls_cert_file", &self.tls_cert_file),
            ("redis.tls_key_file", &self.tls_key_file),
        ];
        for (key, path) in files {
            if path.is_empty() {
                continue;
            }
            if !self.uses_tls() {
                return Err(invalid(
                    key,
                    "is set, but no Redis URL is rediss://: use rediss:// for the hops to encrypt"
                        .into(),
                ));
            }
            if let Err(e) = std::fs::File::open(path) {
                return Err(invalid(key, format!("cannot read {path:?}: {e}")));
            }
        }
        if self.tls_cert_file.is_empty() != self.tls_key_file.is_empty() {
            return Err(invalid(
                "redis.tls_key_file",
                "a client certificate needs its key: set both redis.tls_cert_file and \
                 redis.tls_key_file, or neither"
                    .into(),
            ));
        }
        Ok(())
    }

    /// The URLs, and Sentinel's: a primary's name, and not with a cluster.
    pub(super) fn validate(&self) -> Result<(), SettingsError> {
        self.validate_tls()?;
        check_url(
            "redis.url",
            self.url.expose(),
            &["redis", "rediss", "redis+unix", "unix"],
        )?;
        check_database("redis.url", self.url.expose())?;
        for node in self.cluster_node_urls() {
            check_url("redis.cluster_nodes", node, &["redis", "rediss"])?;
        }
        if self.sentinel_urls().is_empty() {
            return Ok(());
        }
        for sentinel in self.sentinel_urls() {
            check_url("redis.sentinels", sentinel, &["redis", "rediss"])?;
        }
        if !self.cluster_node_urls().is_empty() {
            return Err(invalid(
                "redis.sentinels",
                "a Redis Cluster has no sentinels: set redis.sentinels or redis.cluster_nodes, \
                 not both"
                    .into(),
            ));
        }
        if self.sentinel_primary.trim().is_empty() {
            return Err(invalid(
                "redis.sentinel_primary",
                "must name the primary the sentinels monitor (sentinel monitor <name> ...)".into(),
            ));
        }
        Ok(())
    }
}

/// The path of a `redis://` or `rediss://` URL is a database number (`/0`, `/1`, …) or
/// nothing: `redis://host/sluice` is refused naming the setting, not by the client library's
/// "Invalid database number".
fn check_database(key: &str, url: &str) -> Result<(), SettingsError> {
    let Some((scheme, rest)) = url.split_once("://") else {
        return Ok(());
    };
    if !matches!(scheme, "redis" | "rediss") {
        return Ok(());
    }
    let rest = rest.split(['?', '#']).next().unwrap_or_default();
    let host_and_path = rest.rsplit_once('@').map_or(rest, |(_, after)| after);
    let Some((_, path)) = host_and_path.split_once('/') else {
        return Ok(());
    };
    if path.is_empty() || path.parse::<u16>().is_ok() {
        return Ok(());
    }
    Err(invalid(
        key,
        format!(
            "the path after the host must be a database number (/0, /1, …) or nothing, got \
             /{path} in {:?}: Sluice's keys are told apart by redis.key_prefix, not by a path",
            super::secret::redact(url)
        ),
    ))
}
