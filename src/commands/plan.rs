//! `loadmatrix validate` and `loadmatrix plan`: the plan checked, expanded
//! and previewed; no traffic.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use crate::base::units::format_duration;
use crate::cli::PlanFormat;
use crate::error::RunError;
use crate::plan::{self, LoadModel, LoadOptions, Plan};
use crate::report::table;

fn load(path: &Path, set: &[String]) -> Result<Plan, RunError> {
    let overrides = crate::run::parse_overrides(set)?;
    Ok(plan::load(
        path,
        LoadOptions {
            overrides,
            ..Default::default()
        },
    )?)
}

pub fn validate(plans: &[PathBuf], set: &[String]) -> Result<(), RunError> {
    let mut first_error = None;
    for path in plans {
        match load(path, set) {
            Ok(p) => println!(
                "ok: {} ({} cell{})",
                path.display(),
                p.cells.len(),
                if p.cells.len() == 1 { "" } else { "s" }
            ),
            Err(e) => {
                e.print();
                first_error.get_or_insert(e);
            }
        }
    }
    match first_error {
        Some(e) => Err(RunError::Shown(e.exit_code())),
        None => Ok(()),
    }
}

pub fn show(
    path: &Path,
    format: PlanFormat,
    set: &[String],
    only: Option<&str>,
) -> Result<(), RunError> {
    let plan = load(path, set)?;
    let selected = only.map(|o| crate::run::select(&plan, o)).transpose()?;
    let text = match format {
        PlanFormat::Dot => plan.graph.to_dot(plan.cells.len()),
        PlanFormat::Text => plan_text(&plan, selected.as_deref()),
    };
    let text = crate::base::redact::Redactor::new(&plan.secrets()).redact(&text);
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes());
    Ok(())
}

/// The dry-run listing: cells table, step graph, estimate.
pub fn plan_text(plan: &Plan, selected: Option<&[bool]>) -> String {
    let mut out = String::new();
    let n = plan.cells.len();
    let _ = writeln!(
        out,
        "plan {} ({}): {n} cell{}",
        plan.name,
        plan.file.display(),
        if n == 1 { "" } else { "s" }
    );
    if !plan.description.is_empty() {
        let _ = writeln!(out, "{}", plan.description);
    }
    out.push('\n');
    let mut header: Vec<String> = vec!["#".into(), "cell".into()];
    header.extend(plan.axes.iter().cloned());
    // Replicas and workers are shown once, under the axis that sets them
    // when one does. An axis that only bears the name (replicas a plan's own
    // step manages, without a backend) keeps its column alone: the backend's
    // count beside it would be a second `replicas` saying something else.
    let set_by_axis = |role, name: &str| {
        plan.roles().find(&plan.axes, role).is_some() || plan.axes.iter().any(|a| a == name)
    };
    let show_replicas = !set_by_axis(crate::plan::Role::Replicas, "replicas");
    let show_workers = !set_by_axis(crate::plan::Role::Workers, "workers");
    header.push("backend".into());
    if show_replicas {
        header.push("replicas".into());
    }
    header.push("load".into());
    if show_workers {
        header.push("workers".into());
    }
    header.extend(
        ["warmup", "measure", "cooldown", "repeat"]
            .iter()
            .map(|s| s.to_string()),
    );
    if plan.search.is_some() {
        header.push("max probes".into());
    }
    if selected.is_some() {
        header.push("selected".into());
    }
    let mut rows = vec![header];
    for c in &plan.cells {
        let mut row = vec![(c.index + 1).to_string(), c.id.clone()];
        row.extend(
            plan.axes
                .iter()
                .map(|a| c.matrix.get(a).map(|v| v.to_string()).unwrap_or_default()),
        );
        let load = match (&plan.search, &c.load.model) {
            (Some(s), _) => format!(
                "search {} {}..{} to {}%",
                s.over.as_str(),
                s.from,
                s.to,
                s.tolerance * 100.0
            ),
            (None, model) => match model {
                LoadModel::Closed { users, .. } => format!("{users} users"),
                LoadModel::Open { stages, .. } if stages.len() == 1 => {
                    format!("{}/s", stages[0].rate)
                }
                LoadModel::Open { stages, .. } => format!("{} stages", stages.len()),
            },
        };
        row.push(c.system.backend.as_str().to_string());
        if show_replicas {
            row.push(c.system.replicas.to_string());
        }
        // Think time caps what users can send, whatever the system does.
        let ceiling = c
            .offered_ceiling()
            .filter(|_| plan.search.is_none())
            .map(|r| format!(", offers at most ~{r:.0} RPS"))
            .unwrap_or_default();
        row.push(format!("{load} ({}){ceiling}", c.load.engine.as_str()));
        if show_workers {
            row.push(c.load.workers.to_string());
        }
        row.extend([
            format_duration(c.timing.warmup),
            format_duration(c.measured_duration()),
            format_duration(c.timing.cooldown),
            c.timing.repeat.to_string(),
        ]);
        if let Some(s) = &plan.search {
            row.push(s.max_probes().to_string());
        }
        if let Some(sel) = selected {
            row.push(if sel[c.index] { "yes" } else { "-" }.to_string());
        }
        rows.push(row);
    }
    out.push_str(&table(&rows));
    let interleaved = order_text(plan, selected);
    let _ = writeln!(
        out,
        "{interleaved}\nsteps (in dependency order; {}):",
        if interleaved.is_empty() {
            "per-cell steps run for each cell, one cell at a time"
        } else {
            "per-cell steps run at each visit of a cell, one visit at a time"
        }
    );
    out.push_str(&plan.graph.to_text());
    for s in &plan.scrapes {
        let target = match &s.target {
            plan::ScrapeTarget::Path(p) => format!("{p} on every replica"),
            plan::ScrapeTarget::Url(u) => u.clone(),
        };
        let columns: Vec<&str> = s.series.iter().map(|x| x.column.as_str()).collect();
        let _ = writeln!(
            out,
            "\nscrape `{}`: {target} every {} of the measured window -> {}",
            s.name,
            format_duration(s.interval),
            columns.join(", ")
        );
    }
    if let Some(s) = &plan.search {
        return out + &search_estimate(plan, s, selected);
    }
    let (total, n) = match selected {
        Some(sel) => {
            let chosen: Vec<&plan::Cell> = plan.cells.iter().filter(|c| sel[c.index]).collect();
            let _ = writeln!(
                out,
                "\n--only selects {} of {} cells; the others stay pending.",
                chosen.len(),
                plan.cells.len()
            );
            (plan.wall_time_of(chosen.iter().copied()), chosen.len())
        }
        None => (plan.estimated_wall_time(), n),
    };
    let _ = writeln!(
        out,
        "\nestimated wall time: {} ({n} cell{} of warm-up + measure + cool-down, times repeat, and one baseline per system configuration; scaling and readiness come on top)",
        format_duration_rounded(total),
        if n == 1 { "" } else { "s" }
    );
    out
}

