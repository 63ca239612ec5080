//! One function per subcommand; each returns the process exit code.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::Path;

use crate::cli::{Cli, Command, PlanFormat};
use crate::exit_code;
use crate::plan::units::format_duration;
use crate::plan::{self, LoadModel, LoadOptions, Override, Plan, PlanError};

pub fn run(cli: Cli) -> u8 {
    match cli.command {
        Command::Run(args) => crate::run::run(args),
        Command::Report { run_dir, template } => {
            crate::report::report_command(&run_dir, template.as_deref())
        }
        Command::Compare {
            base,
            new,
            max_regression,
        } => crate::compare::compare_command(&base, &new, &max_regression),
        Command::Validate { plans, set } => validate(&plans, &set),
        Command::Plan { plan, format, set } => show_plan(&plan, format, &set),
        Command::Schema => {
            print!("{}", plan::json_schema());
            exit_code::OK
        }
        Command::DemoImage { tag } => match crate::system::docker_image::demo_image_command(&tag) {
            Ok(()) => {
                eprintln!("built image {tag}");
                exit_code::OK
            }
            Err(e) => {
                eprintln!("error: {e}");
                exit_code::RUN_FAILED
            }
        },
        Command::DemoTarget(args) => match crate::demo_target::run(args) {
            Ok(()) => exit_code::OK,
            Err(e) => {
                eprintln!("error: {e}");
                exit_code::INVALID
            }
        },
    }
}

pub fn parse_overrides(set: &[String]) -> Result<Vec<Override>, String> {
    set.iter().map(|s| Override::parse(s)).collect()
}

fn load_or_report(path: &Path, set: &[String]) -> Result<Plan, u8> {
    let overrides = parse_overrides(set).map_err(|e| {
        eprintln!("error: {e}");
        exit_code::INVALID
    })?;
    plan::load(
        path,
        LoadOptions {
            overrides,
            ..Default::default()
        },
    )
    .map_err(|e| {
        eprint!("{}", render_plan_error(&e));
        exit_code::INVALID
    })
}

pub fn render_plan_error(e: &PlanError) -> String {
    match e {
        PlanError::Read { .. } => format!("error: {e}\n"),
        PlanError::Invalid(diags) => crate::diagnostic::render_all(diags),
    }
}

fn validate(plans: &[std::path::PathBuf], set: &[String]) -> u8 {
    let mut code = exit_code::OK;
    for path in plans {
        match load_or_report(path, set) {
            Ok(p) => println!(
                "ok: {} ({} cell{})",
                path.display(),
                p.cells.len(),
                if p.cells.len() == 1 { "" } else { "s" }
            ),
            Err(c) => code = c,
        }
    }
    code
}

fn show_plan(path: &Path, format: PlanFormat, set: &[String]) -> u8 {
    let plan = match load_or_report(path, set) {
        Ok(p) => p,
        Err(c) => return c,
    };
    let text = match format {
        PlanFormat::Dot => plan.graph.to_dot(plan.cells.len()),
        PlanFormat::Text => plan_text(&plan),
    };
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes());
    exit_code::OK
}

/// The dry-run listing: cells table, step graph, estimate.
pub fn plan_text(plan: &Plan) -> String {
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
    // Replicas and workers are shown once, under the axis name when they vary.
    let show_replicas = !plan.axes.iter().any(|a| a == "replicas");
    let show_workers = !plan.axes.iter().any(|a| a == "workers");
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
    let mut rows = vec![header];
    for c in &plan.cells {
        let mut row = vec![(c.index + 1).to_string(), c.id.clone()];
        row.extend(
            plan.axes
                .iter()
                .map(|a| c.matrix.get(a).map(|v| v.to_string()).unwrap_or_default()),
        );
        let load = match &c.load.model {
            LoadModel::Closed { users, .. } => format!("{users} users"),
            LoadModel::Open { stages, .. } if stages.len() == 1 => {
                format!("{}/s", stages[0].rate)
            }
            LoadModel::Open { stages, .. } => format!("{} stages", stages.len()),
        };
        row.push(c.system.backend.as_str().to_string());
        if show_replicas {
            row.push(c.system.replicas.to_string());
        }
        row.push(format!("{load} ({})", c.load.engine.as_str()));
        if show_workers {
            row.push(c.load.workers.to_string());
        }
        row.extend([
            format_duration(c.timing.warmup),
            format_duration(c.measured_duration()),
            format_duration(c.timing.cooldown),
            c.timing.repeat.to_string(),
        ]);
        rows.push(row);
    }
    out.push_str(&table(&rows));
    let _ = writeln!(
        out,
        "\nsteps (in dependency order; per-cell steps run for each cell, one cell at a time):"
    );
    out.push_str(&plan.graph.to_text());
    let total = plan.estimated_wall_time();
    let _ = writeln!(
        out,
        "\nestimated wall time: {} ({n} cell{} of warm-up + measure + cool-down, times repeat; scaling and readiness come on top)",
        format_duration_rounded(total),
        if n == 1 { "" } else { "s" }
    );
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

/// Left-aligned columns separated by two spaces.
pub fn table(rows: &[Vec<String>]) -> String {
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..cols)
        .map(|i| {
            rows.iter()
                .filter_map(|r| r.get(i))
                .map(|s| s.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for r in rows {
        let line: Vec<String> = r
            .iter()
            .enumerate()
            .map(|(i, s)| format!("{s:<w$}", w = widths[i]))
            .collect();
        let _ = writeln!(out, "{}", line.join("  ").trim_end());
    }
    out
}
