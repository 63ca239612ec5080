//! `loadmatrix run`: load the plan, open the results folder, dispatch the
//! step graph, and turn the outcome into an exit code.

pub mod dispatcher;
pub mod state;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::SystemTime;

use minijinja::Value;
use tokio::sync::Mutex;

use crate::cli::RunArgs;
use crate::exit_code;
use crate::plan::{self, LoadOptions, Plan, RunInfo};
use crate::results::{self, CellEntry, CellStatus, Manifest, RunDir, RunStatus};
use dispatcher::Outcome;
use state::RunState;

/// The template context of one cell; `replica` gives `replica` and `port`.
pub fn cell_context(plan: &Plan, c: usize, replica: Option<(usize, u16)>) -> Value {
    let cell = &plan.cells[c];
    let base = minijinja::context! {
        matrix => Value::from(minijinja::value::Serde(&cell.matrix)),
        env => plan.templates.env_value(),
        cell => minijinja::context! { id => cell.id.clone(), index => c, number => c + 1, count => plan.cells.len() },
        run => plan.run_value.clone(),
        vars => plan.cell_vars[c].clone(),
    };
    match replica {
        Some((r, port)) => minijinja::context! { replica => r, port => port, ..base },
        None => base,
    }
}

pub fn run(args: RunArgs) -> u8 {
    let overrides = match crate::commands::parse_overrides(&args.set) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("error: {e}");
            return exit_code::INVALID;
        }
    };
    let base = args.out.clone().unwrap_or_else(|| PathBuf::from("results"));
    let prior = match &args.resume {
        Some(dir) => match crate::report::read_manifest(dir) {
            Ok(m) => Some((dir.clone(), m)),
            Err(e) => {
                eprintln!("error: --resume: {e}");
                return exit_code::INVALID;
            }
        },
        None => None,
    };
    // The run id is part of the template context, so it is fixed before loading.
    let started = SystemTime::now();
    let id = match &prior {
        Some((_, m)) => m.run_id.clone(),
        None => results::run_id(started),
    };
    let peek_name = std::fs::read_to_string(&args.plan)
        .ok()
        .and_then(|t| t.parse::<toml::Table>().ok())
        .and_then(|t| t.get("name").and_then(|n| n.as_str().map(str::to_owned)))
        .unwrap_or_else(|| "plan".into());
    let run_info = RunInfo {
        id: id.clone(),
        dir: match &prior {
            Some((dir, _)) => dir.display().to_string(),
            None => base.join(&peek_name).join(&id).display().to_string(),
        },
    };
    let plan = match plan::load(
        &args.plan,
        LoadOptions {
            overrides,
            run: Some(run_info),
            env: None,
        },
    ) {
        Ok(p) => Arc::new(p),
        Err(e) => {
            eprint!("{}", crate::commands::render_plan_error(&e));
            return exit_code::INVALID;
        }
    };
    let only = match &args.only {
        Some(text) => match only_filter(&plan, text) {
            Ok(selected) => Some(selected),
            Err(e) => {
                eprintln!("error: --only: {e}");
                return exit_code::INVALID;
            }
        },
        None => None,
    };
    if let Err(e) = raise_fd_limit(&plan) {
        eprintln!("error: {e}");
        return exit_code::RUN_FAILED;
    }
    let mut records: HashMap<usize, state::CellRecord> = HashMap::new();
    let (dir, manifest) = match prior {
        Some((dir, old)) => {
            let manifest = match resume_manifest(&plan, &dir, old, &mut records) {
                Ok(m) => m,
                Err(e) => {
                    eprintln!("error: --resume: {e}");
                    return exit_code::INVALID;
                }
            };
            (RunDir::open(&dir), manifest)
        }
        None => {
            let dir = match RunDir::create(&base, &plan.name, &id) {
                Ok(d) => d,
                Err(e) => {
                    eprintln!(
                        "error: cannot create the results folder under {}: {e}",
                        base.display()
                    );
                    return exit_code::RUN_FAILED;
                }
            };
            let manifest = Manifest {
                plan: plan.name.clone(),
                plan_file: plan.file.display().to_string(),
                plan_hash: plan.hash.clone(),
                tool_version: env!("CARGO_PKG_VERSION").into(),
                run_id: dir.id(),
                started: results::timestamp(started),
                finished: None,
                status: RunStatus::Running,
                axes: plan.axes.clone(),
                cells: plan.cells.iter().map(new_entry).collect(),
            };
            (dir, manifest)
        }
    };
    if let Some(selected) = &only {
        for (c, keep) in selected.iter().enumerate() {
            if !keep && !records.contains_key(&c) {
                records.insert(
                    c,
                    state::CellRecord {
                        excluded: true,
                        ..Default::default()
                    },
                );
            }
        }
    }
    let secrets = plan.secrets();
    let cancel = Arc::new(AtomicBool::new(false));
    let state = Arc::new(RunState {
        plan: plan.clone(),
        dir: dir.clone(),
        manifest: Mutex::new(manifest),
        backend: Mutex::new(state::Backend::None),
        cells: Mutex::new(records),
        run_events: Mutex::new(Vec::new()),
        cancel: cancel.clone(),
        secrets,
        analysis: Mutex::new(None),
        thresholds_failed: AtomicBool::new(false),
    });
    // The plan as written: templates unexpanded, so no secret is in it.
    if let Err(e) = dir.write("plan.toml", plan.source.as_bytes()) {
        eprintln!("error: cannot write to {}: {e}", dir.root.display());
        return exit_code::RUN_FAILED;
    }
    eprintln!(
        "loadmatrix: running {} ({} cells) into {}",
        plan.name,
        plan.cells.len(),
        dir.root.display()
    );

    // One thread runs the dispatcher and every step: local replicas are
    // spawned from it, and their parent-death signal is tied to it.
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return exit_code::RUN_FAILED;
        }
    };
    let local = tokio::task::LocalSet::new();
    let outcome = runtime.block_on(local.run_until(async {
        let signals = tokio::spawn(watch_signals(cancel.clone()));
        crate::steps::cell::write_manifest(&state).await;
        let outcome = dispatcher::dispatch(state.clone()).await;
        let stopped = state.backend.lock().await.stop_all().await;
        for e in stopped {
            state.run_event(e).await;
        }
        if matches!(outcome, Outcome::Interrupted | Outcome::Aborted(_)) {
            // Keep what was measured: summary and report over finished cells.
            let _ = crate::steps::analyze::analyze(&state).await;
            let _ = crate::steps::report::report(&state, None, false).await;
        }
        signals.abort();
        outcome
    }));
    let status = match &outcome {
        Outcome::Completed => RunStatus::Complete,
        Outcome::PreflightFailed(_) => RunStatus::PreflightFailed,
        Outcome::Aborted(_) => RunStatus::Aborted,
        Outcome::Interrupted => RunStatus::Interrupted,
    };
    runtime.block_on(async {
        {
            let mut m = state.manifest.lock().await;
            m.status = status;
            m.finished = Some(results::timestamp(SystemTime::now()));
        }
        crate::steps::cell::write_manifest(&state).await;
        // Reports rendered during the run said "running": render them with the final status.
        if state.analysis.lock().await.is_some()
            && let Err(e) = crate::steps::report::report(&state, None, true).await
        {
            eprintln!("error: {}", e.message);
        }
        crate::steps::cell::write_run_events(&state).await;
    });
    redact_logs(&dir, &state.secrets);
    eprintln!("results: {}", dir.root.display());
    match outcome {
        Outcome::Completed if state.thresholds_failed.load(Ordering::Relaxed) => {
            exit_code::THRESHOLD_FAILED
        }
        Outcome::Completed => exit_code::OK,
        Outcome::PreflightFailed(_) => exit_code::PREFLIGHT_FAILED,
        Outcome::Aborted(_) if state.thresholds_failed.load(Ordering::Relaxed) => {
            exit_code::THRESHOLD_FAILED
        }
        Outcome::Aborted(_) => exit_code::RUN_FAILED,
        Outcome::Interrupted => exit_code::INTERRUPTED,
    }
}

