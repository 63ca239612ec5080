//! The command line: one clap subcommand per verb.

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "loadmatrix",
    version,
    about = "Run matrices of load tests from one declarative TOML plan, and gate CI on the result.",
    after_help = "Exit codes: 0 thresholds held, 1 a threshold failed, 2 invalid plan or command line, 3 preflight failed, 4 run failed, 130 interrupted."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the whole pipeline: preflight, every cell, analysis, reports, gate.
    Run(RunArgs),
    /// Parse, validate and render every cell's templates; no traffic is sent.
    Validate {
        /// Plan files.
        #[arg(required = true)]
        plans: Vec<PathBuf>,
        /// Override a plan value, e.g. --set cell.duration=10s (repeatable).
        #[arg(long = "set", value_name = "KEY=VALUE")]
        set: Vec<String>,
    },
    /// Dry run: the expanded cells, the step DAG and an estimated wall time.
    Plan {
        plan: PathBuf,
        /// text (cells, steps, estimate) or dot (the step graph for Graphviz).
        #[arg(long, value_enum, default_value_t = PlanFormat::Text)]
        format: PlanFormat,
        #[arg(long = "set", value_name = "KEY=VALUE")]
        set: Vec<String>,
        /// Preview which cells `run --only FILTER` would measure.
        #[arg(long)]
        only: Option<String>,
    },
    /// Re-analyze and re-render a finished or partial run; no traffic.
    Report {
        run_dir: PathBuf,
        /// Render this template instead of the plan's reports (output: its name without .j2).
        #[arg(long)]
        template: Option<PathBuf>,
    },
    /// Regression gate between two runs: per-cell RPS and p95 deltas.
    Compare {
        base: PathBuf,
        new: PathBuf,
        /// Largest tolerated RPS drop or p95 rise, e.g. 10%.
        #[arg(long, default_value = "10%")]
        max_regression: String,
        /// Compare runs of different plans, or with no cell in common, anyway.
        #[arg(long)]
        force: bool,
        /// `md` (a table for people) or `json` (for machines).
        #[arg(long, value_enum, default_value_t = CompareFormat::Md)]
        format: CompareFormat,
    },
    /// Print the JSON Schema of the plan format.
    Schema,
    /// Build the demo target image FROM scratch (no registry needed) through the Engine API.
    DemoImage {
        #[arg(long, default_value = crate::system::docker_image::DEMO_IMAGE)]
        tag: String,
        /// Tag of the nginx load balancer image built beside it.
        #[arg(long, default_value = crate::system::docker_image::LB_IMAGE)]
        lb_tag: String,
    },
    /// The built-in simulated inference service: slots, service times, faults.
    DemoTarget(crate::demo_target::DemoTargetArgs),
    /// Internal: runs one local replica as the leader of its process group.
    #[command(hide = true)]
    Supervise(crate::system::supervise::SuperviseArgs),
}

#[derive(Debug, clap::Args)]
pub struct RunArgs {
    pub plan: PathBuf,
    /// Base of the results layout instead of `results/`.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Re-run only the cells of this run folder that are not complete.
    #[arg(long, value_name = "RUN_DIR")]
    pub resume: Option<PathBuf>,
    /// Override a plan value, e.g. --set vars.lb=http://127.0.0.1:8080 (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    /// Run only cells matching this filter, e.g. "replicas <= 2".
    #[arg(long)]
    pub only: Option<String>,
    /// Serve a live dashboard while the run lasts (default address
    /// 127.0.0.1:8089; give another to listen elsewhere, e.g. 0.0.0.0:8089).
    #[arg(long, value_name = "ADDR", num_args = 0..=1, default_missing_value = "127.0.0.1:8089")]
    pub serve: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CompareFormat {
    Md,
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PlanFormat {
    Text,
    Dot,
}
