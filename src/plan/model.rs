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
use crate::base::units::ThinkTime;

#[derive(Clone)]
pub struct Plan {
    pub(crate) name: String,
    pub(crate) description: String,
    pub(crate) file: PathBuf,
    /// The plan's folder: relative paths resolve against it.
    pub(crate) dir: PathBuf,
    pub(crate) source: Arc<str>,
    /// FNV-1a of the plan text and overrides.
    pub(crate) hash: String,
    pub(crate) axes: Vec<String>,
    pub(crate) cells: Vec<Cell>,
    pub(crate) checks: Vec<Check>,
    pub(crate) thresholds: Vec<Threshold>,
    pub(crate) graph: StepGraph,
    /// Rendered configs of plan-level declared steps, by id.
    pub(crate) steps: IndexMap<String, StepConfig>,
    pub(crate) analysis: Analysis,
    /// `[search]`: the cells are the outer loop of a capacity search.
    pub(crate) search: Option<Search>,
    /// `[cell] order`: see [`Plan::visits`].
    pub(crate) order: super::raw::CellOrder,
    pub(crate) reports: Vec<ReportSpec>,
    pub(crate) scrapes: Vec<Scrape>,
    /// `[tls]`, for every https:// URL.
    pub(crate) tls: Option<crate::tls::TlsSettings>,
    pub(crate) templates: Arc<Templates>,
    /// What templates see as `run`.
    pub(crate) run_value: minijinja::Value,
    /// Each cell's rendered `vars`, for templates rendered while running.
    pub(crate) cell_vars: Vec<minijinja::Value>,
    /// What each axis sets, from the fields that read it.
    pub(crate) roles: super::Roles,
}

impl Plan {
    /// What each axis sets: load, replicas or workers, as the plan's fields
    /// read it (never from its name).
    pub fn roles(&self) -> &super::Roles {
        &self.roles
    }

    /// Values read from `env` by any template: never written to outputs.
    pub(crate) fn secrets(&self) -> Vec<String> {
        self.templates.env_vars.secrets()
    }

    /// The template context of a cell of this plan (or a search probe of
    /// one); `replica` adds `replica` and `port`.
    pub(crate) fn cell_context(
        &self,
        cell: &Cell,
        replica: Option<(usize, u16)>,
    ) -> minijinja::Value {
        let c = cell.index;
        let base = minijinja::context! {
            matrix => minijinja::Value::from(minijinja::value::Serde(&cell.matrix)),
            env => self.templates.env_value(),
            cell => minijinja::context! { id => cell.id.clone(), index => c, number => c + 1, count => self.cells.len() },
            run => self.run_value.clone(),
            vars => self.cell_vars.get(c).cloned().unwrap_or_default(),
        };
        match replica {
            Some((r, port)) => minijinja::context! { replica => r, port => port, ..base },
            None => base,
        }
    }

    /// Estimated wall time of the whole run, without scaling and readiness.
    pub(crate) fn estimated_wall_time(&self) -> Duration {
        self.wall_time_of(self.cells.iter())
    }

    /// Warm-up, measurement and cool-down of these cells, plus one baseline
    /// per distinct system configuration among them.
    pub(crate) fn wall_time_of<'a>(&self, cells: impl Iterator<Item = &'a Cell>) -> Duration {
        let mut systems = std::collections::HashSet::new();
        let mut total = Duration::ZERO;
        for c in cells {
            total = total.saturating_add(c.wall_time());
            if c.load.engine == super::spanned::Engine::Native && systems.insert(c.system_key()) {
                total = total.saturating_add(self.analysis.baseline);
            }
        }
        total
    }
}

impl Plan {
    /// The cell a summary row belongs to: a cell of the plan, or the outer
    /// cell of a search probe.
    pub(crate) fn cell_of_row(&self, id: &str) -> Option<&Cell> {
        self.cells.iter().find(|c| c.id == id).or_else(|| {
            let over = self.search.as_ref()?.over.as_str();
            let (outer, _) = id.rsplit_once(&format!("_{over}"))?;
            self.cells.iter().find(|c| c.id == outer)
        })
    }

    /// The axes of summary rows: the matrix axes, then the searched knob.
    pub(crate) fn row_axes(&self) -> Vec<String> {
        let mut axes = self.axes.clone();
        if let Some(s) = &self.search {
            axes.push(s.over.as_str().to_string());
        }
        axes
    }
}

