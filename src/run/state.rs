//! What the steps of one run share: the plan, the results folder, the
//! backend, and what each cell has measured so far.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::Mutex;

use crate::engine::CellStats;
use crate::plan::Plan;
use crate::results::{CellStatus, Manifest, RunDir};
use crate::system::SystemSample;
use crate::system::local::LocalBackend;

/// The running system under test.
#[derive(Debug, Default)]
pub enum Backend {
    #[default]
    None,
    Local(LocalBackend),
}

impl Backend {
    pub fn endpoints(&self) -> Vec<String> {
        match self {
            Backend::None => Vec::new(),
            Backend::Local(l) => l.endpoints(),
        }
    }

    pub fn stop_all(&mut self) -> Vec<String> {
        match self {
            Backend::None => Vec::new(),
            Backend::Local(l) => l.stop_all(),
        }
    }
}

/// Everything one cell has produced so far.
#[derive(Debug, Default)]
pub struct CellRecord {
    pub status: Option<CellStatus>,
    pub events: Vec<String>,
    /// One entry per repetition.
    pub runs: Vec<CellStats>,
    pub samples: Vec<SystemSample>,
    /// Extra files for the cell folder (scrape outputs).
    pub files: Vec<(String, Vec<u8>)>,
    pub failed: Option<String>,
    pub degraded: Option<String>,
    pub started: Option<String>,
    /// Measured by an earlier run that is being resumed: not run again.
    pub prior: Option<crate::steps::analyze::SummaryRow>,
    /// Left out by `--only`.
    pub excluded: bool,
}

pub struct RunState {
    pub plan: Arc<Plan>,
    pub dir: RunDir,
    pub manifest: Mutex<Manifest>,
    pub backend: Mutex<Backend>,
    pub cells: Mutex<HashMap<usize, CellRecord>>,
    pub run_events: Mutex<Vec<String>>,
    pub cancel: Arc<AtomicBool>,
    pub secrets: Vec<String>,
    pub analysis: Mutex<Option<crate::steps::analyze::AnalysisResult>>,
    /// Set by the gate: at least one threshold failed.
    pub thresholds_failed: AtomicBool,
}

impl RunState {
    pub fn cancelled(&self) -> bool {
        self.cancel.load(Ordering::Relaxed)
    }

    pub fn redact(&self, text: &str) -> String {
        crate::plan::template::redact(text, &self.secrets)
    }

    pub async fn cell_event(&self, cell: usize, line: impl Into<String>) {
        let line = self.redact(&line.into());
        let stamped = format!(
            "{} {line}",
            crate::results::timestamp(std::time::SystemTime::now())
        );
        self.cells
            .lock()
            .await
            .entry(cell)
            .or_default()
            .events
            .push(stamped);
    }

    pub async fn run_event(&self, line: impl Into<String>) {
        let line = self.redact(&line.into());
        let stamped = format!(
            "{} {line}",
            crate::results::timestamp(std::time::SystemTime::now())
        );
        self.run_events.lock().await.push(stamped);
    }
}
