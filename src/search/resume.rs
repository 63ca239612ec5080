//! Resuming a capacity search: every probe measured before is kept (re-read,
//! never measured again) when its configuration is unchanged; the search
//! replays their verdicts and goes on from there.

use std::path::Path;

use crate::plan::matrix::MatrixValue;
use crate::plan::{Cell, Plan};
use crate::results::{self, CellRecord, CellStatus, Manifest, RunStatus};

/// Why a search cannot be resumed as it is.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ResumeError {
    #[error(
        "--resume: probe {0} was measured, but the plan no longer searches it; start a new run (or restore the plan)"
    )]
    NoLongerSearched(String),
    #[error(
        "--resume: probe {probe} was measured with a different configuration than the plan now gives it; {}",
        if *overrides_changed { "resume it with the same --set overrides" } else { "start a new run (or restore the plan)" }
    )]
    Changed {
        probe: String,
        overrides_changed: bool,
    },
}

/// What a resumed search starts from: its manifest (running again), the
/// probes kept, and their records (each holding the row read back).
pub(crate) struct Replay {
    pub manifest: Manifest,
    pub probes: Vec<Cell>,
    pub records: Vec<CellRecord>,
}

/// Replays the probes of `old` (a run of `plan` in `dir`) that are still
/// the plan's; a probe measured under another configuration is an error.
pub(crate) fn replay(
    plan: &Plan,
    dir: &Path,
    old: Manifest,
    overrides_changed: bool,
) -> Result<Replay, ResumeError> {
    let over = plan
        .search
        .as_ref()
        .map(|s| s.over.as_str())
        .unwrap_or("users");
    let rows = results::load_rows(dir, &old);
    let mut probes = Vec::new();
    let mut records = Vec::new();
    let mut cells = Vec::new();
    for (entry, row) in old.cells.iter().zip(&rows) {
        let probe = plan.cell_of_row(&entry.id).and_then(|outer| {
            let value = match entry.matrix.get(over)? {
                MatrixValue::Int(i) => u64::try_from(*i).ok()?,
                _ => return None,
            };
            plan.probe(outer.index, value)
        });
        let Some(probe) = probe.filter(|p| p.id == entry.id) else {
            if entry.status.is_measured() {
                return Err(ResumeError::NoLongerSearched(entry.id.clone()));
            }
            continue;
        };
        if !entry.status.is_measured() || row.metrics.is_empty() {
            // Not measured (or its folder is gone): the search measures it again if it needs it.
            let mut e = entry.clone();
            if e.status == CellStatus::Running {
                e.status = CellStatus::Interrupted;
            }
            cells.push(e);
            continue;
        }
        if entry.hash.as_deref() != Some(probe.hash().as_str()) {
            return Err(ResumeError::Changed {
                probe: entry.id.clone(),
                overrides_changed,
            });
        }
        cells.push(entry.clone());
        probes.push(probe);
        records.push(CellRecord {
            status: entry.status,
            prior: Some(row.clone()),
            ..Default::default()
        });
    }
    results::clean_stale_temp(dir);
    Ok(Replay {
        manifest: Manifest {
            status: RunStatus::Running,
            finished: None,
            plan_hash: plan.hash.clone(),
            cells,
            ..old
        },
        probes,
        records,
    })
}
