//! Logging a dependency's outage once, not once per failed call.
//!
//! A service that calls Redis many times a second would log every failure while Redis is down.
//! [`OutageLog`] turns the stream of results into one warning when the dependency goes down,
//! a reminder at most every [`REMINDER_EVERY`] with the number of failures since the last
//! line, and one line when it is back.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Longest silence while a dependency stays down.
pub const REMINDER_EVERY: Duration = Duration::from_secs(30);

/// What to log after a call, if anything.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Line {
    /// The first failure after a success: warn, with the error.
    Down,
    /// Still failing, and the last line is `REMINDER_EVERY` old: warn, with the failures since.
    StillDown {
        /// Failed calls since the last line.
        failures: u64,
    },
    /// The first success after a failure.
    Back,
}

#[derive(Debug, Default)]
struct State {
    down: bool,
    failures: u64,
    last_line: Option<Instant>,
}

/// One dependency's state, shared by every caller in the process.
#[derive(Debug, Default)]
pub struct OutageLog {
    state: Mutex<State>,
}

impl OutageLog {
    /// A log for a dependency that is presumed up.
    pub const fn new() -> Self {
        Self {
            state: Mutex::new(State {
                down: false,
                failures: 0,
                last_line: None,
            }),
        }
    }

    /// Records a call's outcome at `now`; returns the line to log, if any.
    pub fn record(&self, ok: bool, now: Instant) -> Option<Line> {
        let mut s = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match (ok, s.down) {
            (true, false) => None,
            (true, true) => {
                *s = State::default();
                Some(Line::Back)
            }
            (false, false) => {
                *s = State {
                    down: true,
                    failures: 0,
                    last_line: Some(now),
                };
                Some(Line::Down)
            }
            (false, true) => {
                s.failures += 1;
                let due = s
                    .last_line
                    .is_none_or(|at| now.duration_since(at) >= REMINDER_EVERY);
                if !due {
                    return None;
                }
                s.last_line = Some(now);
                Some(Line::StillDown {
                    failures: std::mem::take(&mut s.failures),
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_outage_is_logged_once_with_reminders_and_its_end() {
        let log = OutageLog::new();
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        assert_eq!(log.record(true, at(0)), None);
        assert_eq!(log.record(false, at(10)), Some(Line::Down));
        for ms in (20..30_000).step_by(100) {
            assert_eq!(log.record(false, at(ms)), None, "silent at {ms} ms");
        }
        assert_eq!(
            log.record(false, at(30_010)),
            Some(Line::StillDown { failures: 301 })
        );
        assert_eq!(log.record(false, at(30_020)), None);
        assert_eq!(log.record(true, at(30_030)), Some(Line::Back));
        assert_eq!(log.record(true, at(30_040)), None);
        assert_eq!(log.record(false, at(30_050)), Some(Line::Down));
    }
}
