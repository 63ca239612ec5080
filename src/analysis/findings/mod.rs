//! Turning the collected query results into findings and recommendations.
//!
//! Every cell carries what bounded it (`client`, `failing`, `load`,
//! `service`). Throughput verdicts (scaling efficiency, plateaus, capacity)
//! are drawn only from `service`-bound cells, where the system under test was
//! the limit; a step into a `load`-bound cell says the cell was not saturated
//! and how much load would saturate it. Cells that failed, or whose figures
//! describe the load generator, are never recommended.

mod capacity;
mod client;
mod ctx;
mod latency;
mod objectives;
mod optimal;
mod recommend;
mod scaling;
mod slo;
mod unstable;

use indexmap::IndexMap;

use super::frame::Table;
use super::{Analysis, AnalysisInput, FindingKind, Role, ScalingSeries};
use capacity::{capacity, usl};
use client::client;
use ctx::Ctx;
use latency::{degradation, failures_without_load_axis, knee, onset};
use optimal::optimal;
use recommend::recommend;
use scaling::resource_steps;
use slo::slo_excluded;
use unstable::unstable;

pub fn all(input: &AnalysisInput, t: &Table) -> Analysis {
    let mut cx = Ctx {
        input,
        t,
        findings: Vec::new(),
        problems: Vec::new(),
        plateaus: IndexMap::new(),
        keep_below: Vec::new(),
        meets: Vec::new(),
        advice: Vec::new(),
    };
    cx.meets = match t.meets() {
        Ok(m) => m,
        Err(e) => {
            cx.problems.push(format!("SLO check: {e}"));
            vec![false; input.rows.len()]
        }
    };
    let measured = match t.measured_rows() {
        Ok(m) => m,
        Err(e) => {
            cx.problems.push(format!("measured cells: {e}"));
            Vec::new()
        }
    };

    let mut scaling = Vec::new();
    let has_load_axis = cx.load_axis().is_some();
    let mut worker_series = Vec::new();
    for (i, axis) in t.axes.iter().enumerate() {
        if !axis.numeric {
            continue;
        }
        let series = match t.series(i) {
            Ok(s) => s,
            Err(e) => {
                cx.problems.push(format!("series along {}: {e}", axis.name));
                continue;
            }
        };
        for s in series {
            let distinct = s.windows(2).filter(|w| w[1].x > w[0].x).count() + 1;
            if distinct < 2 {
                continue;
            }
            let fixed = cx.fixed(s[0].row, i);
            scaling.push(ScalingSeries {
                dimension: axis.name.clone(),
                fixed: fixed.clone(),
                points: s
                    .iter()
                    .map(|p| (p.x, p.rps, p.p95.unwrap_or(f64::NAN)))
                    .collect(),
                predicted: false,
            });
            match axis.role {
                Role::Replicas | Role::Other => resource_steps(&mut cx, &axis.name, &fixed, &s),
                Role::Workers => worker_series.push((axis.name.clone(), fixed.clone(), s.clone())),
                Role::Users | Role::Rate => {
                    degradation(&mut cx, &axis.name, axis.role, &fixed, &s);
                    knee(&mut cx, &axis.name, axis.role, &fixed, &s);
                    onset(&mut cx, &axis.name, &fixed, &s);
                }
            }
        }
    }
    if !has_load_axis {
        failures_without_load_axis(&mut cx, &measured);
    }
    slo_excluded(&mut cx);
    let frontier = capacity(&mut cx, &measured);
    usl(&mut cx, &frontier, &mut scaling);
    optimal(&mut cx, &measured);
    client(&mut cx, &measured, &worker_series);
    unstable(&mut cx);

    cx.findings.sort_by_key(|f| rank(f.kind));
    let recommendations = recommend(&cx, &measured);
    Analysis {
        findings: cx.findings,
        scaling,
        recommendations,
    }
}

/// Findings in reading order: the answer first, then what qualifies it.
fn rank(kind: FindingKind) -> u8 {
    match kind {
        FindingKind::NoCellMeetsSlo => 0,
        FindingKind::Optimal => 1,
        FindingKind::Capacity => 2,
        FindingKind::Client => 3,
        FindingKind::Unstable => 4,
        FindingKind::Scaling => 5,
        FindingKind::Plateau => 6,
        FindingKind::Usl => 7,
        FindingKind::Knee => 8,
        FindingKind::Latency => 9,
        FindingKind::FailureOnset => 10,
        FindingKind::SloExcluded => 11,
        FindingKind::ServerLatency => 12,
        FindingKind::Ab => 13,
    }
}
