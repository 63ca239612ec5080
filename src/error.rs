//! The errors a command ends with, and the one place they become exit codes.

use crate::exit_code;
use crate::plan::PlanError;
use crate::report::ReportError;
use crate::results::ResultsError;

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The plan is invalid: every diagnostic, rendered.
    #[error("{}", .0.render())]
    Plan(#[from] PlanError),
    /// The command line is invalid.
    #[error("{0}")]
    Usage(String),
    #[error(transparent)]
    Results(#[from] ResultsError),
    #[error(transparent)]
    Report(#[from] ReportError),
    #[error("{0}")]
    Preflight(String),
    /// The run could not be carried out.
    #[error("{0}")]
    Failed(String),
    #[error("interrupted")]
    Interrupted,
    /// Threshold checks failed (or `compare` found regressions); already shown.
    #[error("{0} threshold check(s) failed")]
    Thresholds(usize),
    /// Already shown in full; only the exit code is left to give.
    #[error("exit {0}")]
    Shown(u8),
}

impl RunError {
    pub fn exit_code(&self) -> u8 {
        match self {
            RunError::Plan(_) | RunError::Usage(_) => exit_code::INVALID,
            RunError::Results(e) => match e {
                ResultsError::NotARun { .. }
                | ResultsError::Damaged { .. }
                | ResultsError::Locked { .. } => exit_code::INVALID,
                ResultsError::Io { .. } => exit_code::RUN_FAILED,
            },
            RunError::Report(e) => match e {
                ReportError::Results(ResultsError::Io { .. }) => exit_code::RUN_FAILED,
                ReportError::Interrupted(_) => exit_code::INTERRUPTED,
                _ => exit_code::INVALID,
            },
            RunError::Preflight(_) => exit_code::PREFLIGHT_FAILED,
            RunError::Failed(_) => exit_code::RUN_FAILED,
            RunError::Interrupted => exit_code::INTERRUPTED,
            RunError::Thresholds(_) => exit_code::THRESHOLD_FAILED,
            RunError::Shown(code) => *code,
        }
    }

    /// Prints what the user has not been shown yet.
    pub fn print(&self) {
        match self {
            // Shown as they happened (the gate's table, the Ctrl-C notice).
            RunError::Thresholds(_) | RunError::Interrupted | RunError::Shown(_) => {}
            RunError::Plan(e) => eprint!("{}", e.render()),
            RunError::Report(e @ ReportError::Interrupted(_)) => eprintln!("\n{e}"),
            other => eprintln!("error: {other}"),
        }
    }
}