/// `[search]`, resolved.
#[derive(Debug, Clone, Serialize)]
pub struct Search {
    pub(crate) over: super::raw::SearchOver,
    pub(crate) from: u64,
    pub(crate) to: u64,
    /// A fraction: 0.05 for "5%".
    pub(crate) tolerance: f64,
    /// Metric -> limit in the metric's unit, like `[analysis] slo`.
    pub(crate) slo: IndexMap<String, f64>,
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
    pub(crate) id: String,
    pub(crate) index: usize,
    pub(crate) matrix: CellValues,
    pub(crate) timing: Timing,
    pub(crate) system: System,
    pub(crate) load: Load,
    /// Rendered configs of per-cell declared steps, by id.
    pub(crate) steps: IndexMap<String, StepConfig>,
    /// A search probe: the value of the searched knob.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) probe: Option<u64>,
}

impl Cell {
    /// Identifies the cell's resolved configuration (secrets excluded: header
    /// values are not serialized).
    pub(crate) fn hash(&self) -> String {
        fnv1a(&serde_json::to_vec(self).unwrap_or_default())
    }

    pub(crate) fn wall_time(&self) -> Duration {
        let t = &self.timing;
        let once = t
            .warmup
            .saturating_add(self.measured_duration())
            .saturating_add(t.cooldown);
        once.saturating_mul(u32::try_from(t.repeat).unwrap_or(u32::MAX))
    }

    /// Identifies the system under test's configuration: cells that share it
    /// share a baseline.
    pub(crate) fn system_key(&self) -> String {
        fnv1a(&serde_json::to_vec(&self.system).unwrap_or_default())
    }

    /// Mean think time between a user's requests, in seconds (closed model).
    pub(crate) fn think_mean_s(&self) -> Option<f64> {
        match &self.load.model {
            LoadModel::Closed { think_time, .. } => {
                Some((think_time.min + think_time.max).as_secs_f64() / 2.0)
            }
            LoadModel::Open { .. } => None,
        }
    }

    /// The most RPS the cell's load could produce had the system never
    /// queued: users / (mean think + baseline latency), or the arrival rate.
    pub(crate) fn offered_rps(&self, baseline_ms: f64) -> Option<f64> {
        match &self.load.model {
            LoadModel::Closed { users, .. } => {
                let cycle = self.think_mean_s()? + baseline_ms / 1000.0;
                (cycle > 0.0).then(|| *users as f64 / cycle)
            }
            LoadModel::Open { stages, .. } => {
                let total: f64 = stages.iter().map(|s| s.duration.as_secs_f64()).sum();
                match stages.as_slice() {
                    [one] => Some(one.rate),
                    // Stages: the time-weighted mean rate.
                    many if total > 0.0 => Some(
                        many.iter()
                            .map(|s| s.rate * s.duration.as_secs_f64())
                            .sum::<f64>()
                            / total,
                    ),
                    _ => None,
                }
            }
        }
    }

    /// The closed model's offered RPS with a think time known otherwise
    /// (measured): users / (think + baseline latency).
    pub(crate) fn offered_rps_with(&self, think_s: f64, baseline_ms: f64) -> Option<f64> {
        let users = self.users()?;
        let cycle = think_s + baseline_ms / 1000.0;
        (cycle > 0.0).then(|| users as f64 / cycle)
    }

    /// The closed model's users.
    pub(crate) fn users(&self) -> Option<u64> {
        match &self.load.model {
            LoadModel::Closed { users, .. } => Some(*users),
            LoadModel::Open { .. } => None,
        }
    }

    /// Upper bound of what the closed model's users can send with their
    /// think time alone (no latency): what `plan` shows.
    pub(crate) fn offered_ceiling(&self) -> Option<f64> {
        match &self.load.model {
            LoadModel::Closed { users, .. } => {
                let think = self.think_mean_s()?;
                (think > 0.0).then(|| *users as f64 / think)
            }
            LoadModel::Open { .. } => None,
        }
    }

