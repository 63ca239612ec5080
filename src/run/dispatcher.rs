//! The dispatcher owns a run: the state of every node of the expanded step
//! graph and every figure the steps hand back. It alone decides what runs
//! next: plan-level steps as their needs allow, and exactly one cell's
//! per-cell steps at a time, in matrix order, whatever subset was selected.
//! It writes each cell's folder and the manifest as cells finish.

use std::collections::VecDeque;
use std::rc::Rc;
use std::time::SystemTime;

use petgraph::Direction;
use petgraph::graph::{DiGraph, NodeIndex};
use tokio::task::JoinSet;

use crate::analysis::AnalysisResult;
use crate::engine::CancelToken;
use crate::plan::LoadModel;
use crate::plan::Plan;
use crate::plan::graph::{self, Node};
use crate::plan::raw::{OnFailure, StepKind};
use crate::results::record::{Baseline, LoadShape};
use crate::results::{self, CellRecord, CellStatus, Manifest, RunDir, RunStatus, SummaryRow};
use crate::steps::watch::Watch;
use crate::steps::{Analyzed, Executor, StepError, StepInput, StepOutput, StepReport};

#[derive(Debug, Clone, PartialEq)]
enum NodeState {
    Pending,
    Running,
    Done,
    Failed,
    /// Not run: something it needs failed.
    Skipped,
    /// Not run: its cell is not part of this invocation (left out by
    /// `--only`, or measured by the run being resumed).
    NotSelected,
}

impl NodeState {
    fn finished(&self) -> bool {
        !matches!(self, NodeState::Pending | NodeState::Running)
    }
}

/// How the graph ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Completed,
    PreflightFailed(String),
    /// A step failed whose `on_failure` is abort, or the results folder
    /// could not be written.
    Aborted(String),
    /// An `abort = true` threshold was breached.
    ThresholdAbort(String),
    Interrupted,
}

/// Everything a run has produced: owned by the dispatcher, written by it.
#[derive(Debug)]
pub struct RunData {
    pub manifest: Manifest,
    pub cells: Vec<CellRecord>,
    pub run_events: Vec<String>,
    pub analysis: Option<AnalysisResult>,
    /// Threshold checks the gate saw fail (an abort breach counts too).
    pub thresholds_failed: usize,
    pub reported: bool,
    /// Baselines by system configuration (`Cell::system_key`).
    pub baselines: std::collections::HashMap<String, Baseline>,
}

impl RunData {
    /// One row per cell of the plan, in matrix order.
    pub fn rows(&self, plan: &Plan) -> Vec<SummaryRow> {
        plan.cells
            .iter()
            .zip(&self.cells)
            .map(|(cell, rec)| rec.summary_row(&cell.id, &cell.matrix))
            .collect()
    }

    fn event(&mut self, line: String) {
        self.run_events.push(stamp(&line));
    }
}

fn stamp(line: &str) -> String {
    format!("{} {line}", results::timestamp(SystemTime::now()))
}

pub struct Dispatcher<'a, E: Executor> {
    plan: &'a Plan,
    dir: &'a RunDir,
    cancel: CancelToken,
    executor: Rc<E>,
    g: DiGraph<Node, ()>,
    states: Vec<NodeState>,
    data: RunData,
    stop: Option<Outcome>,
    /// Cells to measure, in matrix order; `current` is the one running.
    queue: VecDeque<usize>,
    current: Option<usize>,
    watch: Option<Watch>,
}

