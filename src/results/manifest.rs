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
    Pending,
    Running,
    /// Measured, files written.
    Complete,
    /// Measured, but something went wrong on the way (a replica died, ...).
    Degraded,
    Failed,
    Skipped,
}

impl CellStatus {
    pub fn is_measured(self) -> bool {
        matches!(self, CellStatus::Complete | CellStatus::Degraded)
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
    pub cells: Vec<CellEntry>,
}
