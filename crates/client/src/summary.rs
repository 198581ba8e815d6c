//! Percentiles and rates. Latencies go into an HDR histogram (`hdrhistogram`), in microseconds
//! with three significant digits: a quantile is exact to 0.1 %, whatever the number of samples.

use hdrhistogram::Histogram;

/// Summary of a set of samples.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Summary {
    /// Samples.
    pub count: usize,
    /// Median.
    pub p50: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Largest sample.
    pub max: f64,
}

/// Latencies in milliseconds, kept as an HDR histogram of microseconds.
#[derive(Debug, Clone)]
pub struct Latencies(Histogram<u64>);

impl Latencies {
    /// The histogram of `samples_ms`; `None` when empty.
    pub fn of(samples_ms: &[f64]) -> Option<Self> {
        if samples_ms.is_empty() {
            return None;
        }
        // 1 µs to an hour; longer samples count as an hour.
        let mut histogram = Histogram::new_with_bounds(1, 3_600_000_000, 3)
            .expect("the bounds and the precision are valid");
        for ms in samples_ms {
            histogram.saturating_record((ms * 1_000.0).round().max(0.0) as u64);
        }
        Some(Self(histogram))
    }

    /// The `q`-quantile (0 ≤ q ≤ 1): at least `q` of the samples are at most this, in ms.
    pub fn quantile(&self, q: f64) -> f64 {
        self.0.value_at_quantile(q.clamp(0.0, 1.0)) as f64 / 1_000.0
    }

    /// The largest sample, in ms.
    pub fn max(&self) -> f64 {
        self.0.max() as f64 / 1_000.0
    }
}

/// p50, p99 and max of `samples` (in ms); `None` when empty.
pub fn summarize(samples: &[f64]) -> Option<Summary> {
    let latencies = Latencies::of(samples)?;
    Some(Summary {
        count: samples.len(),
        p50: latencies.quantile(0.50),
        p99: latencies.quantile(0.99),
        max: latencies.max(),
    })
}

/// `count` events over `seconds`, per second; 0 for an empty window.
pub fn rate(count: u64, seconds: f64) -> f64 {
    if seconds > 0.0 {
        count as f64 / seconds
    } else {
        0.0
    }
}

/// p50/p95/p99 of a latency.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct LatencyPercentiles {
    /// Median.
    pub p50: f64,
    /// 95th percentile.
    pub p95: f64,
    /// 99th percentile.
    pub p99: f64,
    /// The largest.
    pub max: f64,
}

impl LatencyPercentiles {
    /// The percentiles of `values` (in ms); `None` when it is empty.
    pub fn of(values: &[f64]) -> Option<Self> {
        let latencies = Latencies::of(values)?;
        Some(Self {
            p50: latencies.quantile(0.50),
            p95: latencies.quantile(0.95),
            p99: latencies.quantile(0.99),
            max: latencies.max(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= b.abs() * 0.001 + 1e-9
    }

    #[test]
    fn quantiles_are_within_a_tenth_of_a_percent() {
        let samples: Vec<f64> = (1..=100).map(f64::from).collect();
        let l = Latencies::of(&samples).expect("non-empty");
        for (q, want) in [(0.5, 50.0), (0.99, 99.0), (1.0, 100.0), (0.0, 1.0)] {
            assert!(
                close(l.quantile(q), want),
                "q{q}: {} vs {want}",
                l.quantile(q)
            );
        }
        assert!(close(
            Latencies::of(&[7.0]).expect("one").quantile(0.99),
            7.0
        ));
        assert!(Latencies::of(&[]).is_none());
        // 1000 samples, ten of them slow: p99 is the last fast one, not a slow one.
        let mut mixed: Vec<f64> = vec![1.0; 990];
        mixed.extend([100.0; 10]);
        assert!(close(
            Latencies::of(&mixed).expect("some").quantile(0.99),
            1.0
        ));
        mixed.push(100.0);
        assert!(close(
            Latencies::of(&mixed).expect("some").quantile(0.99),
            100.0
        ));
    }

    #[test]
    fn summaries() {
        let s = summarize(&[5.0, 1.0, 3.0, 2.0, 4.0]).expect("non-empty");
        assert_eq!(s.count, 5);
        assert!(
            close(s.p50, 3.0) && close(s.p99, 5.0) && close(s.max, 5.0),
            "{s:?}"
        );
        assert!(summarize(&[]).is_none());
    }

    #[test]
    fn rates() {
        assert_eq!(rate(1000, 2.0), 500.0);
        assert_eq!(rate(5, 0.0), 0.0);
    }
}