impl<'a, E: Executor + 'static> Dispatcher<'a, E> {
    /// `selected[c]`: cell `c` is measured by this invocation.
    pub fn new(
        plan: &'a Plan,
        dir: &'a RunDir,
        data: RunData,
        selected: &[bool],
        executor: Rc<E>,
        cancel: CancelToken,
    ) -> Self {
        let g = graph::expand(&plan.graph, plan.cells.len());
        let states = g
            .node_indices()
            .map(|n| match g[n].cell {
                Some(c) if !selected[c] => NodeState::NotSelected,
                _ => NodeState::Pending,
            })
            .collect();
        Dispatcher {
            plan,
            dir,
            cancel,
            executor,
            g,
            states,
            data,
            stop: None,
            queue: (0..plan.cells.len()).filter(|c| selected[*c]).collect(),
            current: None,
            watch: None,
        }
    }

    /// Publishes cell status changes and findings to `watch`.
    pub fn with_watch(mut self, watch: Watch) -> Self {
        for (c, rec) in self.data.cells.iter().enumerate() {
            if let Some(row) = &rec.prior {
                watch.cell_known(c, row);
            }
        }
        self.watch = Some(watch);
        self
    }

    pub async fn run(mut self) -> (Outcome, RunData) {
        let mut running: JoinSet<(NodeIndex, StepReport)> = JoinSet::new();
        self.write_manifest();
        loop {
            if self.stop.is_none() && self.cancel.is_cancelled() {
                self.stop = Some(Outcome::Interrupted);
            }
            self.settle(&mut running);
            let Some(joined) = running.join_next().await else {
                break;
            };
            if let Ok((n, report)) = joined {
                self.record(n, report);
            }
        }
        // Stopped while a cell ran: it ends here, as what it got to.
        if let Some(c) = self.current.take() {
            self.finish_cell(c);
        }
        (self.stop.unwrap_or(Outcome::Completed), self.data)
    }

    /// Advances cells and starts every node that may start, until nothing changes.
    fn settle(&mut self, running: &mut JoinSet<(NodeIndex, StepReport)>) {
        loop {
            let mut changed = false;
            if let Some(c) = self.current
                && self
                    .cell_nodes(c)
                    .all(|n| self.states[n.index()].finished())
            {
                self.current = None;
                self.finish_cell(c);
                changed = true;
            }
            if self.current.is_none() && self.stop.is_none() {
                if let Some(c) = self.queue.pop_front() {
                    self.current = Some(c);
                    changed = true;
                } else if self.data.manifest.status == RunStatus::Running && self.cells_done() {
                    // Every cell is done: plan-level steps from here on see the final status.
                    self.data.manifest.status = RunStatus::Complete;
                    self.data.manifest.finished = Some(results::timestamp(SystemTime::now()));
                    self.write_manifest();
                }
            }
            if self.stop.is_none() {
                changed |= self.start_ready(running);
            }
            if !changed {
                return;
            }
        }
    }

    fn cells_done(&self) -> bool {
        self.g
            .node_indices()
            .filter(|n| self.g[*n].cell.is_some())
            .all(|n| self.states[n.index()].finished())
    }

    fn cell_nodes(&self, c: usize) -> impl Iterator<Item = NodeIndex> + '_ {
        self.g
            .node_indices()
            .filter(move |n| self.g[*n].cell == Some(c))
    }

    fn start_ready(&mut self, running: &mut JoinSet<(NodeIndex, StepReport)>) -> bool {
        let mut changed = false;
        for n in self.g.node_indices() {
            if self.states[n.index()] != NodeState::Pending {
                continue;
            }
            let node = self.g[n].clone();
            if node.cell.is_some() && node.cell != self.current {
                continue;
            }
            // A plan-level step after per-cell steps sees every cell finished,
            // whichever of their steps it names.
            if node.cell.is_none()
                && (self.current.is_some() || !self.queue.is_empty())
                && self
                    .g
                    .neighbors_directed(n, Direction::Incoming)
                    .any(|p| self.g[p].cell.is_some())
            {
                continue;
            }
            let preds: Vec<NodeIndex> = self.g.neighbors_directed(n, Direction::Incoming).collect();
            if !preds.iter().all(|p| self.states[p.index()].finished()) {
                continue;
            }
            changed = true;
            // A failure skips what depends on it in the same cell, and
            // everything after a failed plan-level step; plan-level steps
            // after per-cell ones still run.
            let blocked = preds.iter().any(|p| {
                let pn = &self.g[*p];
                let same_scope = pn.cell.is_none() || pn.cell == node.cell;
                same_scope
                    && matches!(
                        self.states[p.index()],
                        NodeState::Failed | NodeState::Skipped
                    )
            });
            if blocked {
                self.states[n.index()] = NodeState::Skipped;
                continue;
            }
            self.states[n.index()] = NodeState::Running;
            if let Some(c) = node.cell {
                self.mark_started(c);
            }
            let step = &self.plan.graph.steps[node.step];
            let input = self.input_for(step.kind, node.cell);
            let fut = self.executor.execute(step, node.cell, input);
            running.spawn_local(async move { (n, fut.await) });
        }
        changed
    }

    /// What a step of this kind needs from the run's data.
    fn input_for(&self, kind: StepKind, cell: Option<usize>) -> StepInput {
        let analysis = || match &self.data.analysis {
            Some(a) => Analyzed::Done(Box::new(a.clone())),
            None => Analyzed::Rows(self.data.rows(self.plan)),
        };
        match kind {
            StepKind::Load => StepInput::Load {
                baseline: cell.and_then(|c| {
                    self.data
                        .baselines
                        .get(&self.plan.cells[c].system_key())
                        .cloned()
                }),
            },
            StepKind::Analyze => StepInput::Rows(self.data.rows(self.plan)),
            StepKind::Report => StepInput::Report {
                manifest: Box::new(self.data.manifest.clone()),
                analysis: analysis(),
            },
            StepKind::Gate => StepInput::Gate {
                analysis: analysis(),
                measured: self
                    .data
                    .cells
                    .iter()
                    .filter(|r| r.status != CellStatus::Pending)
                    .count(),
                pending: self
                    .data
                    .cells
                    .iter()
                    .filter(|r| r.status == CellStatus::Pending)
                    .count(),
            },
            _ => StepInput::None,
        }
    }

    fn record(&mut self, n: NodeIndex, report: StepReport) {
        let node = self.g[n].clone();
        let step = &self.plan.graph.steps[node.step];
        match node.cell {
            Some(c) => self.data.cells[c].events.extend(report.events),
            None => self.data.run_events.extend(report.events),
        }
        match report.result {
            Ok(output) => {
                self.states[n.index()] = NodeState::Done;
                self.keep(node.cell, output);
            }
            Err(mut e) => {
                self.states[n.index()] = NodeState::Failed;
                if let Some(c) = node.cell {
                    let reps = e.partial();
                    self.keep(
                        Some(c),
                        StepOutput::Measured {
                            reps,
                            baseline: None,
                        },
                    );
                }
                self.failed(&node, step, e);
            }
        }
    }

    /// Records what a step produced.
    fn keep(&mut self, cell: Option<usize>, output: StepOutput) {
        match (output, cell) {
            (StepOutput::Measured { reps: ms, baseline }, Some(c)) => {
                let cell = &self.plan.cells[c];
                if let Some(b) = &baseline {
                    self.data
                        .baselines
                        .entry(cell.system_key())
                        .or_insert_with(|| b.clone());
                }
                let rec = &mut self.data.cells[c];
                if baseline.is_some() {
                    rec.shape = Some(LoadShape {
                        offered_rps: baseline.as_ref().and_then(|b| cell.offered_rps(b.mean_ms)),
                        open_model: matches!(cell.load.model, LoadModel::Open { .. }),
                        fail_limit_pct: self.plan.analysis.fail_limit_pct(),
                    });
                    rec.baseline = baseline;
                }
                for m in ms {
                    rec.runs.push(m.stats);
                    rec.samples.extend(m.samples);
                    rec.scraped.push(m.scraped);
                    rec.server.push(m.server);
                    if let Some(d) = m.degraded {
                        rec.degraded.get_or_insert(d);
                    }
                }
            }
            (StepOutput::CellFile { name, bytes }, Some(c)) => {
                self.data.cells[c].files.push((name, bytes));
            }
            (StepOutput::Analysis(a), _) => {
                if let Some(w) = &self.watch {
                    w.findings(&a.analysis.findings);
                }
                self.data.analysis = Some(*a);
            }
            (StepOutput::Reported, _) => self.data.reported = true,
            (StepOutput::Verdict { failed }, _) => self.data.thresholds_failed += failed,
            _ => {}
        }
    }

    fn failed(&mut self, node: &Node, step: &crate::plan::graph::Step, e: StepError) {
        let message = self.dir.redact(&e.to_string());
        let where_ = match node.cell {
            Some(c) => format!("step `{}` of cell {}", step.id, self.plan.cells[c].id),
            None => format!("step `{}`", step.id),
        };
        if !e.is_interrupt() {
            eprintln!("error: {where_} failed: {message}");
        }
        self.data.event(format!("{where_} failed: {message}"));
        if let Some(c) = node.cell {
            let rec = &mut self.data.cells[c];
            rec.events
                .push(stamp(&format!("step `{}` failed: {message}", step.id)));
            if rec.failed.is_none() && !e.is_interrupt() {
                rec.failed = Some(format!("{}: {message}", step.id));
            }
        }
        if self.stop.is_some() {
            return;
        }
        if e.is_interrupt() {
            self.stop = Some(Outcome::Interrupted);
        } else if e.is_fatal() {
            self.stop = Some(Outcome::Aborted(format!("{where_}: {message}")));
        } else if step.on_failure == OnFailure::Abort {
            self.stop = Some(if step.kind == StepKind::Check {
                Outcome::PreflightFailed(message)
            } else {
                Outcome::Aborted(format!("{where_}: {message}"))
            });
        }
    }

    fn mark_started(&mut self, c: usize) {
        let rec = &mut self.data.cells[c];
        if rec.started.is_some() {
            return;
        }
        let now = results::timestamp(SystemTime::now());
        rec.started = Some(now.clone());
        rec.status = CellStatus::Running;
        if let Some(e) = self.data.manifest.cells.get_mut(c) {
            e.status = CellStatus::Running;
            e.started = Some(now);
            e.finished = None;
            e.message = None;
        }
        self.write_manifest();
        if let Some(w) = &self.watch {
            w.cell_started(c);
        }
    }

    /// Writes the folder of a cell whose steps have all finished (or that the
    /// run stopped), updates the manifest, and checks abort thresholds.
    fn finish_cell(&mut self, c: usize) {
        let cell = &self.plan.cells[c];
        let interrupted = matches!(self.stop, Some(Outcome::Interrupted))
            && !self
                .cell_nodes(c)
                .all(|n| self.states[n.index()] == NodeState::Done);
        let rec = &mut self.data.cells[c];
        if rec.started.is_none() {
            return;
        }
        rec.status = rec.final_status(interrupted);
        rec.finished = Some(results::timestamp(SystemTime::now()));
        let mut message = rec.message();
        let mut status = rec.status;
        if rec.measured() && status != CellStatus::Interrupted {
            let files =
                results::record::cell_files(&cell.id, &cell.matrix, cell.load.engine.as_str(), rec);
            if let Err(e) = self.dir.write_cell(&cell.id, &files) {
                let msg = self
                    .dir
                    .redact(&format!("cannot write the files of cell {}: {e}", cell.id));
                eprintln!("error: {msg}");
                status = CellStatus::Failed;
                message = Some(msg.clone());
                self.data.cells[c].status = status;
                self.stop.get_or_insert(Outcome::Aborted(msg));
            }
        }
        if let Some(e) = self.data.manifest.cells.get_mut(c) {
            e.status = status;
            e.finished = self.data.cells[c].finished.clone();
            e.message = message.map(|m| self.dir.redact(&m));
        }
        self.write_manifest();
        if let Some(w) = &self.watch {
            let rec = &self.data.cells[c];
            let row = rec.summary_row(&cell.id, &cell.matrix);
            let mut kinds = indexmap::IndexMap::new();
            for run in &rec.runs {
                let k = &run.total.failures_by_kind;
                for (name, n) in [
                    ("status", k.status),
                    ("timeout", k.timeout),
                    ("connect", k.connect),
                    ("io", k.io),
                ] {
                    if n > 0 {
                        *kinds.entry(name.to_string()).or_insert(0) += n;
                    }
                }
            }
            let message = self
                .data
                .manifest
                .cells
                .get(c)
                .and_then(|e| e.message.clone());
            w.cell_finished(c, status, Some(&row), kinds, message);
        }
        if self.stop.is_none()
            && let Some(breach) = self.abort_breach(c)
        {
            self.stop = Some(Outcome::ThresholdAbort(breach));
        }
    }

    /// The first `abort = true` threshold cell `c` breaches, as a message.
    fn abort_breach(&mut self, c: usize) -> Option<String> {
        let plan = self.plan;
        if !plan.thresholds.iter().any(|t| t.abort) {
            return None;
        }
        let cell = &plan.cells[c];
        let row = self.data.cells[c].summary_row(&cell.id, &cell.matrix);
        if row.metrics.is_empty() {
            return None;
        }
        let results = crate::analysis::thresholds::evaluate(plan, std::slice::from_ref(&row));
        let breach = plan
            .thresholds
            .iter()
            .filter(|t| t.abort && t.scope == crate::plan::raw::Scope::Cell)
            .find_map(|t| results.iter().find(|r| r.threshold == t.name && !r.passed))?;
        self.data.thresholds_failed += 1;
        let msg = format!(
            "threshold `{}` (abort = true) breached in cell {}: {}; stopping the run",
            breach.threshold, row.cell, breach.detail
        );
        eprintln!("{}", self.dir.redact(&msg));
        self.data.event(msg.clone());
        Some(msg)
    }

    fn write_manifest(&self) {
        write_manifest(self.dir, &self.data.manifest);
    }
}

