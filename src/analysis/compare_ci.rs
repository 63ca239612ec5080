//! Intervals for `compare`: each cell's change of successful RPS and p95
//! between two runs, from a block bootstrap over both runs' per-second
//! windows (so one repetition is enough), with Holm's correction across
//! every interval of the comparison.

use serde::Serialize;

use super::ab::ALPHA;
use super::bootstrap::{self, Stat};
use crate::results::SummaryRow;

/// A change in percent with its interval (at the Holm-adjusted level of a
/// 95% family) and whether the interval excludes 0.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Interval {
    pub low: f64,
    pub high: f64,
    pub significant: bool,
}

impl Interval {
    pub fn holds_zero(&self) -> bool {
        !self.significant
    }
}

/// Per pair of rows: (ok RPS, p95) intervals; none for a figure either run
/// has no seconds for (a run written before timelines were kept).
pub fn intervals(
    pairs: &[(&SummaryRow, &SummaryRow)],
    resamples: usize,
) -> Vec<(Option<Interval>, Option<Interval>)> {
    let mut diffs = Vec::new();
    let mut slots = Vec::new();
    for (i, (b, n)) in pairs.iter().enumerate() {
        for (j, stat) in [Stat::OkRps, Stat::P95].into_iter().enumerate() {
            let seed = super::ab::seed(&[&b.cell, if j == 0 { "ok_rps" } else { "p95" }]);
            if let Some(d) = bootstrap::difference(&b.seconds, &n.seconds, stat, seed, resamples) {
                diffs.push(d);
                slots.push((i, j));
            }
        }
    }
    let p: Vec<f64> = diffs.iter().map(|d| d.p_value()).collect();
    let mut out = vec![(None, None); pairs.len()];
    for ((d, (i, j)), h) in diffs.iter().zip(slots).zip(bootstrap::holm(&p, ALPHA)) {
        let (low, high) = d.interval(h.level);
        let iv = Some(Interval {
            low,
            high,
            significant: h.reject,
        });
        if j == 0 {
            out[i].0 = iv;
        } else {
            out[i].1 = iv;
        }
    }
    out
}
