//! The plan after validation: every cell's templates rendered and every value
//! typed. This is what the runner executes.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use indexmap::IndexMap;
use serde::Serialize;

use super::expr::Expr;
use super::graph::StepGraph;
use super::matrix::CellValues;
use super::raw::{Scope, StepKind};
use super::spanned::{Backend, Engine, HttpMethod, WorkersAt};
use super::template::Templates;
use super::units::ThinkTime;

#[derive(Clone)]
pub struct Plan {
    pub name: String,
    pub description: String,
    pub file: PathBuf,
    /// The plan's folder: relative paths resolve against it.
    pub dir: PathBuf,
    pub source: Arc<str>,
    /// FNV-1a of the plan text and overrides.
    pub hash: String,
    pub axes: Vec<String>,
    pub cells: Vec<Cell>,
    pub checks: Vec<Check>,
    pub thresholds: Vec<Threshold>,
    pub graph: StepGraph,
    /// Rendered configs of plan-level declared steps, by id.
    pub steps: IndexMap<String, StepConfig>,
    pub analysis: Analysis,
    pub reports: Vec<ReportSpec>,
    pub templates: Arc<Templates>,
    /// What templates see as `run`.
    pub run_value: minijinja::Value,
    /// Each cell's rendered `vars`, for templates rendered while running.
    pub cell_vars: Vec<minijinja::Value>,
}

impl Plan {
    /// Values read from `env` by any template: never written to outputs.
    pub fn secrets(&self) -> Vec<String> {
        self.templates.env_vars.secrets()
    }

    /// The template context of cell `c`; `replica` adds `replica` and `port`.
    pub fn cell_context(&self, c: usize, replica: Option<(usize, u16)>) -> minijinja::Value {
        let cell = &self.cells[c];
        let base = minijinja::context! {
            matrix => minijinja::Value::from(minijinja::value::Serde(&cell.matrix)),
            env => self.templates.env_value(),
            cell => minijinja::context! { id => cell.id.clone(), index => c, number => c + 1, count => self.cells.len() },
            run => self.run_value.clone(),
            vars => self.cell_vars[c].clone(),
        };
        match replica {
            Some((r, port)) => minijinja::context! { replica => r, port => port, ..base },
            None => base,
        }
    }

    /// Estimated wall time of the whole run, without scaling and readiness.
    pub fn estimated_wall_time(&self) -> Duration {
        self.cells.iter().map(Cell::wall_time).sum()
    }
}

impl std::fmt::Debug for Plan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plan")
            .field("name", &self.name)
            .field("cells", &self.cells.len())
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Cell {
    pub id: String,
    pub index: usize,
    pub matrix: CellValues,
    pub timing: Timing,
    pub system: System,
    pub load: Load,
    /// Rendered configs of per-cell declared steps, by id.
    pub steps: IndexMap<String, StepConfig>,
}

impl Cell {
    /// Identifies the cell's resolved configuration (secrets excluded: header
    /// values are not serialized).
    pub fn hash(&self) -> String {
        super::resolve::fnv1a(&serde_json::to_vec(self).unwrap_or_default())
    }

    pub fn wall_time(&self) -> Duration {
        let t = &self.timing;
        (t.warmup + self.measured_duration() + t.cooldown) * t.repeat as u32
    }

