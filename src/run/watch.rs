//! What a run looks like from outside while it runs: every cell's (with
//! `[search]`: every probe's) status and figures, the current one's live
//! figures, the whole run's per-second series, the ETA.
//!
//! The dispatcher is its only writer: it owns the run's cell and probe
//! status and publishes every change here, indexed exactly as it indexes
//! its own units. Steps never write it (the load step reports its ticks to
//! the dispatcher). The console and the web dashboard observe it through
//! one event stream, so neither can slow a cell down.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use indexmap::IndexMap;
use serde::Serialize;
use tokio::sync::broadcast;

use crate::engine::{NameLatency, Phase, RowStream};
use crate::plan::matrix::CellValues;
use crate::plan::{Cell, Plan};
use crate::results::{CellStatus, SummaryRow};
use crate::steps::LoadProgress;

/// Most points kept of the whole run's per-second series; beyond it, every
/// other point is dropped, so a long run keeps its shape at bounded memory.
const SERIES_CAP: usize = 3600;

/// A change observers may want to show.
#[derive(Debug, Clone, PartialEq)]
pub enum WatchEvent {
    /// New live figures of the current cell.
    Tick,
    /// Unit `i` (a cell, or a probe) changed to this status.
    Cell(usize, CellStatus),
    /// The search decided a new probe: unit `i` was added.
    Added(usize),
    /// A line of the capacity search: a probe's verdict, or an outer cell's capacity.
    Search(String),
    /// The analysis ran: findings are in the state.
    Findings,
    /// The run ended: `status` holds its final status.
    Finished,
}

#[derive(Debug, Clone, Serialize)]
pub struct CellView {
    pub id: String,
    /// Its place in the run: the dispatcher's unit index.
    pub index: usize,
    /// The plan's cell it measures (a probe's outer cell).
    pub outer: usize,
    /// A search probe: the value of the searched knob.
    pub probe: Option<u64>,
    /// A probe's 1-based number among its outer cell's probes.
    pub probe_no: Option<usize>,
    pub matrix: CellValues,
    pub status: CellStatus,
    /// Measured by this invocation (not left out by `--only`, not resumed).
    pub selected: bool,
    /// 1-based position of its (outer) cell among the selected cells.
    pub position: Option<usize>,
    /// Warm-up, measurement and cool-down the plan gives it.
    pub planned_secs: f64,
    /// Wall time it took, from its first step to its last.
    pub wall_secs: Option<f64>,
    /// The summary row's metrics once it finished (or as resumed).
    pub summary: Option<IndexMap<String, f64>>,
    pub bound: Option<String>,
    /// Failures by kind (status, timeout, connect, io), non-zero only.
    pub failure_kinds: IndexMap<String, u64>,
    /// The cell's warnings (failure reasons, stalls, degraded runs).
    pub warnings: Vec<String>,
    pub message: Option<String>,
    /// Measured seconds when it was stopped before its window ended, and
    /// the window's planned length.
    pub stopped_after_secs: Option<f64>,
    pub window_planned_secs: Option<f64>,
    #[serde(skip)]
    started_at: Option<Instant>,
}

/// The current cell's figures, measured window only.
#[derive(Debug, Clone, Serialize)]
pub struct Live {
    pub cell: String,
    pub index: usize,
    pub phase: Phase,
    /// Seconds since the load started (warm-up included).
    pub elapsed_secs: f64,
    pub warmup_secs: f64,
    /// Warm-up plus measured window.
    pub total_secs: f64,
    pub repetition: u64,
    pub users: u64,
    /// Whole seconds of the measured window so far.
    pub window_secs: u64,
    /// Requests per second over the window so far.
    pub rps: Option<f64>,
    pub requests: u64,
    pub failures: u64,
    /// Successful requests of the window so far.
    pub p50_ms: Option<f64>,
    pub p95_ms: Option<f64>,
    pub by_name: Vec<NameLatency>,
    /// Streamed responses: the last closed second's TTFT and ITL p95 and tokens/s.
    pub stream: Option<RowStream>,
}

