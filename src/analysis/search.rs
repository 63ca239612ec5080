//! Capacity search: when a probe passes, which value to probe next, and the
//! capacity rows (the frontier) the probes add up to.

use indexmap::IndexMap;
use serde::{Deserialize, Serialize};

use crate::engine::stats::TimelineRow;
use crate::metrics::MetricKind;
use crate::plan::matrix::{CellValues, MatrixValue};
use crate::plan::{Plan, Search};
use crate::results::{CellStatus, SummaryRow};

/// A probe is unstable when the RPS of its last three 1 s windows spreads
/// by more than this share of their mean: (max - min) / mean.
pub const STABLE_SPREAD: f64 = 0.10;
/// Windows the stability rule looks at.
pub const STABLE_WINDOWS: usize = 3;
/// A probe is measured for at most this many times its duration while it is
/// unstable.
pub const MAX_EXTENSION: u32 = 3;
/// Starts the warning a probe that never stabilized carries.
pub const UNSTABLE: &str = "unstable:";

/// The RPS spread, (max - min) / mean, of the last three 1 s windows of a
/// timeline when it makes the probe unstable: above 10 % of the mean, and
/// beyond what counting requests in 1 s windows explains by itself (two
/// standard deviations of a Poisson count, 2·√mean requests: at 80 RPS,
/// responses completing in batches make 72 and 84 in neighbouring seconds
/// of a perfectly steady system). None when steady, or too short to judge.
pub fn unstable_spread(timeline: &[TimelineRow]) -> Option<f64> {
    if timeline.len() < STABLE_WINDOWS {
        return None;
    }
    let last = &timeline[timeline.len() - STABLE_WINDOWS..];
    let rps: Vec<f64> = last.iter().map(|r| r.rps).collect();
    let mean = rps.iter().sum::<f64>() / rps.len() as f64;
    if mean <= 0.0 {
        return None;
    }
    let max = rps.iter().copied().fold(f64::MIN, f64::max);
    let min = rps.iter().copied().fold(f64::MAX, f64::min);
    let spread = (max - min) / mean;
    (spread > STABLE_SPREAD && max - min > 2.0 * mean.sqrt()).then_some(spread)
}

/// Whether a probe measured in these back-to-back segments (its window, then
/// each extension) is unstable, and by what spread. Only full windows count:
/// the first second of a segment misses the requests started during warm-up
/// (or before it started), and the last holds those drained after the window
/// closed, so both are left out; the rule then looks at the last three.
pub fn probe_instability(segments: &[&[TimelineRow]]) -> Option<f64> {
    let full: Vec<TimelineRow> = segments
        .iter()
        .flat_map(|rows| {
            rows.iter()
                .skip(1)
                .take(rows.len().saturating_sub(2))
                .cloned()
        })
        .collect();
    unstable_spread(&full)
}

/// The warning of a probe that never stabilized.
pub fn unstable_warning(spread: f64, secs: f64) -> String {
    format!(
        "{UNSTABLE} RPS of the last {STABLE_WINDOWS} full seconds spread {:.0}% (limit {:.0}%) after {secs:.0} s measured; judged failing",
        spread * 100.0,
        STABLE_SPREAD * 100.0
    )
}

/// Whether a row meets every SLO limit (rates are floors, the rest ceilings).
pub fn meets_slo(slo: &IndexMap<String, f64>, row: &SummaryRow) -> bool {
    if row.successes() <= 0.0 {
        return false;
    }
    // Per-request objectives (ttft, itl, e2e) are judged request by request
    // by the engine: a probe meets them when its goodput leaves no more
    // requests out than the SLO's fail rate allows.
    let per_request = slo.keys().any(|k| crate::metrics::is_per_request(k));
    let fail_limit = ["fail_rate", "fail_pct"]
        .iter()
        .find_map(|k| slo.get(*k).copied())
        .unwrap_or(crate::plan::model::DEFAULT_FAIL_LIMIT_PCT);
    let goodput_ok = !per_request
        || row
            .metric("goodput_pct")
            .is_some_and(|g| g >= 100.0 - fail_limit);
    goodput_ok
        && slo
            .iter()
            .filter(|(metric, _)| !crate::metrics::is_per_request(metric))
            .all(|(metric, &limit)| match row.metric(metric) {
                Some(v) if crate::metrics::kind(metric) == Some(MetricKind::Rate) => v >= limit,
                Some(v) => v <= limit,
                None => false,
            })
}

