//! The dispatcher owns a run: the state of every node of the expanded step
//! graph and every figure the steps hand back. It alone decides what runs
//! next: plan-level steps as their needs allow, and exactly one cell's
//! per-cell steps at a time, in matrix order, whatever subset was selected.
//! It writes each cell's folder and the manifest as cells finish.
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

use crate::analysis::AnalysisResult;
use crate::analysis::search::{self, Probing};
use crate::engine::CancelToken;
use crate::plan::graph::{self, Node};
use crate::plan::raw::{OnFailure, StepKind};
use crate::plan::{Cell, LoadModel, Plan};
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

pub struct Dispatcher<'a, E: Executor> {
    plan: &'a Plan,
    dir: &'a RunDir,
    cancel: CancelToken,
    executor: Rc<E>,
    g: DiGraph<Node, ()>,
    states: Vec<NodeState>,
    data: RunData,
    stop: Option<Outcome>,
    /// Cells to measure, in matrix order (the plan's cells: with `[search]`
    /// the outer cells); `current` is the unit running.
    queue: VecDeque<usize>,
    current: Option<usize>,
    watch: Option<Watch>,
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
            queue: (0..plan.cells.len()).filter(|c| selected[*c]).collect(),
            current: None,
            watch: None,
            searching: None,
            scaled_for: None,
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
                if let Some(c) = self.next_unit() {
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

    /// The next cell to run: the next of the queue, or with `[search]` the
    /// next probe of the outer cell being searched (probes measured by a
    /// resumed run are judged from their figures, never measured again).
    fn next_unit(&mut self) -> Option<usize> {
        let plan = self.plan;
        let Some(search) = &plan.search else {
            return self.queue.pop_front();
        };
        loop {
            if let Some((outer, probing)) = &self.searching {
                let outer = *outer;
                let Some(value) = probing.next() else {
                    self.search_done();
                    continue;
                };
                let probe = plan.probe(outer, value)?;
                if let Some(u) = self.data.units.iter().position(|c| c.id == probe.id)
                    && self.data.cells[u].prior.is_some()
                {
                    let row = self.data.cells[u].summary_row(&probe.id, &probe.matrix);
                    self.observe(outer, value, search::probe_passes(&search.slo, &row), true);
                    continue;
                }
                return Some(self.add_unit(probe));
            }
            let outer = self.queue.pop_front()?;
            let probing = Probing::new(search);
            self.searching = Some((outer, probing));
            self.say_search(outer, "");
        }
    }

    /// A probe's verdict: the search moves on, and says so.
    fn observe(&mut self, outer: usize, value: u64, passed: bool, measured_before: bool) {
        if let Some((o, probing)) = &mut self.searching
            && *o == outer
        {
            probing.observe(value, passed);
        }
        self.say_search(
            outer,
            if measured_before {
                " (measured before)"
            } else {
                ""
            },
        );
    }

    /// "searching replicas=2: 16 users ✓ 32 users ✗ → 24 users", on the
    /// console and in events.log.
    fn say_search(&mut self, outer: usize, note: &str) {
        let (Some(search), Some((o, probing))) = (&self.plan.search, &self.searching) else {
            return;
        };
        if *o != outer {
            return;
        }
        let label = outer_label(&self.plan.cells[outer]);
        let line = format!(
            "searching {label}: {}{note}",
            probing.trail(search.over.as_str())
        );
        eprintln!("{}", self.dir.redact(&line));
        self.data.event(line);
    }

    /// The outer cell's search has ended: its capacity, on the console and in events.log.
    fn search_done(&mut self) {
        let Some((outer, probing)) = self.searching.take() else {
            return;
        };
        let Some(search) = &self.plan.search else {
            return;
        };
        let over = search.over.as_str();
        let lo = probing
            .probes
            .iter()
            .filter(|(_, ok)| *ok)
            .map(|(v, _)| *v)
            .max();
        let failed = probing.probes.iter().any(|(_, ok)| !ok);
        let verdict = match (lo, failed) {
            (None, _) => format!("below range: {} {over} already broke the SLO", search.from),
            (Some(v), false) => format!("above range: {v} {over} still met the SLO"),
            (Some(v), true) => format!("capacity {v} {over}"),
        };
        let line = format!(
            "searched {}: {verdict} ({} probes)",
            outer_label(&self.plan.cells[outer]),
            probing.probes.len()
        );
        eprintln!("{}", self.dir.redact(&line));
        self.data.event(line);
    }

    /// Adds a probe to the run: its record, its manifest entry, its nodes.
    fn add_unit(&mut self, cell: Cell) -> usize {
        let u = self.data.units.len();
        self.data.manifest.cells.retain(|e| e.id != cell.id);
        self.data.manifest.cells.push(super::new_entry(&cell));
        self.data.units.push(cell);
        self.data.cells.push(CellRecord::default());
        let plan = self.plan;
        for _ in graph::expand_cell(&plan.graph, &mut self.g, u) {
            self.states.push(NodeState::Pending);
        }
        u
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
                if baseline.is_some() {
                    let shape = LoadShape {
                        offered_rps: baseline.as_ref().and_then(|b| cell.offered_rps(b.mean_ms)),
                        open_model: matches!(cell.load.model, LoadModel::Open { .. }),
                        fail_limit_pct: self.plan.analysis.fail_limit_pct(),
                    };
                    rec.shape = Some(shape);
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
        let id = &self.data.units[c].id;
        if let Some(e) = self.data.manifest.cells.iter_mut().find(|e| &e.id == id) {
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
            cell: Option<&Cell>,
            _input: StepInput,
        ) -> futures_util::future::LocalBoxFuture<'static, StepReport> {
            let mut s = self.seed.borrow_mut();
            *s ^= *s << 13;
            *s ^= *s >> 7;
            *s ^= *s << 17;
            let wait = Duration::from_micros(*s % 3000);
            let log = self.log.clone();
            let cell = cell.map(|c| c.index);
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
                cells: plan.cells.iter().map(crate::run::new_entry).collect(),
            },
            units: plan.cells.clone(),
            cells: vec![CellRecord::default(); plan.cells.len()],
            run_events: Vec::new(),
            analysis: None,
            thresholds_failed: 0,
            reported: false,
            baselines: Default::default(),
        }
    }

    /// Stands in for a system of 4 slots of 50 ms per replica: a probe of
    /// `users` measures p95 = 50 ms × ceil(users / (4 · replicas)).
    struct Queueing {
        ran: Rc<RefCell<Vec<String>>>,
    }

    impl Executor for Queueing {
        fn execute(
            &self,
            step: &Step,
            cell: Option<&Cell>,
            _input: StepInput,
        ) -> futures_util::future::LocalBoxFuture<'static, StepReport> {
            let result = match (step.kind, cell) {
                (StepKind::Load, Some(c)) => {
                    self.ran.borrow_mut().push(c.id.clone());
                    let replicas = match c.matrix.get("replicas") {
                        Some(crate::plan::matrix::MatrixValue::Int(r)) => *r as u64,
                        _ => 1,
                    };
                    let users = c.probe.unwrap_or(1);
                    let latency_us = 50_000 * users.div_ceil(4 * replicas);
                    let mut total = crate::engine::RequestStats::new();
                    for _ in 0..100 {
                        total.record_success(latency_us);
                    }
                    total.finalize(1.0);
                    let stats = crate::engine::CellStats {
                        total,
                        by_name: Default::default(),
                        timeline: Vec::new(),
                        measured_secs: 1.0,
                        dropped: 0,
                        client_cpu_pct: 0.0,
                        client_bound: false,
                        schedule_lag_p99_ms: 0.0,
                        cancelled: false,
                        warnings: Vec::new(),
                        degraded: None,
                        rx_bytes: None,
                        tx_bytes: None,
                        connections: None,
                    };
                    Ok(StepOutput::Measured {
                        reps: vec![crate::steps::Measurement {
                            stats,
                            samples: Vec::new(),
                            degraded: None,
                            scraped: Vec::new(),
                            server: Default::default(),
                        }],
                        baseline: None,
                    })
                }
                _ => Ok(StepOutput::Done),
            };
            Box::pin(async move {
                tokio::task::yield_now().await;
                StepReport {
                    result,
                    events: Vec::new(),
                }
            })
        }
    }

    fn search_plan() -> Plan {
        let text = "name = \"p\"\n[matrix]\nreplicas = [1, 2]\n[load]\nbase_url = \"http://127.0.0.1:9\"\n[[load.request]]\npath = \"/\"\n[search]\nover = \"users\"\nfrom = 4\nto = 64\nslo = { p95 = \"175ms\" }\n";
        crate::plan::load_str(std::path::Path::new("p.toml"), text, Default::default()).unwrap()
    }

    fn search_run(plan: &Plan, data: RunData, dir: &RunDir) -> (RunData, Vec<String>) {
        let ran = Rc::new(RefCell::new(Vec::new()));
        let executor = Rc::new(Queueing { ran: ran.clone() });
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        let local = tokio::task::LocalSet::new();
        let selected = vec![true; plan.cells.len()];
        let (outcome, data) = runtime.block_on(local.run_until(
            Dispatcher::new(plan, dir, data, &selected, executor, CancelToken::new()).run(),
        ));
        assert_eq!(outcome, Outcome::Completed);
        let ran = ran.borrow().clone();
        (data, ran)
    }

    #[test]
    fn a_search_probes_one_cell_at_a_time_and_never_measures_a_probe_twice() {
        let plan = search_plan();
        let tmp = std::env::temp_dir().join(format!("lm-dispatch-search-{}", std::process::id()));
        std::fs::create_dir_all(&tmp).unwrap();
        let dir = RunDir::open(&tmp);
        let mut data = data_for(&plan);
        data.units.clear();
        data.cells.clear();
        data.manifest.cells.clear();
        let (data, ran) = search_run(&plan, data, &dir);
        let expected = [
            "replicas1_users4",
            "replicas1_users8",
            "replicas1_users16",
            "replicas1_users12",
            "replicas1_users14",
            "replicas1_users13",
            "replicas2_users4",
            "replicas2_users8",
            "replicas2_users16",
            "replicas2_users32",
            "replicas2_users24",
            "replicas2_users28",
            "replicas2_users26",
            "replicas2_users25",
        ];
        assert_eq!(ran, expected);
        let ids: Vec<&str> = data.manifest.cells.iter().map(|e| e.id.as_str()).collect();
        assert_eq!(ids, expected);
        assert!(data.cells.iter().all(|r| r.status == CellStatus::Complete));
        let capacity = search::capacity(&plan, &data.rows());
        let found: Vec<(Option<u64>, &str)> = capacity
            .iter()
            .map(|(r, _)| (r.max_value, r.status.as_str()))
            .collect();
        assert_eq!(found, [(Some(12), "found"), (Some(24), "found")]);

        // Resumed with the first three probes measured: they are judged
        // from their rows and the search goes on from there.
        let rows = data.rows();
        let mut resumed = data_for(&plan);
        resumed.units = data.units[..3].to_vec();
        resumed.manifest.cells = data.manifest.cells[..3].to_vec();
        resumed.cells = rows[..3]
            .iter()
            .map(|row| CellRecord {
                status: CellStatus::Complete,
                prior: Some(row.clone()),
                ..Default::default()
            })
            .collect();
        let (again, ran) = search_run(&plan, resumed, &dir);
        assert_eq!(ran, expected[3..]);
        assert_eq!(again.units.len(), expected.len());
        let _ = std::fs::remove_dir_all(&tmp);
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
