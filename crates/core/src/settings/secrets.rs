//! Secrets from files: each secret setting may be given as `SLUICE__SECTION__KEY_FILE`, the
//! path of a file holding it, as Docker and Kubernetes mount secrets. The file's content, less
//! one trailing line break, is the value.

use super::{SettingsError, env_name, invalid};

/// The settings that may hold a secret: URLs with passwords, tokens, the JWT secret.
pub const SECRETS: [&str; 9] = [
    "redis.url",
    "redis.cluster_nodes",
    "redis.sentinels",
    "postgres.url",
    "postgres.read_url",
    "ingest.admin_token",
    "gateway.admin_token",
    "stream.auth.jwt_secret",
    "auth.jwt.secret",
];

/// Suffix of the variable naming a secret's file.
pub const FILE_SUFFIX: &str = "_FILE";

/// Replaces each `…_FILE` variable of a [`SECRETS`] setting in `own` by the secret it names.
pub(super) fn read_files(own: &mut config::Map<String, String>) -> Result<(), SettingsError> {
    for key in SECRETS {
        let var = env_name(key);
        let Some(path) = own.remove(&format!("{var}{FILE_SUFFIX}")) else {
            continue;
        };
        if own.contains_key(&var) {
            return Err(invalid(
                key,
                format!("is set twice: give {var} or {var}{FILE_SUFFIX}, not both"),
            ));
        }
        let secret = std::fs::read_to_string(&path)
            .map_err(|e| invalid(key, format!("cannot read {var}{FILE_SUFFIX} {path:?}: {e}")))?;
        let secret = secret.strip_suffix('\n').unwrap_or(&secret);
        let secret = secret.strip_suffix('\r').unwrap_or(secret);
        own.insert(var, secret.to_owned());
    }
    Ok(())
}
