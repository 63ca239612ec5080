//! The executor: one function per step kind. A step gets what it needs from
//! the dispatcher as a typed input and hands back a typed output; it never
//! reads another step's results and never decides what runs next.

pub mod analyze;
pub mod check;
pub mod exec;
pub mod gate;
pub mod load;
mod rows;
pub mod scale;
mod stall;

use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use futures_util::future::LocalBoxFuture;
use tokio::sync::Mutex;

use crate::analysis::AnalysisResult;
use crate::engine::{CancelToken, CellStats};
use crate::plan::graph::Step;
use crate::plan::raw::StepKind;
use crate::plan::{Cell, Plan};
use crate::report::ReportError;
use crate::results::record::Baseline;
use crate::results::{Manifest, ResultsError, RunDir, SummaryRow};
use crate::system::{Backend, BackendError, SystemSample};

/// What every step may use: the plan, the results folder, the stop flag and
/// the system under test (a resource, not run data).
pub struct StepContext {
    pub plan: Arc<Plan>,
    pub dir: RunDir,
    pub cancel: CancelToken,
    pub backend: Mutex<Option<Box<dyn Backend>>>,
    /// Where the load step reports its live figures; the dispatcher
    /// records them (a step writes no shared state).
    pub progress: tokio::sync::mpsc::UnboundedSender<LoadProgress>,
}

/// A live tick of the load running now, as the load step reports it. It
/// names no cell: the dispatcher runs one cell at a time and knows which.
#[derive(Debug, Clone)]
pub struct LoadProgress {
    pub tick: crate::engine::ProgressTick,
    /// Warm-up, and warm-up plus measured window, in seconds.
    pub warmup_secs: f64,
    pub total_secs: f64,
    pub repetition: u64,
}

impl StepContext {
    pub fn cancelled(&self) -> bool {
        self.cancel.is_cancelled()
    }

    /// A console line, secrets masked.
    pub fn say(&self, line: &str) {
        eprintln!("{}", self.dir.redact(line));
    }

    /// Stops what the run started: called once, after the last step.
    pub async fn shutdown(&self) -> Vec<String> {
        match self.backend.lock().await.as_mut() {
            Some(b) => b.stop_all().await,
            None => Vec::new(),
        }
    }
}

/// What the dispatcher hands a step.
#[derive(Debug, Clone, Default)]
pub enum StepInput {
    #[default]
    None,
    /// analyze: one row per cell of the plan, pending ones included.
    Rows(Vec<SummaryRow>),
    /// load: the baseline already measured for the cell's system
    /// configuration, if any, and the one repetition to measure (`None`:
    /// all of the cell's, back to back).
    Load {
        baseline: Option<Baseline>,
        repetition: Option<u64>,
    },
    /// report: the manifest as it stands, and the analysis (or, when no
    /// analyze step ran before it, the rows to analyze).
    Report {
        manifest: Box<Manifest>,
        analysis: Analyzed,
    },
    /// gate: the analysis, and how many cells were measured and are pending.
    Gate {
        analysis: Analyzed,
        measured: usize,
        pending: usize,
    },
}

/// The run's analysis, or the rows to compute it from.
#[derive(Debug, Clone)]
pub enum Analyzed {
    Done(Box<AnalysisResult>),
    Rows(Vec<SummaryRow>),
}

impl Analyzed {
    pub fn get(self, plan: &Plan) -> AnalysisResult {
        match self {
            Analyzed::Done(a) => *a,
            Analyzed::Rows(rows) => crate::analysis::analyze_run(plan, rows),
        }
    }
}

/// One repetition's measurement of a cell.
#[derive(Debug, Clone)]
pub struct Measurement {
    pub stats: CellStats,
    pub samples: Vec<SystemSample>,
    /// A replica died while it ran.
    pub degraded: Option<String>,
    /// `[[scrape]]` samples of the measured window.
    pub scraped: Vec<crate::scrape::ScrapeSample>,
    /// `[[scrape]]` columns that could be computed.
    pub server: indexmap::IndexMap<String, f64>,
}

