//! The stats cards, listed once (`cards.json`) for every view: the dashboard builds its cards
//! from it (the gateway serves it as the module `/assets/cards.js`), and `sluice stats` and
//! `sluice watch` print theirs from it.

use serde::Deserialize;

use crate::stats::Stats;

/// The list, as JSON: `[{"field", "label", "note", "plain", "unit", "alerts"}, …]` in display
/// order. `alerts` names the rules whose firing concerns the card's figure (the dashboard colours
/// the card by their severity); `note` says how the figure is averaged.
pub const CARDS_JSON: &str = include_str!("cards.json");

/// The list as a JavaScript module (`export default […]`), for the dashboard.
pub const CARDS_MODULE: &str = concat!(
    "// The stats cards, from sluice-proto's cards.json.\nexport default ",
    include_str!("cards.json"),
    ";\n"
);

/// How a card's figure reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Unit {
    /// A count, with thousands separators.
    Count,
    /// A rate or an average.
    Rate,
    /// Milliseconds of latency.
    Millis,
    /// An age in milliseconds, read as ms, s or minutes.
    Duration,
}

/// One card.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Card {
    /// The [`Stats`] field behind it, dotted for a nested one (`commit_latency_ms.p99`).
    pub field: String,
    /// The label, as the dashboard shows it.
    pub label: String,
    /// Its key in `sluice watch --plain` lines; `None` when it is not in them.
    pub plain: Option<String>,
    /// How it reads.
    pub unit: Unit,
    /// How it is averaged (`10-s average`), when it is.
    #[serde(default)]
    pub note: Option<String>,
    /// The alert rules (`Rule::name`) whose firing concerns this figure.
    #[serde(default)]
    pub alerts: Vec<String>,
}

impl Card {
    /// The card's figure in `stats`; `None` when there is none (a latency with no commit in
    /// the window) or the field is not a number.
    pub fn value(&self, stats: &Stats) -> Option<f64> {
        let json = serde_json::to_value(stats).ok()?;
        self.field
            .split('.')
            .try_fold(&json, |v, key| v.get(key))?
            .as_f64()
    }
}

/// The cards, in display order.
pub fn cards() -> Vec<Card> {
    serde_json::from_str(CARDS_JSON).unwrap_or_default()
}

/// A count as every view spells it: `12345678` → `12,345,678`.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_card_reads_a_field_of_the_stats() {
        let all = cards();
        assert_eq!(all.len(), 12);
        let mut stats = Stats::at(chrono::Utc::now(), 7, 2, 3, 1.5);
        stats.commit_latency_ms.p99 = Some(4.5);
        for card in &all {
            let nested_latency = card.field.starts_with("commit_latency_ms.");
            assert!(
                card.value(&stats).is_some() || nested_latency,
                "{} reads nothing",
                card.field
            );
        }
        let p99 = all
            .iter()
            .find(|c| c.field == "commit_latency_ms.p99")
            .expect("p99");
        assert_eq!(p99.value(&stats), Some(4.5));
        for card in &all {
            for rule in &card.alerts {
                let named = serde_json::from_value::<crate::api::Rule>(rule.as_str().into());
                assert!(named.is_ok(), "{}: no rule {rule}", card.field);
            }
        }
        assert!(
            CARDS_MODULE.starts_with("// The stats cards")
                && CARDS_MODULE.contains("export default [")
        );
    }
}
