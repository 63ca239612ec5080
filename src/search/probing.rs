//! When a probe passes, and which value to probe next: doubling from
//! `from`, then bisecting between the last pass and the first failure.

use indexmap::IndexMap;

use super::stability::UNSTABLE;
use crate::metrics::MetricKind;
use crate::plan::Search;
use crate::results::SummaryRow;

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
            (Some(lo), Some(hi)) if super::probes::bracket_closed(lo, hi, self.tolerance) => None,
            (Some(lo), Some(hi)) => Some(lo + (hi - lo) / 2),
            (None, None) => Some(self.from),
        }
    }

    /// The largest value that passed so far.
    #[cfg(test)]
    pub(crate) fn lo(&self) -> Option<u64> {
        self.lo
    }

    pub(crate) fn observe(&mut self, value: u64, passed: bool) {
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