/// A measured probe passes: it met the SLO and its throughput was stable.
pub fn probe_passes(slo: &IndexMap<String, f64>, row: &SummaryRow) -> bool {
    row.status.is_measured()
        && !row.warnings.iter().any(|w| w.starts_with(UNSTABLE))
        && meets_slo(slo, row)
}

/// The search along one outer cell: doubling from `from` until a probe
/// fails or `to` passes, then bisecting between the last passing and the
/// first failing value.
#[derive(Debug, Clone)]
pub struct Probing {
    from: u64,
    to: u64,
    tolerance: f64,
    /// Largest passing value so far.
    lo: Option<u64>,
    /// Smallest failing value so far.
    hi: Option<u64>,
    /// Values probed, in order, with their verdicts.
    pub probes: Vec<(u64, bool)>,
}

impl Probing {
    pub fn new(search: &Search) -> Self {
        Probing {
            from: search.from,
            to: search.to,
            tolerance: search.tolerance,
            lo: None,
            hi: None,
            probes: Vec::new(),
        }
    }

    /// The value to probe next; none when the search is over.
    pub fn next(&self) -> Option<u64> {
        match (self.lo, self.hi) {
            _ if self.probes.is_empty() => Some(self.from),
            (None, Some(_)) => None,
            (Some(lo), None) if lo >= self.to => None,
            (Some(lo), None) => Some(lo.saturating_mul(2).min(self.to)),
            (Some(lo), Some(hi)) if crate::plan::bracket_closed(lo, hi, self.tolerance) => None,
            (Some(lo), Some(hi)) => Some(lo + (hi - lo) / 2),
            (None, None) => Some(self.from),
        }
    }

    pub fn observe(&mut self, value: u64, passed: bool) {
        self.probes.push((value, passed));
        if passed {
            self.lo = Some(self.lo.map_or(value, |l| l.max(value)));
        } else {
            self.hi = Some(self.hi.map_or(value, |h| h.min(value)));
        }
    }

    /// "16 users ✓ 32 users ✗ → 24 users": the probes so far, and the next.
    pub fn trail(&self, over: &str) -> String {
        let mut parts: Vec<String> = self
            .probes
            .iter()
            .map(|(v, ok)| format!("{v} {over} {}", if *ok { "✓" } else { "✗" }))
            .collect();
        if let Some(n) = self.next() {
            parts.push(format!("→ {n} {over}"));
        }
        parts.join(" ")
    }
}

/// One outer cell's answer: the largest value that met the SLO.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CapacityRow {
    pub cell: String,
    pub matrix: CellValues,
    pub over: String,
    /// Largest probed value that met the SLO; none when `from` already broke it.
    pub max_value: Option<u64>,
    /// RPS and p95 of the probe at `max_value`.
    pub rps: Option<f64>,
    pub p95: Option<f64>,
    pub probes: usize,
    /// `found`, `above_range` (`to` still met the SLO), `below_range`
    /// (`from` already broke it), or `incomplete` (the run stopped mid-search).
    pub status: String,
    /// Probes judged failing because they never stabilized.
    #[serde(default)]
    pub note: Option<String>,
}

impl CapacityRow {
    /// The row thresholds read: the capacity probe's figures plus `capacity`
    /// and `probes`.
    pub fn threshold_row(&self, probe: Option<&SummaryRow>) -> SummaryRow {
        let status = if self.probes == 0 {
            CellStatus::Pending
        } else {
            CellStatus::Complete
        };
        let mut row = match probe {
            Some(p) => SummaryRow {
                cell: self.cell.clone(),
                matrix: self.matrix.clone(),
                status,
                ..p.clone()
            },
            None => SummaryRow::unmeasured(&self.cell, &self.matrix, status),
        };
        if let Some(v) = self.max_value {
            row.metrics.insert("capacity".into(), v as f64);
        }
        row.metrics.insert("probes".into(), self.probes as f64);
        row
    }
}

