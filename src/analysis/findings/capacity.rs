//! Capacity per value of the scaled axis, and the USL fit over it.

use indexmap::IndexMap;

use super::ctx::{Ctx, numbers};
use super::slo::no_cell_meets;
use crate::analysis::text::{self, num};
use crate::analysis::{FindingKind, Role, ScalingSeries, Severity};
use crate::results::record::Bound;

/// One value of the scaled axis (and of any other resource axis): its
/// label, and the rows that share it.
pub(super) fn groups_by(
    cx: &Ctx,
    rows: &[usize],
    keep: impl Fn(Role) -> bool,
) -> Vec<(IndexMap<String, String>, Vec<usize>)> {
    let mut out: Vec<(IndexMap<String, String>, Vec<usize>)> = Vec::new();
    for &r in rows {
        let key: IndexMap<String, String> =
            cx.t.axes
                .iter()
                .enumerate()
                .filter(|(_, a)| keep(a.role))
                .filter_map(|(i, a)| {
                    let v = cx.t.keys.get(r)?.get(i)?;
                    (!v.is_empty()).then(|| (a.name.clone(), v.clone()))
                })
                .collect();
        match out.iter_mut().find(|(k, _)| *k == key) {
            Some((_, v)) => v.push(r),
            None => out.push((key, vec![r])),
        }
    }
    out
}

/// Capacity per value of the scaled axis: the most successful RPS a
/// service-bound cell served under the SLO; when none did, what is known
/// (a floor, and where the service saturated but missed the SLO). Returns
/// (replicas, RPS) where the service was the limit, for the USL fit.
pub(super) fn capacity(cx: &mut Ctx, measured: &[usize]) -> Vec<(f64, f64)> {
    let mut frontier = Vec::new();
    let any_slo_meets = measured.iter().any(|&r| cx.meets[r] && cx.usable(r));
    if !any_slo_meets && !measured.is_empty() && !cx.t.slo.is_empty() {
        no_cell_meets(cx, measured);
    }
    let groups = groups_by(cx, measured, |role| {
        matches!(role, Role::Replicas | Role::Other)
    });
    for (key, rows) in groups {
        let label = text::fixed_label(&key).unwrap_or_else(|| "the tested configuration".into());
        let best = |rs: &mut dyn Iterator<Item = usize>| {
            rs.max_by(|&a, &b| cx.served(a).total_cmp(&cx.served(b)))
        };
        let usable: Vec<usize> = rows.iter().copied().filter(|&r| cx.usable(r)).collect();
        let service = |r: &usize| cx.bound(*r) == Some(Bound::Service);
        let saturated = best(&mut usable.iter().copied().filter(service));
        let reached = best(
            &mut usable
                .iter()
                .copied()
                .filter(|r| service(r) && cx.meets[*r]),
        );
        let floor = best(&mut usable.iter().copied().filter(|&r| cx.meets[r]));
        let replicas = rows.first().map_or(f64::NAN, |&r| cx.replicas(r));
        if let Some(s) = saturated {
            frontier.push((replicas, cx.ok_rps(s)));
            // The USL fit describes throughput, good or not.
        }

        let good = if cx.goodput() { " good" } else { "" };
        let (row, was_reached, message) = match (reached, floor, saturated) {
            (Some(r), _, _) => (
                r,
                true,
                format!(
                    "{label}: capacity {}{good} RPS {} at {} ({}, service-bound)",
                    text::rps(cx.served(r)),
                    cx.under(),
                    cx.cell(r),
                    cx.latency_quote(r)
                ),
            ),
            (None, Some(f), Some(s)) => (
                f,
                false,
                format!(
                    "{label}: at least {}{good} RPS {} ({}); the service saturates at {} RPS ({}) but misses the SLO there ({})",
                    text::rps(cx.served(f)),
                    cx.under(),
                    cx.cell(f),
                    text::rps(cx.ok_rps(s)),
                    cx.cell(s),
                    cx.miss_text(s)
                ),
            ),
            (None, None, Some(s)) => (
                s,
                false,
                format!(
                    "{label}: no cell met the SLO ({}); the service saturates at {} RPS ({}: {})",
                    cx.slo_text(),
                    text::rps(cx.ok_rps(s)),
                    cx.cell(s),
                    cx.miss_text(s)
                ),
            ),
            (None, Some(f), None) if failing_above(cx, &rows, f).is_some() => {
                let over = failing_above(cx, &rows, f).unwrap_or(f);
                (
                    f,
                    false,
                    format!(
                        "{label}: at least {}{good} RPS {} ({}); {} failed ({} failures at ~{} RPS offered), so the capacity lies below that load",
                        text::rps(cx.served(f)),
                        cx.under(),
                        cx.cell(f),
                        cx.cell(over),
                        text::pct(cx.metric(over, "fail_pct").unwrap_or(f64::NAN)),
                        text::rps(cx.metric(over, "offered_rps").unwrap_or(f64::NAN)),
                    ),
                )
            }
            (None, Some(f), None) if cx.bound(f).is_some() => {
                let advice = match cx.load_needed(f, replicas) {
                    Some((what, n)) => {
                        let unit = if what == "rate" { "/s" } else { "" };
                        let a = format!(
                            "raise {what} to at least {}{unit} to find {label}'s capacity",
                            num(n)
                        );
                        cx.advice.push(format!("{label} was never saturated: {a}."));
                        format!("; {a}")
                    }
                    None => String::new(),
                };
                (
                    f,
                    false,
                    format!(
                        "{label}: at least {}{good} RPS; never saturated (every cell there kept up with its load, best at {}){advice}",
                        text::rps(cx.served(f)),
                        cx.cell(f)
                    ),
                )
            }
            (None, Some(f), None) => (
                f,
                false,
                format!(
                    "{label}: at least {}{good} RPS {} at {} (no baseline was measured, so whether the service was the limit is unknown)",
                    text::rps(cx.served(f)),
                    cx.under(),
                    cx.cell(f)
                ),
            ),
            (None, None, None) => {
                if !usable.is_empty() && !cx.t.slo.is_empty() {
                    let message = format!("{label}: no cell met the SLO ({})", cx.slo_text());
                    cx.push(
                        FindingKind::Capacity,
                        Severity::Warning,
                        rows.iter().map(|&r| cx.cell(r)).collect(),
                        None,
                        numbers(&[("replicas", replicas), ("reached", 0.0)]),
                        message,
                    );
                }
                continue;
            }
        };
        let mut nums = vec![
            ("replicas", replicas),
            ("rps", cx.served(row)),
            ("p95", cx.metric(row, "p95").unwrap_or(f64::NAN)),
            ("reached", if was_reached { 1.0 } else { 0.0 }),
        ];
        if let Some(s) = saturated {
            nums.push(("saturated_rps", cx.ok_rps(s)));
        }
        cx.push(
            FindingKind::Capacity,
            Severity::Info,
            vec![cx.cell(row)],
            cx.replicas_axis().map(|i| cx.t.axes[i].name.as_str()),
            numbers(&nums),
            message,
        );
    }
    frontier
}

