//! The gate: the threshold table, and the verdict CI exits on.

use std::sync::atomic::Ordering;

use crate::run::state::RunState;
use crate::steps::StepError;

pub async fn gate(state: &RunState) -> Result<(), StepError> {
    let analysis = state.analysis.lock().await.clone().unwrap_or_default();
    if analysis.thresholds.is_empty() {
        eprintln!("thresholds: none declared");
        return Ok(());
    }
    let mut rows = vec![vec![
        "".to_string(),
        "threshold".into(),
        "scope".into(),
        "measured".into(),
    ]];
    let mut failed = 0;
    for t in &analysis.thresholds {
        if !t.passed {
            failed += 1;
        }
        rows.push(vec![
            if t.passed {
                "PASS".into()
            } else {
                "FAIL".into()
            },
            t.threshold.clone(),
            t.cell.clone().unwrap_or_else(|| "run".into()),
            t.detail.clone(),
        ]);
    }
    eprintln!("\nthresholds:\n{}", crate::commands::table(&rows));
    if failed > 0 {
        state.thresholds_failed.store(true, Ordering::Relaxed);
        eprintln!(
            "{failed} of {} threshold checks failed",
            analysis.thresholds.len()
        );
    } else {
        eprintln!("all {} threshold checks passed", analysis.thresholds.len());
    }
    Ok(())
}

/// The first `abort = true` threshold cell `c` breaches, as a message; the
/// dispatcher stops the run on it (the cell's files are already written).
pub async fn abort_breach(state: &RunState, c: usize) -> Option<String> {
    let plan = &state.plan;
    if !plan.thresholds.iter().any(|t| t.abort) {
        return None;
    }
    let row = {
        let cells = state.cells.lock().await;
        crate::steps::analyze::summary_row(plan, c, cells.get(&c)?)
    };
    if !row.status.is_measured() {
        return None;
    }
    let results = crate::steps::analyze::evaluate_thresholds(plan, std::slice::from_ref(&row));
    let breach = plan
        .thresholds
        .iter()
        .filter(|t| t.abort && t.scope == crate::plan::raw::Scope::Cell)
        .find_map(|t| results.iter().find(|r| r.threshold == t.name && !r.passed))?;
    state.thresholds_failed.store(true, Ordering::Relaxed);
    let msg = format!(
        "threshold `{}` (abort = true) breached in cell {}: {}; stopping the run",
        breach.threshold, row.cell, breach.detail
    );
    eprintln!("{msg}");
    state.run_event(msg.clone()).await;
    Some(msg)
}
