//! `run.json`: what ran, with which plan, and the status of every cell.
//! Rewritten atomically after every cell; resume reads it.

use serde::{Deserialize, Serialize};

use crate::plan::matrix::CellValues;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    Running,
    /// Every cell ran; thresholds decide the exit code.
    Complete,
    /// Stopped by a signal; finished cells are kept.
    Interrupted,
    /// Preflight failed; no load was sent.
    PreflightFailed,
    /// Aborted by an error or an `abort = true` threshold.
    Aborted,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CellStatus {
    /// Not run yet: also every cell `--only` left out, and cells after an abort.
    #[serde(alias = "skipped")]
    Pending,
    /// Only while the process that runs it lives.
    Running,
    /// Measured, files written.
    Complete,
    /// Measured, but something went wrong on the way (a replica died, ...).
    Degraded,
    /// No successful request, or a step of the cell failed before it measured.
    Failed,
    /// Stopped by Ctrl-C or SIGTERM while it ran; a resume measures it again.
    Interrupted,
}

impl CellStatus {
    /// Its figures are in the cell folder.
    pub(crate) fn is_measured(self) -> bool {
        matches!(self, CellStatus::Complete | CellStatus::Degraded)
    }

    /// A resume keeps it as it is.
    pub(crate) fn is_final(self) -> bool {
        matches!(
            self,
            CellStatus::Complete | CellStatus::Degraded | CellStatus::Failed
        )
    }

    pub fn as_str(self) -> &'static str {
        match self {
            CellStatus::Pending => "pending",
            CellStatus::Running => "running",
            CellStatus::Complete => "complete",
            CellStatus::Degraded => "degraded",
            CellStatus::Failed => "failed",
            CellStatus::Interrupted => "interrupted",
        }
    }
}

impl std::fmt::Display for CellStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CellEntry {
    pub id: String,
    pub index: usize,
    pub matrix: CellValues,
    pub status: CellStatus,
    #[serde(default)]
    pub started: Option<String>,
    #[serde(default)]
    pub finished: Option<String>,
    #[serde(default)]
    pub message: Option<String>,
    /// Hash of the cell's resolved configuration; resume compares it.
    #[serde(default)]
    pub hash: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    pub plan: String,
    pub plan_file: String,
    pub plan_hash: String,
    pub tool_version: String,
    pub run_id: String,
    pub started: String,
    #[serde(default)]
    pub finished: Option<String>,
    pub status: RunStatus,
    pub axes: Vec<String>,
    /// `--set KEY=VALUE` overrides the run was made with (secret values
    /// masked); `--resume` applies them again.
    #[serde(default)]
    pub overrides: Vec<String>,
    /// The `--only` filter of the latest invocation, if any.
    #[serde(default)]
    pub only: Option<String>,
    pub cells: Vec<CellEntry>,
    /// With `[cell] order = "interleave"`: each visit of a cell (one of its
    /// repeats), in the order they ran.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub visits: Vec<VisitEntry>,
}

/// One visit of an interleaved run: a cell measuring one repeat.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct VisitEntry {
    pub cell: String,
    /// 1-based, as the `repeat` column of timeline.csv.
    pub repeat: u64,
    pub started: String,
    #[serde(default)]
    pub finished: Option<String>,
}

impl RunStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Running => "running",
            RunStatus::Complete => "complete",
            RunStatus::Interrupted => "interrupted",
            RunStatus::PreflightFailed => "preflight_failed",
            RunStatus::Aborted => "aborted",
        }
    }
}
