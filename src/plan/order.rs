//! `[cell] order`: in which order the cells, and their repeats, are visited.
//!
//! Sequential visits each cell once and measures its repeats back to back.
//! Interleave visits the `[analysis] ab` axis' cells one repeat at a time:
//! within each combination of the other axes, round r visits every variant
//! that has an r-th repeat, forward in even rounds and backward in odd ones
//! (A B, B A, A B, ...), so a slow drift of the system or the network falls
//! on every variant alike; the combinations follow each other in matrix
//! order.

use super::model::Plan;
use super::raw::CellOrder;

/// One pass through a cell's per-cell steps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Visit {
    /// The cell's index in the plan.
    pub cell: usize,
    /// The one repeat this visit measures (0-based); `None`: all of them,
    /// back to back.
    pub repetition: Option<u64>,
}

/// The interleaved order of cells given, in matrix order, as their
/// combination of the other axes and their repeat count: `(cell, repetition)`
/// pairs, the cell being an index into `cells`.
pub(crate) fn interleaved<K: PartialEq>(cells: &[(K, u64)]) -> Vec<(usize, u64)> {
    let mut groups: Vec<(&K, Vec<usize>)> = Vec::new();
    for (i, (key, _)) in cells.iter().enumerate() {
        match groups.iter_mut().find(|(k, _)| *k == key) {
            Some((_, members)) => members.push(i),
            None => groups.push((key, vec![i])),
        }
    }
    let mut out = Vec::new();
    for (_, members) in groups {
        let rounds = members.iter().map(|&i| cells[i].1).max().unwrap_or(0);
        for round in 0..rounds {
            let mut this: Vec<usize> = members
                .iter()
                .copied()
                .filter(|&i| cells[i].1 > round)
                .collect();
            if round % 2 == 1 {
                this.reverse();
            }
            out.extend(this.into_iter().map(|i| (i, round)));
        }
    }
    out
}

impl Plan {
    /// Every visit of the cells `selected` (all when `None`), in the order
    /// they run.
    pub(crate) fn visits(&self, selected: Option<&[bool]>) -> Vec<Visit> {
        let chosen: Vec<usize> = (0..self.cells.len())
            .filter(|&c| selected.is_none_or(|s| s.get(c).copied().unwrap_or(false)))
            .collect();
        let axis = match (&self.order, &self.analysis.ab) {
            (CellOrder::Interleave, Some(ab)) if self.search.is_none() => ab.axis.as_str(),
            _ => {
                return chosen
                    .into_iter()
                    .map(|cell| Visit {
                        cell,
                        repetition: None,
                    })
                    .collect();
            }
        };
        let keyed: Vec<(String, u64)> = chosen
            .iter()
            .map(|&c| {
                let cell = &self.cells[c];
                (combination(cell, axis), cell.timing.repeat)
            })
            .collect();
        interleaved(&keyed)
            .into_iter()
            .map(|(i, r)| Visit {
                cell: chosen[i],
                repetition: Some(r),
            })
            .collect()
    }
}

