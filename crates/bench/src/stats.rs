//! Latency percentiles, computed exactly from all samples (runs are small enough to keep them).

use crate::report::Latency;

/// Nearest-rank percentile of ascending `sorted` samples; `per_mille` 500 is p50, 990 is p99.
/// Integer arithmetic so that e.g. p99 of 100 samples is exactly the 99th, not the 100th.
pub(crate) fn percentile(sorted: &[u32], per_mille: u32) -> Option<u32> {
    let n = sorted.len() as u64;
    if n == 0 {
        return None;
    }
    let rank = (u64::from(per_mille.min(1000)) * n)
        .div_ceil(1000)
        .clamp(1, n);
    usize::try_from(rank - 1)
        .ok()
        .and_then(|i| sorted.get(i))
        .copied()
}

/// Summary of microsecond samples; `None` when nothing succeeded.
pub(crate) fn summarize(mut micros: Vec<u32>) -> Option<Latency> {
    micros.sort_unstable();
    let ms = |per_mille| percentile(&micros, per_mille).map(|us| f64::from(us) / 1000.0);
    Some(Latency {
        p50_ms: ms(500)?,
        p99_ms: ms(990)?,
        max_ms: ms(1000)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_has_no_percentiles() {
        assert_eq!(percentile(&[], 500), None);
        assert!(summarize(Vec::new()).is_none());
    }

    #[test]
    fn single_sample_is_every_percentile() {
        for p in [0, 1, 500, 990, 1000] {
            assert_eq!(percentile(&[7], p), Some(7));
        }
    }

    #[test]
    fn nearest_rank_on_one_to_hundred() {
        let v: Vec<u32> = (1..=100).collect();
        assert_eq!(percentile(&v, 0), Some(1));
        assert_eq!(percentile(&v, 500), Some(50));
        assert_eq!(percentile(&v, 990), Some(99));
        assert_eq!(percentile(&v, 999), Some(100));
        assert_eq!(percentile(&v, 1000), Some(100));
    }

    #[test]
    fn nearest_rank_rounds_up() {
        let v = [10, 20, 30];
        assert_eq!(percentile(&v, 500), Some(20));
        assert_eq!(percentile(&v, 990), Some(30));
        let v = [10, 20, 30, 40];
        assert_eq!(percentile(&v, 500), Some(20));
        assert_eq!(percentile(&v, 510), Some(30));
    }

    #[test]
    fn summarize_sorts_and_converts_to_ms() {
        let mut v: Vec<u32> = (1..=1000).map(|i| i * 1000).collect();
        v.reverse();
        let l = summarize(v).unwrap();
        assert_eq!(l.p50_ms, 500.0);
        assert_eq!(l.p99_ms, 990.0);
        assert_eq!(l.max_ms, 1000.0);
    }
}
