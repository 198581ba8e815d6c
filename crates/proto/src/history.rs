//! The stats history: one sample per second for ten minutes and one per minute for a day,
//! kept in Redis by the upkeep (`sluice_core::upkeep`), and served in columns
//! (`GET /stats/history`, the `history` message).
//!
//! Each sample is a JSON array `[unix_second, persisted_per_second, accepted_per_second,
//! queue_depth, in_flight, commit_latency_p99_ms | null, workers_alive]`, newest first in
//! `history_1s` and `history_1m`. A minute sample averages the rates of its seconds and keeps
//! the maximum of the other series.

use serde::{Deserialize, Serialize};

/// A window of history a client can ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Window {
    /// The last minute, one point per second.
    #[serde(rename = "1m")]
    Minute,
    /// The last five minutes, one point per second.
    #[serde(rename = "5m")]
    FiveMinutes,
    /// The last hour, one point per minute.
    #[serde(rename = "1h")]
    Hour,
    /// The last 24 hours, one point per minute.
    #[serde(rename = "24h")]
    Day,
}

impl Window {
    /// Every window, shortest first.
    pub const ALL: [Window; 4] = [Self::Minute, Self::FiveMinutes, Self::Hour, Self::Day];

    /// The window a reader gets when it names none.
    pub const DEFAULT: Window = Self::FiveMinutes;

    /// The windows as a JavaScript module, for the dashboard: `export default {windows:
    /// [{name, span_secs, resolution_secs}, …], default: "5m"}`, shortest first. The
    /// gateway serves it as `/assets/windows.js`, so the page spells no window itself.
    pub fn module() -> String {
        let windows: Vec<serde_json::Value> = Self::ALL
            .iter()
            .map(|w| {
                serde_json::json!({
                    "name": w.name(),
                    "span_secs": w.span_secs(),
                    "resolution_secs": w.resolution_secs(),
                })
            })
            .collect();
        let module = serde_json::json!({"windows": windows, "default": Self::DEFAULT.name()});
        format!("// The history windows, from sluice-proto's Window.\nexport default {module};\n")
    }

    /// Parses `1m`, `5m`, `1h` or `24h`.
    pub fn parse(raw: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|w| w.name() == raw.trim())
            .ok_or_else(|| format!("window must be one of 1m, 5m, 1h, 24h; got {raw:?}"))
    }

    /// The name clients use.
    pub fn name(self) -> &'static str {
        match self {
            Self::Minute => "1m",
            Self::FiveMinutes => "5m",
            Self::Hour => "1h",
            Self::Day => "24h",
        }
    }

    /// How far back the window reaches.
    pub fn span_secs(self) -> u64 {
        match self {
            Self::Minute => 60,
            Self::FiveMinutes => 300,
            Self::Hour => 3_600,
            Self::Day => 86_400,
        }
    }

    /// Seconds between points.
    pub fn resolution_secs(self) -> u64 {
        match self {
            Self::Minute | Self::FiveMinutes => 1,
            Self::Hour | Self::Day => 60,
        }
    }
}

/// One sample as stored.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
pub struct Sample(
    pub u64,
    pub f64,
    pub f64,
    pub u64,
    pub u64,
    pub Option<f64>,
    pub u64,
);

/// A window of history, oldest point first, one array per series (all the same length).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct History {
    /// The window asked for.
    pub window: String,
    /// Seconds between points (1 or 60).
    pub resolution_secs: u64,
    /// Unix second at which each point starts.
    pub t: Vec<u64>,
    /// Messages persisted per second.
    pub persisted_per_second: Vec<f64>,
    /// Messages accepted per second.
    pub accepted_per_second: Vec<f64>,
    /// `pending_messages` length.
    pub queue_depth: Vec<u64>,
    /// Messages in the processing lists.
    pub in_flight: Vec<u64>,
    /// POST→commit p99 in ms; `null` where nothing was committed.
    pub commit_latency_p99_ms: Vec<Option<f64>>,
    /// Workers with a fresh heartbeat.
    pub workers_alive: Vec<u64>,
}

