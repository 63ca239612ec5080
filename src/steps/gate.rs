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
