//! The search's answer: one capacity row per outer cell (the frontier),
//! the rows thresholds read, and capacity.csv.

use serde::{Deserialize, Serialize};

use super::probing::{Probing, probe_passes};
use super::stability::UNSTABLE;
use crate::plan::matrix::{CellValues, MatrixValue};
use crate::plan::{Plan, Search};
use crate::results::{CellStatus, SummaryRow};

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
    pub(crate) fn threshold_row(&self, probe: Option<&SummaryRow>) -> SummaryRow {
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