impl History {
    fn push(&mut self, s: &Sample) {
        self.t.push(s.0);
        self.persisted_per_second.push(s.1);
        self.accepted_per_second.push(s.2);
        self.queue_depth.push(s.3);
        self.in_flight.push(s.4);
        self.commit_latency_p99_ms.push(s.5);
        self.workers_alive.push(s.6);
    }

    /// The window's points from stored samples (newest first, as Redis holds them); `now` is
    /// the Redis clock in unix seconds. For `1h` and `24h`, the minute in progress is folded
    /// from the one-second samples, so the newest point is never more than a second old.
    pub fn build(window: Window, now: u64, seconds: &[Sample], minutes: &[Sample]) -> Self {
        let mut history = Self {
            window: window.name().to_owned(),
            resolution_secs: window.resolution_secs(),
            ..Self::default()
        };
        let since = now.saturating_sub(window.span_secs());
        let mut points: Vec<Sample> = if window.resolution_secs() == 1 {
            seconds.iter().filter(|s| s.0 > since).copied().collect()
        } else {
            let minute = now / 60 * 60;
            let mut points: Vec<Sample> = minutes
                .iter()
                .filter(|s| s.0 > since && s.0 < minute)
                .copied()
                .collect();
            let current: Vec<Sample> = seconds.iter().filter(|s| s.0 >= minute).copied().collect();
            if let Some(folded) = fold(minute, &current) {
                points.insert(0, folded);
            }
            points
        };
        points.reverse();
        points.iter().for_each(|s| history.push(s));
        history
    }
}

/// Folds one-second samples into the sample of the minute starting at `minute`, as
/// `lua/stats.lua` does: rates averaged, the rest at their maximum.
fn fold(minute: u64, seconds: &[Sample]) -> Option<Sample> {
    if seconds.is_empty() {
        return None;
    }
    let n = seconds.len() as f64;
    let mut out = Sample(minute, 0.0, 0.0, 0, 0, None, 0);
    for s in seconds {
        out.1 += s.1 / n;
        out.2 += s.2 / n;
        out.3 = out.3.max(s.3);
        out.4 = out.4.max(s.4);
        out.5 = match (out.5, s.5) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
        out.6 = out.6.max(s.6);
    }
    out.1 = (out.1 * 100.0).round() / 100.0;
    out.2 = (out.2 * 100.0).round() / 100.0;
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(t: u64, persisted: f64, depth: u64, p99: Option<f64>) -> Sample {
        Sample(t, persisted, persisted, depth, 0, p99, 1)
    }

    #[test]
    fn windows_parse_by_name_only() {
        for w in Window::ALL {
            assert_eq!(Window::parse(w.name()), Ok(w));
        }
        assert!(Window::parse("2h").is_err());
        assert!(Window::parse("").is_err());
    }

    #[test]
    fn second_windows_keep_only_their_span_oldest_first() {
        let seconds = [
            s(1000, 3.0, 1, None),
            s(999, 2.0, 1, None),
            s(900, 1.0, 1, None),
        ];
        let h = History::build(Window::Minute, 1000, &seconds, &[]);
        assert_eq!(h.t, [999, 1000]);
        assert_eq!(h.persisted_per_second, [2.0, 3.0]);
        assert_eq!(h.resolution_secs, 1);
        assert_eq!(h.window, "1m");
    }

    #[test]
    fn minute_windows_end_with_the_minute_in_progress() {
        let seconds = [
            s(6002, 30.0, 7, Some(4.0)),
            s(6001, 10.0, 9, None),
            s(5999, 99.0, 99, None),
        ];
        let minutes = [s(5940, 5.0, 3, Some(2.0)), s(5880, 4.0, 2, None)];
        let h = History::build(Window::Hour, 6002, &seconds, &minutes);
        assert_eq!(h.t, [5880, 5940, 6000]);
        assert_eq!(h.persisted_per_second, [4.0, 5.0, 20.0]);
        assert_eq!(h.queue_depth, [2, 3, 9]);
        assert_eq!(h.commit_latency_p99_ms, [None, Some(2.0), Some(4.0)]);
    }

    #[test]
    fn an_empty_store_gives_empty_columns() {
        let h = History::build(Window::Day, 10_000, &[], &[]);
        assert!(h.t.is_empty() && h.queue_depth.is_empty());
        assert_eq!(h.resolution_secs, 60);
    }
}