/// One second of a measured window, placed on the whole run's clock.
#[derive(Debug, Clone, Serialize)]
pub struct Second {
    /// Seconds since the run started.
    pub run_t: f64,
    /// Seconds since its cell's measured window started.
    pub t: u64,
    /// The unit it belongs to.
    pub cell: usize,
    pub rps: f64,
    pub p95_ms: f64,
    pub failures: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct FindingView {
    pub kind: String,
    pub severity: String,
    pub message: String,
}

/// A capacity search of one outer cell, as far as it got.
#[derive(Debug, Clone, Serialize)]
pub struct SearchView {
    /// The plan's cell searched.
    pub outer: usize,
    /// "replicas=2: 16 users ✓ 32 users ✗ → 24 users"
    pub trail: String,
    /// Its capacity, once the search ended.
    pub verdict: Option<String>,
    pub probes: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct WatchState {
    pub plan: String,
    pub axes: Vec<String>,
    /// The searched knob, with `[search]`.
    pub search_over: Option<String>,
    /// The SLO's p95 limit in ms, if it sets one.
    pub slo_p95_ms: Option<f64>,
    /// Every unit the run measures or knows: the plan's cells, or with
    /// `[search]` the probes decided so far.
    pub cells: Vec<CellView>,
    /// Index of the unit running now.
    pub current: Option<usize>,
    /// Cells (outer cells with `[search]`) this invocation measures.
    pub selected: usize,
    pub elapsed_seconds: f64,
    pub eta_seconds: Option<f64>,
    pub live: Option<Live>,
    /// The whole run's measured seconds so far, every cell's.
    pub series: Vec<Second>,
    /// One per searched outer cell, in search order.
    pub searches: Vec<SearchView>,
    pub findings: Vec<FindingView>,
    /// `running`, then the run's final status.
    pub status: String,
    /// The report's file name once the run wrote it.
    pub report: Option<String>,
    #[serde(skip)]
    outer: Vec<Outer>,
}

/// What the ETA needs of each plan cell.
#[derive(Debug, Clone)]
struct Outer {
    selected: bool,
    position: Option<usize>,
    planned_secs: f64,
    /// With `[search]`: the most probes it can take.
    max_probes: usize,
}

/// Shared between the dispatcher (the writer) and the observers.
#[derive(Clone)]
pub struct Watch {
    state: Arc<Mutex<WatchState>>,
    started: Instant,
    tx: broadcast::Sender<WatchEvent>,
}

impl Watch {
    /// `units`: the cells known at the start (the plan's, or a resumed
    /// search's probes); `selected[c]`: the plan's cell `c` is measured.
    pub fn new(plan: &Plan, units: &[Cell], selected: &[bool]) -> Self {
        let mut position = 0;
        let max_probes = plan
            .search
            .as_ref()
            .map_or(1, |s| usize::try_from(s.max_probes()).unwrap_or(usize::MAX));
        let outer: Vec<Outer> = plan
            .cells
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let sel = selected.get(i).copied().unwrap_or(false);
                if sel {
                    position += 1;
                }
                Outer {
                    selected: sel,
                    position: sel.then_some(position),
                    planned_secs: c.wall_time().as_secs_f64(),
                    max_probes,
                }
            })
            .collect();
        let state = WatchState {
            plan: plan.name.clone(),
            axes: plan.axes.clone(),
            search_over: plan.search.as_ref().map(|s| s.over.as_str().to_string()),
            slo_p95_ms: plan.analysis.slo.get("p95").copied(),
            cells: Vec::new(),
            current: None,
            selected: position,
            elapsed_seconds: 0.0,
            eta_seconds: None,
            live: None,
            series: Vec::new(),
            searches: Vec::new(),
            findings: Vec::new(),
            status: "running".into(),
            report: None,
            outer,
        };
        let (tx, _) = broadcast::channel(1024);
        let w = Watch {
            state: Arc::new(Mutex::new(state)),
            started: Instant::now(),
            tx,
        };
        w.update(|s| {
            for cell in units {
                let view = view_of(s, s.cells.len(), cell);
                s.cells.push(view);
            }
            s.eta_seconds = Some(eta(s, None));
        });
        w
    }

    pub(crate) fn subscribe(&self) -> broadcast::Receiver<WatchEvent> {
        self.tx.subscribe()
    }

