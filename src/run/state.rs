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
use crate::system::compose::ComposeBackend;
use crate::system::docker::DockerBackend;
use crate::system::local::LocalBackend;
use crate::system::swarm::SwarmBackend;

/// The running system under test.
#[derive(Debug, Default)]
pub enum Backend {
    #[default]
    None,
    Local(LocalBackend),
    Docker(DockerBackend),
    Compose(ComposeBackend),
    Swarm(SwarmBackend),
}

impl Backend {
    pub fn endpoints(&self) -> Vec<String> {
        match self {
            Backend::None => Vec::new(),
            Backend::Local(l) => l.endpoints(),
            Backend::Docker(d) => d.endpoints(),
            Backend::Compose(c) => c.endpoints(),
            Backend::Swarm(s) => s.endpoints(),
        }
    }

    /// A replica that died since the last call.
    pub async fn exited(&mut self) -> Option<String> {
        match self {
            Backend::None => None,
            Backend::Local(l) => l.exited().map(|e| e.to_string()),
            Backend::Docker(d) => d.exited().await,
            Backend::Compose(c) => c.exited().await,
            Backend::Swarm(s) => s.exited().await,
        }
    }

    /// Container backends sample through the Engine API; local replicas are
    /// sampled from /proc by the load step itself.
    pub async fn sample_containers(&mut self, t: f64) -> Vec<SystemSample> {
        match self {
            Backend::Docker(d) => d.sample(t).await,
            Backend::Compose(c) => c.sample(t).await,
            Backend::Swarm(s) => s.sample(t).await,
            Backend::None | Backend::Local(_) => Vec::new(),
        }
    }

    pub async fn stop_all(&mut self) -> Vec<String> {
        match self {
            Backend::None => Vec::new(),
            Backend::Local(l) => l.stop_all(),
            Backend::Docker(d) => d.stop_all().await,
            Backend::Compose(c) => c.stop_all().await,
            Backend::Swarm(s) => s.stop_all().await,
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
