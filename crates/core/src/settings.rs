//! Typed, layered settings shared by every Sluice process.
//!
//! Layers, lowest precedence first:
//! 1. built-in defaults, each beside its field (`#[default]`), as its range is
//!    (`#[schemars(range)]`);
//! 2. an optional TOML file given with `--config PATH`;
//! 3. the variables of the Python stack Sluice replaces (`REDIS_URL`, `REDIS_HOST`/`REDIS_PORT`,
//!    `DATABASE_URL`, `BATCH_SIZE`, `BATCH_TIMEOUT` in seconds), kept as aliases;
//! 4. `SLUICE__SECTION__KEY` environment variables.
//!
//! Each section is declared in a file of its own, with what checks it.
//!
//! Loading never reads the process environment behind the caller's back: [`Settings::load`]
//! takes the variables as an argument so tests can layer settings without touching global state.
//! Every value is checked once here; a bad one becomes a [`SettingsError`] whose `Display` is the
//! single line a process prints before it exits non-zero.

mod auth;
mod gateway;
mod ingest;
pub mod legacy;
pub mod limits;
mod listener;
pub mod notices;
mod postgres;
mod redis;
pub mod reference;
pub mod secret;
pub mod secrets;
mod stream;
mod telemetry;
#[cfg(test)]
mod tests;
mod worker;

use std::collections::HashMap;
use std::path::Path;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub use auth::{AuthMode, AuthSettings, JwtSettings};
pub use gateway::{AlertSettings, GatewaySettings};
pub use ingest::IngestSettings;
pub use listener::ListenerTlsSettings;
pub use postgres::{PostgresSettings, Replication};
pub use redis::{RedisSettings, url_address};
pub use secret::Secret;
pub use stream::{StreamAuthSettings, StreamSettings};
pub use telemetry::{LogFormat, TelemetrySettings};
pub use worker::WorkerSettings;

/// Prefix of Sluice's own environment variables (`SLUICE__REDIS__URL`, ...).
pub const ENV_PREFIX: &str = "SLUICE";
/// Separator between the prefix, the section and the key in environment variable names.
pub const ENV_SEPARATOR: &str = "__";

/// A setting that could not be loaded or is out of range.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    /// A value has the right type but is not acceptable.
    #[error("invalid setting {key} ({env}): {reason}")]
    Invalid {
        /// Dotted key, e.g. `worker.batch_max_size`.
        key: String,
        /// The environment variable that sets it.
        env: String,
        /// Why the value was refused, including the value itself.
        reason: String,
    },
    /// A legacy alias variable holds something that cannot be used.
    #[error("invalid environment variable {name}: {reason}")]
    Alias {
        /// Variable name, e.g. `BATCH_TIMEOUT`.
        name: &'static str,
        /// Why the value was refused.
        reason: String,
    },
    /// The configuration file or the layers could not be read or deserialized.
    #[error("invalid configuration: {0}")]
    Config(#[from] config::ConfigError),
}

/// All settings of a Sluice process. Each service reads the sections it needs.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// Where Redis is and how Sluice names its keys there.
    pub redis: RedisSettings,
    /// Where PostgreSQL is.
    pub postgres: PostgresSettings,
    /// The ingest API.
    pub ingest: IngestSettings,
    /// The batching workers.
    pub worker: WorkerSettings,
    /// The stats stream, served by the gateway and (with `ingest.serve_stats`) the ingest API.
    pub stream: StreamSettings,
    /// The stats gateway.
    pub gateway: GatewaySettings,
    /// Logging.
    pub telemetry: TelemetrySettings,
    /// Whether the servers may serve unauthenticated callers beyond loopback.
    pub auth: AuthSettings,
}

impl Settings {
    /// Loads the layers described in the module docs. `env` is the process environment (or a
    /// test's stand-in for it); `file` is the optional `--config` path.
    pub fn load<I>(file: Option<&Path>, env: I) -> Result<Self, SettingsError>
    where
        I: IntoIterator<Item = (String, String)>,
    {
        let env: HashMap<String, String> = env.into_iter().collect();
        let mut builder = config::Config::builder();
        if let Some(path) = file {
            let mut layer = config::Config::builder()
                .add_source(
                    config::File::from(path)
                        .format(config::FileFormat::Toml)
                        .required(true),
                )
                .build()?;
            legacy::move_file_keys(&mut layer.cache);
            builder = builder.add_source(layer);
        }
        builder = builder.add_source(legacy::python_aliases(&env)?);
        let mut own: config::Map<String, String> = env
            .into_iter()
            .filter(|(k, _)| k.starts_with(&format!("{ENV_PREFIX}{ENV_SEPARATOR}")))
            .collect();
        legacy::rename_env(&mut own);
        secrets::read_files(&mut own)?;
        builder = builder.add_source(
            config::Environment::with_prefix(ENV_PREFIX)
                .prefix_separator(ENV_SEPARATOR)
                .separator(ENV_SEPARATOR)
                .try_parsing(true)
                .source(Some(own)),
        );
        let settings: Settings = builder
            .build()
            .and_then(config::Config::try_deserialize)
            .map_err(explain)?;
        settings.validate()?;
        Ok(settings)
    }