/// With `order = "interleave"`: every visit, one line per combination of
/// the other axes, in the order they run; empty otherwise.
fn order_text(plan: &Plan, selected: Option<&[bool]>) -> String {
    let (plan::CellOrder::Interleave, Some(ab)) = (plan.order, &plan.analysis.ab) else {
        return String::new();
    };
    let visits = plan.visits(selected);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "\norder: interleave: the `{}` cells take turns, one repeat per visit, forward then backward ({} visit{}):",
        ab.axis,
        visits.len(),
        if visits.len() == 1 { "" } else { "s" }
    );
    let mut line: Option<(String, Vec<String>)> = None;
    let flush = |out: &mut String, line: Option<(String, Vec<String>)>| {
        if let Some((key, names)) = line {
            let label = if key.is_empty() {
                String::new()
            } else {
                format!("{key}: ")
            };
            let _ = writeln!(out, "  {label}{}", names.join(", "));
        }
    };
    for v in &visits {
        let cell = &plan.cells[v.cell];
        let key = plan::order::combination(cell, &ab.axis);
        let name = format!("{} #{}", cell.id, v.repetition.unwrap_or(0) + 1);
        match &mut line {
            Some((k, names)) if *k == key => names.push(name),
            _ => {
                flush(&mut out, line.take());
                line = Some((key, vec![name]));
            }
        }
    }
    flush(&mut out, line);
    out
}

/// Whole seconds above a minute: an estimate has no use for milliseconds.
fn format_duration_rounded(d: std::time::Duration) -> String {
    if d.as_secs() >= 60 {
        format_duration(std::time::Duration::from_secs(d.as_secs()))
    } else {
        format_duration(d)
    }
}

/// The most probes and the worst-case time of a capacity search.
fn search_estimate(plan: &Plan, s: &plan::Search, selected: Option<&[bool]>) -> String {
    let chosen: Vec<&plan::Cell> = plan
        .cells
        .iter()
        .filter(|c| selected.is_none_or(|sel| sel[c.index]))
        .collect();
    let probes = s.max_probes();
    let mut worst = std::time::Duration::ZERO;
    let mut systems = std::collections::HashSet::new();
    for c in &chosen {
        let t = &c.timing;
        // An unstable probe is measured up to three times its duration.
        let one = t.warmup + c.measured_duration() * crate::search::MAX_EXTENSION + t.cooldown;
        worst += one * u32::try_from(t.repeat * probes).unwrap_or(u32::MAX);
        if systems.insert(c.system_key()) {
            worst += plan.analysis.baseline;
        }
    }
    let mut out = String::new();
    if selected.is_some() {
        let _ = writeln!(
            out,
            "\n--only selects {} of {} outer cells; the others stay pending.",
            chosen.len(),
            plan.cells.len()
        );
    }
    let _ = writeln!(
        out,
        "\ncapacity search over `{}`: each of the {} outer cell{} takes at most {probes} probes (doubling from {} to {}, then bisecting to within {}%), each a cell of its own",
        s.over.as_str(),
        chosen.len(),
        if chosen.len() == 1 { "" } else { "s" },
        s.from,
        s.to,
        s.tolerance * 100.0
    );
    let _ = writeln!(
        out,
        "worst-case wall time: {} ({} probes, each measured up to {}x its duration while unstable, times repeat, and one baseline per system configuration; scaling and readiness come on top)",
        format_duration_rounded(worst),
        probes * chosen.len() as u64,
        crate::search::MAX_EXTENSION
    );
    out
}
