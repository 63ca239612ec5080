//! Per-cell deltas between two runs: the regression gate of `loadmatrix
//! compare`. Throughput is compared on successful requests (`ok_rps`), so a
//! run whose requests fail cannot pass for a fast one.

use std::fmt::Write as _;

use crate::results::SummaryRow;

#[derive(Debug, Clone, PartialEq)]
pub struct Delta {
    pub cell: String,
    /// Successful requests per second.
    pub base_ok_rps: f64,
    pub new_ok_rps: f64,
    /// None for a run of the cell without a successful request: no latency.
    pub base_p95: Option<f64>,
    pub new_p95: Option<f64>,
    pub base_fail_pct: f64,
    pub new_fail_pct: f64,
    pub regressed: bool,
    /// Why it regressed (or what is notable), one phrase each.
    pub reasons: Vec<String>,
    /// With repeats in both runs: whether the change is beyond the 95%
    /// intervals (RPS or p95); none without repeats.
    pub beyond_noise: Option<bool>,
}

/// What a regression is.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bounds {
    /// Largest tolerated drop of `ok_rps` or rise of p95, in percent.
    pub max_regression_pct: f64,
    /// Fail rate (percent) beyond which a cell fails: the SLO's, 1% without one.
    pub fail_limit_pct: f64,
}

fn pct(base: f64, new: f64) -> f64 {
    if base == 0.0 {
        0.0
    } else {
        (new - base) / base * 100.0
    }
}

/// Whether two figures differ by more than their 95% intervals; none
/// without intervals in both.
fn beyond(a: f64, ca: Option<f64>, b: f64, cb: Option<f64>) -> Option<bool> {
    Some((b - a).abs() > ca? + cb?)
}

/// Successful requests per second; runs older than the `ok_rps` column
/// derive it from `rps` and the fail rate.
pub fn ok_rps(r: &SummaryRow) -> f64 {
    r.metric("ok_rps").unwrap_or_else(|| {
        let rps = r.metric("rps").unwrap_or(0.0);
        rps * (1.0 - r.metric("fail_pct").unwrap_or(0.0) / 100.0)
    })
}

fn fail_pct(r: &SummaryRow) -> f64 {
    r.metric("fail_pct").unwrap_or(0.0)
}

/// Cells measured in both runs (a cell that ran without a successful request
/// counts: it is `failed`, not unmeasured). A regression is any of:
/// successful RPS down or p95 up by more than `max_regression_pct` (and, with
/// repeats in both runs, by more than the repeat intervals: a change within
/// them is noise); a fail rate that crossed the limit or rose by more than
/// it; no successful request in the new run where the base had some.
pub fn deltas(
    base: &[SummaryRow],
    new: &[SummaryRow],
    bounds: Bounds,
) -> (Vec<Delta>, Vec<String>) {
    let ran = |r: &SummaryRow| r.status.is_final() && !r.metrics.is_empty();
    let mut out = Vec::new();
    let mut unmatched = Vec::new();
    for b in base.iter().filter(|r| ran(r)) {
        let Some(n) = new.iter().find(|n| n.cell == b.cell && ran(n)) else {
            unmatched.push(format!("{} (not measured in the new run)", b.cell));
            continue;
        };
        out.push(delta(b, n, bounds));
    }
    for n in new.iter().filter(|r| ran(r)) {
        if !base.iter().any(|b| b.cell == n.cell && ran(b)) {
            unmatched.push(format!("{} (not measured in the base run)", n.cell));
        }
    }
    (out, unmatched)
}

