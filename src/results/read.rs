//! Reading a run folder back: the manifest, each cell's stats.json and
//! events, the summary rows of a partial or finished run.

use std::path::Path;

use super::ResultsError;
use super::manifest::{CellStatus, Manifest};
use super::record::StatsFile;
use super::summary::SummaryRow;

pub fn read_manifest(dir: &Path) -> Result<Manifest, ResultsError> {
    let path = dir.join("run.json");
    let text = std::fs::read_to_string(&path).map_err(|error| ResultsError::NotARun {
        dir: dir.to_path_buf(),
        error,
    })?;
    serde_json::from_str(&text).map_err(|e| ResultsError::Damaged {
        path,
        message: e.to_string(),
    })
}

pub(crate) use super::files::cell_folder;

/// A cell's stats.json, when the cell folder holds a readable one.
pub(crate) fn read_stats(dir: &Path, id: &str) -> Option<StatsFile> {
    let text = std::fs::read_to_string(cell_folder(dir, id).join("stats.json")).ok()?;
    serde_json::from_str(&text).ok()
}

/// A cell's stats.json read for a verdict: a missing, unreadable or
/// nonsensical file is an error that names it, never a row of zeros.
pub(crate) fn read_stats_checked(dir: &Path, id: &str) -> Result<StatsFile, ResultsError> {
    let path = cell_folder(dir, id).join("stats.json");
    let damaged = |message: String| ResultsError::Damaged {
        path: path.clone(),
        message,
    };
    let text =
        std::fs::read_to_string(&path).map_err(|e| damaged(format!("cannot read it: {e}")))?;
    let file: StatsFile =
        serde_json::from_str(&text).map_err(|e| damaged(format!("not a cell's stats: {e}")))?;
    let m = &file.summary.metrics;
    if file.stats.is_some() {
        for key in ["requests", "failures", "rps"] {
            if !m.contains_key(key) {
                return Err(damaged(format!("its summary has no `{key}`")));
            }
        }
    }
    for key in ["requests", "failures", "fail_pct", "rps", "ok_rps", "p95"] {
        if let Some(v) = m.get(key).filter(|v| !v.is_finite() || **v < 0.0) {
            return Err(damaged(format!("`{key}` is {v}, not a measured figure")));
        }
    }
    if m.get("failures") > m.get("requests") {
        return Err(damaged("more failures than requests".to_string()));
    }
    Ok(file)
}

/// A cell's baseline.json, when it has one.
pub(crate) fn read_baseline(dir: &Path, id: &str) -> Option<super::record::Baseline> {
    let text = std::fs::read_to_string(cell_folder(dir, id).join("baseline.json")).ok()?;
    serde_json::from_str(&text).ok()
}

/// The last `n` lines of a cell's events.log.
pub(crate) fn read_events_tail(dir: &Path, id: &str, n: usize) -> Vec<String> {
    std::fs::read_to_string(cell_folder(dir, id).join("events.log"))
        .map(|t| {
            let lines: Vec<&str> = t.lines().collect();
            lines[lines.len().saturating_sub(n)..]
                .iter()
                .map(|s| s.to_string())
                .collect()
        })
        .unwrap_or_default()
}

/// One row per cell of the manifest: measured cells from their stats.json,
/// others with their status and no figures. A cell still `running` in a
/// manifest belongs to a process that died: it is `interrupted`.
pub fn load_rows(dir: &Path, manifest: &Manifest) -> Vec<SummaryRow> {
    manifest
        .cells
        .iter()
        .map(|entry| {
            let status = match entry.status {
                CellStatus::Running => CellStatus::Interrupted,
                s => s,
            };
            match read_stats(dir, &entry.id) {
                Some(f) if status.is_final() => SummaryRow {
                    status,
                    seconds: super::seconds::read_timeline(
                        &cell_folder(dir, &entry.id).join(super::files::TIMELINE),
                        &f.repetitions
                            .iter()
                            .map(|r| r.measured_secs)
                            .collect::<Vec<_>>(),
                    ),
                    ..f.summary
                },
                _ => SummaryRow::unmeasured(&entry.id, &entry.matrix, status),
            }
        })
        .collect()
}
