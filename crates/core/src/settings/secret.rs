//! [`Secret`]: a setting that holds a secret (a URL with a password, a token, a key).

use std::borrow::Cow;
use std::fmt;

use schemars::JsonSchema;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// What stands for a secret wherever settings are shown.
pub const REDACTED: &str = "[redacted]";

/// A secret setting. It never shows itself: `Debug` and `Serialize` give [`Secret::redacted`]
/// (a URL keeps its scheme, user and host, its password masked; anything else is
/// `[redacted]`), and it has no `Display`. Reading it is one visible [`Secret::expose`]. The
/// memory it held is zeroed when it is dropped.
#[derive(Clone, Default)]
pub struct Secret(SecretString);

impl Secret {
    /// The secret itself, for the one place that needs it.
    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }

    /// Whether the setting is empty (not set).
    pub fn is_empty(&self) -> bool {
        self.expose().is_empty()
    }

    /// What may be shown of it: nothing of a token; a URL's scheme, user, host, port and
    /// path with its password masked; empty when empty.
    pub fn redacted(&self) -> Cow<'static, str> {
        redact(self.expose())
    }
}

/// The shown form of a secret value (see [`Secret::redacted`]); each of a comma-separated list
/// on its own.
pub fn redact(value: &str) -> Cow<'static, str> {
    if value.contains(',') {
        let parts: Vec<Cow<'static, str>> = value.split(',').map(redact_one).collect();
        return Cow::Owned(parts.join(","));
    }
    redact_one(value)
}

fn redact_one(value: &str) -> Cow<'static, str> {
    let value = value.trim();
    if value.is_empty() {
        return Cow::Borrowed("");
    }
    let Some((scheme, rest)) = value.split_once("://") else {
        return Cow::Borrowed(REDACTED);
    };
    // Userinfo ends at the last `@` before the path; a password follows its first `:`.
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let Some(at) = rest[..authority_end].rfind('@') else {
        return Cow::Owned(value.to_owned());
    };
    let user = rest[..at]
        .split_once(':')
        .map_or(&rest[..at], |(user, _)| user);
    let masked = if rest[..at].contains(':') {
        format!("{user}:{REDACTED}")
    } else {
        REDACTED.to_owned()
    };
    Cow::Owned(format!("{scheme}://{masked}@{}", &rest[at + 1..]))
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Self(SecretString::from(value))
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Self {
        Self(SecretString::from(value))
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secret({:?})", self.redacted())
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.redacted())
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(Self::from)
    }
}

impl JsonSchema for Secret {
    fn schema_name() -> Cow<'static, str> {
        String::schema_name()
    }

    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        String::json_schema(generator)
    }

    fn inline_schema() -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_shows_only_what_is_not_secret() {
        let cases = [
            ("", ""),
            ("s3cr3t-token-0123456789", REDACTED),
            ("redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/0"),
            (
                "redis://:hunter2@cache:6379",
                "redis://:[redacted]@cache:6379",
            ),
            (
                "postgres://app:p%40ss:word@db:5432/sluice?sslmode=require",
                "postgres://app:[redacted]@db:5432/sluice?sslmode=require",
            ),
            (
                "rediss://token@cache:6380",
                "rediss://[redacted]@cache:6380",
            ),
            (
                "redis://:a@n1:7000, redis://:b@n2:7001",
                "redis://:[redacted]@n1:7000,redis://:[redacted]@n2:7001",
            ),
        ];
        for (value, shown) in cases {
            let secret = Secret::from(value);
            assert_eq!(secret.redacted(), shown, "{value}");
            assert_eq!(format!("{secret:?}"), format!("Secret({shown:?})"));
            assert_eq!(serde_json::to_value(&secret).expect("json"), shown);
            assert_eq!(secret.expose(), value);
        }
        let parsed: Secret = serde_json::from_str("\"x\"").expect("parsed");
        assert_eq!(parsed.expose(), "x");
    }
}
