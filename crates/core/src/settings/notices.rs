//! What a process says once at start about its environment, beside the settings it loaded:
//! the Python stack's variables it read (and which `SLUICE__…` name to use instead), and
//! variables that look like a setting but are not read (`SLUICE_INGEST_LISTEN`, one underscore
//! where the names take two).

use std::collections::HashMap;

use super::legacy::PYTHON_ALIASES;
use super::{ENV_PREFIX, ENV_SEPARATOR, env_name, reference};

/// One line per notice, for the process to log once it can.
pub fn notices<I>(env: I) -> Vec<String>
where
    I: IntoIterator<Item = (String, String)>,
{
    let env: HashMap<String, String> = env.into_iter().collect();
    let set = |name: &str| env.get(name).is_some_and(|v| !v.trim().is_empty());
    let mut out = Vec::new();
    for (alias, key) in PYTHON_ALIASES {
        if !set(alias) {
            continue;
        }
        let name = env_name(key);
        if set(&name) {
            out.push(format!("{alias} is ignored: {name} is set and wins"));
        } else {
            out.push(format!(
                "{alias} (the Python stack's name) sets {key}; {name} is the name to use"
            ));
        }
    }
    out.extend(near_misses(env.keys()));
    out.sort();
    out
}

/// Variables that spell a setting's name with single underscores (`SLUICE_INGEST_LISTEN`):
/// not read, so probably a mistake.
fn near_misses<'a>(names: impl Iterator<Item = &'a String>) -> Vec<String> {
    let own = format!("{ENV_PREFIX}_");
    let twice = format!("{ENV_PREFIX}{ENV_SEPARATOR}");
    let candidates: Vec<&String> = names
        .filter(|n| n.starts_with(&own) && !n.starts_with(&twice))
        .collect();
    if candidates.is_empty() {
        return Vec::new();
    }
    let settings: HashMap<String, String> = reference::defaults()
        .into_iter()
        .map(|s| {
            let name = env_name(&s.key);
            (name.replace(ENV_SEPARATOR, "_"), name)
        })
        .collect();
    candidates
        .into_iter()
        .filter_map(|name| {
            let meant = settings.get(&name.to_uppercase())?;
            Some(format!(
                "{name} is not read: settings take two underscores between their parts; did \
                 you mean {meant}?"
            ))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn a_near_miss_and_a_python_name_are_told_and_nothing_else() {
        let said = notices(env(&[
            ("SLUICE_INGEST_LISTEN", "0.0.0.0:8000"),
            ("DATABASE_URL", "postgres://x@db/sluice"),
            ("REDIS_URL", "redis://r:6379"),
            ("SLUICE__REDIS__URL", "redis://s:6379"),
            ("SLUICE_ADMIN_TOKEN", "a CLI variable, not a setting"),
            ("SLUICE__INGEST__LISTEN", "127.0.0.1:8000"),
            ("PATH", "/usr/bin"),
        ]));
        assert_eq!(said.len(), 3, "{said:#?}");
        assert!(said.iter().any(|n| n.contains("SLUICE_INGEST_LISTEN")
            && n.contains("did you mean SLUICE__INGEST__LISTEN?")));
        assert!(
            said.iter()
                .any(|n| n.starts_with("DATABASE_URL (the Python stack's name)")
                    && n.contains("SLUICE__POSTGRES__URL"))
        );
        assert!(
            said.iter()
                .any(|n| n == "REDIS_URL is ignored: SLUICE__REDIS__URL is set and wins")
        );
        assert!(notices(env(&[("HOME", "/root")])).is_empty());
    }
}