/// Replica output is written by the replicas themselves; scrub it once they are gone.
fn redact_logs(dir: &RunDir, secrets: &[String]) {
    let Ok(entries) = std::fs::read_dir(dir.root.join("logs")) else {
        return;
    };
    for e in entries.flatten() {
        if let Ok(text) = std::fs::read_to_string(e.path()) {
            let clean = plan::template::redact(&text, secrets);
            if clean != text {
                let _ = results::write_atomic(&e.path(), clean.as_bytes());
            }
        }
    }
}

fn new_entry(c: &plan::Cell) -> CellEntry {
    CellEntry {
        id: c.id.clone(),
        index: c.index,
        matrix: c.matrix.clone(),
        status: CellStatus::Pending,
        started: None,
        finished: None,
        message: None,
        hash: Some(c.hash()),
    }
}

/// Which cells `--only` selects, by a filter over matrix values.
fn only_filter(plan: &Plan, text: &str) -> Result<Vec<bool>, String> {
    let e = plan::expr::parse(text).map_err(|p| p.render(text))?;
    for id in e.idents() {
        if !plan.axes.contains(&id.name) {
            return Err(format!(
                "`{}` is not a matrix axis (axes: {})",
                id.name,
                plan.axes.join(", ")
            ));
        }
    }
    plan.cells
        .iter()
        .map(|c| crate::steps::analyze::matrix_matches(&e, &c.matrix))
        .collect()
}