fn delta(b: &SummaryRow, n: &SummaryRow, bounds: Bounds) -> Delta {
    let max = bounds.max_regression_pct;
    let (b_ok, n_ok) = (b.successes() > 0.0, n.successes() > 0.0);
    let (br, nr) = (ok_rps(b), ok_rps(n));
    let p95 = |r: &SummaryRow, ok: bool| r.metric("p95").filter(|_| ok);
    let (bp, np) = (p95(b, b_ok), p95(n, n_ok));
    let (bf, nf) = (fail_pct(b), fail_pct(n));
    let ci = |r: &SummaryRow, m: &str| r.metric(m).filter(|v| v.is_finite());
    let rps_beyond = beyond(br, ci(b, "rps_ci95"), nr, ci(n, "rps_ci95"));
    let p95_beyond = match (bp, np) {
        (Some(bp), Some(np)) => beyond(bp, ci(b, "p95_ci95"), np, ci(n, "p95_ci95")),
        _ => None,
    };
    let mut reasons = Vec::new();
    if b_ok && !n_ok {
        reasons.push("no successful request in the new run".to_string());
    } else if !b_ok && !n_ok {
        reasons.push("no successful request in either run".to_string());
    }
    if n_ok && pct(br, nr) < -max && rps_beyond != Some(false) {
        reasons.push(format!("ok RPS {:+.1}%", pct(br, nr)));
    }
    if let (Some(bp), Some(np)) = (bp, np)
        && pct(bp, np) > max
        && p95_beyond != Some(false)
    {
        reasons.push(format!("p95 {:+.1}%", pct(bp, np)));
    }
    let limit = bounds.fail_limit_pct;
    if nf > limit && (bf <= limit || nf - bf > limit) && n_ok {
        reasons.push(format!("fail rate {bf:.1}% -> {nf:.1}% (limit {limit}%)"));
    }
    let regressed = (b_ok && !n_ok) || (n_ok && !reasons.is_empty());
    let beyond_noise = match (rps_beyond, p95_beyond) {
        (Some(a), Some(b)) => Some(a || b),
        (Some(a), None) | (None, Some(a)) => Some(a),
        (None, None) => None,
    };
    Delta {
        cell: b.cell.clone(),
        base_ok_rps: br,
        new_ok_rps: nr,
        base_p95: bp,
        new_p95: np,
        base_fail_pct: bf,
        new_fail_pct: nf,
        regressed,
        reasons,
        beyond_noise,
    }
}

fn ms(v: Option<f64>) -> String {
    v.map_or_else(|| "–".to_string(), |v| format!("{v:.1} ms"))
}

fn change(base: Option<f64>, new: Option<f64>) -> String {
    match (base, new) {
        (Some(b), Some(n)) => format!("{:+.1}%", pct(b, n)),
        _ => "–".to_string(),
    }
}