    /// Refuses, as Redis's protected mode does, a server among `sections` whose listener is
    /// reachable from other machines while nothing authenticates its callers (`auth.mode`
    /// `auto`, the default). Checked at start by the binaries that serve (`cli::start`).
    pub fn check_exposure(&self, sections: &[&str]) -> Result<(), SettingsError> {
        if sections.contains(&"ingest") {
            self.auth.check_exposure(
                "ingest.listen",
                self.ingest.listen,
                self.auth.keys(),
                "anyone who reaches it can post messages as any user and read every stored message",
                Some("set SLUICE__AUTH__MODE=keys so that callers need an API key"),
            )?;
        }
        if sections.contains(&"gateway") {
            self.auth.check_exposure(
                "gateway.listen",
                self.gateway.listen,
                self.auth.keys() || !self.stream.auth.jwt_secret.is_empty(),
                "anyone who reaches it can read the pipeline's stats, alerts and workers",
                Some("set SLUICE__AUTH__MODE=keys so that callers need an API key or a token"),
            )?;
        }
        Ok(())
    }

    /// Checks every section; the first bad value is the error.
    fn validate(&self) -> Result<(), SettingsError> {
        self.check_ranges()?;
        self.redis.validate()?;
        self.postgres.validate()?;
        self.ingest.validate()?;
        self.worker.validate()?;
        self.stream.validate()?;
        self.auth.validate(&self.stream.auth.jwt_secret)?;
        self.gateway.validate()
    }

    /// Checks every value against the range declared on its field (`#[schemars(range)]`), the
    /// same declaration `--help` and `proto-docs/configuration.md` show. A ranged value that is
    /// not a number (a float that is not finite) is out of range.
    fn check_ranges(&self) -> Result<(), SettingsError> {
        let values = serde_json::to_value(self).map_err(|e| {
            SettingsError::Config(config::ConfigError::Message(format!(
                "the settings cannot be checked: {e}"
            )))
        })?;
        let schema = schemars::schema_for!(Settings).to_value();
        for setting in reference::leaves(&schema, &values) {
            let (Some(min), Some(max)) = (setting.min, setting.max) else {
                continue;
            };
            if !setting
                .value
                .as_f64()
                .is_some_and(|v| (min..=max).contains(&v))
            {
                return Err(invalid(
                    &setting.key,
                    format!("must be between {min} and {max}, got {}", setting.value),
                ));
            }
        }
        Ok(())
    }
}

/// The environment variable that sets a dotted key: `worker.batch_max_size` →
/// `SLUICE__WORKER__BATCH_MAX_SIZE`.
pub fn env_name(key: &str) -> String {
    format!(
        "{ENV_PREFIX}{ENV_SEPARATOR}{}",
        key.replace('.', ENV_SEPARATOR).to_uppercase()
    )
}

/// A configuration error as [`SettingsError::Invalid`], naming the key and its variable, when
/// the `config` crate's message says which key (it always does for a wrong type, a value that
/// does not parse, or an unknown key); otherwise as it is.
fn explain(error: config::ConfigError) -> SettingsError {
    let text = error.to_string();
    let Some((reason, rest)) = text.split_once(" for key `") else {
        return SettingsError::Config(error);
    };
    let Some((key, _)) = rest.split_once('`') else {
        return SettingsError::Config(error);
    };
    match reason
        .strip_prefix("unknown field `")
        .and_then(|r| r.split_once('`'))
    {
        Some((field, expected)) => invalid(
            &format!("{key}.{field}"),
            format!(
                "unknown setting{}",
                expected.replacen(", expected", "; expected", 1)
            ),
        ),
        None => invalid(key, reason.to_owned()),
    }
}

pub(super) fn invalid(key: &str, reason: String) -> SettingsError {
    SettingsError::Invalid {
        key: key.into(),
        env: env_name(key),
        reason,
    }
}

pub(super) fn check_url(key: &str, value: &str, schemes: &[&str]) -> Result<(), SettingsError> {
    let scheme = value.split_once("://").map(|(s, _)| s);
    match scheme {
        Some(s) if schemes.contains(&s) => Ok(()),
        _ => Err(invalid(
            key,
            format!(
                "must be a URL starting with {}, got {:?}",
                schemes
                    .iter()
                    .map(|s| format!("{s}://"))
                    .collect::<Vec<_>>()
                    .join(" or "),
                secret::redact(value)
            ),
        )),
    }
}

/// An admin token is empty (off) or at least 16 characters.
pub(super) fn check_admin_token(name: &str, token: &str) -> Result<(), SettingsError> {
    if token.is_empty() || token.len() >= 16 {
        return Ok(());
    }
    Err(invalid(
        name,
        format!(
            "must be at least 16 characters (or empty to disable /admin), got {}",
            token.len()
        ),
    ))
}
