//! `loadmatrix compare BASE NEW`: the regression gate between two runs.

use std::path::Path;

use crate::analysis::compare::{deltas, markdown};
use crate::error::RunError;
use crate::results::{self, SummaryRow};

struct Run {
    manifest: results::Manifest,
    /// Its copy of the plan, as written (secrets unexpanded).
    plan: Option<toml::Table>,
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
    let plan = std::fs::read_to_string(dir.join("plan.toml"))
        .ok()
        .and_then(|t| t.parse::<toml::Table>().ok());
    Ok(Run {
        manifest,
        plan,
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
        out.push(match (&base.plan, &new.plan) {
            (Some(a), Some(b)) if !changed_keys(a, b).is_empty() => format!(
                "the plan changed between the runs: {}",
                changed_keys(a, b).join(", ")
            ),
            _ => "the plan changed between the runs (its hash differs)".to_string(),
        });
    }
    if base.manifest.plan == new.manifest.plan && base.manifest.axes != new.manifest.axes {
        out.push(format!(
            "the matrix axes differ ({} and {})",
            list_or_none(&base.manifest.axes),
            list_or_none(&new.manifest.axes)
        ));
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

/// The settings that differ between two plans, as dotted keys down to the
/// first level inside a section (`cell.duration`, `load.request`).
fn changed_keys(a: &toml::Table, b: &toml::Table) -> Vec<String> {
    let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
    keys.sort();
    keys.dedup();
    let mut out = Vec::new();
    for k in keys {
        match (a.get(k), b.get(k)) {
            (Some(x), Some(y)) if x == y => {}
            (Some(toml::Value::Table(x)), Some(toml::Value::Table(y))) => {
                let mut inner: Vec<&String> = x.keys().chain(y.keys()).collect();
                inner.sort();
                inner.dedup();
                out.extend(
                    inner
                        .into_iter()
                        .filter(|i| x.get(*i) != y.get(*i))
                        .map(|i| format!("{k}.{i}")),
                );
            }
            _ => out.push(k.clone()),
        }
    }
    out
}

/// Why two runs cannot be compared cell by cell, if they cannot.
fn unrelated(base: &Run, new: &Run) -> Option<String> {
    if base.manifest.plan != new.manifest.plan {
        return Some(format!(
            "the runs are of different plans (`{}` and `{}`)",
            base.manifest.plan, new.manifest.plan
        ));
    }
    let common = base
        .manifest
        .cells
        .iter()
        .any(|b| new.manifest.cells.iter().any(|n| n.id == b.id));
    (!common).then(|| {
        format!(
            "no cell of one run is a cell of the other (matrix axes {} and {})",
            list_or_none(&base.manifest.axes),
            list_or_none(&new.manifest.axes)
        )
    })
}

fn list_or_none(items: &[String]) -> String {
    if items.is_empty() {
        "none".to_string()
    } else {
        items.join(" ")
    }
}

pub fn compare(base: &Path, new: &Path, max_regression: &str, force: bool) -> Result<(), RunError> {
    let bound = crate::plan::units::parse_percent(max_regression)
        .map_err(|e| RunError::Usage(format!("--max-regression: {e}")))?;
    let (b, n) = (read(base)?, read(new)?);
    if !force && let Some(why) = unrelated(&b, &n) {
        return Err(RunError::Usage(format!(
            "{} and {} are not runs of the same matrix: {why}; their cells cannot be compared. \
             Compare two runs of one plan, or pass --force to compare them anyway",
            base.display(),
            new.display()
        )));
    }
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
