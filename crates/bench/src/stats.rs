//! Percentiles and rates.

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

/// The `q`-quantile (0 ≤ q ≤ 1) of sorted samples, by the nearest-rank method: the smallest
/// sample such that at least `q` of all samples are ≤ it.
pub fn quantile(sorted: &[f64], q: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (q.clamp(0.0, 1.0) * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

/// p50, p99 and max of `samples` (sorted in place); `None` when empty.
pub fn summarize(samples: &mut [f64]) -> Option<Summary> {
    samples.sort_by(f64::total_cmp);
    Some(Summary {
        count: samples.len(),
        p50: quantile(samples, 0.50)?,
        p99: quantile(samples, 0.99)?,
        max: *samples.last()?,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_quantiles() {
        let samples: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(quantile(&samples, 0.5), Some(50.0));
        assert_eq!(quantile(&samples, 0.99), Some(99.0));
        assert_eq!(quantile(&samples, 1.0), Some(100.0));
        assert_eq!(quantile(&samples, 0.0), Some(1.0));
        assert_eq!(quantile(&[7.0], 0.99), Some(7.0));
        assert_eq!(quantile(&[], 0.5), None);
        // 1000 samples, ten of them slow: p99 is the last fast one, not a slow one.
        let mut mixed: Vec<f64> = vec![1.0; 990];
        mixed.extend([100.0; 10]);
        assert_eq!(quantile(&mixed, 0.99), Some(1.0));
        mixed.push(100.0);
        assert_eq!(quantile(&mixed, 0.99), Some(100.0));
    }

    #[test]
    fn summaries_sort_their_input() {
        let mut samples = vec![5.0, 1.0, 3.0, 2.0, 4.0];
        let s = summarize(&mut samples).expect("non-empty");
        assert_eq!((s.count, s.p50, s.p99, s.max), (5, 3.0, 5.0, 5.0));
        assert!(summarize(&mut []).is_none());
    }

    #[test]
    fn rates() {
        assert_eq!(rate(1000, 2.0), 500.0);
        assert_eq!(rate(5, 0.0), 0.0);
    }
}
