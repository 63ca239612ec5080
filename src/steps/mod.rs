//! The executor: one function per step kind. Steps report back to the
//! dispatcher; they never decide what runs next.

pub mod analyze;
pub mod cell;
pub mod check;
pub mod exec;
pub mod gate;
pub mod load;
pub mod report;
pub mod scale;

use std::time::Duration;

use crate::plan::graph::Step;
use crate::plan::raw::StepKind;
use crate::run::state::RunState;

#[derive(Debug, Clone)]
pub struct StepError {
    pub message: String,
    /// Stop the whole run whatever `on_failure` says (an `abort = true` threshold).
    pub abort_run: bool,
    /// The step stopped because the run was interrupted.
    pub interrupted: bool,
}

impl StepError {
    pub fn new(message: impl Into<String>) -> Self {
        StepError {
            message: message.into(),
            abort_run: false,
            interrupted: false,
        }
    }

    pub fn interrupted() -> Self {
        StepError {
            message: "interrupted".into(),
            abort_run: false,
            interrupted: true,
        }
    }
}

impl<E: std::fmt::Display> From<E> for StepError {
    fn from(e: E) -> Self {
        StepError::new(e.to_string())
    }
}

pub async fn execute(state: &RunState, step: &Step, cell: Option<usize>) -> Result<(), StepError> {
    if state.cancelled() {
        return Err(StepError::interrupted());
    }
    let declared = |cell: Option<usize>| match cell {
        Some(c) => state.plan.cells[c].steps.get(&step.id).cloned(),
        None => state.plan.steps.get(&step.id).cloned(),
    };
    if let Some(c) = cell {
        cell::mark_started(state, c).await;
    }
    match (step.kind, cell) {
        (StepKind::Check, _) => check::preflight(state).await,
        (StepKind::Scale, Some(c)) => scale::scale(state, c).await,
        (StepKind::Ready, Some(c)) => scale::ready(state, c).await,
        (StepKind::Load, Some(c)) => load::load(state, c).await,
        (StepKind::Sleep, _) => {
            let duration = match (declared(cell), cell) {
                (Some(cfg), _) => cfg.duration.unwrap_or_default(),
                (None, Some(c)) => state.plan.cells[c].timing.cooldown,
                (None, None) => Duration::ZERO,
            };
            sleep(state, duration).await
        }
        (StepKind::Exec, _) => {
            let cfg = declared(cell).ok_or_else(|| StepError::new("exec step without settings"))?;
            exec::exec(state, &step.id, &cfg, cell).await
        }
        (StepKind::Scrape, _) => {
            let cfg =
                declared(cell).ok_or_else(|| StepError::new("scrape step without settings"))?;
            exec::scrape(state, &step.id, &cfg, cell).await
        }
        (StepKind::Analyze, _) => analyze::analyze(state).await,
        (StepKind::Report, _) => report::report(state, declared(None).as_ref(), false).await,
        (StepKind::Gate, _) => gate::gate(state).await,
        (kind, None) => Err(StepError::new(format!(
            "a `{}` step runs per cell; set per_cell = true",
            crate::plan::graph::kind_name(kind)
        ))),
    }
}

/// Sleeps, waking early when the run is interrupted.
pub async fn sleep(state: &RunState, duration: Duration) -> Result<(), StepError> {
    let deadline = tokio::time::Instant::now() + duration;
    while tokio::time::Instant::now() < deadline {
        if state.cancelled() {
            return Err(StepError::interrupted());
        }
        let left = deadline - tokio::time::Instant::now();
        tokio::time::sleep(left.min(Duration::from_millis(100))).await;
    }
    Ok(())
}
