//! The recommendations, in reading order, from the findings.

use super::ctx::Ctx;
use crate::analysis::text::num;
use crate::analysis::{Finding, FindingKind, PLATEAU_GAIN, Severity, UNSTABLE_CV};

pub(super) fn list(cells: &[String]) -> String {
    const SHOWN: usize = 5;
    let mut out = cells
        .iter()
        .take(SHOWN)
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    if cells.len() > SHOWN {
        out.push_str(&format!(" and {} more", cells.len() - SHOWN));
    }
    out
}

pub(super) fn recommend(cx: &Ctx, measured: &[usize]) -> Vec<String> {
    let mut out = Vec::new();
    let of = |kind| {
        cx.findings
            .iter()
            .filter(move |f: &&Finding| f.kind == kind)
    };
    if cx.input.rows.is_empty() {
        out.push("No cells to analyze.".to_string());
    } else if measured.is_empty() {
        out.push("No cell was measured, so there is nothing to compare.".to_string());
    }
    if of(FindingKind::NoCellMeetsSlo).next().is_some() {
        out.push(format!(
            "No tested configuration met the SLO ({}): test more replicas, lower the load, or revisit the SLO.",
            cx.slo_text()
        ));
    }
    out.extend(cx.advice.iter().cloned());
    for (dim, places) in &cx.plateaus {
        out.push(format!(
            "Adding {dim} stops paying off past {}: the next step gave less than {}% more RPS while the service was the limit; look for a shared bottleneck.",
            places.join(", "),
            num(PLATEAU_GAIN * 100.0)
        ));
    }
    let hot: Vec<String> = of(FindingKind::Client)
        .filter(|f| f.severity >= Severity::Warning)
        .flat_map(|f| f.cells.clone())
        .collect();
    if !hot.is_empty() {
        out.push(format!(
            "Give the load generator more capacity (workers or hosts) and re-run {}: the generator, not the service, limited them.",
            list(&hot)
        ));
    }
    let shaky: Vec<String> = of(FindingKind::Unstable)
        .flat_map(|f| f.cells.clone())
        .collect();
    if !shaky.is_empty() {
        out.push(format!(
            "Re-run {} longer or with more repeats: RPS varied more than {}% between repeats.",
            list(&shaky),
            num(UNSTABLE_CV * 100.0)
        ));
    }
    out.extend(cx.keep_below.iter().cloned());
    let unmeasured: Vec<String> = cx
        .input
        .rows
        .iter()
        .filter(|r| !r.status.is_measured())
        .map(|r| format!("{} ({})", r.cell, r.status))
        .collect();
    if !unmeasured.is_empty() {
        out.push(format!(
            "{} cell(s) have no figures and are left out: {}.",
            unmeasured.len(),
            list(&unmeasured)
        ));
    }
    for p in &cx.problems {
        out.push(format!("Part of the analysis could not be computed ({p})."));
    }
    out
}
