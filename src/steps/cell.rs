//! A cell's folder, written once all its steps are finished, and the run
//! manifest, rewritten after every cell.

use std::fmt::Write as _;
use std::time::SystemTime;

use serde_json::json;

use crate::engine::CellStats;
use crate::results::{self, CellStatus};
use crate::run::state::{CellRecord, RunState};
use crate::system::SystemSample;

pub async fn mark_started(state: &RunState, c: usize) {
    let mut cells = state.cells.lock().await;
    let rec = cells.entry(c).or_default();
    if rec.started.is_none() {
        rec.started = Some(results::timestamp(SystemTime::now()));
        rec.status = Some(CellStatus::Running);
        drop(cells);
        let mut m = state.manifest.lock().await;
        if let Some(e) = m.cells.get_mut(c) {
            e.status = CellStatus::Running;
            e.started = Some(results::timestamp(SystemTime::now()));
        }
        drop(m);
        write_manifest(state).await;
    }
}

/// The merged statistics of a cell's repetitions (exact histogram merges).
pub fn merged_stats(runs: &[CellStats]) -> Option<CellStats> {
    let mut parts = runs.to_vec();
    if parts.is_empty() {
        return None;
    }
    if parts.len() == 1 {
        return parts.pop();
    }
    // Repetitions are one longer measurement for counts and percentiles.
    Some(crate::steps::load::combine_sequential(parts))
}

pub fn cell_status(rec: &CellRecord) -> CellStatus {
    if rec.runs.is_empty() {
        if rec.failed.is_some() {
            CellStatus::Failed
        } else {
            CellStatus::Skipped
        }
    } else if rec.failed.is_some() || rec.degraded.is_some() {
        CellStatus::Degraded
    } else {
        CellStatus::Complete
    }
}

/// Writes the cell folder; an error means results can no longer be kept
/// (the disk is full, say) and the run must stop.
pub async fn finish_cell(state: &RunState, c: usize, all_skipped: bool) -> Result<(), String> {
    let plan = &state.plan;
    let cell = &plan.cells[c];
    let mut cells = state.cells.lock().await;
    let rec = cells.entry(c).or_default();
    if rec.prior.is_some() {
        return Ok(());
    }
    let status = if all_skipped && rec.runs.is_empty() {
        CellStatus::Skipped
    } else {
        cell_status(rec)
    };
    rec.status = Some(status);
    let message = rec.failed.clone().or_else(|| rec.degraded.clone());
    if status == CellStatus::Skipped && state.cancelled() {
        // Interrupted before it began: leave it pending for a resume.
        drop(cells);
        return Ok(());
    }
    let files = if status.is_measured() {
        Some(cell_files(state, c, rec))
    } else {
        None
    };
    drop(cells);
    let mut write_error = None;
    if let Some(files) = files {
        let files: Vec<(&str, Vec<u8>)> =
            files.iter().map(|(n, b)| (n.as_str(), b.clone())).collect();
        if let Err(e) = state.dir.write_cell(&cell.id, &files) {
            write_error = Some(format!("cannot write the files of cell {}: {e}", cell.id));
        }
    }
    {
        let mut m = state.manifest.lock().await;
        if let Some(e) = m.cells.get_mut(c) {
            e.status = if write_error.is_some() {
                CellStatus::Failed
            } else {
                status
            };
            e.finished = Some(results::timestamp(SystemTime::now()));
            e.message = write_error.clone().or(message).map(|m| state.redact(&m));
        }
    }
    write_manifest(state).await;
    match write_error {
        Some(e) => {
            eprintln!("error: {e}");
            Err(e)
        }
        None => Ok(()),
    }
}

fn cell_files(state: &RunState, c: usize, rec: &CellRecord) -> Vec<(String, Vec<u8>)> {
    let cell = &state.plan.cells[c];
    let merged = merged_stats(&rec.runs);
    let mut files = Vec::new();
    let repetitions: Vec<serde_json::Value> = rec
        .runs
        .iter()
        .map(|r| json!({ "requests": r.total.requests, "failures": r.total.failures, "rps": r.total.rps, "p50_ms": r.total.p50_ms, "p95_ms": r.total.p95_ms, "p99_ms": r.total.p99_ms, "measured_secs": r.measured_secs, "client_cpu_pct": r.client_cpu_pct }))
        .collect();
    let stats = json!({
        "cell": cell.id,
        "matrix": cell.matrix,
        "status": cell_status(rec),
        "engine": cell.load.engine.as_str(),
        "latency_unit": "ms",
        "histogram": "HDR, microsecond resolution, 3 significant digits; per-worker histograms merged exactly; failures carry no latency",
        "summary": crate::steps::analyze::summary_row(&state.plan, c, rec),
        "stats": merged,
        "repetitions": repetitions,
    });
    files.push(("stats.json".to_string(), pretty(&stats)));
    files.push((
        "timeline.csv".to_string(),
        timeline_csv(&rec.runs).into_bytes(),
    ));
    files.push((
        "system.csv".to_string(),
        system_csv(&rec.samples).into_bytes(),
    ));
    let mut events = String::new();
    for e in &rec.events {
        let _ = writeln!(events, "{}", state.redact(e));
    }
    files.push(("events.log".to_string(), events.into_bytes()));
    for (name, bytes) in &rec.files {
        files.push((name.clone(), bytes.clone()));
    }
    // Request names, bodies and scraped pages may carry env values.
    for (_, bytes) in &mut files {
        if let Ok(text) = std::str::from_utf8(bytes) {
            let clean = state.redact(text);
            if clean != text {
                *bytes = clean.into_bytes();
            }
        }
    }
    files
}

fn pretty(v: &serde_json::Value) -> Vec<u8> {
    let mut out = serde_json::to_vec_pretty(v).unwrap_or_default();
    out.push(b'\n');
    out
}

fn timeline_csv(runs: &[CellStats]) -> String {
    let mut out = String::new();
    let repeated = runs.len() > 1;
    out.push_str(if repeated {
        "repeat,t,users,rps,requests,failures,p50,p95,p99\n"
    } else {
        "t,users,rps,requests,failures,p50,p95,p99\n"
    });
    for (i, r) in runs.iter().enumerate() {
        for row in &r.timeline {
            if repeated {
                let _ = write!(out, "{},", i + 1);
            }
            let _ = writeln!(
                out,
                "{},{},{:.3},{},{},{:.3},{:.3},{:.3}",
                row.t,
                row.users,
                row.rps,
                row.requests,
                row.failures,
                row.p50_ms,
                row.p95_ms,
                row.p99_ms
            );
        }
    }
    out
}

fn system_csv(samples: &[SystemSample]) -> String {
    let mut out = String::from("t,replica,cpu_pct,mem_bytes\n");
    for s in samples {
        let _ = writeln!(
            out,
            "{:.3},{},{:.2},{}",
            s.t, s.replica, s.cpu_pct, s.mem_bytes
        );
    }
    out
}

pub async fn write_manifest(state: &RunState) {
    let m = state.manifest.lock().await.clone();
    let mut text = serde_json::to_vec_pretty(&m).unwrap_or_default();
    text.push(b'\n');
    let text = state.redact(&String::from_utf8_lossy(&text));
    if let Err(e) = state.dir.write("run.json", text.as_bytes()) {
        eprintln!("error: cannot write run.json: {e}");
    }
}

pub async fn write_run_events(state: &RunState) {
    let events = state.run_events.lock().await.join("\n");
    if !events.is_empty() {
        let _ = state.dir.write(
            "events.log",
            format!("{}\n", state.redact(&events)).as_bytes(),
        );
    }
}
