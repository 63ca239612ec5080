//! The gate: the threshold table, and the verdict CI exits on.

use super::{StepContext, StepError, StepInput, StepOutput};

pub fn gate(ctx: &StepContext, input: StepInput) -> Result<StepOutput, StepError> {
    let StepInput::Gate {
        analysis,
        measured,
        pending,
    } = input
    else {
        return Err(StepError::failed("a gate step got no input"));
    };
    let analysis = analysis.get(&ctx.plan);
    let cells = if pending > 0 {
        format!("{measured} measured, {pending} pending")
    } else {
        format!("{measured} measured")
    };
    if analysis.thresholds.is_empty() {
        ctx.say(&format!("thresholds: none declared ({cells})"));
        return Ok(StepOutput::Verdict { failed: 0 });
    }
    let mut rows = vec![vec![
        "".to_string(),
        "threshold".into(),
        "scope".into(),
        "measured".into(),
    ]];
    for t in &analysis.thresholds {
        rows.push(vec![
            if t.passed { "PASS" } else { "FAIL" }.to_string(),
            t.threshold.clone(),
            t.cell.clone().unwrap_or_else(|| "run".into()),
            t.detail.clone(),
        ]);
    }
    ctx.say(&format!("\nthresholds:\n{}", crate::report::table(&rows)));
    let failed = analysis.failed_thresholds();
    if failed > 0 {
        ctx.say(&format!(
            "{failed} of {} threshold checks failed ({cells})",
            analysis.thresholds.len()
        ));
    } else {
        ctx.say(&format!(
            "all {} threshold checks passed ({cells})",
            analysis.thresholds.len()
        ));
    }
    Ok(StepOutput::Verdict { failed })
}
