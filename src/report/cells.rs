//! Per-cell report context, read back from the cell folders so that a run and
//! `loadmatrix report` render the same pages.

use std::path::Path;

use indexmap::IndexMap;
use serde_json::{Value, json};

use crate::results::Manifest;

/// One context object per cell of the manifest, in matrix order.
pub fn cell_contexts(dir: &Path, manifest: &Manifest) -> Vec<Value> {
    manifest
        .cells
        .iter()
        .map(|entry| {
            let folder = dir.join("cells").join(&entry.id);
            let stats: Value = std::fs::read_to_string(folder.join("stats.json"))
                .ok()
                .and_then(|t| serde_json::from_str(&t).ok())
                .unwrap_or(Value::Null);
            let events: Vec<String> = std::fs::read_to_string(folder.join("events.log"))
                .map(|t| {
                    let lines: Vec<&str> = t.lines().collect();
                    lines[lines.len().saturating_sub(30)..]
                        .iter()
                        .map(|s| s.to_string())
                        .collect()
                })
                .unwrap_or_default();
            json!({
                "id": entry.id,
                "matrix": entry.matrix,
                "status": entry.status,
                "message": entry.message,
                "measured": entry.status.is_measured() && !stats.is_null(),
                "summary": stats.get("summary").cloned().unwrap_or(Value::Null),
                "stats": stats.get("stats").cloned().unwrap_or(Value::Null),
                "repetitions": stats.get("repetitions").cloned().unwrap_or(json!([])),
                "warnings": stats.pointer("/stats/warnings").cloned().unwrap_or(json!([])),
                "system": system_summary(&folder.join("system.csv")),
                "events": events,
                "page": format!("cells/{}/cell.md", entry.id),
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
        if t < 0.0 {
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
