//! Per-cell deltas between two runs: the regression gate of `loadmatrix
//! compare`. Throughput is compared on successful requests (`ok_rps`), so a
//! run whose requests fail cannot pass for a fast one.

use std::fmt::Write as _;

use serde::Serialize;

use super::compare_ci::Interval;
use crate::results::SummaryRow;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct Delta {
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
    /// Whether the change is beyond the noise (RPS or p95): from the
    /// per-second intervals below when both runs kept their seconds, else
    /// from the repeat intervals; none without either.
    pub beyond_noise: Option<bool>,
    /// The change of ok RPS and of p95 in percent, with 95% intervals from
    /// both runs' per-second windows (Holm-corrected across the cells).
    pub ok_rps_ci95: Option<Interval>,
    pub p95_ci95: Option<Interval>,
    /// What limited the cell in each run, when known.
    pub base_bound: Option<String>,
    pub new_bound: Option<String>,
}

/// What a regression is.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Bounds {
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
pub(crate) fn deltas(
    base: &[SummaryRow],
    new: &[SummaryRow],
    bounds: Bounds,
) -> (Vec<Delta>, Vec<String>) {
    let ran = |r: &SummaryRow| r.status.is_final() && !r.metrics.is_empty();
    let mut pairs = Vec::new();
    let mut unmatched = Vec::new();
    for b in base.iter().filter(|r| ran(r)) {
        let Some(n) = new.iter().find(|n| n.cell == b.cell && ran(n)) else {
            unmatched.push(format!("{} (not measured in the new run)", b.cell));
            continue;
        };
        pairs.push((b, n));
    }
    let intervals = super::compare_ci::intervals(&pairs, super::bootstrap::RESAMPLES);
    let out = pairs
        .iter()
        .zip(intervals)
        .map(|((b, n), iv)| delta(b, n, bounds, iv))
        .collect();
    for n in new.iter().filter(|r| ran(r)) {
        if !base.iter().any(|b| b.cell == n.cell && ran(b)) {
            unmatched.push(format!("{} (not measured in the base run)", n.cell));
        }
    }
    (out, unmatched)
}

