//! `loadmatrix compare BASE NEW`: the regression gate between two runs.

use std::path::Path;

use crate::analysis::compare::{Bounds, deltas, markdown};
use crate::cli::CompareFormat;
use crate::error::RunError;
use crate::results::{self, CellStatus, SummaryRow};

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

/// A gate must not read a damaged figure as zero: the stats.json of every
/// cell the runs have in common, measured (or with a file), has to be there
/// and make sense.
fn check_common(dir: &Path, run: &Run, other: &Run) -> Result<(), RunError> {
    for c in &run.manifest.cells {
        if !other.manifest.cells.iter().any(|o| o.id == c.id) {
            continue;
        }
        if matches!(c.status, CellStatus::Complete | CellStatus::Degraded)
            || results::read::cell_folder(dir, &c.id)
                .join("stats.json")
                .exists()
        {
            results::read::read_stats_checked(dir, &c.id)?;
        }
    }
    Ok(())
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

/// The fail rate beyond which a cell fails: the new plan's `[analysis] slo`
/// `fail_rate`, 1% without one.
fn fail_limit(run: &Run) -> f64 {
    run.plan
        .as_ref()
        .and_then(|p| {
            let slo = p.get("analysis")?.get("slo")?;
            slo.get("fail_rate")
                .or_else(|| slo.get("fail_pct"))
                .cloned()
        })
        .and_then(|v| match v {
            toml::Value::String(s) => crate::base::units::parse_percent(&s).ok(),
            toml::Value::Integer(i) => Some(i as f64),
            toml::Value::Float(f) => Some(f),
            _ => None,
        })
        .filter(|v| v.is_finite() && *v >= 0.0)
        .unwrap_or(crate::analysis::DEFAULT_FAIL_PCT)
}

pub fn compare(
    base: &Path,
    new: &Path,
    max_regression: &str,
    force: bool,
    format: CompareFormat,
) -> Result<(), RunError> {
    let max_regression_pct = crate::base::units::parse_percent(max_regression)
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
    check_common(base, &b, &n)?;
    check_common(new, &n, &b)?;
    let warnings = warnings(&b, &n);
    for w in &warnings {
        eprintln!("warning: {w}");
    }
    let bounds = Bounds {
        max_regression_pct,
        fail_limit_pct: fail_limit(&n),
    };
    let (d, unmatched) = deltas(&b.rows, &n.rows, bounds);
    if d.is_empty() {
        return Err(RunError::Usage(format!(
            "no cell was measured in both {} and {}{}: there is nothing to compare",
            base.display(),
            new.display(),
            if unmatched.is_empty() {
                String::new()
            } else {
                format!(" ({})", unmatched.join(", "))
            }
        )));
    }
    let ran: Vec<&SummaryRow> = n
        .rows
        .iter()
        .filter(|r| r.status.is_final() && !r.metrics.is_empty())
        .collect();
    let no_success = ran.iter().all(|r| r.successes() <= 0.0);
    match format {
        CompareFormat::Md => {
            for w in &warnings {
                println!("> **Warning:** {w}.\n");
            }
            print!("{}", markdown(&d, &unmatched, bounds));
        }
        CompareFormat::Json => {
            let json = serde_json::json!({
                "base": base.display().to_string(),
                "new": new.display().to_string(),
                "max_regression_pct": bounds.max_regression_pct,
                "fail_limit_pct": bounds.fail_limit_pct,
                "warnings": warnings,
                "cells": d.iter().map(|d| {
                    let mut v = serde_json::to_value(d).unwrap_or_default();
                    v["verdict"] = d.verdict().replace("**", "").into();
                    v["within_noise"] = d.within_noise().into();
                    v
                }).collect::<Vec<_>>(),
                "not_compared": unmatched,
                "regressed": d.iter().filter(|d| d.regressed).count(),
                "passed": !no_success && !d.iter().any(|d| d.regressed),
            });
            println!(
                "{}",
                serde_json::to_string_pretty(&json).unwrap_or_default()
            );
        }
    }
    if no_success {
        let msg = format!(
            "the new run has no successful request: every request of its {} measured cell(s) failed",
            ran.len()
        );
        if format == CompareFormat::Md {
            println!("\n**Gate failed:** {msg}.");
        }
        eprintln!("error: {msg}");
        return Err(RunError::Thresholds(ran.len().max(1)));
    }
    match d.iter().filter(|d| d.regressed).count() {
        0 => Ok(()),
        n => Err(RunError::Thresholds(n)),
    }
}
