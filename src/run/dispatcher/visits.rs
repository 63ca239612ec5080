//! Visits: a cell measured one repeat at a time, its steps run again for
//! each visit, as `[cell] order = "interleave"` asks.

use super::*;

impl<E: Executor + 'static> Dispatcher<'_, E> {
    pub(super) fn mark_started(&mut self, c: usize) {
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

    /// A visit that measures one repeat begins: recorded in the manifest, and
    /// for a cell visited before, shown running again.
    pub(super) fn begin_visit(&mut self, c: usize) {
        let Some(r) = self.repetition else {
            return;
        };
        let now = results::timestamp(SystemTime::now());
        let cell = &self.data.units[c];
        let line = format!("visit: repeat {} of {}", r + 1, cell.timing.repeat);
        self.data.manifest.visits.push(VisitEntry {
            cell: cell.id.clone(),
            repeat: r + 1,
            started: now,
            finished: None,
        });
        let rec = &mut self.data.cells[c];
        rec.events.push(stamp(&line));
        if rec.started.is_some() {
            self.write_manifest();
            if let Some(w) = &self.watch {
                w.cell_started(c);
            }
        }
    }

    /// The current visit's steps have all finished (or the run stopped): the
    /// cell ends after its last visit, or at its first failure; otherwise
    /// its steps wait, pending again, for its next visit.
    pub(super) fn end_visit(&mut self, c: usize) {
        if self.repetition.take().is_none() {
            self.finish_cell(c);
            return;
        }
        let now = results::timestamp(SystemTime::now());
        if let Some(v) = self.data.manifest.visits.last_mut() {
            v.finished = Some(now);
        }
        let nodes: Vec<NodeIndex> = self.cell_nodes(c).collect();
        let all_done = nodes
            .iter()
            .all(|n| self.states[n.index()] == NodeState::Done);
        let more = self.queue.iter().any(|v| v.cell == c);
        if !all_done || !more {
            self.queue.retain(|v| v.cell != c);
            self.finish_cell(c);
            return;
        }
        // Stopped between visits: the run's end marks the cell interrupted.
        if self.stop.is_none() {
            for n in nodes {
                self.states[n.index()] = NodeState::Pending;
            }
        }
        self.write_manifest();
    }

    /// Cells the run stopped between two of their visits: interrupted, their
    /// repeats so far not written (a resume measures them again).
    pub(super) fn abandon_unfinished(&mut self) {
        let mut changed = false;
        for c in 0..self.data.cells.len() {
            if self.data.cells[c].status != CellStatus::Running {
                continue;
            }
            changed = true;
            let rec = &mut self.data.cells[c];
            let done = rec.runs.len();
            rec.status = CellStatus::Interrupted;
            rec.finished = Some(results::timestamp(SystemTime::now()));
            let cell = &self.data.units[c];
            let message = format!("stopped after {done} of its {} repeats", cell.timing.repeat);
            if let Some(e) = self
                .data
                .manifest
                .cells
                .iter_mut()
                .find(|e| e.id == cell.id)
            {
                e.status = CellStatus::Interrupted;
                e.finished = rec.finished.clone();
                e.message = Some(message.clone());
            }
            if let Some(w) = &self.watch {
                w.cell_finished(
                    c,
                    CellStatus::Interrupted,
                    None,
                    indexmap::IndexMap::new(),
                    Some(message),
                );
            }
        }
        if changed {
            self.write_manifest();
        }
    }
}