/// The probes' rows of outer cell `c`, in the order they were measured.
fn probes_of<'a>(plan: &Plan, c: usize, rows: &'a [SummaryRow]) -> Vec<&'a SummaryRow> {
    let Some(outer) = plan.cells.get(c) else {
        return Vec::new();
    };
    rows.iter()
        .filter(|r| r.status.is_measured())
        .filter(|r| plan.cell_of_row(&r.cell).is_some_and(|o| o.id == outer.id))
        .filter(|r| r.cell != outer.id)
        .collect()
}

fn value_of(search: &Search, row: &SummaryRow) -> Option<u64> {
    match row.matrix.get(search.over.as_str())? {
        MatrixValue::Int(i) => u64::try_from(*i).ok(),
        MatrixValue::Float(f) => Some(*f as u64),
        _ => None,
    }
}

/// One capacity row per outer cell, with the threshold rows beside them.
pub fn capacity(plan: &Plan, rows: &[SummaryRow]) -> Vec<(CapacityRow, SummaryRow)> {
    let Some(search) = &plan.search else {
        return Vec::new();
    };
    let over = search.over.as_str();
    plan.cells
        .iter()
        .enumerate()
        .map(|(c, cell)| {
            let probes = probes_of(plan, c, rows);
            let mut probing = Probing::new(search);
            let mut unstable = Vec::new();
            let mut best: Option<(u64, &SummaryRow)> = None;
            for p in &probes {
                let Some(v) = value_of(search, p) else {
                    continue;
                };
                let passed = probe_passes(&search.slo, p);
                if p.warnings.iter().any(|w| w.starts_with(UNSTABLE)) {
                    unstable.push(format!("{v} {over}"));
                }
                probing.observe(v, passed);
                if passed && best.is_none_or(|(b, _)| v > b) {
                    best = Some((v, p));
                }
            }
            let failed_any = probing.probes.iter().any(|(_, ok)| !ok);
            let status = if probing.next().is_some() {
                "incomplete"
            } else if best.is_none() {
                "below_range"
            } else if !failed_any {
                "above_range"
            } else {
                "found"
            };
            let row = CapacityRow {
                cell: cell.id.clone(),
                matrix: cell.matrix.clone(),
                over: over.to_string(),
                max_value: best.map(|(v, _)| v),
                rps: best.and_then(|(_, r)| r.metric("rps")),
                p95: best.and_then(|(_, r)| r.metric("p95")),
                probes: probing.probes.len(),
                status: status.to_string(),
                note: (!unstable.is_empty())
                    .then(|| format!("never stabilized, judged failing: {}", unstable.join(", "))),
            };
            let threshold_row = row.threshold_row(best.map(|(_, r)| r));
            (row, threshold_row)
        })
        .collect()
}

