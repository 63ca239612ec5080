//! `[analysis]`: SLO limits in each metric's unit, and costs.

use indexmap::IndexMap;
use minijinja::Value;

use super::resolver::Resolver;
use crate::base::units;
use crate::plan::expr::{self, MetricKind};
use crate::plan::model::*;
use crate::plan::raw::RawPlan;
use crate::plan::suggest::{Closeness, did_you_mean};

/// One user's unloaded measurement, when the plan does not say.
const DEFAULT_BASELINE: std::time::Duration = std::time::Duration::from_secs(3);

pub(super) fn resolve(r: &mut Resolver<'_>, raw: &RawPlan, ctx: &Value) -> Analysis {
    let slo = slo(r, &raw.analysis.slo, "analysis", ctx);
    let cost = raw.analysis.cost.as_ref().and_then(|c| {
        let per_replica_hour =
            r.opt_typed(&c.per_replica_hour, "analysis.cost.per_replica_hour", ctx)?;
        let per_worker_hour =
            r.opt_typed(&c.per_worker_hour, "analysis.cost.per_worker_hour", ctx)?;
        Some(Cost {
            per_replica_hour: per_replica_hour.map_or(0.0, |n| n.0),
            per_worker_hour: per_worker_hour.map_or(0.0, |n| n.0),
        })
    });
    let baseline = match &raw.analysis.baseline {
        Some(b) => r
            .typed(b, "analysis.baseline", ctx)
            .unwrap_or(DEFAULT_BASELINE),
        None => DEFAULT_BASELINE,
    };
    let ab = super::ab::resolve(r, raw);
    Analysis {
        slo,
        cost,
        baseline,
        ab,
    }
}

/// The threshold metrics `[analysis] ab` adds (percentages).
pub(super) fn ab_columns(raw: &RawPlan) -> Vec<(String, MetricKind)> {
    if raw.analysis.ab.is_none() {
        return Vec::new();
    }
    crate::plan::ab::threshold_metrics(raw.analysis.slo.keys().map(String::as_str))
        .into_iter()
        .map(|m| (m, MetricKind::Percent))
        .collect()
}

/// SLO limits in each metric's unit, as `[analysis] slo` and `[search] slo` write them.
pub(super) fn slo(
    r: &mut Resolver<'_>,
    written: &IndexMap<String, crate::plan::spanned::Text>,
    section: &str,
    ctx: &Value,
) -> IndexMap<String, f64> {
    let mut slo = IndexMap::new();
    for (metric, value) in written {
        let what = format!("{section}.slo.{metric}");
        let Some(text) = r.text(value, &what, ctx) else {
            continue;
        };
        let per_request = crate::metrics::is_per_request(metric);
        let parsed = match expr::metric_kind(metric) {
            _ if per_request => units::parse_duration(&text)
                .map(|d| d.as_secs_f64() * 1000.0)
                .map_err(|e| e.to_string()),
            Some(MetricKind::Latency) => units::parse_duration(&text)
                .map(|d| d.as_secs_f64() * 1000.0)
                .map_err(|e| e.to_string()),
            Some(MetricKind::Percent) => units::parse_percent(&text).map_err(|e| e.to_string()),
            Some(_) => text
                .trim()
                .parse::<f64>()
                .map_err(|_| format!("expected a number, found \"{text}\"")),
            None => {
                let known = [
                    "p50",
                    "p90",
                    "p95",
                    "p99",
                    "mean",
                    "max",
                    "fail_rate",
                    "rps",
                    "ttft",
                    "itl",
                    "e2e",
                ];
                let hint = did_you_mean(metric, known, Closeness::Similar)
                    .unwrap_or_else(|| format!("SLO metrics: {}", known.join(", ")));
                r.error(
                    value.span.clone(),
                    format!("`{what}`: `{metric}` is not a metric"),
                    Some(hint),
                );
                continue;
            }
        };
        match parsed {
            Ok(v) => {
                slo.insert(metric.clone(), v);
            }
            Err(msg) => r.error(value.span.clone(), format!("`{what}`: {msg}"), None),
        }
    }
    slo
}