    fn lock(&self) -> MutexGuard<'_, WatchState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn update(&self, f: impl FnOnce(&mut WatchState)) {
        let mut s = self.lock();
        f(&mut s);
        s.elapsed_seconds = self.started.elapsed().as_secs_f64();
    }

    fn send(&self, e: WatchEvent) {
        // No receiver is fine: nobody is watching.
        let _ = self.tx.send(e);
    }

    /// A copy of the state with the clock and ETA brought up to now.
    pub fn snapshot(&self) -> WatchState {
        self.read(Clone::clone)
    }

    /// Reads the state, clock and ETA brought up to now, without copying it.
    pub fn read<T>(&self, f: impl FnOnce(&WatchState) -> T) -> T {
        let mut s = self.lock();
        s.elapsed_seconds = self.started.elapsed().as_secs_f64();
        if s.status == "running" {
            let in_cell = s
                .current
                .and_then(|c| s.cells.get(c))
                .and_then(|c| c.started_at)
                .map(|t| t.elapsed().as_secs_f64());
            s.eta_seconds = Some(eta(&s, in_cell));
        }
        f(&s)
    }

    /// The search decided a new probe: unit `u`.
    pub(crate) fn unit_added(&self, u: usize, cell: &Cell) {
        let mut added = false;
        self.update(|s| {
            if u == s.cells.len() {
                let view = view_of(s, u, cell);
                s.cells.push(view);
                added = true;
            }
        });
        if added {
            self.send(WatchEvent::Added(u));
        }
    }

    pub(crate) fn cell_started(&self, c: usize) {
        let mut known = false;
        self.update(|s| {
            let Some(v) = s.cells.get_mut(c) else { return };
            known = true;
            v.status = CellStatus::Running;
            v.started_at = Some(Instant::now());
            v.message = None;
            v.stopped_after_secs = None;
            s.current = Some(c);
            s.live = None;
        });
        if known {
            self.send(WatchEvent::Cell(c, CellStatus::Running));
        }
    }

    /// A unit ended: its status and, when it measured, its summary row.
    pub(crate) fn cell_finished(
        &self,
        c: usize,
        status: CellStatus,
        row: Option<&SummaryRow>,
        failure_kinds: IndexMap<String, u64>,
        message: Option<String>,
    ) {
        let mut known = false;
        self.update(|s| {
            if s.current == Some(c) {
                s.current = None;
            }
            let stopped = s
                .live
                .as_ref()
                .filter(|l| l.index == c)
                .map(|l| (l.window_secs as f64, l.total_secs - l.warmup_secs));
            let Some(v) = s.cells.get_mut(c) else { return };
            known = true;
            v.status = status;
            v.wall_secs = v.started_at.map(|t| t.elapsed().as_secs_f64());
            v.summary = row
                .filter(|r| !r.metrics.is_empty())
                .map(|r| r.metrics.clone());
            v.bound = row.and_then(|r| r.bound).map(|b| b.as_str().to_string());
            v.warnings = row.map(|r| r.warnings.clone()).unwrap_or_default();
            v.failure_kinds = failure_kinds;
            v.message = message;
            if status == CellStatus::Interrupted {
                v.stopped_after_secs = stopped.map(|s| s.0);
                v.window_planned_secs = stopped.map(|s| s.1);
            }
            s.eta_seconds = Some(eta(s, None));
        });
        if known {
            self.send(WatchEvent::Cell(c, status));
        }
    }

    /// A unit measured by the run being resumed.
    pub(crate) fn cell_known(&self, c: usize, row: &SummaryRow) {
        self.update(|s| {
            if let Some(v) = s.cells.get_mut(c) {
                v.status = row.status;
                v.summary = (!row.metrics.is_empty()).then(|| row.metrics.clone());
                v.bound = row.bound.map(|b| b.as_str().to_string());
                v.warnings = row.warnings.clone();
            }
        });
    }

    /// A load tick of unit `c`, the one running.
    pub fn tick(&self, c: usize, p: &LoadProgress) {
        let run_t = self.elapsed();
        let mut known = false;
        self.update(|s| {
            let Some(view) = s.cells.get(c) else { return };
            known = true;
            let t = &p.tick;
            let w = &t.window;
            let live = Live {
                cell: view.id.clone(),
                index: c,
                phase: t.phase,
                elapsed_secs: t.elapsed.as_secs_f64(),
                warmup_secs: p.warmup_secs,
                total_secs: p.total_secs,
                repetition: p.repetition,
                users: t.users,
                window_secs: w.secs,
                rps: w.rps(),
                requests: w.requests,
                failures: w.failures,
                p50_ms: t.p50_ms,
                p95_ms: t.p95_ms,
                by_name: w.by_name.clone(),
                stream: w.last.as_ref().and_then(|l| l.stream.clone()),
            };
            if let Some(last) = &w.last
                && s.series.last().is_none_or(|p| p.cell != c || p.t < last.t)
            {
                s.series.push(Second {
                    run_t: (run_t * 10.0).round() / 10.0,
                    t: last.t,
                    cell: c,
                    rps: last.requests as f64,
                    p95_ms: last.p95_ms,
                    failures: last.failures,
                });
                if s.series.len() > SERIES_CAP {
                    let mut keep = false;
                    s.series.retain(|_| {
                        keep = !keep;
                        keep
                    });
                }
            }
            s.live = Some(live);
        });
        if known {
            self.send(WatchEvent::Tick);
        }
    }

    /// A line of the capacity search of plan cell `outer`; `done` once its
    /// capacity is known.
    pub fn search(&self, outer: usize, trail: &str, probes: usize, done: Option<&str>) {
        self.update(|s| {
            let view = SearchView {
                outer,
                trail: trail.to_string(),
                verdict: done.map(str::to_owned),
                probes,
            };
            match s.searches.iter_mut().find(|v| v.outer == outer) {
                Some(v) => *v = view,
                None => s.searches.push(view),
            }
        });
        self.send(WatchEvent::Search(
            done.map_or_else(|| format!("searching {trail}"), str::to_owned),
        ));
    }

    pub fn findings(&self, findings: &[crate::analysis::Finding]) {
        let views = findings
            .iter()
            .map(|f| FindingView {
                kind: serde_json::to_value(f.kind)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default(),
                severity: serde_json::to_value(f.severity)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default(),
                message: f.message.clone(),
            })
            .collect();
        self.update(|s| s.findings = views);
        self.send(WatchEvent::Findings);
    }

    /// The run ended with `status`; `report` is the HTML report it wrote.
    pub fn finished(&self, status: &str, report: Option<String>) {
        self.update(|s| {
            s.status = status.to_string();
            s.current = None;
            s.eta_seconds = Some(0.0);
            s.report = report;
        });
        self.send(WatchEvent::Finished);
    }

    /// Seconds since the run started.
    pub fn elapsed(&self) -> f64 {
        self.started.elapsed().as_secs_f64()
    }
}

