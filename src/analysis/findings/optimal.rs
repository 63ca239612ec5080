//! The cheapest configuration meeting the SLO, per load level.

use indexmap::IndexMap;

use super::capacity::groups_by;
use super::ctx::{Ctx, numbers};
use crate::analysis::text::{self, num};
use crate::analysis::{FindingKind, Role, Severity};

/// Per load level: the cheapest replica count meeting the SLO (fewest
/// replicas without a cost model). Users and workers are load, not
/// configuration: they are never what is recommended.
pub(super) fn optimal(cx: &mut Ctx, measured: &[usize]) {
    let load = cx.load_axis().map(|i| cx.t.axes[i].name.clone());
    let groups = groups_by(cx, measured, |role| {
        !matches!(role, Role::Replicas | Role::Workers)
    });
    let price = |p: f64| Some(p).filter(|c| c.is_finite() && *c > 0.0);
    let per_replica_hour = cx.input.cost.and_then(|c| price(c.per_replica_hour));
    let per_worker_hour = cx.input.cost.and_then(|c| price(c.per_worker_hour));
    let priced = per_replica_hour.is_some() || per_worker_hour.is_some();
    // Replicas and load-generator workers both cost money.
    let input = cx.input;
    let cost_of = move |r: usize| {
        let workers = input.workers_of.get(r).copied().unwrap_or(0) as f64;
        let replicas = input.replicas_of.get(r).map_or(f64::NAN, |&v| v as f64);
        replicas * per_replica_hour.unwrap_or(0.0) + workers * per_worker_hour.unwrap_or(0.0)
    };
    for (key, rows) in groups {
        let level = match text::fixed_label(&key) {
            Some(l) => format!("for {l}"),
            None => "at the tested load".to_string(),
        };
        let ok: Vec<usize> = rows
            .iter()
            .copied()
            .filter(|&r| cx.meets[r] && cx.usable(r))
            .collect();
        let pick = ok.iter().copied().min_by(|&a, &b| {
            let cost = if priced {
                cost_of(a).total_cmp(&cost_of(b))
            } else {
                std::cmp::Ordering::Equal
            };
            cost.then(cx.replicas(a).total_cmp(&cx.replicas(b)))
                .then(cx.served(b).total_cmp(&cx.served(a)))
                .then(
                    cx.metric(a, "p95")
                        .unwrap_or(f64::INFINITY)
                        .total_cmp(&cx.metric(b, "p95").unwrap_or(f64::INFINITY)),
                )
        });
        let Some(r) = pick else {
            if !cx.t.slo.is_empty() && !rows.is_empty() {
                let message = format!(
                    "{level}: no tested replica count met the SLO ({}); test more replicas or less load",
                    cx.slo_text()
                );
                cx.push(
                    FindingKind::Optimal,
                    Severity::Warning,
                    rows.iter().map(|&r| cx.cell(r)).collect(),
                    load.as_deref(),
                    IndexMap::new(),
                    message,
                );
            }
            continue;
        };
        let replicas = cx.replicas(r);
        let rps = cx.served(r);
        let p95 = cx.metric(r, "p95").unwrap_or(f64::NAN);
        let mut nums = vec![("replicas", replicas), ("rps", rps), ("p95", p95)];
        let why = if priced {
            let cost_h = cost_of(r);
            let per_million = if rps > 0.0 {
                cost_h / (rps * 3600.0) * 1e6
            } else {
                f64::NAN
            };
            let per_dollar = if cost_h > 0.0 {
                rps * 3600.0 / cost_h
            } else {
                f64::NAN
            };
            nums.extend([
                ("cost_per_hour", cost_h),
                ("cost_per_million_requests", per_million),
                ("requests_per_dollar", per_dollar),
            ]);
            let parts = match per_worker_hour {
                Some(w) => {
                    let workers = cx.input.workers_of.get(r).copied().unwrap_or(0);
                    format!(
                        " ({} replica{} x ${:.2} + {workers} worker{} x ${w:.2})",
                        num(replicas),
                        if replicas == 1.0 { "" } else { "s" },
                        per_replica_hour.unwrap_or(0.0),
                        if workers == 1 { "" } else { "s" },
                    )
                }
                None => String::new(),
            };
            format!(
                "cheapest {}: ${cost_h:.2}/h{parts}, ${per_million:.3} per 1M successful requests, {} requests per $",
                cx.under(),
                text::big(per_dollar)
            )
        } else {
            format!("fewest replicas {}", cx.under())
        };
        let message = format!(
            "{level}: {} replica{} ({why}; {} {}RPS, {})",
            num(replicas),
            if replicas == 1.0 { "" } else { "s" },
            text::rps(rps),
            if cx.goodput() { "good " } else { "" },
            cx.latency_quote(r)
        );
        cx.advice.push(format!(
            "Deploy {} replica{} {level} ({why}).",
            num(replicas),
            if replicas == 1.0 { "" } else { "s" }
        ));
        cx.push(
            FindingKind::Optimal,
            Severity::Info,
            vec![cx.cell(r)],
            load.as_deref(),
            numbers(&nums),
            message,
        );
    }
}