pub fn markdown(deltas: &[Delta], unmatched: &[String], bounds: Bounds) -> String {
    let mut out = String::from(
        "| cell | ok RPS base | ok RPS new | Δ ok RPS | p95 base | p95 new | Δ p95 | fail % base | fail % new | verdict |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---|\n",
    );
    for d in deltas {
        let verdict = match (d.regressed, d.beyond_noise) {
            (true, _) => format!("**regressed**: {}", d.reasons.join("; ")),
            (false, _) if !d.reasons.is_empty() => d.reasons.join("; "),
            (false, Some(false)) => "within noise".to_string(),
            (false, _) => "ok".to_string(),
        };
        let _ = writeln!(
            out,
            "| {} | {:.1} | {:.1} | {:+.1}% | {} | {} | {} | {:.1} | {:.1} | {verdict} |",
            d.cell,
            d.base_ok_rps,
            d.new_ok_rps,
            pct(d.base_ok_rps, d.new_ok_rps),
            ms(d.base_p95),
            ms(d.new_p95),
            change(d.base_p95, d.new_p95),
            d.base_fail_pct,
            d.new_fail_pct,
        );
    }
    for u in unmatched {
        let _ = writeln!(out, "\n- not compared: {u}");
    }
    let n = deltas.iter().filter(|d| d.regressed).count();
    let _ = writeln!(
        out,
        "\n{n} of {} cells regressed by more than {}% (ok RPS down or p95 up), or by a fail rate beyond {}%.",
        deltas.len(),
        bounds.max_regression_pct,
        bounds.fail_limit_pct,
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::CellStatus;

    const BOUNDS: Bounds = Bounds {
        max_regression_pct: 10.0,
        fail_limit_pct: 1.0,
    };

    fn row(ok_rps: f64, p95: f64, cis: Option<(f64, f64)>) -> SummaryRow {
        let mut r = SummaryRow::unmeasured("c", &Default::default(), CellStatus::Complete);
        for (k, v) in [
            ("requests", ok_rps * 10.0),
            ("failures", 0.0),
            ("fail_pct", 0.0),
            ("rps", ok_rps),
            ("ok_rps", ok_rps),
            ("p95", p95),
        ] {
            r.metrics.insert(k.into(), v);
        }
        if let Some((a, b)) = cis {
            r.metrics.insert("rps_ci95".into(), a);
            r.metrics.insert("p95_ci95".into(), b);
        }
        r
    }

    /// A row whose requests fail at `fail_pct` percent: its `rps` holds up,
    /// its `ok_rps` does not.
    fn failing(rps: f64, fail_pct: f64) -> SummaryRow {
        let mut r = row(rps, 20.0, None);
        let requests = rps * 10.0;
        let failures = requests * fail_pct / 100.0;
        r.metrics.insert("failures".into(), failures);
        r.metrics.insert("fail_pct".into(), fail_pct);
        r.metrics
            .insert("ok_rps".into(), rps * (1.0 - fail_pct / 100.0));
        if fail_pct >= 100.0 {
            r.status = CellStatus::Failed;
        }
        r
    }

    #[test]
    fn changes_within_the_repeat_intervals_are_noise() {
        // p95 +25.9%, but both runs' p95 intervals are +-20 ms wide.
        let (d, _) = deltas(
            &[row(100.0, 50.0, Some((2.0, 20.0)))],
            &[row(100.0, 62.95, Some((2.0, 20.0)))],
            BOUNDS,
        );
        assert!(!d[0].regressed);
        assert_eq!(d[0].beyond_noise, Some(false));
        assert!(markdown(&d, &[], BOUNDS).contains("within noise"));
        // Beyond the intervals it is a regression.
        let (d, _) = deltas(
            &[row(100.0, 50.0, Some((2.0, 3.0)))],
            &[row(100.0, 62.95, Some((2.0, 3.0)))],
            BOUNDS,
        );
        assert!(d[0].regressed);
        assert_eq!(d[0].beyond_noise, Some(true));
        // Without repeats the bound alone decides.
        let (d, _) = deltas(
            &[row(100.0, 50.0, None)],
            &[row(100.0, 62.95, None)],
            BOUNDS,
        );
        assert!(d[0].regressed);
        assert_eq!(d[0].beyond_noise, None);
    }

    #[test]
    fn half_the_requests_failing_is_a_regression_though_rps_held() {
        let (d, _) = deltas(&[row(100.0, 20.0, None)], &[failing(100.0, 50.0)], BOUNDS);
        assert!(d[0].regressed, "{d:?}");
        assert_eq!(d[0].new_ok_rps, 50.0);
        let table = markdown(&d, &[], BOUNDS);
        assert!(table.contains("ok RPS -50.0%"), "{table}");
        assert!(
            table.contains("fail rate 0.0% -> 50.0% (limit 1%)"),
            "{table}"
        );
    }

    #[test]
    fn a_fail_rate_crossing_the_limit_regresses_even_with_throughput_kept() {
        // 2% of the requests fail: ok RPS -2% is within the 10% bound.
        let (d, _) = deltas(&[row(100.0, 20.0, None)], &[failing(100.0, 2.0)], BOUNDS);
        assert!(d[0].regressed, "{d:?}");
        assert_eq!(d[0].reasons, ["fail rate 0.0% -> 2.0% (limit 1%)"]);
        // Already failing at the same rate: not new.
        let (d, _) = deltas(&[failing(100.0, 2.0)], &[failing(100.0, 2.0)], BOUNDS);
        assert!(!d[0].regressed, "{d:?}");
    }

    #[test]
    fn a_cell_without_a_successful_request_is_compared_not_skipped() {
        let (d, unmatched) = deltas(&[row(100.0, 20.0, None)], &[failing(100.0, 100.0)], BOUNDS);
        assert!(unmatched.is_empty(), "{unmatched:?}");
        assert!(d[0].regressed);
        assert_eq!(d[0].new_p95, None);
        let table = markdown(&d, &[], BOUNDS);
        assert!(
            table.contains("| – | – |") && table.contains("no successful request in the new run"),
            "{table}"
        );
    }
}