    /// The measured window: the cell duration, or the sum of open-model stages.
    pub fn measured_duration(&self) -> Duration {
        match &self.load.model {
            LoadModel::Open { stages, .. } if stages.len() > 1 => {
                stages.iter().map(|s| s.duration).sum()
            }
            _ => self.timing.duration,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Timing {
    pub duration: Duration,
    pub warmup: Duration,
    pub cooldown: Duration,
    pub repeat: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct System {
    pub backend: Backend,
    pub replicas: u64,
    /// local: argv templates, rendered per replica with `port` and `replica`.
    pub command: Vec<String>,
    pub env: IndexMap<String, String>,
    pub compose: Option<Compose>,
    pub docker: Option<Docker>,
    pub swarm_service: Option<String>,
    pub ready: Ready,
}

#[derive(Debug, Clone, Serialize)]
pub struct Compose {
    pub file: PathBuf,
    pub service: String,
    pub project: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Docker {
    pub image: String,
    pub service: String,
    pub command: Option<Vec<String>>,
    pub env: IndexMap<String, String>,
    pub port: Option<u16>,
    pub cpus: Option<f64>,
    pub memory: Option<u64>,
    pub network: Option<String>,
    pub keep: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct Ready {
    pub target: ReadyTarget,
    pub timeout: Duration,
    pub interval: Duration,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ReadyTarget {
    /// Poll one URL until 2xx.
    Url(String),
    /// Poll this path on every replica endpoint until 2xx.
    Path(String),
    /// Every replica endpoint accepts TCP connections.
    Tcp,
    /// Nothing to wait for (backend none without a ready URL).
    Nothing,
}

#[derive(Debug, Clone, Serialize)]
pub struct Load {
    pub engine: Engine,
    pub base_url: Option<String>,
    pub model: LoadModel,
    pub workers: u64,
    pub timeout: Duration,
    pub requests: Vec<Request>,
    pub locust: Option<Locust>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LoadModel {
    Closed {
        users: u64,
        /// None: every user starts at once.
        spawn_rate: Option<f64>,
        think_time: ThinkTime,
    },
    Open {
        stages: Vec<Stage>,
        max_in_flight: u64,
    },
}

#[derive(Debug, Clone, Serialize)]
pub struct Stage {
    pub rate: f64,
    pub duration: Duration,
}

#[derive(Debug, Clone, Serialize)]
pub struct Request {
    pub name: String,
    pub method: HttpMethod,
    pub path: String,
    pub weight: u64,
    /// Rendered; may hold secrets, so never serialized.
    #[serde(skip)]
    pub headers: Vec<(String, String)>,
    pub header_names: Vec<String>,
    /// The body template (rendered afresh for each body variant).
    pub body: Option<String>,
    pub expect_status: Option<u16>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Locust {
    pub locustfile: PathBuf,
    pub tags: Vec<String>,
    pub user_classes: Vec<String>,
    pub args: Vec<String>,
    pub workers_at: WorkersAt,
    pub master_bind: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub name: String,
    pub kind: CheckKind,
    pub timeout: Duration,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckKind {
    Http {
        url: String,
        status: u16,
        method: HttpMethod,
    },
    Disk {
        path: PathBuf,
        min_free: u64,
    },
    Docker {
        service: String,
        min_running: u64,
    },
    Command {
        argv: Vec<String>,
        shell: bool,
        exit: i32,
    },
}

/// A declared step's rendered settings.
#[derive(Debug, Clone, Serialize)]
pub struct StepConfig {
    pub kind: StepKind,
    pub run: Vec<String>,
    pub shell: bool,
    pub timeout: Duration,
    pub duration: Option<Duration>,
    pub url: Option<String>,
    pub output: Option<String>,
    pub template: Option<PathBuf>,
}

#[derive(Debug, Clone)]
pub struct Threshold {
    pub index: usize,
    pub name: String,
    pub text: String,
    pub expr: Expr,
    pub filter: Option<(String, Expr)>,
    pub scope: Scope,
    pub abort: bool,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Analysis {
    /// Metric -> limit in the metric's unit (ms, percent, per second).
    pub slo: IndexMap<String, f64>,
    pub cost: Option<Cost>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Cost {
    pub per_replica_hour: f64,
    pub per_worker_hour: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct ReportSpec {
    pub template: ReportTemplate,
    pub output: String,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ReportTemplate {
    File(PathBuf),
    /// One of the templates embedded in the binary, by file name.
    Embedded(String),
}
