//! The dispatcher owns the state of every node of the expanded step graph: it
//! decides what runs next, what is skipped, when the run aborts, and when a
//! cell is finished. The executor (`crate::steps`) only runs one step.

use std::sync::Arc;

use petgraph::Direction;
use petgraph::graph::{DiGraph, NodeIndex};
use tokio::task::JoinSet;

use crate::plan::graph::{self, Node};
use crate::plan::raw::{OnFailure, StepKind};
use crate::run::state::RunState;
use crate::steps::{self, StepError};

#[derive(Debug, Clone, PartialEq)]
enum NodeState {
    Pending,
    Running,
    Done,
    Failed(String),
    Skipped,
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
    Aborted(String),
    Interrupted,
}

pub async fn dispatch(state: Arc<RunState>) -> Outcome {
    let plan = state.plan.clone();
    let g: DiGraph<Node, ()> = graph::expand(&plan.graph, plan.cells.len());
    let mut states = vec![NodeState::Pending; g.node_count()];
    let mut running: JoinSet<(NodeIndex, Result<(), StepError>)> = JoinSet::new();
    let mut stop: Option<Outcome> = None;
    let mut cells_finished = vec![false; plan.cells.len()];
    // Cells measured by a resumed run, or left out by --only, do not run.
    {
        let records = state.cells.lock().await;
        for n in g.node_indices() {
            if let Some(c) = g[n].cell
                && let Some(rec) = records.get(&c)
            {
                if rec.prior.is_some() {
                    states[n.index()] = NodeState::Done;
                } else if rec.excluded {
                    states[n.index()] = NodeState::Skipped;
                }
            }
        }
    }

    loop {
        // Cells are written (and abort thresholds checked) before the next
        // cell may start.
        if let Some(breach) = finish_cells(&state, &g, &states, &mut cells_finished).await
            && stop.is_none()
        {
            stop = Some(Outcome::Aborted(breach));
        }
        if stop.is_none() && state.cancelled() {
            stop = Some(Outcome::Interrupted);
        }
        // Repeat until stable: skipping a node can decide its successors, and
        // sequencing edges run from later steps of one cell to earlier steps of the next.
        while stop.is_none() {
            let mut changed = false;
            for n in g.node_indices() {
                if states[n.index()] != NodeState::Pending {
                    continue;
                }
                let preds: Vec<NodeIndex> = g.neighbors_directed(n, Direction::Incoming).collect();
                if !preds.iter().all(|p| states[p.index()].finished()) {
                    continue;
                }
                changed = true;
                let node = &g[n];
                // A failure skips what depends on it in the same cell, and
                // everything after a failed plan-level step; the next cell
                // and plan-level steps after per-cell ones still run.
                let blocked = preds.iter().any(|p| {
                    let pn = &g[*p];
                    let same_scope = pn.cell.is_none() || pn.cell == node.cell;
                    same_scope
                        && matches!(states[p.index()], NodeState::Failed(_) | NodeState::Skipped)
                });
                if blocked {
                    states[n.index()] = NodeState::Skipped;
                    continue;
                }
                states[n.index()] = NodeState::Running;
                let st = state.clone();
                let step = plan.graph.steps[node.step].clone();
                let cell = node.cell;
                running.spawn_local(async move { (n, steps::execute(&st, &step, cell).await) });
            }
            if !changed {
                break;
            }
        }
        let Some(joined) = running.join_next().await else {
            break;
        };
        let Ok((n, result)) = joined else {
            continue;
        };
        let node = &g[n];
        let step = &plan.graph.steps[node.step];
        match result {
            Ok(()) => states[n.index()] = NodeState::Done,
            Err(e) => {
                let message = state.redact(&e.message);
                let where_ = match node.cell {
                    Some(c) => format!("step `{}` of cell {}", step.id, plan.cells[c].id),
                    None => format!("step `{}`", step.id),
                };
                eprintln!("error: {where_} failed: {message}");
                state.run_event(format!("{where_} failed: {message}")).await;
                if let Some(c) = node.cell {
                    state
                        .cell_event(c, format!("step `{}` failed: {message}", step.id))
                        .await;
                    let mut cells = state.cells.lock().await;
                    let rec = cells.entry(c).or_default();
                    if rec.failed.is_none() {
                        rec.failed = Some(format!("{}: {message}", step.id));
                    }
                }
                states[n.index()] = NodeState::Failed(message.clone());
                if stop.is_none() {
                    if e.interrupted {
                        stop = Some(Outcome::Interrupted);
                    } else if e.abort_run {
                        stop = Some(Outcome::Aborted(message));
                    } else if step.on_failure == OnFailure::Abort {
                        stop = Some(if step.kind == StepKind::Check {
                            Outcome::PreflightFailed(message)
                        } else {
                            Outcome::Aborted(format!("{where_}: {message}"))
                        });
                    }
                }
            }
        }
    }
    finish_cells(&state, &g, &states, &mut cells_finished).await;
    stop.unwrap_or(Outcome::Completed)
}

/// Writes each cell's folder once all its per-cell nodes are finished;
/// returns why the run must stop: the cell folder could not be written, or
/// an `abort = true` threshold was breached.
async fn finish_cells(
    state: &Arc<RunState>,
    g: &DiGraph<Node, ()>,
    states: &[NodeState],
    finished: &mut [bool],
) -> Option<String> {
    let mut breach = None;
    for (c, done) in finished.iter_mut().enumerate() {
        if *done {
            continue;
        }
        let nodes: Vec<NodeIndex> = g.node_indices().filter(|n| g[*n].cell == Some(c)).collect();
        if nodes.is_empty() || !nodes.iter().all(|n| states[n.index()].finished()) {
            continue;
        }
        *done = true;
        let all_skipped = nodes
            .iter()
            .all(|n| states[n.index()] == NodeState::Skipped);
        if let Err(e) = steps::cell::finish_cell(state, c, all_skipped).await {
            breach.get_or_insert(e);
            continue;
        }
        if breach.is_none() {
            breach = steps::gate::abort_breach(state, c).await;
        }
    }
    breach
}