/// capacity.csv: the matrix keys, then over, max_value, rps, p95, probes, status.
pub fn capacity_csv(axes: &[String], rows: &[CapacityRow]) -> String {
    let mut out = String::new();
    for a in axes {
        out.push_str(&crate::results::summary::csv_field(a));
        out.push(',');
    }
    out.push_str("over,max_value,rps,p95,probes,status,note\n");
    for r in rows {
        for a in axes {
            let v = r.matrix.get(a).map(|v| v.to_string()).unwrap_or_default();
            out.push_str(&crate::results::summary::csv_field(&v));
            out.push(',');
        }
        let num = |v: Option<f64>| v.map(|v| format!("{v:.2}")).unwrap_or_default();
        out.push_str(&format!(
            "{},{},{},{},{},{},{}\n",
            r.over,
            r.max_value.map(|v| v.to_string()).unwrap_or_default(),
            num(r.rps),
            num(r.p95),
            r.probes,
            r.status,
            crate::results::summary::csv_field(r.note.as_deref().unwrap_or_default())
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::raw::SearchOver;

    fn search(from: u64, to: u64, tolerance: f64) -> Search {
        Search {
            over: SearchOver::Users,
            from,
            to,
            tolerance,
            slo: IndexMap::new(),
        }
    }

    /// Runs a search against a system whose capacity is `cap`.
    fn run(s: &Search, cap: u64) -> (Vec<u64>, Option<u64>) {
        let mut p = Probing::new(s);
        let mut seen = Vec::new();
        while let Some(v) = p.next() {
            assert!(!seen.contains(&v), "{v} probed twice");
            seen.push(v);
            p.observe(v, v <= cap);
        }
        (seen, p.lo)
    }

    #[test]
    fn doubles_then_bisects_within_tolerance_and_bound() {
        let s = search(4, 4096, 0.05);
        for cap in [4, 5, 12, 13, 24, 100, 1000, 4095] {
            let (seen, lo) = run(&s, cap);
            let lo = lo.unwrap();
            assert!(lo <= cap, "cap {cap}: {lo}");
            assert!(
                cap as f64 <= lo as f64 * 1.05 + 1.0,
                "cap {cap}: found {lo}"
            );
            let bound = (4096f64 / 4.0).log2() + (1.0 / 0.05f64).log2() + 2.0;
            assert!(seen.len() as f64 <= bound, "cap {cap}: {seen:?}");
            assert!(seen.len() as u64 <= s.max_probes(), "cap {cap}: {seen:?}");
        }
        assert_eq!(run(&s, 12).0[..3], [4, 8, 16]);
    }

    #[test]
    fn out_of_range_ends_early() {
        let s = search(4, 100, 0.05);
        let (seen, lo) = run(&s, 1000);
        assert_eq!(
            seen,
            [4, 8, 16, 32, 64, 100],
            "the last doubling is clamped to `to`"
        );
        assert_eq!(lo, Some(100));
        let (seen, lo) = run(&s, 2);
        assert_eq!(seen, [4]);
        assert_eq!(lo, None);
    }

    #[test]
    fn stability_is_the_spread_of_the_last_three_seconds() {
        let tl = |rps: &[f64]| -> Vec<TimelineRow> {
            rps.iter()
                .enumerate()
                .map(|(t, r)| TimelineRow {
                    t: t as u64,
                    users: 1,
                    rps: *r,
                    requests: *r as u64,
                    failures: 0,
                    p50_ms: 1.0,
                    p95_ms: 1.0,
                    p99_ms: 1.0,
                    stream: None,
                })
                .collect()
        };
        assert_eq!(unstable_spread(&tl(&[10.0, 100.0, 100.0, 95.0])), None);
        let spread = unstable_spread(&tl(&[1000.0, 1000.0, 800.0])).unwrap();
        assert!((spread - 200.0 / (2800.0 / 3.0)).abs() < 1e-9);
        assert_eq!(
            unstable_spread(&tl(&[72.0, 84.0, 76.0])),
            None,
            "within counting noise"
        );
        assert!(unstable_spread(&tl(&[80.0, 80.0, 40.0])).is_some());
        // A window's edges are left out: its first second misses requests
        // started in warm-up, its last holds the drained ones.
        let edges = tl(&[136.0, 152.0, 152.0, 152.0, 184.0]);
        assert_eq!(probe_instability(&[&edges]), None);
        let stalled = tl(&[80.0, 80.0, 24.0, 80.0, 80.0]);
        assert!(probe_instability(&[&stalled]).is_some());
        let short = tl(&[136.0, 152.0, 184.0]);
        assert_eq!(
            probe_instability(&[&short, &short, &short]),
            None,
            "three 3 s segments give three full windows"
        );
        assert_eq!(
            unstable_spread(&tl(&[1.0, 100.0])),
            None,
            "too short to judge"
        );
    }

    #[test]
    fn output_tokens_per_second_is_a_floor_and_goodput_tokens_too() {
        let mut row = SummaryRow::unmeasured("c", &CellValues::default(), CellStatus::Complete);
        for (k, v) in [
            ("requests", 100.0),
            ("failures", 0.0),
            ("output_tokens_per_s", 900.0),
            ("goodput_output_tokens_per_s", 450.0),
        ] {
            row.metrics.insert(k.into(), v);
        }
        let slo = |k: &str, v: f64| IndexMap::from([(k.to_string(), v)]);
        assert!(meets_slo(&slo("output_tokens_per_s", 800.0), &row));
        assert!(!meets_slo(&slo("output_tokens_per_s", 1000.0), &row));
        assert!(meets_slo(&slo("goodput_output_tokens_per_s", 400.0), &row));
        assert!(!meets_slo(&slo("goodput_output_tokens_per_s", 500.0), &row));
    }
}
