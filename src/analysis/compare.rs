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
}

fn pct(base: f64, new: f64) -> f64 {
    if base == 0.0 {
        0.0
    } else {
        (new - base) / base * 100.0
    }
}

/// Cells measured in both runs; a regression is RPS down or p95 up by more
/// than `max_regression_pct`.
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
        let regressed = pct(br, nr) < -max_regression_pct || pct(bp, np) > max_regression_pct;
        out.push(Delta {
            cell: b.cell.clone(),
            base_rps: br,
            new_rps: nr,
            base_p95: bp,
            new_p95: np,
            regressed,
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
            if d.regressed { "**regressed**" } else { "ok" }
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
