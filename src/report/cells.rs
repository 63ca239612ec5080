//! Per-cell report context, read back from the cell folders so that a run and
//! `loadmatrix report` render the same pages.

use std::path::Path;

use indexmap::IndexMap;
use serde_json::{Value, json};

use crate::results::Manifest;
use crate::results::read::{read_events_tail, read_stats};

/// One context object per cell of the manifest, in matrix order.
pub fn cell_contexts(dir: &Path, manifest: &Manifest) -> Vec<Value> {
    manifest
        .cells
        .iter()
        .map(|entry| {
            let folder = dir.join("cells").join(&entry.id);
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
                "system": system_summary(&folder.join("system.csv")),
                "events": events,
                "page": format!("cells/{}/cell.md", entry.id),
                "scrape_charts": [],
            })
        })
        .collect()
}

/// Per replica: sample count, mean and max CPU %, max memory (MiB) in the
/// measured window.
fn system_summary(path: &Path) -> Vec<Value> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return Vec::new();
    };
    let mut by_replica: IndexMap<String, (u64, f64, f64, f64)> = IndexMap::new();
    for line in text.lines().skip(1) {
        let f: Vec<&str> = line.split(',').collect();
        let (Some(t), Some(replica), Some(cpu), Some(mem)) =
            (f.first(), f.get(1), f.get(2), f.get(3))
        else {
            continue;
        };
        let (Ok(t), Ok(cpu), Ok(mem)) = (t.parse::<f64>(), cpu.parse::<f64>(), mem.parse::<f64>())
        else {
            continue;
        };
        // A damaged or hand-edited file may hold NaN or inf: no figure.
        if t < 0.0 || !(t.is_finite() && cpu.is_finite() && mem.is_finite()) {
            continue;
        }
        let e = by_replica
            .entry(replica.to_string())
            .or_insert((0, 0.0, 0.0, 0.0));
        e.0 += 1;
        e.1 += cpu;
        e.2 = e.2.max(cpu);
        e.3 = e.3.max(mem / (1024.0 * 1024.0));
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