    /// The measured window: the cell duration, or the sum of open-model stages.
    pub(crate) fn measured_duration(&self) -> Duration {
        match &self.load.model {
            LoadModel::Open { stages, .. } if stages.len() > 1 => stages
                .iter()
                .fold(Duration::ZERO, |sum, s| sum.saturating_add(s.duration)),
            _ => self.timing.duration,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub(crate) struct Timing {
    pub(crate) duration: Duration,
    pub(crate) warmup: Duration,
    pub(crate) cooldown: Duration,
    pub(crate) repeat: u64,
}

#[derive(Debug, Clone, Serialize)]
pub(crate) struct System {
    pub(crate) backend: Backend,
    pub(crate) replicas: u64,
    /// local: argv templates, rendered per replica with `port` and `replica`.
    pub(crate) command: Vec<String>,
    pub(crate) env: IndexMap<String, String>,
    pub(crate) compose: Option<Compose>,
    pub(crate) docker: Option<Docker>,
    pub(crate) swarm_service: Option<String>,
    pub(crate) ready: Ready,
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
    /// The plan's `[tls]`, for an https URL.
    #[serde(skip)]
    pub tls: Option<crate::tls::TlsSettings>,
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
pub(crate) struct Load {
    pub(crate) engine: Engine,
    pub(crate) base_url: Option<String>,
    pub(crate) model: LoadModel,
    pub(crate) workers: u64,
    pub(crate) timeout: Duration,
    pub(crate) requests: Vec<Request>,
    pub(crate) locust: Option<Locust>,
    /// Native engine: HTTP/1.1 or HTTP/2.
    pub(crate) http: super::spanned::HttpVersion,
    /// HTTP/2: connections all users' streams share; none: one per user.
    pub(crate) connections: Option<u64>,
    /// Arrivals from a trace (open model); its span is the measured window.
    pub(crate) trace: Option<crate::plan::data::Trace>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum LoadModel {
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
pub(crate) struct Stage {
    pub(crate) rate: f64,
    pub(crate) duration: Duration,
}

#[derive(Debug, Clone, Serialize)]
pub(crate) struct Request {
    pub(crate) name: String,
    pub(crate) method: HttpMethod,
    pub(crate) path: String,
    pub(crate) weight: u64,
    /// Rendered; may hold secrets, so never serialized.
    #[serde(skip)]
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) header_names: Vec<String>,
    /// The body template (rendered afresh for each body variant).
    pub(crate) body: Option<String>,
    pub(crate) expect_status: Option<u16>,
    /// Time the response event by event (native engine).
    pub(crate) stream: Option<crate::base::request::StreamMode>,
    /// Rows for `row.*` in the path, headers and body.
    pub(crate) data: Option<crate::plan::data::RequestData>,
    /// The path template when it names `row` (`path` is its first row's).
    pub(crate) row_path: Option<String>,
    /// Name and template of each header that names `row`, rendered per row
    /// (its entry in `headers` is its first row's).
    #[serde(skip)]
    pub(crate) row_headers: Vec<(String, String)>,
}

#[derive(Debug, Clone, Serialize)]
pub(crate) struct Locust {
    pub(crate) locustfile: PathBuf,
    pub(crate) tags: Vec<String>,
    pub(crate) user_classes: Vec<String>,
    pub(crate) args: Vec<String>,
    pub(crate) workers_at: WorkersAt,
    pub(crate) master_bind: String,
}

#[derive(Debug, Clone, Serialize)]
pub(crate) struct Check {
    pub(crate) name: String,
    pub(crate) kind: CheckKind,
    pub(crate) timeout: Duration,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum CheckKind {
    Http {
        url: String,
        status: u16,
        method: HttpMethod,
        /// The plan's `[tls]`, for an https URL.
        #[serde(skip)]
        tls: Option<crate::tls::TlsSettings>,
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
    pub(crate) kind: StepKind,
    pub(crate) run: Vec<String>,
    pub(crate) shell: bool,
    pub(crate) timeout: Duration,
    pub(crate) duration: Option<Duration>,
    pub(crate) url: Option<String>,
    pub(crate) output: Option<String>,
    pub(crate) template: Option<PathBuf>,
}

#[derive(Debug, Clone)]
pub(crate) struct Threshold {
    pub(crate) name: String,
    pub(crate) expr: Expr,
    pub(crate) filter: Option<(String, Expr)>,
    pub(crate) scope: Scope,
    pub(crate) abort: bool,
}

#[derive(Debug, Clone, Default, Serialize)]
pub(crate) struct Analysis {
    /// Metric -> limit in the metric's unit (ms, percent, per second).
    pub(crate) slo: IndexMap<String, f64>,
    pub(crate) cost: Option<Cost>,
    /// One user's unloaded measurement per system configuration; zero: none.
    pub(crate) baseline: Duration,
    /// `ab`: the axis whose values are compared against its first.
    pub(crate) ab: Option<AbAxis>,
}

/// `[analysis] ab`: the compared axis and its first value, the baseline.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct AbAxis {
    pub(crate) axis: String,
    pub(crate) baseline: super::matrix::MatrixValue,
}

/// The per-request objectives (`ttft`, `itl`, `e2e`) of an SLO.
pub(crate) fn stream_slo_of(slo: &IndexMap<String, f64>) -> crate::base::request::StreamSlo {
    let limit = |k: &str| {
        slo.get(k)
            .filter(|v| v.is_finite() && **v >= 0.0)
            .and_then(|ms| Duration::try_from_secs_f64(ms / 1000.0).ok())
    };
    crate::base::request::StreamSlo {
        ttft: limit("ttft"),
        itl: limit("itl"),
        e2e: limit("e2e"),
    }
}

impl Plan {
    /// What the engine judges every request by: the search's SLO with
    /// `[search]`, else `[analysis] slo`.
    pub(crate) fn engine_slo(&self) -> crate::base::request::StreamSlo {
        match &self.search {
            Some(s) => stream_slo_of(&s.slo),
            None => self.analysis.stream_slo(),
        }
    }
}

/// The fail rate (percent) above which a cell counts as failing when the
/// SLO names none.
pub(crate) const DEFAULT_FAIL_LIMIT_PCT: f64 = 1.0;

impl Analysis {
    /// The per-request objectives of the SLO, for the engine to judge.
    pub(crate) fn stream_slo(&self) -> crate::base::request::StreamSlo {
        stream_slo_of(&self.slo)
    }

    /// The SLO's fail rate in percent, or 1%.
    pub(crate) fn fail_limit_pct(&self) -> f64 {
        ["fail_rate", "fail_pct"]
            .iter()
            .find_map(|k| self.slo.get(*k).copied())
            .filter(|v| v.is_finite())
            .unwrap_or(DEFAULT_FAIL_LIMIT_PCT)
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Cost {
    pub per_replica_hour: f64,
    pub per_worker_hour: f64,
}

#[derive(Debug, Clone, Serialize)]
pub(crate) struct ReportSpec {
    pub(crate) template: ReportTemplate,
    pub(crate) output: String,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ReportTemplate {
    File(PathBuf),
    /// One of the templates embedded in the binary, by file name.
    Embedded(String),
}

/// FNV-1a of `bytes`, as 16 hex digits: plan and cell hashes.
pub(crate) fn fnv1a(bytes: &[u8]) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016x}")
}

/// A `[[scrape]]` section, rendered.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Scrape {
    pub name: String,
    pub target: ScrapeTarget,
    pub interval: Duration,
    pub series: Vec<Series>,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum ScrapeTarget {
    /// Appended to every replica endpoint.
    Path(String),
    /// One fixed URL.
    Url(String),
}

/// One summary column computed from scraped samples.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Series {
    pub metric: String,
    pub agg: Agg,
    pub column: String,
    /// Request names the metric covers; empty: every request.
    pub names: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Agg {
    /// Counter increase per second, summed over replicas.
    Rate,
    Mean,
    Max,
    Min,
    /// A quantile (0..1) of a histogram's buckets merged over replicas.
    Quantile(f64),
}

impl Agg {
    pub(crate) const NAMES: &'static [&'static str] =
        &["rate", "mean", "max", "min", "p50", "p90", "p95", "p99"];

    pub fn parse(s: &str) -> Option<Agg> {
        Some(match s {
            "rate" => Agg::Rate,
            "mean" => Agg::Mean,
            "max" => Agg::Max,
            "min" => Agg::Min,
            "p50" => Agg::Quantile(0.5),
            "p90" => Agg::Quantile(0.9),
            "p95" => Agg::Quantile(0.95),
            "p99" => Agg::Quantile(0.99),
            _ => return None,
        })
    }
}

impl Series {
    /// Quantiles of a histogram in seconds are reported in milliseconds, so
    /// they compare with the client's latency.
    pub(crate) fn in_seconds(&self) -> bool {
        matches!(self.agg, Agg::Quantile(_)) && self.metric.ends_with("_seconds")
    }

    pub fn kind(&self) -> crate::metrics::MetricKind {
        use crate::metrics::MetricKind;
        match self.agg {
            Agg::Rate => MetricKind::Rate,
            Agg::Quantile(_)
                if self.in_seconds()
                    || self.metric.ends_with("_milliseconds")
                    || self.metric.ends_with("_ms") =>
            {
                MetricKind::Latency
            }
            _ => MetricKind::Plain,
        }
    }
}

impl Plan {
    /// The summary columns `[[scrape]]` adds, in plan order.
    pub(crate) fn scrape_columns(&self) -> Vec<(String, crate::metrics::MetricKind)> {
        self.scrapes
            .iter()
            .flat_map(|s| s.series.iter().map(|x| (x.column.clone(), x.kind())))
            .collect()
    }
}
