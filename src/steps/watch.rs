//! What a run looks like from outside while it runs: every cell's status and
//! figures, the current cell's live figures, the ETA. The dispatcher and the
//! load step write it; the console and the web dashboard read it and are
//! told of changes on a broadcast channel, so neither can slow a cell down.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use indexmap::IndexMap;
use serde::Serialize;
use tokio::sync::broadcast;

use crate::engine::{NameLatency, Phase, ProgressTick};
use crate::plan::Plan;
use crate::plan::matrix::CellValues;
use crate::results::{CellStatus, SummaryRow};

/// A change observers may want to show.
#[derive(Debug, Clone, PartialEq)]
pub enum WatchEvent {
    /// New live figures of the current cell.
    Tick,
    /// Cell `i` changed status.
    Cell(usize),
    /// The analysis ran: findings are in the state.
    Findings,
}

#[derive(Debug, Clone, Serialize)]
pub struct CellView {
    pub id: String,
    pub index: usize,
    pub matrix: CellValues,
    pub status: CellStatus,
    /// Measured by this invocation (not left out by `--only`, not resumed).
    pub selected: bool,
    /// 1-based position among the selected cells.
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
}

/// One second of the current cell's measured window.
#[derive(Debug, Clone, Serialize)]
pub struct Second {
    pub t: u64,
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

#[derive(Debug, Clone, Serialize)]
pub struct WatchState {
    pub plan: String,
    pub axes: Vec<String>,
    /// The SLO's p95 limit in ms, if it sets one.
    pub slo_p95_ms: Option<f64>,
    pub cells: Vec<CellView>,
    /// Index of the cell running now.
    pub current: Option<usize>,
    /// Cells this invocation measures.
    pub selected: usize,
    pub elapsed_seconds: f64,
    pub eta_seconds: Option<f64>,
    pub live: Option<Live>,
    /// The current cell's measured seconds so far.
    pub series: Vec<Second>,
    pub findings: Vec<FindingView>,
    /// `running`, then the run's final status.
    pub status: String,
}

/// Shared between the run's writers and its observers.
#[derive(Clone)]
pub struct Watch {
    state: Arc<Mutex<WatchState>>,
    started: Instant,
    tx: broadcast::Sender<WatchEvent>,
}

impl Watch {
    pub fn new(plan: &Plan, selected: &[bool]) -> Self {
        let mut position = 0;
        let cells = plan
            .cells
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let sel = selected.get(i).copied().unwrap_or(false);
                if sel {
                    position += 1;
                }
                CellView {
                    id: c.id.clone(),
                    index: i,
                    matrix: c.matrix.clone(),
                    status: CellStatus::Pending,
                    selected: sel,
                    position: sel.then_some(position),
                    planned_secs: c.wall_time().as_secs_f64(),
                    wall_secs: None,
                    summary: None,
                    bound: None,
                    failure_kinds: IndexMap::new(),
                    message: None,
                    stopped_after_secs: None,
                    window_planned_secs: None,
                    started_at: None,
                }
            })
            .collect();
        let slo_p95_ms = plan.analysis.slo.get("p95").copied();
        let state = WatchState {
            plan: plan.name.clone(),
            axes: plan.axes.clone(),
            slo_p95_ms,
            cells,
            current: None,
            selected: position,
            elapsed_seconds: 0.0,
            eta_seconds: None,
            live: None,
            series: Vec::new(),
            findings: Vec::new(),
            status: "running".into(),
        };
        let (tx, _) = broadcast::channel(256);
        let w = Watch {
            state: Arc::new(Mutex::new(state)),
            started: Instant::now(),
            tx,
        };
        w.update(|s| s.eta_seconds = Some(eta(s, None)));
        w
    }

    pub fn subscribe(&self) -> broadcast::Receiver<WatchEvent> {
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
        let mut s = self.lock().clone();
        s.elapsed_seconds = self.started.elapsed().as_secs_f64();
        if s.status == "running" {
            let in_cell = s
                .current
                .and_then(|c| s.cells[c].started_at)
                .map(|t| t.elapsed().as_secs_f64());
            s.eta_seconds = Some(eta(&s, in_cell));
        }
        s
    }

    pub fn cell_started(&self, c: usize) {
        self.update(|s| {
            s.current = Some(c);
            s.live = None;
            s.series.clear();
            if let Some(v) = s.cells.get_mut(c) {
                v.status = CellStatus::Running;
                v.started_at = Some(Instant::now());
                v.message = None;
                v.stopped_after_secs = None;
            }
        });
        self.send(WatchEvent::Cell(c));
    }

    /// A cell ended: its status and, when it measured, its summary row.
    pub fn cell_finished(
        &self,
        c: usize,
        status: CellStatus,
        row: Option<&SummaryRow>,
        failure_kinds: IndexMap<String, u64>,
        message: Option<String>,
    ) {
        self.update(|s| {
            if s.current == Some(c) {
                s.current = None;
            }
            let stopped = s
                .live
                .as_ref()
                .filter(|l| l.index == c)
                .map(|l| (l.window_secs as f64, l.total_secs - l.warmup_secs));
            if let Some(v) = s.cells.get_mut(c) {
                v.status = status;
                v.wall_secs = v.started_at.map(|t| t.elapsed().as_secs_f64());
                v.summary = row
                    .filter(|r| !r.metrics.is_empty())
                    .map(|r| r.metrics.clone());
                v.bound = row.and_then(|r| r.bound).map(|b| b.as_str().to_string());
                v.failure_kinds = failure_kinds;
                v.message = message;
                if status == CellStatus::Interrupted {
                    v.stopped_after_secs = stopped.map(|s| s.0);
                    v.window_planned_secs = stopped.map(|s| s.1);
                }
            }
            s.eta_seconds = Some(eta(s, None));
        });
        self.send(WatchEvent::Cell(c));
    }

    /// A cell measured by the run being resumed.
    pub fn cell_known(&self, c: usize, row: &SummaryRow) {
        self.update(|s| {
            if let Some(v) = s.cells.get_mut(c) {
                v.status = row.status;
                v.summary = (!row.metrics.is_empty()).then(|| row.metrics.clone());
                v.bound = row.bound.map(|b| b.as_str().to_string());
            }
        });
    }

    /// A load tick of the current cell.
    pub fn tick(&self, c: usize, t: &ProgressTick, warmup: f64, total: f64, repetition: u64) {
        self.update(|s| {
            let Some(view) = s.cells.get(c) else { return };
            let w = &t.window;
            let live = Live {
                cell: view.id.clone(),
                index: c,
                phase: t.phase,
                elapsed_secs: t.elapsed.as_secs_f64(),
                warmup_secs: warmup,
                total_secs: total,
                repetition,
                users: t.users,
                window_secs: w.secs,
                rps: w.rps(),
                requests: w.requests,
                failures: w.failures,
                p50_ms: t.p50_ms,
                p95_ms: t.p95_ms,
                by_name: w.by_name.clone(),
            };
            if let Some(last) = &w.last
                && s.series.last().is_none_or(|p| p.t < last.t)
            {
                s.series.push(Second {
                    t: last.t,
                    rps: last.requests as f64,
                    p95_ms: last.p95_ms,
                    failures: last.failures,
                });
            }
            s.live = Some(live);
        });
        self.send(WatchEvent::Tick);
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

    pub fn finished(&self, status: &str) {
        self.update(|s| {
            s.status = status.to_string();
            s.current = None;
            s.eta_seconds = Some(0.0);
        });
        self.send(WatchEvent::Findings);
    }

    /// Seconds since the run started.
    pub fn elapsed(&self) -> f64 {
        self.started.elapsed().as_secs_f64()
    }
}

/// Seconds left: the plan's timing of every cell still to run, plus the
/// overhead (scaling, readiness, baseline) the finished cells took beyond
/// their plan, on average. `in_cell`: seconds the current cell has run.
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
    for (i, c) in s.cells.iter().enumerate() {
        if !c.selected {
            continue;
        }
        if s.current == Some(i) {
            left += (c.planned_secs + overhead - in_cell.unwrap_or(0.0)).max(0.0);
        } else if c.status == CellStatus::Pending {
            left += c.planned_secs + overhead;
        }
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
        let w = Watch::new(&plan, &[true, true, false, true]);
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
}
