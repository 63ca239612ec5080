//! The capacity search as the dispatcher drives it: which probe runs next,
//! what each verdict means for the search, and what the console is told.

use super::*;

impl<E: Executor + 'static> Dispatcher<'_, E> {
    /// The next cell to run: the next of the queue, or with `[search]` the
    /// next probe of the outer cell being searched (probes measured by a
    /// resumed run are judged from their figures, never measured again).
    pub(super) fn next_unit(&mut self) -> Option<usize> {
        let plan = self.plan;
        let Some(search) = &plan.search else {
            let visit = self.queue.pop_front()?;
            self.repetition = visit.repetition;
            return Some(visit.cell);
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
            let outer = self.queue.pop_front()?.cell;
            let probing = Probing::new(search);
            self.searching = Some((outer, probing));
            self.say_search(outer, "");
        }
    }

    /// A probe's verdict: the search moves on, and says so.
    pub(super) fn observe(
        &mut self,
        outer: usize,
        value: u64,
        passed: bool,
        measured_before: bool,
    ) {
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
    pub(super) fn say_search(&mut self, outer: usize, note: &str) {
        let (Some(search), Some((o, probing))) = (&self.plan.search, &self.searching) else {
            return;
        };
        if *o != outer {
            return;
        }
        let label = outer_label(&self.plan.cells[outer]);
        let trail = format!("{label}: {}{note}", probing.trail(search.over.as_str()));
        let probes = probing.probes.len();
        let line = format!("searching {trail}");
        match &self.watch {
            Some(w) => w.search(outer, &self.dir.redact(&trail), probes, None),
            None => eprintln!("{}", self.dir.redact(&line)),
        }
        self.data.event(line);
    }

    /// The outer cell's search has ended: its capacity, on the console and in events.log.
    pub(super) fn search_done(&mut self) {
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
        let label = outer_label(&self.plan.cells[outer]);
        let line = format!(
            "searched {label}: {verdict} ({} probes)",
            probing.probes.len()
        );
        match &self.watch {
            Some(w) => {
                let trail = format!("{label}: {}", probing.trail(over));
                let line = self.dir.redact(&line);
                w.search(
                    outer,
                    &self.dir.redact(&trail),
                    probing.probes.len(),
                    Some(&line),
                );
            }
            None => eprintln!("{}", self.dir.redact(&line)),
        }
        self.data.event(line);
    }

    /// Adds a probe to the run: its record, its manifest entry, its nodes.
    pub(super) fn add_unit(&mut self, cell: Cell) -> usize {
        let u = self.data.units.len();
        self.data.manifest.cells.retain(|e| e.id != cell.id);
        self.data
            .manifest
            .cells
            .push(super::super::new_entry(&cell));
        if let Some(w) = &self.watch {
            w.unit_added(u, &cell);
        }
        self.data.units.push(cell);
        self.data.cells.push(CellRecord::default());
        let plan = self.plan;
        for _ in graph::expand_cell(&plan.graph, &mut self.g, u) {
            self.states.push(NodeState::Pending);
        }
        u
    }
}
