//! Per-cell RPS and p95 deltas between two runs: the regression gate of
//! `loadmatrix compare`.

use std::fmt::Write as _;

use crate::results::SummaryRow;

#[derive(Debug, Clone, PartialEq)]
pub struct Delta {
    pub cell: String,
    pub base_rps: f64,
    pub new_rps: f64,
    pub base_p95: f64,
    pub new_p95: f64,
    pub regressed: bool,
    /// With repeats in both runs: whether the change is beyond the 95%
    /// intervals (RPS or p95); none without repeats.
    pub beyond_noise: Option<bool>,
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

/// Cells measured in both runs; a regression is RPS down or p95 up by more
/// than `max_regression_pct` (and, with repeats in both runs, by more than
/// the repeat intervals: a change within them is noise).
pub fn deltas(
    base: &[SummaryRow],
    new: &[SummaryRow],
    max_regression_pct: f64,
) -> (Vec<Delta>, Vec<String>) {
    let mut out = Vec::new();
    let mut unmatched = Vec::new();
    for b in base.iter().filter(|r| r.status.is_measured()) {
        let Some(n) = new
            .iter()
            .find(|n| n.cell == b.cell && n.status.is_measured())
        else {
            unmatched.push(format!("{} (not measured in the new run)", b.cell));
            continue;
        };
        let get = |r: &SummaryRow, m: &str| r.metric(m).unwrap_or(0.0);
        let (br, nr, bp, np) = (get(b, "rps"), get(n, "rps"), get(b, "p95"), get(n, "p95"));
        let ci = |r: &SummaryRow, m: &str| r.metric(m).filter(|v| v.is_finite());
        let rps_beyond = beyond(br, ci(b, "rps_ci95"), nr, ci(n, "rps_ci95"));
        let p95_beyond = beyond(bp, ci(b, "p95_ci95"), np, ci(n, "p95_ci95"));
        let rps_worse = pct(br, nr) < -max_regression_pct && rps_beyond != Some(false);
        let p95_worse = pct(bp, np) > max_regression_pct && p95_beyond != Some(false);
        let regressed = rps_worse || p95_worse;
        let beyond_noise = match (rps_beyond, p95_beyond) {
            (Some(a), Some(b)) => Some(a || b),
            (Some(a), None) | (None, Some(a)) => Some(a),
            (None, None) => None,
        };
        out.push(Delta {
            cell: b.cell.clone(),
            base_rps: br,
            new_rps: nr,
            base_p95: bp,
            new_p95: np,
            regressed,
            beyond_noise,
        });
    }
    for n in new.iter().filter(|r| r.status.is_measured()) {
        if !base
            .iter()
            .any(|b| b.cell == n.cell && b.status.is_measured())
        {
            unmatched.push(format!("{} (not measured in the base run)", n.cell));
        }
    }
    (out, unmatched)
}

pub fn markdown(deltas: &[Delta], unmatched: &[String], max_regression_pct: f64) -> String {
    let mut out = String::from(
        "| cell | RPS base | RPS new | Δ RPS | p95 base | p95 new | Δ p95 | verdict |\n|---|---:|---:|---:|---:|---:|---:|---|\n",
    );
    for d in deltas {
        let _ = writeln!(
            out,
            "| {} | {:.1} | {:.1} | {:+.1}% | {:.1} ms | {:.1} ms | {:+.1}% | {} |",
            d.cell,
            d.base_rps,
            d.new_rps,
            pct(d.base_rps, d.new_rps),
            d.base_p95,
            d.new_p95,
            pct(d.base_p95, d.new_p95),
            match (d.regressed, d.beyond_noise) {
                (true, _) => "**regressed**",
                (false, Some(false)) => "within noise",
                (false, _) => "ok",
            }
        );
    }
    for u in unmatched {
        let _ = writeln!(out, "\n- not compared: {u}");
    }
    let n = deltas.iter().filter(|d| d.regressed).count();
    let _ = writeln!(
        out,
        "\n{n} of {} cells regressed by more than {max_regression_pct}% (RPS down or p95 up).",
        deltas.len()
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::CellStatus;

    fn row(rps: f64, p95: f64, cis: Option<(f64, f64)>) -> SummaryRow {
        let mut r = SummaryRow::unmeasured("c", &Default::default(), CellStatus::Complete);
        r.metrics.insert("rps".into(), rps);
        r.metrics.insert("p95".into(), p95);
        if let Some((a, b)) = cis {
            r.metrics.insert("rps_ci95".into(), a);
            r.metrics.insert("p95_ci95".into(), b);
        }
        r
    }

    #[test]
    fn changes_within_the_repeat_intervals_are_noise() {
        // p95 +25.9%, but both runs' p95 intervals are +-20 ms wide.
        let (d, _) = deltas(
            &[row(100.0, 50.0, Some((2.0, 20.0)))],
            &[row(100.0, 62.95, Some((2.0, 20.0)))],
            10.0,
        );
        assert!(!d[0].regressed);
        assert_eq!(d[0].beyond_noise, Some(false));
        assert!(markdown(&d, &[], 10.0).contains("within noise"));
        // Beyond the intervals it is a regression.
        let (d, _) = deltas(
            &[row(100.0, 50.0, Some((2.0, 3.0)))],
            &[row(100.0, 62.95, Some((2.0, 3.0)))],
            10.0,
        );
        assert!(d[0].regressed);
        assert_eq!(d[0].beyond_noise, Some(true));
        // Without repeats the bound alone decides.
        let (d, _) = deltas(&[row(100.0, 50.0, None)], &[row(100.0, 62.95, None)], 10.0);
        assert!(d[0].regressed);
        assert_eq!(d[0].beyond_noise, None);
    }
}
