//! `loadmatrix compare BASE NEW`: the regression gate between two runs.

use std::path::Path;

use crate::analysis::compare::{deltas, markdown};
use crate::error::RunError;
use crate::results::{self, SummaryRow};

struct Run {
    manifest: results::Manifest,
    rows: Vec<SummaryRow>,
    /// The load engine of its measured cells.
    engines: Vec<String>,
}

fn read(dir: &Path) -> Result<Run, RunError> {
    let manifest = results::read_manifest(dir)?;
    let rows = results::load_rows(dir, &manifest);
    let mut engines: Vec<String> = manifest
        .cells
        .iter()
        .filter_map(|c| results::read::read_stats(dir, &c.id).map(|s| s.engine))
        .collect();
    engines.sort();
    engines.dedup();
    Ok(Run {
        manifest,
        rows,
        engines,
    })
}

/// What makes two runs' figures less comparable, one line each.
fn warnings(base: &Run, new: &Run) -> Vec<String> {
    let mut out = Vec::new();
    if base.manifest.plan != new.manifest.plan {
        out.push(format!(
            "the runs are of different plans (`{}` and `{}`)",
            base.manifest.plan, new.manifest.plan
        ));
    } else if base.manifest.plan_hash != new.manifest.plan_hash {
        out.push("the plan changed between the runs (its hash differs)".to_string());
    }
    if base.manifest.overrides != new.manifest.overrides {
        out.push(format!(
            "the runs were made with different --set overrides ({} and {})",
            list_or_none(&base.manifest.overrides),
            list_or_none(&new.manifest.overrides)
        ));
    }
    if !base.engines.is_empty() && !new.engines.is_empty() && base.engines != new.engines {
        out.push(format!(
            "the runs used different load engines ({} and {}): their figures are not measured alike",
            base.engines.join(", "),
            new.engines.join(", ")
        ));
    }
    out
}

fn list_or_none(items: &[String]) -> String {
    if items.is_empty() {
        "none".to_string()
    } else {
        items.join(" ")
    }
}

pub fn compare(base: &Path, new: &Path, max_regression: &str) -> Result<(), RunError> {
    let bound = crate::plan::units::parse_percent(max_regression)
        .map_err(|e| RunError::Usage(format!("--max-regression: {e}")))?;
    let (b, n) = (read(base)?, read(new)?);
    let warnings = warnings(&b, &n);
    for w in &warnings {
        eprintln!("warning: {w}");
    }
    let (d, unmatched) = deltas(&b.rows, &n.rows, bound);
    for w in &warnings {
        println!("> **Warning:** {w}.\n");
    }
    print!("{}", markdown(&d, &unmatched, bound));
    match d.iter().filter(|d| d.regressed).count() {
        0 => Ok(()),
        n => Err(RunError::Thresholds(n)),
    }
}
