//! Per-cell report context, read back from the cell folders so that a run and
//! `loadmatrix report` render the same pages.

use std::path::Path;

use indexmap::IndexMap;
use serde_json::{Value, json};

use crate::results::Manifest;
use crate::results::files::{SystemRow, read_system};
use crate::results::read::{read_events_tail, read_stats};

/// One context object per cell of the manifest, in matrix order.
pub(crate) fn cell_contexts(dir: &Path, manifest: &Manifest) -> Vec<Value> {
    manifest
        .cells
        .iter()
        .map(|entry| {
            let stats = read_stats(dir, &entry.id);
            let events = read_events_tail(dir, &entry.id, 30);
            let measured = entry.status.is_measured() && stats.is_some();
            let (summary, cell_stats, repetitions, warnings) = match &stats {
                Some(f) => (
                    json!(f.summary),
                    json!(f.stats),
                    json!(f.repetitions),
                    json!(
                        f.stats
                            .as_ref()
                            .map(|s| s.warnings.clone())
                            .unwrap_or_default()
                    ),
                ),
                None => (Value::Null, Value::Null, json!([]), json!([])),
            };
            json!({
                "id": entry.id,
                "matrix": entry.matrix,
                "status": entry.status,
                "message": entry.message,
                "measured": measured,
                "summary": summary,
                "stats": cell_stats,
                "repetitions": repetitions,
                "warnings": warnings,
                "system": system_summary(&read_system(dir, &entry.id)),
                "events": events,
                "page": format!("cells/{}/cell.md", entry.id),
                "scrape_charts": [],
            })
        })
        .collect()
}

/// Per replica: sample count, mean and max CPU %, max memory (MiB) in the
/// measured window.
fn system_summary(rows: &[SystemRow]) -> Vec<Value> {
    let mut by_replica: IndexMap<&str, (u64, f64, f64, f64)> = IndexMap::new();
    for r in rows {
        let e = by_replica.entry(&r.replica).or_insert((0, 0.0, 0.0, 0.0));
        e.0 += 1;
        e.1 += r.cpu_pct;
        e.2 = e.2.max(r.cpu_pct);
        e.3 = e.3.max(r.mem_bytes / (1024.0 * 1024.0));
    }
    by_replica
        .into_iter()
        .map(|(replica, (n, sum, max_cpu, max_mem))| {
            json!({
                "replica": replica,
                "samples": n,
                "mean_cpu_pct": if n > 0 { sum / n as f64 } else { 0.0 },
                "max_cpu_pct": max_cpu,
                "max_mem_mb": max_mem,
            })
        })
        .collect()
}