/// The cell's values of every axis but `axis`, as `k=v k=v`.
pub(crate) fn combination(cell: &super::model::Cell, axis: &str) -> String {
    cell.matrix
        .iter()
        .filter(|(k, _)| k.as_str() != axis)
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(order: &[(usize, u64)], labels: &[&str]) -> Vec<String> {
        order
            .iter()
            .map(|&(c, r)| format!("{}{}", labels[c], r + 1))
            .collect()
    }

    #[test]
    fn two_variants_two_repeats_run_a_b_b_a() {
        let order = interleaved(&[("x", 2), ("x", 2)]);
        assert_eq!(names(&order, &["A", "B"]), ["A1", "B1", "B2", "A2"]);
    }

    #[test]
    fn two_variants_four_repeats_keep_alternating_rounds() {
        let order = interleaved(&[((), 4), ((), 4)]);
        assert_eq!(
            names(&order, &["A", "B"]),
            ["A1", "B1", "B2", "A2", "A3", "B3", "B4", "A4"]
        );
    }

    #[test]
    fn three_variants_go_forward_then_backward_each_once_per_round() {
        let order = interleaved(&[((), 3), ((), 3), ((), 3)]);
        assert_eq!(
            names(&order, &["A", "B", "C"]),
            ["A1", "B1", "C1", "C2", "B2", "A2", "A3", "B3", "C3"]
        );
        for round in order.chunks(3) {
            let mut cells: Vec<usize> = round.iter().map(|v| v.0).collect();
            cells.sort_unstable();
            assert_eq!(cells, [0, 1, 2]);
            assert!(round.iter().all(|v| v.1 == round[0].1));
        }
    }

    #[test]
    fn combinations_of_the_other_axes_follow_each_other_unmixed() {
        // Matrix order of replicas x version: (1, A) (1, B) (2, A) (2, B).
        let cells = [(1, 2), (1, 2), (2, 2), (2, 2)];
        let order = interleaved(&cells);
        assert_eq!(
            names(&order, &["1A", "1B", "2A", "2B"]),
            ["1A1", "1B1", "1B2", "1A2", "2A1", "2B1", "2B2", "2A2"]
        );
        // A combination's visits are never split by another's.
        let keys: Vec<i32> = order.iter().map(|&(c, _)| cells[c].0).collect();
        assert_eq!(keys, [1, 1, 1, 1, 2, 2, 2, 2]);
    }

    #[test]
    fn a_variant_with_fewer_repeats_drops_out_of_later_rounds() {
        let order = interleaved(&[((), 3), ((), 1)]);
        assert_eq!(names(&order, &["A", "B"]), ["A1", "B1", "A2", "A3"]);
    }

    #[test]
    fn every_repeat_of_every_cell_is_visited_once() {
        let cells = [(0, 3), (1, 2), (0, 3), (1, 2), (0, 1)];
        let order = interleaved(&cells);
        let total: u64 = cells.iter().map(|c| c.1).sum();
        assert_eq!(order.len() as u64, total);
        for (i, &(_, n)) in cells.iter().enumerate() {
            let reps: Vec<u64> = order.iter().filter(|v| v.0 == i).map(|v| v.1).collect();
            assert_eq!(reps, (0..n).collect::<Vec<_>>(), "cell {i}");
        }
    }

    fn plan(extra: &str) -> Plan {
        let text = format!(
            "name = \"p\"\n[matrix]\nreplicas = [1, 2]\nversion = [\"a\", \"b\"]\n[cell]\nrepeat = 2\n{extra}\n[load]\nbase_url = \"http://127.0.0.1:9\"\nusers = 1\n[[load.request]]\npath = \"/\"\n[analysis]\nab = \"version\"\n"
        );
        crate::plan::load_str(std::path::Path::new("p.toml"), &text, Default::default()).unwrap()
    }

    fn ids(plan: &Plan, visits: &[Visit]) -> Vec<String> {
        visits
            .iter()
            .map(|v| {
                let id = &plan.cells[v.cell].id;
                match v.repetition {
                    Some(r) => format!("{id}#{}", r + 1),
                    None => id.clone(),
                }
            })
            .collect()
    }

    #[test]
    fn a_plan_visits_its_cells_once_each_unless_it_interleaves() {
        let p = plan("");
        assert_eq!(
            ids(&p, &p.visits(None)),
            [
                "replicas1_versiona",
                "replicas1_versionb",
                "replicas2_versiona",
                "replicas2_versionb"
            ]
        );
        let p = plan("order = \"interleave\"");
        assert_eq!(
            ids(&p, &p.visits(None)),
            [
                "replicas1_versiona#1",
                "replicas1_versionb#1",
                "replicas1_versionb#2",
                "replicas1_versiona#2",
                "replicas2_versiona#1",
                "replicas2_versionb#1",
                "replicas2_versionb#2",
                "replicas2_versiona#2"
            ]
        );
        // Cells left out (by --only, or measured before a resume) keep the
        // others' order.
        assert_eq!(
            ids(&p, &p.visits(Some(&[false, false, true, true]))),
            [
                "replicas2_versiona#1",
                "replicas2_versionb#1",
                "replicas2_versionb#2",
                "replicas2_versiona#2"
            ]
        );
    }
}
