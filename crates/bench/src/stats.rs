//! Latency percentiles, computed exactly from all samples (runs are small enough to keep them),
//! and the per-client tallies they come from.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::report::{ErrorCount, Latency, Phase, PhaseReport};

/// Per-client results, merged after the phase so workers never contend on shared counters.
#[derive(Default)]
pub(crate) struct Tally {
    /// Latencies of successful requests, in microseconds.
    pub micros: Vec<u32>,
    /// Failures by kind: count and the example of the first occurrence.
    pub errors: BTreeMap<String, (u64, Option<String>)>,
}

impl Tally {
    /// Records a success that took `latency`.
    pub fn ok(&mut self, latency: Duration) {
        self.micros
            .push(u32::try_from(latency.as_micros()).unwrap_or(u32::MAX));
    }

    /// Records a failure of `kind`; `example` is asked for only on its first occurrence.
    pub fn error(&mut self, kind: String, example: impl FnOnce() -> Option<String>) {
        let entry = self.errors.entry(kind).or_insert((0, None));
        if entry.0 == 0 {
            entry.1 = example();
        }
        entry.0 += 1;
    }

    /// Adds another client's results.
    pub fn merge(&mut self, other: Tally) {
        self.micros.extend(other.micros);
        for (kind, (count, example)) in other.errors {
            let entry = self.errors.entry(kind).or_insert((0, None));
            entry.0 += count;
            if entry.1.is_none() {
                entry.1 = example;
            }
        }
    }

    /// The report of a phase that took `elapsed` and opened `connections`.
    pub fn into_phase(self, phase: Phase, elapsed: Duration, connections: u64) -> PhaseReport {
        let ok = self.micros.len() as u64;
        let mut error_kinds: Vec<ErrorCount> = self
            .errors
            .into_iter()
            .map(|(kind, (count, example))| ErrorCount {
                kind,
                count,
                example,
            })
            .collect();
        error_kinds.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.kind.cmp(&b.kind)));
        let secs = elapsed.as_secs_f64();
        let rate = if secs > 0.0 { ok as f64 / secs } else { 0.0 };
        PhaseReport {
            phase,
            ok,
            errors: error_kinds.iter().map(|e| e.count).sum(),
            error_kinds,
            // Rounded: digits beyond microseconds are noise and clutter the JSON.
            elapsed_ms: (secs * 1e6).round() / 1e3,
            req_per_s: (rate * 100.0).round() / 100.0,
            latency: summarize(self.micros),
            connections,
        }
    }
}

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
        p90_ms: ms(900)?,
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
    fn tally_keeps_first_example_and_sums() {
        let mut a = Tally::default();
        a.error("HTTP 403 RSC 4103".into(), || Some("first".into()));
        a.error("HTTP 403 RSC 4103".into(), || Some("second".into()));
        let mut b = Tally::default();
        b.error("HTTP 403 RSC 4103".into(), || Some("third".into()));
        b.micros.push(5);
        a.merge(b);
        assert_eq!(
            a.errors.get("HTTP 403 RSC 4103"),
            Some(&(3, Some("first".to_owned())))
        );
        assert_eq!(a.micros, vec![5]);
    }

    #[test]
    fn phase_report_sorts_kinds_and_rates_successes() {
        let mut t = Tally::default();
        t.ok(Duration::from_millis(2));
        t.ok(Duration::from_millis(4));
        t.error("b".into(), || None);
        t.error("a".into(), || None);
        t.error("b".into(), || None);
        let p = t.into_phase(Phase::Enrol, Duration::from_secs(2), 5);
        assert_eq!((p.ok, p.errors, p.connections), (2, 3, 5));
        let kinds: Vec<_> = p
            .error_kinds
            .iter()
            .map(|e| (e.kind.as_str(), e.count))
            .collect();
        assert_eq!(kinds, [("b", 2), ("a", 1)]);
        assert_eq!(p.req_per_s, 1.0);
        assert_eq!(p.elapsed_ms, 2000.0);
        assert_eq!(p.latency.unwrap().p50_ms, 2.0);
    }

    #[test]
    fn summarize_sorts_and_converts_to_ms() {
        let mut v: Vec<u32> = (1..=1000).map(|i| i * 1000).collect();
        v.reverse();
        let l = summarize(v).unwrap();
        assert_eq!(l.p50_ms, 500.0);
        assert_eq!(l.p90_ms, 900.0);
        assert_eq!(l.p99_ms, 990.0);
        assert_eq!(l.max_ms, 1000.0);
    }
}