fn view_of(s: &WatchState, index: usize, cell: &Cell) -> CellView {
    let outer = s.outer.get(cell.index);
    let probe_no = cell
        .probe
        .map(|_| s.cells.iter().filter(|v| v.outer == cell.index).count() + 1);
    CellView {
        id: cell.id.clone(),
        index,
        outer: cell.index,
        probe: cell.probe,
        probe_no,
        matrix: cell.matrix.clone(),
        status: CellStatus::Pending,
        selected: outer.is_some_and(|o| o.selected),
        position: outer.and_then(|o| o.position),
        planned_secs: cell.wall_time().as_secs_f64(),
        wall_secs: None,
        summary: None,
        bound: None,
        failure_kinds: IndexMap::new(),
        warnings: Vec::new(),
        message: None,
        stopped_after_secs: None,
        window_planned_secs: None,
        started_at: None,
    }
}

/// Seconds left: the plan's timing of every cell (with `[search]`: every
/// probe an outer cell may still take) still to run, plus the overhead
/// (scaling, readiness, baseline) the finished ones took beyond their plan,
/// on average. `in_cell`: seconds the current one has run.
fn eta(s: &WatchState, in_cell: Option<f64>) -> f64 {
    let finished: Vec<&CellView> = s
        .cells
        .iter()
        .filter(|c| c.selected && c.wall_secs.is_some())
        .collect();
    let overhead = if finished.is_empty() {
        0.0
    } else {
        finished
            .iter()
            .map(|c| (c.wall_secs.unwrap_or(0.0) - c.planned_secs).max(0.0))
            .sum::<f64>()
            / finished.len() as f64
    };
    let mut left = 0.0;
    if let Some(c) = s.current.and_then(|c| s.cells.get(c)) {
        left += (c.planned_secs + overhead - in_cell.unwrap_or(0.0)).max(0.0);
    }
    if s.search_over.is_none() {
        for c in &s.cells {
            if c.selected && c.status == CellStatus::Pending {
                left += c.planned_secs + overhead;
            }
        }
        return left;
    }
    // A search: each outer cell not yet searched to its end may take up to
    // its most probes, less those it took.
    for (i, o) in s.outer.iter().enumerate() {
        if !o.selected
            || s.searches
                .iter()
                .any(|v| v.outer == i && v.verdict.is_some())
        {
            continue;
        }
        let taken = s
            .cells
            .iter()
            .filter(|c| c.outer == i && c.status != CellStatus::Pending)
            .count();
        left += o.max_probes.saturating_sub(taken) as f64 * (o.planned_secs + overhead);
    }
    left
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(cells: usize) -> Plan {
        let values: Vec<String> = (1..=cells).map(|i| i.to_string()).collect();
        let text = format!(
            "name = \"p\"\n[matrix]\nusers = [{}]\n[cell]\nwarmup = \"1s\"\nduration = \"10s\"\ncooldown = \"1s\"\n[load]\nbase_url = \"http://127.0.0.1:9\"\nusers = \"{{{{ matrix.users }}}}\"\n[[load.request]]\npath = \"/\"\n",
            values.join(", ")
        );
        crate::plan::load_str(std::path::Path::new("p.toml"), &text, Default::default()).unwrap()
    }

    #[test]
    fn eta_is_the_plan_timing_of_what_is_left_plus_measured_overhead() {
        let plan = plan(4);
        let w = Watch::new(&plan, &plan.cells, &[true, true, false, true]);
        // Three selected cells of 12 s each, nothing measured yet.
        assert_eq!(w.snapshot().eta_seconds, Some(36.0));
        w.update(|s| {
            s.cells[0].status = CellStatus::Complete;
            s.cells[0].wall_secs = Some(15.0);
        });
        // Two cells left, each 12 s plus the 3 s the first one took extra.
        let s = w.snapshot();
        assert_eq!(eta(&s, None), 30.0);
        assert_eq!(s.cells[3].position, Some(3));
        assert_eq!(s.cells[2].position, None);
    }

    #[test]
    fn probes_are_units_of_their_own_and_unknown_indices_change_nothing() {
        let text = "name = \"p\"\n[matrix]\nreplicas = [1, 2]\n[cell]\nwarmup = \"0s\"\nduration = \"2s\"\n[load]\nbase_url = \"http://127.0.0.1:9\"\n[[load.request]]\npath = \"/\"\n[search]\nover = \"users\"\nfrom = 4\nto = 16\nslo = { p95 = \"100ms\" }\n";
        let plan = crate::plan::load_str(std::path::Path::new("p.toml"), text, Default::default())
            .unwrap();
        let w = Watch::new(&plan, &[], &[true, true]);
        let mut rx = w.subscribe();
        // Three probes of the first outer cell: unit 2 is past the plan's cells.
        for (u, users) in [4u64, 8, 16].iter().enumerate() {
            w.unit_added(u, &plan.probe(0, *users).unwrap());
            w.cell_started(u);
            w.cell_finished(u, CellStatus::Complete, None, IndexMap::new(), None);
        }
        let s = w.snapshot();
        assert_eq!(s.cells.len(), 3);
        assert_eq!(s.cells[2].id, "replicas1_users16");
        assert_eq!(s.cells[2].probe_no, Some(3));
        assert_eq!(s.cells[2].position, Some(1));
        assert_eq!(s.selected, 2);
        // A unit nobody added is no event and no panic.
        w.cell_started(9);
        assert_eq!(w.snapshot().current, None);
        let mut seen = Vec::new();
        while let Ok(e) = rx.try_recv() {
            seen.push(e);
        }
        assert_eq!(seen.len(), 9, "{seen:?}");
        assert_eq!(seen[7], WatchEvent::Cell(2, CellStatus::Running));
    }
}
