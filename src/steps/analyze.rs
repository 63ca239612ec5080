//! Summary rows (one per cell) and threshold results, written as
//! summary.csv and summary.json.

use std::fmt::Write as _;

use indexmap::IndexMap;
use serde::Serialize;

use crate::plan::Plan;
use crate::plan::expr::{self, Value};
use crate::plan::matrix::{CellValues, MatrixValue};
use crate::plan::raw::Scope;
use crate::results::CellStatus;
use crate::run::state::{CellRecord, RunState};
use crate::steps::StepError;
use crate::steps::cell::{cell_status, merged_stats};

/// Columns of summary.csv after the matrix keys, in order.
pub const METRIC_COLUMNS: &[&str] = &[
    "requests",
    "failures",
    "fail_pct",
    "rps",
    "mean",
    "p50",
    "p90",
    "p95",
    "p99",
    "max",
    "client_cpu_pct",
    "sut_cpu_pct",
    "sut_mem_mb",
];

#[derive(Debug, Clone, Serialize, serde::Deserialize)]
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
        let key = match name {
            "fail_rate" => "fail_pct",
            "p50_ms" => "p50",
            other => other,
        };
        self.metrics.get(key).copied()
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct ThresholdResult {
    pub threshold: String,
    pub scope: Scope,
    /// The cell, for cell scope.
    pub cell: Option<String>,
    pub passed: bool,
    /// "p95 = 612.3ms (limit 500ms)" and the like.
    pub detail: String,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct AnalysisResult {
    pub rows: Vec<SummaryRow>,
    pub thresholds: Vec<ThresholdResult>,
    /// Findings, scaling series and recommendations (polars).
    pub analysis: crate::analysis::Analysis,
    pub charts: Vec<crate::report::charts::Chart>,
}

/// The polars analysis of the summary rows under the plan's SLO and cost.
pub fn findings(plan: &Plan, rows: &[SummaryRow]) -> crate::analysis::Analysis {
    let cell_of = |row: &SummaryRow| plan.cells.iter().find(|c| c.id == row.cell);
    let input = crate::analysis::AnalysisInput {
        axes: &plan.axes,
        rows,
        slo: &plan.analysis.slo,
        cost: plan.analysis.cost.as_ref(),
        replicas_of: rows
            .iter()
            .map(|r| cell_of(r).map_or(0, |c| c.system.replicas))
            .collect(),
        workers_of: rows
            .iter()
            .map(|r| cell_of(r).map_or(0, |c| c.load.workers))
            .collect(),
        repeats: rows
            .iter()
            .map(|r| {
                if r.repeat_rps.is_empty() {
                    r.metric("rps").into_iter().collect()
                } else {
                    r.repeat_rps.clone()
                }
            })
            .collect(),
    };
    // polars must not run inside the dispatcher's async runtime (it blocks
    // in place), and a failure in it must not take the run down: its own thread.
    std::thread::scope(|scope| {
        scope
            .spawn(|| crate::analysis::analyze(&input))
            .join()
            .unwrap_or_else(|_| crate::analysis::Analysis {
                recommendations: vec!["The analysis failed unexpectedly; the summary table and thresholds are complete.".into()],
                ..Default::default()
            })
    })
}

pub fn summary_row(plan: &Plan, c: usize, rec: &CellRecord) -> SummaryRow {
    if let Some(prior) = &rec.prior {
        return prior.clone();
    }
    let cell = &plan.cells[c];
    let mut metrics = IndexMap::new();
    let stats = merged_stats(&rec.runs);
    if let Some(s) = &stats {
        let t = &s.total;
        let fail_pct = if t.requests > 0 {
            t.failures as f64 / t.requests as f64 * 100.0
        } else {
            0.0
        };
        for (k, v) in [
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
        ] {
            metrics.insert(k.to_string(), v);
        }
        if rec.runs.len() > 1 {
            // Spread of repeated measurements: min, max and coefficient of variation of RPS.
            let rates: Vec<f64> = rec.runs.iter().map(|r| r.total.rps).collect();
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
        let (cpu, mem) = sut_usage(&rec.samples);
        metrics.insert("sut_cpu_pct".into(), cpu);
        metrics.insert("sut_mem_mb".into(), mem);
    }
    SummaryRow {
        cell: cell.id.clone(),
        matrix: cell.matrix.clone(),
        status: rec.status.unwrap_or_else(|| cell_status(rec)),
        metrics,
        client_bound: stats.as_ref().is_some_and(|s| s.client_bound),
        warnings: stats.map(|s| s.warnings).unwrap_or_default(),
        repeat_rps: rec.runs.iter().map(|r| r.total.rps).collect(),
    }
}

/// Mean over the measured seconds of the CPU % and memory (MiB) summed over replicas.
fn sut_usage(samples: &[crate::system::SystemSample]) -> (f64, f64) {
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

pub fn matrix_value(v: &MatrixValue) -> Value {
    match v {
        MatrixValue::Bool(b) => Value::Bool(*b),
        MatrixValue::Int(i) => Value::Num(*i as f64),
        MatrixValue::Float(f) => Value::Num(*f),
        MatrixValue::Str(s) => Value::Str(s.clone()),
    }
}

/// Whether a cell's matrix values satisfy a filter (`where`, `--only`).
pub fn matrix_matches(filter: &expr::Expr, values: &CellValues) -> Result<bool, String> {
    filter
        .eval(&|name| values.get(name).map(matrix_value), &|_, _| None)
        .map_err(|e| e.message)
}

fn matches_filter(filter: &Option<(String, expr::Expr)>, row: &SummaryRow) -> Result<bool, String> {
    match filter {
        None => Ok(true),
        Some((_, f)) => matrix_matches(f, &row.matrix),
    }
}

fn show(metric: &str, v: f64) -> String {
    match expr::metric_kind(metric) {
        Some(expr::MetricKind::Latency) => format!("{v:.1}ms"),
        Some(expr::MetricKind::Percent) => format!("{v:.2}%"),
        Some(expr::MetricKind::Rate) => format!("{v:.1}/s"),
        _ => format!("{v}"),
    }
}

/// "p95 = 612.3ms (limit < 500ms)" for each comparison of the expression.
fn describe(
    e: &expr::Expr,
    lookup: &dyn Fn(&str) -> Option<Value>,
    agg: &dyn Fn(&str, &str) -> Option<f64>,
) -> String {
    let mut parts = Vec::new();
    for cmp in e.comparisons() {
        let name = match &cmp.lhs {
            expr::Operand::Ident { name, .. } => name.clone(),
            expr::Operand::Aggregate { func, arg, .. } => format!("{func}({arg})"),
            expr::Operand::Literal(_) => continue,
        };
        let metric = match &cmp.lhs {
            expr::Operand::Aggregate { arg, func, .. } if func != "count" => arg.clone(),
            expr::Operand::Ident { name, .. } => name.clone(),
            _ => String::new(),
        };
        let limit = match &cmp.rhs {
            expr::Operand::Literal(expr::Literal::Num { text, .. }) => text.clone(),
            other => format!("{other:?}"),
        };
        match cmp.eval(lookup, agg) {
            Ok(o) => {
                let measured = match o.lhs {
                    Value::Num(v) => show(&metric, v),
                    other => other.to_string(),
                };
                parts.push(format!("{name} = {measured} (limit {} {limit})", cmp.op));
            }
            Err(err) => parts.push(format!("{name}: {}", err.message)),
        }
    }
    parts.join("; ")
}

pub fn evaluate_thresholds(plan: &Plan, rows: &[SummaryRow]) -> Vec<ThresholdResult> {
    let mut out = Vec::new();
    for t in &plan.thresholds {
        let selected: Vec<&SummaryRow> = rows
            .iter()
            .filter(|r| matches_filter(&t.filter, r).unwrap_or(false))
            .collect();
        match t.scope {
            Scope::Cell => {
                for row in selected {
                    if !row.status.is_measured() {
                        out.push(ThresholdResult {
                            threshold: t.name.clone(),
                            scope: t.scope,
                            cell: Some(row.cell.clone()),
                            passed: false,
                            detail: format!("cell not measured ({:?})", row.status).to_lowercase(),
                        });
                        continue;
                    }
                    let lookup = |name: &str| row.metric(name).map(Value::Num);
                    let no_agg = |_: &str, _: &str| None;
                    let (passed, detail) = match t.expr.eval(&lookup, &no_agg) {
                        Ok(p) => (p, describe(&t.expr, &lookup, &no_agg)),
                        Err(e) => (false, e.message),
                    };
                    out.push(ThresholdResult {
                        threshold: t.name.clone(),
                        scope: t.scope,
                        cell: Some(row.cell.clone()),
                        passed,
                        detail,
                    });
                }
            }
            Scope::Run => {
                let measured: Vec<&SummaryRow> = selected
                    .into_iter()
                    .filter(|r| r.status.is_measured())
                    .collect();
                let agg = |func: &str, metric: &str| -> Option<f64> {
                    let values: Vec<f64> =
                        measured.iter().filter_map(|r| r.metric(metric)).collect();
                    match func {
                        "count" => Some(values.len() as f64),
                        _ if values.is_empty() => None,
                        "min" => values.iter().copied().reduce(f64::min),
                        "max" => values.iter().copied().reduce(f64::max),
                        "sum" => Some(values.iter().sum()),
                        "mean" => Some(values.iter().sum::<f64>() / values.len() as f64),
                        _ => None,
                    }
                };
                let no_lookup = |_: &str| None;
                let (passed, detail) = match t.expr.eval(&no_lookup, &agg) {
                    Ok(p) => (p, describe(&t.expr, &no_lookup, &agg)),
                    Err(e) => (
                        false,
                        if measured.is_empty() {
                            "no measured cell".to_string()
                        } else {
                            e.message
                        },
                    ),
                };
                out.push(ThresholdResult {
                    threshold: t.name.clone(),
                    scope: t.scope,
                    cell: None,
                    passed,
                    detail,
                });
            }
        }
    }
    out
}

pub async fn analyze(state: &RunState) -> Result<(), StepError> {
    let plan = &state.plan;
    let rows: Vec<SummaryRow> = {
        let cells = state.cells.lock().await;
        (0..plan.cells.len())
            .filter_map(|c| cells.get(&c).map(|rec| summary_row(plan, c, rec)))
            .collect()
    };
    let result = write_summary(&state.dir, plan, rows, &state.secrets)?;
    *state.analysis.lock().await = Some(result);
    Ok(())
}

/// Thresholds over `rows`, then summary.csv, summary.json and junit.xml.
pub fn write_summary(
    dir: &crate::results::RunDir,
    plan: &Plan,
    rows: Vec<SummaryRow>,
    secrets: &[String],
) -> std::io::Result<AnalysisResult> {
    let thresholds = evaluate_thresholds(plan, &rows);
    let analysis = findings(plan, &rows);
    let charts = crate::report::charts::charts(&analysis, &plan.axes);
    let redact = |t: &str| crate::plan::template::redact(t, secrets);
    dir.write("summary.csv", redact(&summary_csv(plan, &rows)).as_bytes())?;
    let json = serde_json::json!({
        "plan": plan.name,
        "run": dir.id(),
        "columns": METRIC_COLUMNS,
        "rows": rows,
        "findings": analysis.findings,
        "recommendations": analysis.recommendations,
        "scaling": analysis.scaling,
        "thresholds": thresholds,
    });
    let mut text = serde_json::to_vec_pretty(&json)?;
    text.push(b'\n');
    dir.write(
        "summary.json",
        redact(&String::from_utf8_lossy(&text)).as_bytes(),
    )?;
    dir.write(
        "junit.xml",
        redact(&crate::report::junit::junit_xml(&plan.name, &thresholds)).as_bytes(),
    )?;
    for chart in &charts {
        dir.write(&format!("{}.svg", chart.id), redact(&chart.svg).as_bytes())?;
    }
    Ok(AnalysisResult {
        rows,
        thresholds,
        analysis,
        charts,
    })
}

pub fn summary_csv(plan: &Plan, rows: &[SummaryRow]) -> String {
    let mut out = String::new();
    let mut header: Vec<&str> = plan.axes.iter().map(String::as_str).collect();
    header.extend(METRIC_COLUMNS);
    header.push("status");
    let _ = writeln!(out, "{}", header.join(","));
    for r in rows {
        let mut fields: Vec<String> = plan
            .axes
            .iter()
            .map(|a| {
                r.matrix
                    .get(a)
                    .map(|v| csv_field(&v.to_string()))
                    .unwrap_or_default()
            })
            .collect();
        for m in METRIC_COLUMNS {
            fields.push(match r.metrics.get(*m) {
                Some(v) if matches!(*m, "requests" | "failures") => format!("{v:.0}"),
                Some(v) => format!("{v:.3}"),
                None => String::new(),
            });
        }
        fields.push(format!("{:?}", r.status).to_lowercase());
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
