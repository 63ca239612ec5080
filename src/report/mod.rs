//! Reports from a finished (or partial) run folder, without traffic.

pub mod cells;
pub mod charts;
pub mod junit;

use std::path::{Path, PathBuf};

use crate::exit_code;
use crate::plan::{self, LoadOptions, Plan, ReportTemplate, RunInfo};
use crate::results::{CellStatus, Manifest, RunDir};
use crate::steps::analyze::{SummaryRow, write_summary};

/// The plan a run was made with: the original file when it still exists,
/// else the copy in the run folder, resolved against the original's folder.
pub fn load_run_plan(dir: &Path, manifest: &Manifest) -> Result<Plan, String> {
    let copy = std::fs::read_to_string(dir.join("plan.toml"))
        .map_err(|e| format!("cannot read {}/plan.toml: {e}", dir.display()))?;
    let original = PathBuf::from(&manifest.plan_file);
    let run = RunInfo {
        id: manifest.run_id.clone(),
        dir: dir.display().to_string(),
    };
    plan::load_str(
        &original,
        &copy,
        LoadOptions {
            run: Some(run),
            ..Default::default()
        },
    )
    .map_err(|e| crate::commands::render_plan_error(&e))
}

pub fn read_manifest(dir: &Path) -> Result<Manifest, String> {
    let text = std::fs::read_to_string(dir.join("run.json")).map_err(|e| {
        format!(
            "{} is not a run folder: cannot read run.json: {e}",
            dir.display()
        )
    })?;
    serde_json::from_str(&text).map_err(|e| format!("{}/run.json is damaged: {e}", dir.display()))
}

/// One row per cell of the manifest: measured cells from their stats.json,
/// others with their status and no metrics.
pub fn load_rows(dir: &Path, manifest: &Manifest) -> Vec<SummaryRow> {
    manifest
        .cells
        .iter()
        .map(|entry| {
            let stats = dir.join("cells").join(&entry.id).join("stats.json");
            let from_disk = std::fs::read_to_string(&stats)
                .ok()
                .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
                .and_then(|v| serde_json::from_value::<SummaryRow>(v.get("summary")?.clone()).ok());
            from_disk.unwrap_or_else(|| SummaryRow {
                cell: entry.id.clone(),
                matrix: entry.matrix.clone(),
                status: if entry.status == CellStatus::Running {
                    CellStatus::Failed
                } else {
                    entry.status
                },
                metrics: Default::default(),
                client_bound: false,
                warnings: Vec::new(),
                repeat_rps: Vec::new(),
            })
        })
        .collect()
}

/// `loadmatrix report RUN_DIR [--template FILE]`.
pub fn report_command(run_dir: &Path, template: Option<&Path>) -> u8 {
    let result = (|| -> Result<bool, String> {
        let manifest = read_manifest(run_dir)?;
        let plan = load_run_plan(run_dir, &manifest)?;
        let dir = RunDir::open(run_dir);
        let rows = load_rows(run_dir, &manifest);
        let secrets = plan.secrets();
        let analysis = write_summary(&dir, &plan, rows, &secrets)
            .map_err(|e| format!("cannot write to {}: {e}", run_dir.display()))?;
        let specs: Vec<(ReportTemplate, String)> = match template {
            Some(t) => {
                let out = t
                    .file_name()
                    .and_then(|n| n.to_str())
                    .map(|n| n.trim_end_matches(".j2").to_string())
                    .unwrap_or_else(|| "report.md".into());
                vec![(ReportTemplate::File(t.to_path_buf()), out)]
            }
            None => plan
                .reports
                .iter()
                .map(|r| (r.template.clone(), r.output.clone()))
                .collect(),
        };
        crate::steps::report::render_reports(
            &dir, &plan, &manifest, &analysis, &secrets, &specs, true,
        )?;
        eprintln!(
            "report: {} cells, {} threshold checks, written to {}",
            analysis.rows.len(),
            analysis.thresholds.len(),
            run_dir.display()
        );
        Ok(analysis.thresholds.iter().all(|t| t.passed))
    })();
    match result {
        Ok(true) => exit_code::OK,
        Ok(false) => exit_code::THRESHOLD_FAILED,
        Err(e) => {
            eprintln!("error: {e}");
            exit_code::INVALID
        }
    }
}