/// What a step produced; the dispatcher records it.
#[derive(Debug)]
pub enum StepOutput {
    Done,
    /// load: every repetition of the cell measured (or the one asked for),
    /// and the baseline it was judged by.
    Measured {
        reps: Vec<Measurement>,
        baseline: Option<Baseline>,
    },
    /// A file for the cell's folder.
    CellFile {
        name: String,
        bytes: Vec<u8>,
    },
    Analysis(Box<AnalysisResult>),
    Reported,
    /// gate: how many threshold checks failed.
    Verdict {
        failed: usize,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum StepError {
    #[error("interrupted")]
    Interrupted,
    /// Some repetitions measured before the stop request.
    #[error("interrupted")]
    InterruptedWith(Vec<Measurement>),
    #[error("{0}")]
    Failed(String),
    #[error(transparent)]
    Backend(#[from] BackendError),
    #[error(transparent)]
    Results(#[from] ResultsError),
    #[error(transparent)]
    Report(#[from] ReportError),
    #[error(transparent)]
    Engine(#[from] crate::engine::EngineError),
    #[error(transparent)]
    Locust(#[from] crate::engine::locust::LocustError),
    #[error(transparent)]
    Command(#[from] crate::system::process::CommandError),
}

impl StepError {
    pub fn failed(message: impl Into<String>) -> Self {
        StepError::Failed(message.into())
    }

    pub(crate) fn is_interrupt(&self) -> bool {
        matches!(
            self,
            StepError::Interrupted
                | StepError::InterruptedWith(_)
                | StepError::Command(crate::system::process::CommandError::Interrupted)
                | StepError::Report(ReportError::Interrupted(_))
        )
    }

    /// The figures a step measured before it failed, if any.
    pub fn partial(&mut self) -> Vec<Measurement> {
        match self {
            StepError::InterruptedWith(m) => std::mem::take(m),
            _ => Vec::new(),
        }
    }

    /// The results folder can no longer be written: nothing more can be kept.
    pub(crate) fn is_fatal(&self) -> bool {
        matches!(self, StepError::Results(_))
    }
}

/// Event lines a step produced, stamped as they happen.
#[derive(Debug, Default)]
pub struct Events(pub Vec<String>);

impl Events {
    pub fn push(&mut self, line: impl Into<String>) {
        let stamped = format!(
            "{} {}",
            crate::results::timestamp(SystemTime::now()),
            line.into()
        );
        self.0.push(stamped);
    }
}

/// A step's result and the events it logged on the way.
#[derive(Debug)]
pub(crate) struct StepReport {
    pub result: Result<StepOutput, StepError>,
    pub events: Vec<String>,
}

/// Runs one node of the step graph. The dispatcher depends on this trait, so
/// it can be driven by a stand-in in tests.
pub(crate) trait Executor {
    /// `cell`: the cell a per-cell node belongs to (a cell of the plan, or a
    /// search probe of one).
    fn execute(
        &self,
        step: &Step,
        cell: Option<&Cell>,
        input: StepInput,
    ) -> LocalBoxFuture<'static, StepReport>;
}

/// The executor of a real run.
pub(crate) struct RunExecutor {
    pub ctx: Rc<StepContext>,
}

impl Executor for RunExecutor {
    fn execute(
        &self,
        step: &Step,
        cell: Option<&Cell>,
        input: StepInput,
    ) -> LocalBoxFuture<'static, StepReport> {
        let ctx = self.ctx.clone();
        let step = step.clone();
        let cell = cell.cloned();
        Box::pin(async move {
            let mut events = Events::default();
            let result = execute(&ctx, &step, cell.as_ref(), input, &mut events).await;
            StepReport {
                result,
                events: events.0,
            }
        })
    }
}

async fn execute(
    ctx: &StepContext,
    step: &Step,
    cell: Option<&Cell>,
    input: StepInput,
    events: &mut Events,
) -> Result<StepOutput, StepError> {
    if ctx.cancelled() {
        return Err(StepError::Interrupted);
    }
    let plan = &ctx.plan;
    let declared = || match cell {
        Some(c) => c.steps.get(&step.id).cloned(),
        None => plan.steps.get(&step.id).cloned(),
    };
    match (step.kind, cell) {
        (StepKind::Check, _) => check::preflight(ctx, events).await,
        (StepKind::Scale, Some(c)) => scale::scale(ctx, c, events).await,
        (StepKind::Ready, Some(c)) => scale::ready(ctx, c, events).await,
        (StepKind::Load, Some(c)) => {
            let (known, repetition) = match input {
                StepInput::Load {
                    baseline,
                    repetition,
                } => (baseline, repetition),
                _ => (None, None),
            };
            load::load(ctx, c, known, repetition, events).await
        }
        (StepKind::Sleep, _) => {
            let duration = match (declared(), cell) {
                (Some(cfg), _) => cfg.duration.unwrap_or_default(),
                (None, Some(c)) => c.timing.cooldown,
                (None, None) => Duration::ZERO,
            };
            sleep(ctx, duration).await.map(|()| StepOutput::Done)
        }
        (StepKind::Exec, _) => {
            let cfg = declared().ok_or_else(|| StepError::failed("exec step without settings"))?;
            exec::exec(ctx, &step.id, &cfg, events).await
        }
        (StepKind::Scrape, _) => {
            let cfg =
                declared().ok_or_else(|| StepError::failed("scrape step without settings"))?;
            exec::scrape(ctx, &step.id, &cfg, cell).await
        }
        (StepKind::Analyze, _) => analyze::analyze(ctx, input),
        (StepKind::Report, _) => analyze::report(ctx, declared().as_ref(), input),
        (StepKind::Gate, _) => gate::gate(ctx, input),
        (kind, None) => Err(StepError::failed(format!(
            "a `{}` step runs per cell; set per_cell = true",
            crate::plan::graph::kind_name(kind)
        ))),
    }
}

/// Sleeps, waking early when the run is interrupted.
pub async fn sleep(ctx: &StepContext, duration: Duration) -> Result<(), StepError> {
    let deadline = tokio::time::Instant::now() + duration;
    while tokio::time::Instant::now() < deadline {
        if ctx.cancelled() {
            return Err(StepError::Interrupted);
        }
        let left = deadline - tokio::time::Instant::now();
        tokio::time::sleep(left.min(Duration::from_millis(50))).await;
    }
    Ok(())
}

/// Runs `fut` until it finishes or the run is interrupted (checked every 50 ms).
pub(crate) async fn until_cancelled<T>(
    ctx: &StepContext,
    fut: impl std::future::Future<Output = T>,
) -> Result<T, StepError> {
    let watch = async {
        while !ctx.cancelled() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    tokio::select! {
        out = fut => Ok(out),
        () = watch => Err(StepError::Interrupted),
    }
}
