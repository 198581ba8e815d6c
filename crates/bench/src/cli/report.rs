//! How every scenario prints: a table of rows, then one JSON line.

use serde::Serialize;
use sluice_client::summary::Summary;

/// One row of a scenario's table.
pub fn row(name: &str, value: String) {
    println!("  {name:<28}{value:>16}");
}

/// p50, p99 and max of a latency, when there is one.
pub fn summary_rows(prefix: &str, s: &Option<Summary>) {
    if let Some(s) = s {
        row(&format!("{prefix} p50"), format!("{:.2} ms", s.p50));
        row(&format!("{prefix} p99"), format!("{:.2} ms", s.p99));
        row(&format!("{prefix} max"), format!("{:.2} ms", s.max));
    }
}

/// `value` as a share of the same run's `ceiling`, printed as a row, when one was given.
pub fn ratio(value: f64, ceiling: Option<f64>, name: &str) -> Option<f64> {
    let ceiling = ceiling?;
    let r = value / ceiling;
    row(&format!("ratio to {name}"), format!("{:.0}%", r * 100.0));
    Some(r)
}

/// The scenario's JSON line: `{"scenario", "report", "ratio_to_ceiling"}`.
pub fn json_line(scenario: &str, report: &impl Serialize, ratio: Option<f64>) {
    json_line_with(scenario, report, ratio, serde_json::Map::new());
}

/// [`json_line`] with more top-level fields (`ingest`'s second ratio).
pub fn json_line_with(
    scenario: &str,
    report: &impl Serialize,
    ratio: Option<f64>,
    mut fields: serde_json::Map<String, serde_json::Value>,
) {
    fields.insert("scenario".into(), scenario.into());
    fields.insert("report".into(), serde_json::json!(report));
    fields.insert("ratio_to_ceiling".into(), ratio.into());
    println!("{}", serde_json::Value::Object(fields));
}
