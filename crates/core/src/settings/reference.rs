//! Every setting as one list, read from the one place each is declared: its field (doc
//! comment, type, `#[schemars(range)]`) and its section's `Default`. The range check at start-up,
//! each binary's `--help` and the configuration reference in `proto-docs/configuration.md` are
//! all made from this list, so none can drift from the others.

use std::fmt::Write;

use serde_json::Value;

use super::{Settings, env_name};

/// One leaf setting.
#[derive(Debug, Clone, PartialEq)]
pub struct Setting {
    /// Dotted key, e.g. `worker.batch_max_size`.
    pub key: String,
    /// Its value in the settings walked (the defaults, for the reference).
    pub value: Value,
    /// The field's doc comment, on one line.
    pub description: String,
    /// The smallest value accepted, when declared.
    pub min: Option<f64>,
    /// The largest value accepted, when declared.
    pub max: Option<f64>,
}

impl Setting {
    /// The variable that sets it.
    pub fn env(&self) -> String {
        env_name(&self.key)
    }

    /// The value as people read it: `empty` for an empty string.
    pub fn shown(&self) -> String {
        match &self.value {
            Value::String(s) if s.is_empty() => "empty".to_owned(),
            Value::String(s) => s.clone(),
            other => other.to_string(),
        }
    }

    /// `1 – 60000`, or empty when no range is declared.
    pub fn range(&self) -> String {
        match (self.min, self.max) {
            (Some(min), Some(max)) => format!("{min} – {max}"),
            _ => String::new(),
        }
    }
}

/// The leaves of `values` (serialized [`Settings`]) with what `schema` (its JSON Schema) says
/// of each, in declaration order.
pub fn leaves(schema: &Value, values: &Value) -> Vec<Setting> {
    let mut out = Vec::new();
    walk(schema, schema, values, "", &mut out);
    out
}

fn walk(root: &Value, node: &Value, value: &Value, key: &str, out: &mut Vec<Setting>) {
    // A field's own doc, when it has one, over its type's (an enum's, under its `$ref`).
    let own = node["description"].as_str();
    let node = resolve(root, node);
    if let Value::Object(fields) = value {
        for (field, child) in fields {
            let key = if key.is_empty() {
                field.clone()
            } else {
                format!("{key}.{field}")
            };
            walk(root, &node["properties"][field], child, &key, out);
        }
        return;
    }
    out.push(Setting {
        key: key.to_owned(),
        value: value.clone(),
        description: own
            .or(node["description"].as_str())
            .unwrap_or("")
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" "),
        min: node["minimum"].as_f64(),
        max: node["maximum"].as_f64(),
    });
}

/// Follows a `$ref` to its definition (schemars puts each struct under `$defs`).
fn resolve<'a>(root: &'a Value, node: &'a Value) -> &'a Value {
    match node["$ref"].as_str().and_then(|r| r.strip_prefix("#/")) {
        Some(path) => path.split('/').fold(root, |at, part| &at[part]),
        None => node,
    }
}

/// The sections in the order [`Settings`] declares them.
const SECTIONS: [&str; 8] = [
    "redis",
    "postgres",
    "ingest",
    "worker",
    "stream",
    "gateway",
    "telemetry",
    "auth",
];

/// Every setting with its default: section by section as [`Settings`] declares them, a
/// section's own settings before its subsections', each by name.
pub fn defaults() -> Vec<Setting> {
    let values = serde_json::to_value(Settings::default()).expect("the defaults serialize");
    let mut all = leaves(&schemars::schema_for!(Settings).to_value(), &values);
    all.sort_by_cached_key(|s| {
        let section = s.key.split('.').next().unwrap_or("");
        let rank = SECTIONS
            .iter()
            .position(|&n| n == section)
            .unwrap_or(SECTIONS.len());
        (rank, s.key.matches('.').count(), s.key.clone())
    });
    all
}

/// The configuration reference: one table per section, as `proto-docs/configuration.md`
/// holds it between its generated-section markers.
pub fn markdown() -> String {
    let mut out = String::new();
    let mut section = String::new();
    for setting in defaults() {
        let this = setting
            .key
            .rsplit_once('.')
            .map_or("", |(s, _)| s)
            .to_owned();
        if this != section {
            let _ = write!(
                out,
                "\n### `[{this}]`\n\n| variable | default | range | meaning |\n|---|---|---|---|\n"
            );
            section = this;
        }
        let range = setting.range();
        let _ = writeln!(
            out,
            "| `{}` | `{}` | {} | {} |",
            setting.env(),
            setting.shown().replace('|', "\\|"),
            if range.is_empty() {
                "—".to_owned()
            } else {
                range
            },
            setting.description.replace('|', "\\|"),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const BEGIN: &str =
        "<!-- BEGIN GENERATED: cargo test -p sluice-core configuration_reference -->\n";
    const END: &str = "<!-- END GENERATED -->";

    /// `proto-docs/configuration.md` holds exactly [`markdown`]; with `SLUICE_WRITE_DOCS=1` the
    /// test rewrites it instead of failing.
    #[test]
    fn configuration_reference_is_generated_from_the_fields() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../proto-docs/configuration.md"
        );
        let doc = std::fs::read_to_string(path).expect("proto-docs/configuration.md");
        let (head, rest) = doc.split_once(BEGIN).expect("the BEGIN marker");
        let (_, tail) = rest.split_once(END).expect("the END marker");
        let wanted = format!("{head}{BEGIN}{}{END}{tail}", markdown());
        if std::env::var_os("SLUICE_WRITE_DOCS").is_some() {
            std::fs::write(path, &wanted).expect("written");
            return;
        }
        assert!(
            doc == wanted,
            "proto-docs/configuration.md is out of date: run \
             SLUICE_WRITE_DOCS=1 cargo test -p sluice-core configuration_reference"
        );
    }

    #[test]
    fn every_setting_has_a_description_and_ranges_come_from_the_fields() {
        let all = defaults();
        assert!(all.iter().all(|s| !s.description.is_empty()), "{all:#?}");
        let batch = all
            .iter()
            .find(|s| s.key == "worker.batch_max_size")
            .expect("listed");
        assert_eq!((batch.min, batch.max), (Some(1.0), Some(100_000.0)));
        assert_eq!(batch.env(), "SLUICE__WORKER__BATCH_MAX_SIZE");
        assert!(
            all.iter()
                .any(|s| s.key == "gateway.alerts.anomaly_window_secs")
        );
        assert_eq!(
            all[0].key, "redis.ack_replicas",
            "sections in declaration order"
        );
        let sections: Vec<&str> = all
            .iter()
            .map(|s| s.key.split('.').next().unwrap_or(""))
            .collect();
        let mut seen = sections.clone();
        seen.dedup();
        assert_eq!(seen, SECTIONS, "each section once, in order");
    }

    #[test]
    fn every_numeric_setting_declares_its_range() {
        let unbounded: Vec<String> = defaults()
            .into_iter()
            .filter(|s| s.value.is_number() && (s.min.is_none() || s.max.is_none()))
            .map(|s| s.key)
            .collect();
        assert!(
            unbounded.is_empty(),
            "numeric settings without #[schemars(range)]: {unbounded:?}"
        );
    }
}
