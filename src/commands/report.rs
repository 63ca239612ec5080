//! `loadmatrix report RUN_DIR [--template FILE]`: re-analyze and re-render a
//! finished or partial run; no traffic.

use std::path::{Path, PathBuf};

use crate::error::RunError;
use crate::plan::template::EnvVars;
use crate::plan::{self, LoadOptions, Plan, ReportTemplate, RunInfo};
use crate::results::{self, Manifest, RunDir};

/// The plan a run was made with: its copy in the run folder, with the
/// recorded overrides, resolved against the original plan's folder. Every
/// `env` variable renders as `***`: the run recorded no secret, and
/// re-rendering needs none.
pub(crate) fn load_run_plan(dir: &Path, manifest: &Manifest) -> Result<Plan, RunError> {
    let copy = std::fs::read_to_string(dir.join("plan.toml"))
        .map_err(|e| RunError::Usage(format!("cannot read {}/plan.toml: {e}", dir.display())))?;
    let original = PathBuf::from(&manifest.plan_file);
    let run = RunInfo {
        id: manifest.run_id.clone(),
        dir: dir.display().to_string(),
    };
    let overrides = crate::run::parse_overrides(&manifest.overrides)?;
    Ok(plan::load_str(
        &original,
        &copy,
        LoadOptions {
            overrides,
            run: Some(run),
            env: Some(EnvVars::masked()),
        },
    )?)
}

pub fn report(run_dir: &Path, template: Option<&Path>) -> Result<(), RunError> {
    let dir = RunDir::open(run_dir);
    // A folder that is not a run is said so (exit 2) before anything is
    // written into it, the lock file included.
    results::read_manifest(run_dir)?;
    let _lock = dir.lock()?;
    let manifest = results::read_manifest(run_dir)?;
    let plan = load_run_plan(run_dir, &manifest)?;
    let dir = dir.with_secrets(plan.secrets());
    let rows = results::load_rows(run_dir, &manifest);
    let analysis = crate::analysis::analyze_run(&plan, rows);
    crate::report::write_summary(&dir, &plan, &analysis)?;
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
    crate::report::render_reports(&dir, &plan, &manifest, &analysis, &specs, true)?;
    eprintln!(
        "report: {} cells, {} threshold checks, written to {}",
        analysis.rows.len(),
        analysis.thresholds.len(),
        run_dir.display()
    );
    match analysis.failed_thresholds() {
        0 => Ok(()),
        n => Err(RunError::Thresholds(n)),
    }
}