pub fn write_manifest(dir: &RunDir, manifest: &Manifest) {
    let mut text = serde_json::to_vec_pretty(manifest).unwrap_or_default();
    text.push(b'\n');
    if let Err(e) = dir.write("run.json", &text) {
        eprintln!("error: {}", dir.redact(&e.to_string()));
    }
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::time::Duration;

    use super::*;
    use crate::plan::graph::Step;

    /// Stands in for the real steps: sleeps a pseudo-random while and
    /// records when each per-cell node ran.
    struct Recorder {
        log: Rc<RefCell<Vec<(usize, tokio::time::Instant, tokio::time::Instant)>>>,
        seed: RefCell<u64>,
    }

    impl Executor for Recorder {
        fn execute(
            &self,
            _step: &Step,
            cell: Option<usize>,
            _input: StepInput,
        ) -> futures_util::future::LocalBoxFuture<'static, StepReport> {
            let mut s = self.seed.borrow_mut();
            *s ^= *s << 13;
            *s ^= *s >> 7;
            *s ^= *s << 17;
            let wait = Duration::from_micros(*s % 3000);
            let log = self.log.clone();
            Box::pin(async move {
                let start = tokio::time::Instant::now();
                tokio::time::sleep(wait).await;
                if let Some(c) = cell {
                    log.borrow_mut()
                        .push((c, start, tokio::time::Instant::now()));
                }
                StepReport {
                    result: Ok(StepOutput::Done),
                    events: Vec::new(),
                }
            })
        }
    }

    fn plan_with(cells: usize, extra: &str) -> Plan {
        let values: Vec<String> = (1..=cells).map(|i| i.to_string()).collect();
        let text = format!(
            "name = \"p\"\n[matrix]\nusers = [{}]\n[load]\nbase_url = \"http://127.0.0.1:9\"\nusers = \"{{{{ matrix.users }}}}\"\n[[load.request]]\npath = \"/\"\n{extra}",
            values.join(", ")
        );
        crate::plan::load_str(std::path::Path::new("p.toml"), &text, Default::default()).unwrap()
    }

    fn data_for(plan: &Plan) -> RunData {
        RunData {
            manifest: Manifest {
                plan: plan.name.clone(),
                plan_file: String::new(),
                plan_hash: String::new(),
                tool_version: String::new(),
                run_id: String::new(),
                started: String::new(),
                finished: None,
                status: RunStatus::Running,
                axes: plan.axes.clone(),
                overrides: Vec::new(),
                only: None,
                cells: Vec::new(),
            },
            cells: vec![CellRecord::default(); plan.cells.len()],
            run_events: Vec::new(),
            analysis: None,
            thresholds_failed: 0,
            reported: false,
            baselines: Default::default(),
        }
    }

    #[test]
    fn cells_never_overlap_and_run_in_order_whatever_is_selected() {
        // Steps inside a cell run concurrently (two exec steps after ready).
        let extra = "[[step]]\nid = \"a\"\nuses = \"sleep\"\nduration = \"1ms\"\nper_cell = true\nneeds = [\"ready\"]\n[[step]]\nid = \"b\"\nuses = \"sleep\"\nduration = \"1ms\"\nper_cell = true\nneeds = [\"ready\"]\nbefore = [\"load\"]\n";
        let plan = plan_with(7, extra);
        let tmp = std::env::temp_dir().join(format!("lm-dispatch-{}", std::process::id()));
        std::fs::create_dir_all(&tmp).unwrap();
        let dir = RunDir::open(&tmp);
        let mut rng = 0x9e37_79b9_7f4a_7c15u64;
        for round in 0..32 {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            let selected: Vec<bool> = (0..plan.cells.len()).map(|c| rng >> c & 1 == 1).collect();
            let log = Rc::new(RefCell::new(Vec::new()));
            let executor = Rc::new(Recorder {
                log: log.clone(),
                seed: RefCell::new(rng | 1),
            });
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_time()
                .build()
                .unwrap();
            let local = tokio::task::LocalSet::new();
            let (outcome, data) = runtime.block_on(
                local.run_until(
                    Dispatcher::new(
                        &plan,
                        &dir,
                        data_for(&plan),
                        &selected,
                        executor,
                        CancelToken::new(),
                    )
                    .run(),
                ),
            );
            assert_eq!(outcome, Outcome::Completed, "round {round}");
            let log = log.borrow();
            // Each cell's span: from its first node's start to its last node's end.
            let mut spans: Vec<(usize, tokio::time::Instant, tokio::time::Instant)> = Vec::new();
            for &(c, s, e) in log.iter() {
                assert!(
                    selected[c],
                    "round {round}: cell {c} ran but was not selected"
                );
                match spans.iter_mut().find(|x| x.0 == c) {
                    Some(x) => {
                        x.1 = x.1.min(s);
                        x.2 = x.2.max(e);
                    }
                    None => spans.push((c, s, e)),
                }
            }
            spans.sort_by_key(|x| x.1);
            let order: Vec<usize> = spans.iter().map(|x| x.0).collect();
            let expected: Vec<usize> = (0..plan.cells.len()).filter(|c| selected[*c]).collect();
            assert_eq!(order, expected, "round {round}: cells out of matrix order");
            for w in spans.windows(2) {
                assert!(
                    w[0].2 <= w[1].1,
                    "round {round}: cells {} and {} overlap",
                    w[0].0,
                    w[1].0
                );
            }
            for (c, rec) in data.cells.iter().enumerate() {
                let expected = if selected[c] {
                    CellStatus::Complete
                } else {
                    CellStatus::Pending
                };
                assert_eq!(rec.status, expected, "round {round}: cell {c}");
            }
        }
        let _ = std::fs::remove_dir_all(&tmp);
    }
}