fn delta(
    b: &SummaryRow,
    n: &SummaryRow,
    bounds: Bounds,
    (rps_iv, p95_iv): (Option<Interval>, Option<Interval>),
) -> Delta {
    let max = bounds.max_regression_pct;
    let (b_ok, n_ok) = (b.successes() > 0.0, n.successes() > 0.0);
    let (br, nr) = (ok_rps(b), ok_rps(n));
    let p95 = |r: &SummaryRow, ok: bool| r.metric("p95").filter(|_| ok);
    let (bp, np) = (p95(b, b_ok), p95(n, n_ok));
    let (bf, nf) = (fail_pct(b), fail_pct(n));
    let ci = |r: &SummaryRow, m: &str| r.metric(m).filter(|v| v.is_finite());
    // The per-second intervals when both runs kept their seconds; else the
    // repeat intervals of each run.
    let rps_beyond = match rps_iv {
        Some(iv) => Some(iv.significant),
        None => beyond(br, ci(b, "rps_ci95"), nr, ci(n, "rps_ci95")),
    };
    let p95_beyond = match (bp, np, p95_iv) {
        (Some(_), Some(_), Some(iv)) => Some(iv.significant),
        (Some(bp), Some(np), None) => beyond(bp, ci(b, "p95_ci95"), np, ci(n, "p95_ci95")),
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
        ok_rps_ci95: rps_iv,
        p95_ci95: p95_iv.filter(|_| bp.is_some() && np.is_some()),
        base_bound: b.bound.map(|x| x.as_str().to_string()),
        new_bound: n.bound.map(|x| x.as_str().to_string()),
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

/// "+1.2%", and " (CI -0.8..+3.1)" when the change has a per-second interval.
fn change_ci(base: Option<f64>, new: Option<f64>, iv: Option<Interval>) -> String {
    let mut out = change(base, new);
    if let (Some(iv), true) = (iv, base.is_some() && new.is_some()) {
        let _ = write!(out, " (CI {:+.1}..{:+.1})", iv.low, iv.high);
    }
    out
}

impl Delta {
    /// Every interval of the cell holds 0: the change is noise.
    pub(crate) fn within_noise(&self) -> bool {
        self.beyond_noise == Some(false)
    }

    /// "bound load → service" when what limited the cell changed.
    pub(crate) fn bound_change(&self) -> Option<String> {
        match (&self.base_bound, &self.new_bound) {
            (Some(a), Some(b)) if a != b => Some(format!("bound {a} → {b}")),
            _ => None,
        }
    }

    pub fn verdict(&self) -> String {
        let mut verdict = match (self.regressed, self.beyond_noise) {
            (true, _) => format!("**regressed**: {}", self.reasons.join("; ")),
            (false, _) if !self.reasons.is_empty() => self.reasons.join("; "),
            (false, Some(false)) => "within noise".to_string(),
            (false, Some(true)) => "beyond noise, within the bound".to_string(),
            (false, None) => "ok".to_string(),
        };
        if let Some(b) = self.bound_change() {
            let _ = write!(verdict, "; {b}");
        }
        verdict
    }
}

pub(crate) fn markdown(deltas: &[Delta], unmatched: &[String], bounds: Bounds) -> String {
    let mut out = String::from(
        "| cell | ok RPS base | ok RPS new | Δ ok RPS | p95 base | p95 new | Δ p95 | fail % base | fail % new | verdict |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---|\n",
    );
    for d in deltas {
        let _ = writeln!(
            out,
            "| {} | {:.1} | {:.1} | {} | {} | {} | {} | {:.1} | {:.1} | {} |",
            d.cell,
            d.base_ok_rps,
            d.new_ok_rps,
            change_ci(Some(d.base_ok_rps), Some(d.new_ok_rps), d.ok_rps_ci95),
            ms(d.base_p95),
            ms(d.new_p95),
            change_ci(d.base_p95, d.new_p95, d.p95_ci95),
            d.base_fail_pct,
            d.new_fail_pct,
            d.verdict(),
        );
    }
    for u in unmatched {
        let _ = writeln!(out, "\n- not compared: {u}");
    }
    let n = deltas.iter().filter(|d| d.regressed).count();
    let noise = deltas.iter().filter(|d| d.within_noise()).count();
    let _ = writeln!(
        out,
        "\n{n} of {} cells regressed by more than {}% (ok RPS down or p95 up) beyond the noise, or by a fail rate beyond {}%; {noise} within noise.",
        deltas.len(),
        bounds.max_regression_pct,
        bounds.fail_limit_pct,
    );
    if deltas.iter().any(|d| d.ok_rps_ci95.is_some()) {
        out.push_str(
            "\nIntervals: 95% for all cells together (block bootstrap over each run's per-second windows, Holm-corrected); a change whose interval holds 0 is within noise.\n",
        );
    }
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

    #[test]
    fn a_changed_bound_is_shown_beside_the_verdict() {
        use crate::results::summary::Bound;
        let (mut b, mut n) = (row(100.0, 20.0, None), row(100.0, 20.0, None));
        b.bound = Some(Bound::Load);
        n.bound = Some(Bound::Service);
        let (d, _) = deltas(&[b], &[n], BOUNDS);
        assert_eq!(d[0].bound_change().as_deref(), Some("bound load → service"));
        let table = markdown(&d, &[], BOUNDS);
        assert!(table.contains("| ok; bound load → service |"), "{table}");
    }

    /// Per-second windows: `ok` successful requests a second at p95 `p95`,
    /// wobbling a little from second to second.
    fn seconds(ok: f64, p95: f64) -> Vec<Vec<crate::results::seconds::Second>> {
        let wobble = [1.0, 1.01, 0.99, 1.02, 0.98, 1.0, 1.01, 0.99, 1.0, 1.0];
        vec![
            wobble
                .iter()
                .map(|w| crate::results::seconds::Second {
                    requests: (ok * w).round(),
                    failures: 0.0,
                    p50: p95 * 0.8 * w,
                    p95: p95 * w,
                    p99: p95 * 1.2 * w,
                })
                .collect(),
        ]
    }

    #[test]
    fn per_second_intervals_decide_without_repeats() {
        let with = |ok: f64, p95: f64, s: (f64, f64)| {
            let mut r = row(ok, p95, None);
            r.seconds = seconds(s.0, s.1);
            r
        };
        // The same seconds: the change holds 0, whatever the bound.
        let tight = Bounds {
            max_regression_pct: 0.5,
            fail_limit_pct: 1.0,
        };
        let (d, _) = deltas(
            &[with(100.0, 20.0, (100.0, 20.0))],
            &[with(99.0, 20.2, (100.0, 20.0))],
            tight,
        );
        assert!(!d[0].regressed, "{d:?}");
        assert!(d[0].within_noise());
        let iv = d[0].p95_ci95.unwrap();
        assert!(iv.low <= 0.0 && 0.0 <= iv.high, "{iv:?}");
        assert!(markdown(&d, &[], tight).contains("(CI "));
        // 20% slower, beyond the noise and the bound.
        let (d, _) = deltas(
            &[with(100.0, 20.0, (100.0, 20.0))],
            &[with(83.0, 24.0, (83.0, 24.0))],
            BOUNDS,
        );
        assert!(d[0].regressed, "{d:?}");
        let iv = d[0].p95_ci95.unwrap();
        assert!(
            iv.significant && iv.low <= 20.0 && 20.0 <= iv.high,
            "{iv:?}"
        );
        // Beyond the noise but within a 30% bound: not a regression.
        let loose = Bounds {
            max_regression_pct: 30.0,
            fail_limit_pct: 1.0,
        };
        let (d, _) = deltas(
            &[with(100.0, 20.0, (100.0, 20.0))],
            &[with(83.0, 24.0, (83.0, 24.0))],
            loose,
        );
        assert!(!d[0].regressed && !d[0].within_noise(), "{d:?}");
    }
}
