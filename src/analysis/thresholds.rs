//! Threshold expressions evaluated over summary rows: per cell, or once over
//! the selected cells.

use serde::{Deserialize, Serialize};

use crate::plan::Plan;
use crate::plan::expr::{self, Value};
use crate::plan::matrix::{CellValues, MatrixValue};
use crate::plan::raw::Scope;
use crate::results::record::NO_SUCCESSFUL_REQUESTS;
use crate::results::{CellStatus, SummaryRow};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ThresholdResult {
    pub threshold: String,
    pub scope: Scope,
    /// The cell, for cell scope.
    pub cell: Option<String>,
    pub passed: bool,
    /// "p95 = 612.3ms (limit < 500ms)" and the like.
    pub detail: String,
}

pub(crate) fn matrix_value(v: &MatrixValue) -> Value {
    match v {
        MatrixValue::Bool(b) => Value::Bool(*b),
        MatrixValue::Int(i) => Value::Num(*i as f64),
        MatrixValue::Float(f) => Value::Num(*f),
        MatrixValue::Str(s) => Value::Str(s.clone()),
    }
}

/// Whether a cell's matrix values satisfy a filter (`where`, `--only`).
pub(crate) fn matrix_matches(
    filter: &expr::Expr,
    values: &CellValues,
) -> Result<bool, expr::EvalError> {
    filter.eval(&|name| values.get(name).map(matrix_value), &|_, _| None)
}

/// A `where` names matrix axes and `[[scrape]]` columns; a row without the
/// column (its target could not be read) does not match.
fn matches_filter(filter: &Option<(String, expr::Expr)>, row: &SummaryRow) -> bool {
    match filter {
        None => true,
        Some((_, f)) => f
            .eval(
                &|name| {
                    row.matrix
                        .get(name)
                        .map(matrix_value)
                        .or_else(|| row.metric(name).map(Value::Num))
                },
                &|_, _| None,
            )
            .unwrap_or(false),
    }
}

fn is_latency(metric: &str) -> bool {
    crate::metrics::kind(metric) == Some(crate::metrics::MetricKind::Latency)
}

/// A figure that means nothing for a cell without a successful request:
/// a latency, or a throughput (which would count the failures).
fn needs_success(metric: &str) -> bool {
    is_latency(metric) || crate::metrics::kind(metric) == Some(crate::metrics::MetricKind::Rate)
}

/// The metric an operand reads (the argument of an aggregate).
fn metric_of(op: &expr::Operand) -> Option<&str> {
    match op {
        expr::Operand::Ident { name, .. } => Some(name),
        expr::Operand::Aggregate { func, arg, .. } if func != "count" => Some(arg),
        _ => None,
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
        let metric = metric_of(&cmp.lhs).unwrap_or_default();
        let limit = match &cmp.rhs {
            expr::Operand::Literal(expr::Literal::Num { text, .. }) => text.clone(),
            other => format!("{other:?}"),
        };
        match cmp.eval(lookup, agg) {
            Ok(o) => {
                let measured = match o.lhs {
                    Value::Num(v) => crate::metrics::format(metric, v),
                    other => other.to_string(),
                };
                parts.push(format!("{name} = {measured} (limit {} {limit})", cmp.op));
            }
            Err(err) => parts.push(format!("{name}: {}", err.message)),
        }
    }
    parts.join("; ")
}

/// Every threshold over the rows. Pending cells (not run, or left out by
/// `--only`) fail nothing; a cell that ran without a successful request fails
/// every threshold that selects it ("no successful requests"), whatever it
/// measures: `rps > 10` must not pass on failures alone. Aggregates over
/// cells leave such cells out of latencies and throughputs.
pub(crate) fn evaluate(plan: &Plan, rows: &[SummaryRow]) -> Vec<ThresholdResult> {
    let mut out = Vec::new();
    for t in &plan.thresholds {
        let selected: Vec<&SummaryRow> = rows
            .iter()
            .filter(|r| r.status != CellStatus::Pending && matches_filter(&t.filter, r))
            .filter(|r| !super::ab::exempt(plan, &t.expr, r))
            .collect();
        let metrics: Vec<&str> = t
            .expr
            .comparisons()
            .iter()
            .filter_map(|c| metric_of(&c.lhs))
            .collect();
        match t.scope {
            Scope::Cell => {
                for row in selected {
                    let (passed, detail) = if row.metrics.is_empty() {
                        (false, format!("cell not measured ({})", row.status))
                    } else if row.metric("requests").is_some() && row.successes() <= 0.0 {
                        (
                            false,
                            if metrics.is_empty() {
                                NO_SUCCESSFUL_REQUESTS.to_string()
                            } else {
                                format!("{}: {NO_SUCCESSFUL_REQUESTS}", metrics.join(", "))
                            },
                        )
                    } else {
                        let lookup = |name: &str| row.metric(name).map(Value::Num);
                        let no_agg = |_: &str, _: &str| None;
                        match t.expr.eval(&lookup, &no_agg) {
                            Ok(p) => (p, describe(&t.expr, &lookup, &no_agg)),
                            Err(e) => (false, e.message),
                        }
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
                    .filter(|r| !r.metrics.is_empty())
                    .collect();
                let agg = |func: &str, metric: &str| -> Option<f64> {
                    // A latency or throughput of a cell without a successful
                    // request is no figure at all.
                    let values: Vec<f64> = measured
                        .iter()
                        .filter(|r| !needs_success(metric) || r.successes() > 0.0)
                        .filter_map(|r| r.metric(metric))
                        .collect();
                    match func {
                        "count" => Some(measured.len() as f64),
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
                        } else if measured.iter().all(|r| r.successes() <= 0.0) {
                            NO_SUCCESSFUL_REQUESTS.to_string()
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
