//! What an `[analysis] ab` comparison covers: the metrics it compares, and
//! the threshold metrics it adds for thresholds to name.

/// Metrics every comparison covers, before the SLO's.
const ALWAYS: [&str; 3] = ["rps", "p50", "p95"];

/// The metrics a recorded second carries, by canonical name: the only ones a
/// comparison can draw an interval for.
pub(crate) const PER_SECOND: [&str; 6] = ["rps", "ok_rps", "p50", "p95", "p99", "fail_pct"];

/// The metrics compared: rps, p50, p95, then the SLO's that a second records.
pub(crate) fn metrics<'a>(slo: impl Iterator<Item = &'a str>) -> Vec<String> {
    let mut out: Vec<String> = ALWAYS.iter().map(|m| m.to_string()).collect();
    for m in slo {
        let canonical = crate::metrics::canonical(m);
        let taken = out
            .iter()
            .any(|o| crate::metrics::canonical(o) == canonical);
        if PER_SECOND.contains(&canonical) && !taken {
            out.push(m.to_string());
        }
    }
    out
}

/// Threshold metrics `[analysis] ab` adds, all in percent:
/// `ab_<metric>_pct` (the change) and `ab_<metric>_hi` (its interval's
/// upper end).
pub(crate) fn threshold_metrics<'a>(slo: impl Iterator<Item = &'a str>) -> Vec<String> {
    metrics(slo)
        .iter()
        .flat_map(|m| [format!("ab_{m}_pct"), format!("ab_{m}_hi")])
        .collect()
}
