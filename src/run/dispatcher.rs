//! The dispatcher owns a run: the state of every node of the expanded step
//! graph and every figure the steps hand back. It alone decides what runs
//! next: plan-level steps as their needs allow, and exactly one cell's
//! per-cell steps at a time, in matrix order, whatever subset was selected.
//! It writes each cell's folder and the manifest as cells finish.
//!
//! With `[cell] order = "interleave"` a cell is visited once per repeat, its
//! per-cell steps run again each time, and the cells of the `ab` axis take
//! turns (see [`Plan::visits`]); the cell's folder is written after its last
//! visit.
//!
//! With `[search]` the plan's cells are the outer loop: for each, the
//! dispatcher decides the next probe from the verdicts of the probes before
//! it, and runs every probe as a cell of its own.

use std::collections::VecDeque;
use std::rc::Rc;
use std::time::SystemTime;

use petgraph::Direction;
use petgraph::graph::{DiGraph, NodeIndex};
use tokio::task::JoinSet;

use super::watch::Watch;
use crate::analysis::AnalysisResult;
use crate::engine::CancelToken;
use crate::plan::graph::{self, Node};
use crate::plan::raw::{OnFailure, StepKind};
use crate::plan::{Cell, LoadModel, Plan, Visit};
use crate::results::record::{Baseline, LoadShape};
use crate::results::{
    self, CellRecord, CellStatus, Manifest, RunDir, RunStatus, SummaryRow, VisitEntry,
};
use crate::search::{self, Probing};
use crate::steps::{
    Analyzed, Executor, LoadProgress, StepError, StepInput, StepOutput, StepReport,
};

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
pub(crate) enum Outcome {
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
pub(crate) struct RunData {
    pub manifest: Manifest,
    /// The cells run (or to run): the plan's cells, or with `[search]` the
    /// probes decided so far. `cells[i]` is what `units[i]` produced.
    pub units: Vec<Cell>,
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
    /// One row per cell (per probe with `[search]`), in the order they run.
    pub fn rows(&self) -> Vec<SummaryRow> {
        self.units
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

pub(crate) struct Dispatcher<'a, E: Executor> {
    plan: &'a Plan,
    dir: &'a RunDir,
    cancel: CancelToken,
    executor: Rc<E>,
    g: DiGraph<Node, ()>,
    states: Vec<NodeState>,
    data: RunData,
    stop: Option<Outcome>,
    /// Visits of the cells to measure, in the order they run (the plan's
    /// cells: with `[search]` the outer cells); `current` is the unit
    /// running and `repetition` the one repeat its visit measures (`None`:
    /// all of them).
    queue: VecDeque<Visit>,
    current: Option<usize>,
    repetition: Option<u64>,
    /// Where the run's status is published; the load step's ticks come in
    /// on `progress`.
    watch: Option<Watch>,
    progress: Option<tokio::sync::mpsc::UnboundedReceiver<LoadProgress>>,
    /// The outer cell being searched, and its probes' verdicts.
    searching: Option<(usize, Probing)>,
    /// The outer cell the system was last scaled for during a search: its
    /// later probes keep the system as it is.
    scaled_for: Option<usize>,
}

impl<'a, E: Executor + 'static> Dispatcher<'a, E> {
    /// `selected[c]`: cell `c` of the plan is measured (searched) by this
    /// invocation. `data.units` are the cells already known: the plan's cells,
    /// or with `[search]` the probes measured by the run being resumed.
    pub fn new(
        plan: &'a Plan,
        dir: &'a RunDir,
        data: RunData,
        selected: &[bool],
        executor: Rc<E>,
        cancel: CancelToken,
    ) -> Self {
        let g = graph::expand(&plan.graph, data.units.len());
        let states = g
            .node_indices()
            .map(|n| match g[n].cell {
                Some(_) if plan.search.is_some() => NodeState::NotSelected,
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
            queue: plan.visits(Some(selected)).into(),
            current: None,
            repetition: None,
            watch: None,
            progress: None,
            searching: None,
            scaled_for: None,
        }
    }

    /// Publishes every status change, tick and finding to `watch` (built
    /// over this run's units), the ticks the load step sends on `progress`
    /// included.
    pub(crate) fn with_watch(
        mut self,
        watch: Watch,
        progress: tokio::sync::mpsc::UnboundedReceiver<LoadProgress>,
    ) -> Self {
        for (c, (cell, rec)) in self.data.units.iter().zip(&self.data.cells).enumerate() {
            if rec.prior.is_some() {
                watch.cell_known(c, &rec.summary_row(&cell.id, &cell.matrix));
            }
        }
        self.watch = Some(watch);
        self.progress = Some(progress);
        self
    }

    pub async fn run(mut self) -> (Outcome, RunData) {
        let mut running: JoinSet<(NodeIndex, StepReport)> = JoinSet::new();
        let mut progress = self.progress.take();
        self.write_manifest();
        loop {
            if self.stop.is_none() && self.cancel.is_cancelled() {
                self.stop = Some(Outcome::Interrupted);
            }
            self.settle(&mut running);
            if running.is_empty() {
                break;
            }
            let tick = async {
                match progress.as_mut() {
                    Some(rx) => rx.recv().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                joined = running.join_next() => {
                    if let Some(Ok((n, report))) = joined {
                        self.record(n, report);
                    }
                }
                Some(p) = tick => self.on_progress(&p),
            }
        }
        // Stopped while a cell ran: it ends here, as what it got to.
        if let Some(c) = self.current.take() {
            self.end_visit(c);
        }
        self.abandon_unfinished();
        (self.stop.unwrap_or(Outcome::Completed), self.data)
    }

    /// A tick of the load running now: it belongs to the unit running.
    fn on_progress(&mut self, p: &LoadProgress) {
        if let (Some(w), Some(c)) = (&self.watch, self.current) {
            w.tick(c, p);
        }
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
                self.end_visit(c);
                changed = true;
            }
            if self.current.is_none() && self.stop.is_none() {
                if let Some(c) = self.next_unit() {
                    self.current = Some(c);
                    self.begin_visit(c);
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
                && (self.current.is_some() || !self.queue.is_empty() || self.searching.is_some())
                && self
                    .g
                    .neighbors_directed(n, Direction::Incoming)
                    .any(|p| self.g[p].cell.is_some())
            {
                continue;
            }
            // The edge from another cell's last steps orders cells; the
            // queue orders them here (interleaved, a cell's steps wait
            // pending for its next visit while another cell runs).
            let preds: Vec<NodeIndex> = self
                .g
                .neighbors_directed(n, Direction::Incoming)
                .filter(|p| {
                    let pc = self.g[*p].cell;
                    node.cell.is_none() || pc.is_none() || pc == node.cell
                })
                .collect();
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
            let step = &self.plan.graph.steps[node.step];
            if let Some(c) = node.cell {
                self.mark_started(c);
                if step.kind == StepKind::Scale
                    && self.plan.search.is_some()
                    && self.scaled_for == Some(self.data.units[c].index)
                {
                    // Later probes of the same outer cell keep the system as it is.
                    self.states[n.index()] = NodeState::Done;
                    continue;
                }
            }
            self.states[n.index()] = NodeState::Running;
            let input = self.input_for(step.kind, node.cell);
            let fut = self
                .executor
                .execute(step, node.cell.map(|c| &self.data.units[c]), input);
            running.spawn_local(async move { (n, fut.await) });
        }
        changed
    }

    /// What a step of this kind needs from the run's data.
    fn input_for(&self, kind: StepKind, cell: Option<usize>) -> StepInput {
        let analysis = || match &self.data.analysis {
            Some(a) => Analyzed::Done(Box::new(a.clone())),
            None => Analyzed::Rows(self.data.rows()),
        };
        match kind {
            StepKind::Load => StepInput::Load {
                baseline: cell.and_then(|c| {
                    self.data
                        .baselines
                        .get(&self.data.units[c].system_key())
                        .cloned()
                }),
                repetition: self.repetition,
            },
            StepKind::Analyze => StepInput::Rows(self.data.rows()),
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
                if step.kind == StepKind::Scale
                    && let Some(c) = node.cell
                {
                    self.scaled_for = Some(self.data.units[c].index);
                }
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
                let cell = &self.data.units[c];
                if let Some(b) = &baseline {
                    self.data
                        .baselines
                        .entry(cell.system_key())
                        .or_insert_with(|| b.clone());
                }
                let rec = &mut self.data.cells[c];
                for m in ms {
                    rec.runs.push(m.stats);
                    rec.samples.extend(m.samples);
                    rec.scraped.push(m.scraped);
                    rec.server.push(m.server);
                    if let Some(d) = m.degraded {
                        rec.degraded.get_or_insert(d);
                    }
                }
                if let Some(b) = &baseline {
                    // Locust's users think as the locustfile says, which the
                    // plan does not know: Little's law on what was measured.
                    let think_s = match cell.load.engine {
                        crate::plan::spanned::Engine::Locust => rec.merged().and_then(|m| {
                            crate::results::record::measured_think_s(cell.users(), &m)
                        }),
                        _ => None,
                    };
                    let offered_rps = match think_s {
                        Some(think) => cell.offered_rps_with(think, b.mean_ms),
                        None => cell.offered_rps(b.mean_ms),
                    };
                    rec.shape = Some(LoadShape {
                        offered_rps,
                        open_model: matches!(cell.load.model, LoadModel::Open { .. }),
                        fail_limit_pct: self.plan.analysis.fail_limit_pct(),
                        think_s,
                    });
                    rec.baseline = baseline;
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
            Some(c) => format!("step `{}` of cell {}", step.id, self.data.units[c].id),
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
        // A report stopped by Ctrl-C is not rendered again on the way out.
        self.data.reported |= e.is_interrupt() && step.kind == StepKind::Report;
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

    /// Writes the folder of a cell whose steps have all finished (or that the
    /// run stopped), updates the manifest, and checks abort thresholds.
    fn finish_cell(&mut self, c: usize) {
        let cell = &self.data.units[c];
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
        let id = &self.data.units[c].id;
        if let Some(e) = self.data.manifest.cells.iter_mut().find(|e| &e.id == id) {
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
        let plan = self.plan;
        if let (Some(search), Some(value)) = (&plan.search, self.data.units[c].probe)
            && status != CellStatus::Interrupted
        {
            let unit = &self.data.units[c];
            let outer = unit.index;
            let row = self.data.cells[c].summary_row(&unit.id, &unit.matrix);
            let passed = search::probe_passes(&search.slo, &row);
            self.observe(outer, value, passed, false);
            return;
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
        let cell = &self.data.units[c];
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

/// "replicas=2", or the cell id without matrix values.
fn outer_label(cell: &Cell) -> String {
    if cell.matrix.is_empty() {
        return cell.id.clone();
    }
    cell.matrix
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(" ")
}

pub(crate) fn write_manifest(dir: &RunDir, manifest: &Manifest) {
    let mut text = serde_json::to_vec_pretty(manifest).unwrap_or_default();
    text.push(b'\n');
    if let Err(e) = dir.write("run.json", &text) {
        eprintln!("error: {}", dir.redact(&e.to_string()));
    }
}

mod probes;
#[cfg(test)]
mod tests;
mod visits;
