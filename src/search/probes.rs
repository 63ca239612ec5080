//! The probes: a cell of the plan with the searched knob set, and how many
//! of them a search can take at most.

use crate::plan::matrix::MatrixValue;
use crate::plan::{Cell, LoadModel, Plan, Search};

impl Plan {
    /// The probe of outer cell `c` at `value` of the searched knob: the cell
    /// with its users (or rate) set, named `<cell-id>_users<N>`.
    pub(crate) fn probe(&self, c: usize, value: u64) -> Option<Cell> {
        let search = self.search.as_ref()?;
        let mut cell = self.cells.get(c)?.clone();
        let over = search.over.as_str();
        cell.id = format!("{}_{over}{value}", cell.id);
        cell.matrix.insert(
            over.to_string(),
            MatrixValue::Int(i64::try_from(value).unwrap_or(i64::MAX)),
        );
        match &mut cell.load.model {
            LoadModel::Closed { users, .. } => *users = value,
            LoadModel::Open { stages, .. } => {
                for s in stages {
                    s.rate = value as f64;
                }
            }
        }
        cell.probe = Some(value);
        Some(cell)
    }
}

impl Search {
    /// The most probes an outer cell can take: doubling until the probe at
    /// step k fails, then bisecting between steps k-1 and k; the worst k.
    pub(crate) fn max_probes(&self) -> u64 {
        let mut worst = 1;
        let mut lo = self.from;
        let mut k = 1;
        while lo < self.to {
            let hi = lo.saturating_mul(2).min(self.to);
            k += 1;
            worst = worst.max(k + bisection_steps(lo, hi, self.tolerance));
            lo = hi;
        }
        worst
    }
}

/// Probes bisection takes, at worst, to close `lo..hi` (lo passing, hi failing).
pub fn bisection_steps(lo: u64, hi: u64, tolerance: f64) -> u64 {
    fn go(lo: u64, hi: u64, tolerance: f64) -> u64 {
        if bracket_closed(lo, hi, tolerance) {
            return 0;
        }
        let mid = lo + (hi - lo) / 2;
        1 + go(lo, mid, tolerance).max(go(mid, hi, tolerance))
    }
    go(lo, hi, tolerance)
}

/// The search between a passing `lo` and a failing `hi` is done.
pub fn bracket_closed(lo: u64, hi: u64, tolerance: f64) -> bool {
    hi <= lo + 1 || hi as f64 <= lo as f64 * (1.0 + tolerance)
}
