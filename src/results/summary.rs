//! One row per cell: the figures of summary.csv and summary.json, computed
//! from what the cell measured.

use std::fmt::Write as _;

use indexmap::IndexMap;
use serde::{Deserialize, Serialize};

use super::manifest::CellStatus;
use crate::engine::CellStats;
use crate::plan::matrix::CellValues;
use crate::system::SystemSample;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SummaryRow {
    pub cell: String,
    pub matrix: CellValues,
    pub status: CellStatus,
    /// Metric name -> value; latencies in ms, percentages in percent.
    pub metrics: IndexMap<String, f64>,
    pub client_bound: bool,
    /// Engine warnings of the cell, e.g. a closed-model stall.
    #[serde(default)]
    pub warnings: Vec<String>,
    /// RPS of each repetition (one entry without `repeat`).
    #[serde(default)]
    pub repeat_rps: Vec<f64>,
}

impl SummaryRow {
    pub fn metric(&self, name: &str) -> Option<f64> {
        self.metrics.get(crate::metrics::canonical(name)).copied()
    }

    /// A row with a status and no figures (not measured, or measured by a
    /// run whose files are gone).
    pub fn unmeasured(cell: &str, matrix: &CellValues, status: CellStatus) -> SummaryRow {
        SummaryRow {
            cell: cell.to_string(),
            matrix: matrix.clone(),
            status,
            metrics: IndexMap::new(),
            client_bound: false,
            warnings: Vec::new(),
            repeat_rps: Vec::new(),
        }
    }

    /// Requests that succeeded in the measured window.
    pub fn successes(&self) -> f64 {
        self.metric("requests").unwrap_or(0.0) - self.metric("failures").unwrap_or(0.0)
    }
}

pub(crate) fn metrics_of(
    s: &CellStats,
    runs: &[CellStats],
    samples: &[SystemSample],
) -> IndexMap<String, f64> {
    let t = &s.total;
    let fail_pct = if t.requests > 0 {
        t.failures as f64 / t.requests as f64 * 100.0
    } else {
        0.0
    };
    let mut metrics: IndexMap<String, f64> = [
        ("requests", t.requests as f64),
        ("failures", t.failures as f64),
        ("fail_pct", fail_pct),
        ("rps", t.rps),
        ("mean", t.mean_ms),
        ("min", t.min_ms),
        ("p50", t.p50_ms),
        ("p75", t.p75_ms),
        ("p90", t.p90_ms),
        ("p95", t.p95_ms),
        ("p99", t.p99_ms),
        ("p999", t.p999_ms),
        ("max", t.max_ms),
        ("dropped", s.dropped as f64),
        ("client_cpu_pct", s.client_cpu_pct),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    if runs.len() > 1 {
        // Spread of repeated measurements: min, max and coefficient of variation of RPS.
        let rates: Vec<f64> = runs.iter().map(|r| r.total.rps).collect();
        let n = rates.len() as f64;
        let mean = rates.iter().sum::<f64>() / n;
        let var = rates.iter().map(|r| (r - mean).powi(2)).sum::<f64>() / (n - 1.0);
        metrics.insert(
            "rps_min".into(),
            rates.iter().copied().fold(f64::INFINITY, f64::min),
        );
        metrics.insert(
            "rps_max".into(),
            rates.iter().copied().fold(f64::NEG_INFINITY, f64::max),
        );
        metrics.insert(
            "rps_cv_pct".into(),
            if mean > 0.0 {
                var.sqrt() / mean * 100.0
            } else {
                0.0
            },
        );
    }
    let (cpu, mem) = sut_usage(samples);
    metrics.insert("sut_cpu_pct".into(), cpu);
    metrics.insert("sut_mem_mb".into(), mem);
    metrics
}

/// Mean over the measured seconds of the CPU % and memory (MiB) summed over replicas.
fn sut_usage(samples: &[SystemSample]) -> (f64, f64) {
    let mut by_t: IndexMap<i64, (f64, u64)> = IndexMap::new();
    for s in samples.iter().filter(|s| s.t >= 0.0) {
        let e = by_t.entry(s.t.round() as i64).or_default();
        e.0 += s.cpu_pct;
        e.1 += s.mem_bytes;
    }
    if by_t.is_empty() {
        return (0.0, 0.0);
    }
    let n = by_t.len() as f64;
    let cpu = by_t.values().map(|v| v.0).sum::<f64>() / n;
    let mem = by_t.values().map(|v| v.1 as f64).sum::<f64>() / n / (1024.0 * 1024.0);
    (cpu, mem)
}

/// summary.csv: the matrix keys, the metric columns, the status.
pub fn summary_csv(axes: &[String], rows: &[SummaryRow]) -> String {
    let mut out = String::new();
    let columns = crate::metrics::columns();
    let mut header: Vec<&str> = axes.iter().map(String::as_str).collect();
    header.extend(&columns);
    header.push("status");
    let _ = writeln!(out, "{}", header.join(","));
    for r in rows {
        let mut fields: Vec<String> = axes
            .iter()
            .map(|a| {
                r.matrix
                    .get(a)
                    .map(|v| csv_field(&v.to_string()))
                    .unwrap_or_default()
            })
            .collect();
        for m in &columns {
            fields.push(match r.metrics.get(*m) {
                Some(v) if matches!(*m, "requests" | "failures") => format!("{v:.0}"),
                Some(v) => format!("{v:.3}"),
                None => String::new(),
            });
        }
        fields.push(r.status.as_str().to_string());
        let _ = writeln!(out, "{}", fields.join(","));
    }
    out
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}