/// A cell of the group offered more than `best` and failed: the service did
/// not keep up there, so "never saturated" would be false.
pub(super) fn failing_above(cx: &Ctx, rows: &[usize], best: usize) -> Option<usize> {
    let offered = |r: usize| cx.metric(r, "offered_rps").unwrap_or(f64::NAN);
    rows.iter()
        .copied()
        .filter(|&r| cx.bound(r) == Some(Bound::Failing) && offered(r) > offered(best))
        .max_by(|&a, &b| offered(a).total_cmp(&offered(b)))
}

/// The Universal Scalability Law over the capacity frontier: with three or
/// more replica counts where the service was the limit.
pub(super) fn usl(cx: &mut Ctx, frontier: &[(f64, f64)], scaling: &mut Vec<ScalingSeries>) {
    let Some(axis) = cx.replicas_axis().map(|i| cx.t.axes[i].name.clone()) else {
        return;
    };
    let mut pts = frontier.to_vec();
    pts.sort_by(|a, b| a.0.total_cmp(&b.0));
    pts.dedup_by(|a, b| a.0 == b.0);
    if pts.len() < 3 {
        return;
    }
    let tested: Vec<f64> = pts.iter().map(|p| p.0).collect();
    match crate::analysis::usl::fit(&pts) {
        Ok(f) => {
            let predict_at = crate::analysis::usl::prediction_points(&tested, &f);
            let predictions: Vec<String> = predict_at
                .iter()
                .map(|&n| format!("{} {axis}: {} RPS", num(n), text::rps(f.predict(n))))
                .collect();
            let peak = match f.peak_n {
                Some(n) => format!(
                    "predicted peak at {} {axis} ({} RPS)",
                    num((n * 10.0).round() / 10.0),
                    text::rps(f.predict(n))
                ),
                None => "no predicted peak (no coherency cost measured)".to_string(),
            };
            let message = format!(
                "Universal Scalability Law fit over {} {axis} (service-bound capacity): σ = {:.4} (contention), κ = {:.5} (coherency), R² = {:.3}; {peak}; predictions, not measurements: {}",
                tested
                    .iter()
                    .map(|&n| num(n))
                    .collect::<Vec<_>>()
                    .join(", "),
                f.sigma,
                f.kappa,
                f.r2,
                predictions.join(", ")
            );
            let mut nums = vec![
                ("lambda", f.lambda),
                ("sigma", f.sigma),
                ("kappa", f.kappa),
                ("r2", f.r2),
            ];
            if let Some(n) = f.peak_n {
                nums.push(("peak_n", n));
                nums.push(("peak_rps", f.predict(n)));
            }
            let mut all: Vec<f64> = tested.iter().chain(&predict_at).copied().collect();
            all.sort_by(f64::total_cmp);
            scaling.push(ScalingSeries {
                dimension: axis.clone(),
                fixed: IndexMap::from([("USL".to_string(), "fit".to_string())]),
                points: all.iter().map(|&n| (n, f.predict(n), f64::NAN)).collect(),
                predicted: true,
            });
            let mut n = numbers(&nums);
            for &x in &predict_at {
                n.insert(format!("predicted_rps_at_{}", num(x)), f.predict(x));
            }
            cx.push(
                FindingKind::Usl,
                Severity::Info,
                Vec::new(),
                Some(&axis),
                n,
                message,
            );
        }
        Err(why) => {
            let message = format!("No Universal Scalability Law fit over {axis}: {why}");
            cx.push(
                FindingKind::Usl,
                Severity::Info,
                Vec::new(),
                Some(&axis),
                numbers(&[("points", pts.len() as f64)]),
                message,
            );
        }
    }
}