/// The manifest of a run being resumed: measured cells are kept (their
/// records loaded from disk) when their configuration is unchanged; a cell
/// whose configuration changed refuses the resume.
fn resume_manifest(
    plan: &Plan,
    dir: &std::path::Path,
    old: Manifest,
    records: &mut HashMap<usize, state::CellRecord>,
) -> Result<Manifest, String> {
    if old.plan != plan.name {
        return Err(format!(
            "{} is a run of plan `{}`, not `{}`",
            dir.display(),
            old.plan,
            plan.name
        ));
    }
    let rows = crate::report::load_rows(dir, &old);
    let mut cells = Vec::new();
    for c in &plan.cells {
        let prior = old.cells.iter().zip(&rows).find(|(e, _)| e.id == c.id);
        match prior {
            Some((entry, row)) if entry.status.is_measured() => {
                if entry.hash.as_deref() != Some(c.hash().as_str()) {
                    return Err(format!(
                        "cell {} was measured with a different configuration than the plan now gives it; start a new run (or restore the plan)",
                        c.id
                    ));
                }
                if row.metrics.is_empty() {
                    // Measured by the manifest but its folder is gone: measure again.
                    cells.push(new_entry(c));
                    continue;
                }
                records.insert(
                    c.index,
                    state::CellRecord {
                        status: Some(entry.status),
                        prior: Some(row.clone()),
                        ..Default::default()
                    },
                );
                cells.push(entry.clone());
            }
            _ => cells.push(new_entry(c)),
        }
    }
    for e in &old.cells {
        if e.status.is_measured() && !plan.cells.iter().any(|c| c.id == e.id) {
            return Err(format!(
                "cell {} was measured, but the plan no longer has it; start a new run (or restore the plan)",
                e.id
            ));
        }
    }
    crate::results::clean_stale_temp(dir);
    eprintln!(
        "resuming {}: {} of {} cells already measured",
        dir.display(),
        records.len(),
        plan.cells.len()
    );
    Ok(Manifest {
        status: RunStatus::Running,
        finished: None,
        plan_hash: plan.hash.clone(),
        cells,
        ..old
    })
}

/// One socket per user (or open-model request in flight), and some to spare.
fn fds_needed(plan: &Plan) -> u64 {
    let per_cell = plan.cells.iter().map(|c| match &c.load.model {
        plan::LoadModel::Closed { users, .. } => *users,
        plan::LoadModel::Open { max_in_flight, .. } => *max_in_flight,
    });
    per_cell.max().unwrap_or(0) + 512
}

/// Raises the soft RLIMIT_NOFILE to what the plan needs, or says before any
/// load is sent that the hard limit is too low.
fn raise_fd_limit(plan: &Plan) -> Result<(), String> {
    let needed = fds_needed(plan);
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we own.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return Ok(());
    }
    if lim.rlim_cur >= needed {
        return Ok(());
    }
    if lim.rlim_max < needed {
        return Err(format!(
            "the plan needs {needed} open files (one socket per user), but the hard limit is {}; raise it (e.g. `ulimit -Hn {needed}` as root, or LimitNOFILE in systemd) or lower `users`",
            lim.rlim_max
        ));
    }
    lim.rlim_cur = needed;
    // SAFETY: setrlimit reads the struct we own.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) } != 0 {
        return Err(format!(
            "cannot raise the open-file limit to {needed}: {}",
            std::io::Error::last_os_error()
        ));
    }
    Ok(())
}

async fn watch_signals(cancel: Arc<AtomicBool>) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut int), Ok(mut term)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        return;
    };
    tokio::select! {
        _ = int.recv() => {}
        _ = term.recv() => {}
    }
    eprintln!("\ninterrupted: stopping load, keeping finished cells (Ctrl-C again to force)");
    cancel.store(true, Ordering::Relaxed);
    tokio::select! {
        _ = int.recv() => {}
        _ = term.recv() => {}
    }
    std::process::exit(i32::from(exit_code::INTERRUPTED));
}
