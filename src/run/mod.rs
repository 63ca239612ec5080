//! `loadmatrix run`: load the plan, open (and lock) the results folder, hand
//! the step graph to the dispatcher, keep what it returns.

pub mod console;
pub mod dispatcher;
pub mod serve;
pub mod watch;

use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::Arc;
use std::time::SystemTime;

use tokio::sync::Mutex;

use crate::cli::RunArgs;
use crate::engine::CancelToken;
use crate::error::RunError;
use crate::plan::{self, LoadOptions, Override, Plan, RunInfo};
use crate::results::{
    self, CellEntry, CellRecord, CellStatus, Manifest, RunDir, RunLock, RunStatus,
};
use crate::steps::{RunExecutor, StepContext};
use dispatcher::{Dispatcher, Outcome, RunData};
use watch::Watch;

/// Parses `--set KEY=VALUE` arguments.
pub(crate) fn parse_overrides(set: &[String]) -> Result<Vec<Override>, RunError> {
    set.iter()
        .map(|s| Override::parse(s).map_err(|e| RunError::Usage(e.to_string())))
        .collect()
}

fn override_text(o: &Override) -> String {
    format!("{}={}", o.path.join("."), o.value)
}

/// What a resume starts from: the folder (locked), its manifest, and the
/// overrides to apply: the recorded ones, with those given again replaced.
struct Resume {
    dir: PathBuf,
    lock: RunLock,
    manifest: Manifest,
}

fn open_resume(dir: &Path) -> Result<Resume, RunError> {
    let lock = RunDir::open(dir).lock()?;
    let manifest = results::read_manifest(dir)?;
    Ok(Resume {
        dir: dir.to_path_buf(),
        lock,
        manifest,
    })
}

/// The recorded overrides of a resumed run, with any given again replaced.
fn merge_overrides(recorded: &[String], given: Vec<Override>) -> Result<Vec<Override>, RunError> {
    let mut out = Vec::new();
    for text in recorded {
        let o = Override::parse(text).map_err(|e| RunError::Usage(e.to_string()))?;
        if given.iter().any(|g| g.path == o.path) {
            continue;
        }
        if o.value.contains(plan::template::MASK) {
            return Err(RunError::Usage(format!(
                "the run was made with `--set {text}`, whose value held a secret and was not recorded; give it again: --set {}=...",
                o.path.join(".")
            )));
        }
        out.push(o);
    }
    out.extend(given);
    Ok(out)
}

pub fn run(args: RunArgs) -> Result<(), RunError> {
    let given = parse_overrides(&args.set)?;
    let base = args.out.clone().unwrap_or_else(|| PathBuf::from("results"));
    let resume = args.resume.as_deref().map(open_resume).transpose()?;
    let overrides = match &resume {
        Some(r) => merge_overrides(&r.manifest.overrides, given.clone())?,
        None => given.clone(),
    };
    // The run id is part of the template context, so it is fixed before loading.
    let started = SystemTime::now();
    let id = match &resume {
        Some(r) => r.manifest.run_id.clone(),
        None => results::run_id(started),
    };
    let peek_name = std::fs::read_to_string(&args.plan)
        .ok()
        .and_then(|t| t.parse::<toml::Table>().ok())
        .and_then(|t| t.get("name").and_then(|n| n.as_str().map(str::to_owned)))
        .unwrap_or_else(|| "plan".into());
    let run_info = RunInfo {
        id: id.clone(),
        dir: match &resume {
            Some(r) => r.dir.display().to_string(),
            None => base.join(&peek_name).join(&id).display().to_string(),
        },
    };
    let plan = Arc::new(plan::load(
        &args.plan,
        LoadOptions {
            overrides: overrides.clone(),
            run: Some(run_info),
            env: None,
        },
    )?);
    let only = match &args.only {
        Some(text) => Some(select(&plan, text)?),
        None => None,
    };
    raise_fd_limit(&plan)?;
    let dashboard = args.serve.as_deref().map(serve::bind).transpose()?;
    let secrets = plan.secrets();
    let (dir, _lock, manifest, units, records) = match resume {
        Some(r) => {
            let dir = RunDir::open(&r.dir).with_secrets(secrets.clone());
            let (manifest, units, records) = if plan.search.is_some() {
                resume_search(&plan, &r.dir, r.manifest, &overrides)?
            } else {
                let (manifest, records) = resume_manifest(&plan, &r.dir, r.manifest, &overrides)?;
                (manifest, plan.cells.clone(), records)
            };
            (dir, r.lock, manifest, units, records)
        }
        None => {
            let dir = RunDir::create(&base, &plan.name, &id)
                .map_err(|e| {
                    RunError::Failed(format!(
                        "cannot create the results folder under {}: {e}",
                        base.display()
                    ))
                })?
                .with_secrets(secrets.clone());
            let lock = dir.lock()?;
            let manifest = Manifest {
                plan: plan.name.clone(),
                plan_file: plan.file.display().to_string(),
                plan_hash: plan.hash.clone(),
                tool_version: env!("CARGO_PKG_VERSION").into(),
                run_id: dir.id(),
                started: results::timestamp(started),
                finished: None,
                status: RunStatus::Running,
                axes: plan.row_axes(),
                overrides: Vec::new(),
                only: None,
                cells: Vec::new(),
                visits: Vec::new(),
            };
            // With `[search]` the probes are added as the search decides them.
            let units = if plan.search.is_some() {
                Vec::new()
            } else {
                plan.cells.clone()
            };
            let manifest = Manifest {
                cells: units.iter().map(new_entry).collect(),
                ..manifest
            };
            let records = vec![CellRecord::default(); units.len()];
            (dir, lock, manifest, units, records)
        }
    };
    let manifest = Manifest {
        overrides: overrides
            .iter()
            .map(|o| dir.redact(&override_text(o)))
            .collect(),
        only: args.only.clone(),
        ..manifest
    };
    // Cells this invocation measures: selected by --only, not measured before.
    let selected: Vec<bool> = (0..plan.cells.len())
        .map(|c| {
            (plan.search.is_some() || records[c].prior.is_none())
                && only.as_ref().is_none_or(|o| o[c])
        })
        .collect();
    // The plan as written: templates unexpanded, so no secret is in it.
    dir.write("plan.toml", plan.source.as_bytes())?;
    eprintln!(
        "loadmatrix: {} {} ({} of {} cells) into {}",
        if plan.search.is_some() {
            "searching"
        } else {
            "running"
        },
        plan.name,
        selected.iter().filter(|s| **s).count(),
        plan.cells.len(),
        dir.root.display()
    );
    // Cells measured before keep their system configuration's baseline.
    let baselines = units
        .iter()
        .zip(&records)
        .filter(|(_, r)| r.prior.is_some())
        .filter_map(|(c, _)| {
            let b = results::read::read_baseline(&dir.root, &c.id)?;
            Some((c.system_key(), b))
        })
        .collect();
    let cancel = CancelToken::new();
    let data = RunData {
        manifest,
        units,
        cells: records,
        run_events: Vec::new(),
        analysis: None,
        thresholds_failed: 0,
        reported: false,
        baselines,
    };
    let (outcome, data) = dispatch(&plan, &dir, data, &selected, cancel, dashboard)?;
    let data = finish(&plan, &dir, outcome.clone(), data);
    eprintln!("results: {}", dir.root.display());
    verdict(&outcome, &data)
}

/// One thread runs the dispatcher and every step: local replicas are
/// spawned from it, and their parent-death signal is tied to it.
fn dispatch(
    plan: &Arc<Plan>,
    dir: &RunDir,
    data: RunData,
    selected: &[bool],
    cancel: CancelToken,
    mut dashboard: Option<std::net::TcpListener>,
) -> Result<(Outcome, RunData), RunError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| RunError::Failed(format!("cannot start the async runtime: {e}")))?;
    let local = tokio::task::LocalSet::new();
    Ok(runtime.block_on(local.run_until(async {
        let signals = tokio::spawn(watch_signals(cancel.clone()));
        let watch = Watch::new(plan, &data.units, selected);
        let (progress, ticks) = tokio::sync::mpsc::unbounded_channel();
        let (close_console, closed) = tokio::sync::oneshot::channel();
        let terminal = std::io::IsTerminal::is_terminal(&std::io::stderr());
        let console = tokio::task::spawn_local(console::run(
            watch.clone(),
            watch.subscribe(),
            terminal,
            closed,
        ));
        let server = dashboard.take().map(|listener| {
            if let Ok(addr) = listener.local_addr() {
                eprintln!("dashboard: http://{addr}/");
            }
            let server = serve::Server::new(watch.clone(), dir.clone());
            let task = tokio::task::spawn_local(server.clone().serve(listener));
            (server, task)
        });
        let ctx = Rc::new(StepContext {
            plan: plan.clone(),
            dir: dir.clone(),
            cancel: cancel.clone(),
            backend: Mutex::new(None),
            progress,
        });
        let executor = Rc::new(RunExecutor { ctx: ctx.clone() });
        let (outcome, mut data) = Dispatcher::new(plan, dir, data, selected, executor, cancel)
            .with_watch(watch.clone(), ticks)
            .run()
            .await;
        let report = ["report.html", "report.md"]
            .into_iter()
            .find(|f| dir.root.join(f).is_file())
            .map(str::to_owned);
        watch.finished(
            match &outcome {
                Outcome::Completed => "complete",
                Outcome::PreflightFailed(_) => "preflight_failed",
                Outcome::Aborted(_) | Outcome::ThresholdAbort(_) => "aborted",
                Outcome::Interrupted => "interrupted",
            },
            report,
        );
        let _ = close_console.send(());
        // A crashed observer is a bug: the run must not pass for it.
        let mut outcome = outcome;
        if let Err(e) = console.await
            && e.is_panic()
        {
            outcome = Outcome::Aborted("the console view crashed (a bug in loadmatrix)".into());
        }
        if let Some((server, task)) = server {
            // Open event streams get the final state before the server stops.
            server.drain(std::time::Duration::from_secs(2)).await;
            task.abort();
            if let Err(e) = task.await
                && e.is_panic()
            {
                outcome = Outcome::Aborted("the dashboard crashed (a bug in loadmatrix)".into());
            }
        }
        for e in ctx.shutdown().await {
            data.run_events
                .push(format!("{} {e}", results::timestamp(SystemTime::now())));
        }
        signals.abort();
        (outcome, data)
    })))
}

/// The run's final status in the manifest, the summary and reports when the
/// graph did not get to render them, and the run's events.
fn finish(plan: &Plan, dir: &RunDir, outcome: Outcome, mut data: RunData) -> RunData {
    data.manifest.status = match &outcome {
        Outcome::Completed => RunStatus::Complete,
        Outcome::PreflightFailed(_) => RunStatus::PreflightFailed,
        Outcome::Aborted(_) | Outcome::ThresholdAbort(_) => RunStatus::Aborted,
        Outcome::Interrupted => RunStatus::Interrupted,
    };
    if data.manifest.finished.is_none() || data.manifest.status != RunStatus::Complete {
        data.manifest.finished = Some(results::timestamp(SystemTime::now()));
    }
    // After the process ends, no cell is running.
    for e in &mut data.manifest.cells {
        if e.status == CellStatus::Running {
            e.status = CellStatus::Interrupted;
        }
    }
    for rec in &mut data.cells {
        if rec.status == CellStatus::Running {
            rec.status = CellStatus::Interrupted;
        }
    }
    dispatcher::write_manifest(dir, &data.manifest);
    let stopped_early = matches!(
        outcome,
        Outcome::Interrupted | Outcome::Aborted(_) | Outcome::ThresholdAbort(_)
    );
    if stopped_early && !data.reported {
        // Keep what was measured: summary and report over the finished cells.
        let result = crate::analysis::analyze_run(plan, data.rows());
        let specs: Vec<_> = plan
            .reports
            .iter()
            .map(|r| (r.template.clone(), r.output.clone()))
            .collect();
        let written = crate::report::write_summary(dir, plan, &result).and_then(|()| {
            crate::report::render_reports(dir, plan, &data.manifest, &result, &specs, true)
        });
        if let Err(e) = written {
            eprintln!("error: {}", dir.redact(&e.to_string()));
        }
        data.analysis = Some(result);
    }
    if !data.run_events.is_empty() {
        let text = results::record::lines(&data.run_events);
        if let Err(e) = dir.write("events.log", text.as_bytes()) {
            eprintln!("error: {}", dir.redact(&e.to_string()));
        }
    }
    data
}

/// The exit verdict of a run.
fn verdict(outcome: &Outcome, data: &RunData) -> Result<(), RunError> {
    match outcome {
        Outcome::PreflightFailed(m) => Err(RunError::Preflight(m.clone())),
        Outcome::Interrupted => Err(RunError::Interrupted),
        Outcome::ThresholdAbort(_) => Err(RunError::Thresholds(data.thresholds_failed.max(1))),
        Outcome::Aborted(m) => Err(RunError::Failed(m.clone())),
        Outcome::Completed => {
            let ran: Vec<&CellRecord> = data
                .cells
                .iter()
                .filter(|r| r.status != CellStatus::Pending)
                .collect();
            let any_success = ran.iter().any(|r| match &r.prior {
                Some(row) => row.successes() > 0.0,
                None => r.runs.iter().any(|s| s.successes() > 0),
            });
            if !ran.is_empty() && !any_success {
                return Err(RunError::Failed(
                    "no cell produced a successful request".into(),
                ));
            }
            if data.thresholds_failed > 0 {
                Err(RunError::Thresholds(data.thresholds_failed))
            } else {
                Ok(())
            }
        }
    }
}

/// A capacity search being resumed: the plan-wide checks here, the probes'
/// replay in the search.
fn resume_search(
    plan: &Plan,
    dir: &Path,
    old: Manifest,
    overrides: &[Override],
) -> Result<(Manifest, Vec<plan::Cell>, Vec<CellRecord>), RunError> {
    if old.plan != plan.name {
        return Err(RunError::Usage(format!(
            "--resume: {} is a run of plan `{}`, not `{}`",
            dir.display(),
            old.plan,
            plan.name
        )));
    }
    let changed_overrides =
        old.overrides != overrides.iter().map(override_text).collect::<Vec<_>>();
    let replay = crate::search::resume::replay(plan, dir, old, changed_overrides)
        .map_err(|e| RunError::Usage(e.to_string()))?;
    eprintln!(
        "resuming {}: {} probes already measured",
        dir.display(),
        replay.probes.len()
    );
    Ok((replay.manifest, replay.probes, replay.records))
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

/// Which cells a filter over matrix values (`--only`) selects.
pub fn select(plan: &Plan, text: &str) -> Result<Vec<bool>, RunError> {
    let bad = |m: String| RunError::Usage(format!("--only: {m}"));
    let e = plan::expr::parse(text).map_err(|p| bad(p.render(text)))?;
    for id in e.idents() {
        if !plan.axes.contains(&id.name) {
            return Err(bad(format!(
                "`{}` is not a matrix axis (axes: {})",
                id.name,
                plan.axes.join(", ")
            )));
        }
    }
    plan.cells
        .iter()
        .map(|c| {
            crate::analysis::thresholds::matrix_matches(&e, &c.matrix).map_err(|e| bad(e.message))
        })
        .collect()
}

/// The manifest of a run being resumed: measured cells are kept (their rows
/// read from disk) when their configuration is unchanged; a cell whose
/// configuration changed refuses the resume.
fn resume_manifest(
    plan: &Plan,
    dir: &Path,
    old: Manifest,
    overrides: &[Override],
) -> Result<(Manifest, Vec<CellRecord>), RunError> {
    if old.plan != plan.name {
        return Err(RunError::Usage(format!(
            "--resume: {} is a run of plan `{}`, not `{}`",
            dir.display(),
            old.plan,
            plan.name
        )));
    }
    let repeat = if old.overrides.is_empty() {
        "the run was made without --set overrides; resume it without any".to_string()
    } else {
        format!(
            "the run was made with {}; resume it with exactly those",
            old.overrides
                .iter()
                .map(|o| format!("--set {o}"))
                .collect::<Vec<_>>()
                .join(" ")
        )
    };
    let changed_overrides =
        old.overrides != overrides.iter().map(override_text).collect::<Vec<_>>();
    let rows = results::load_rows(dir, &old);
    let mut cells = Vec::new();
    let mut records = Vec::new();
    for c in &plan.cells {
        let prior = old.cells.iter().zip(&rows).find(|(e, _)| e.id == c.id);
        match prior {
            Some((entry, row)) if entry.status.is_measured() => {
                if entry.hash.as_deref() != Some(c.hash().as_str()) {
                    let why = if changed_overrides {
                        repeat.clone()
                    } else {
                        "start a new run (or restore the plan)".to_string()
                    };
                    return Err(RunError::Usage(format!(
                        "--resume: cell {} was measured with a different configuration than the plan now gives it; {why}",
                        c.id
                    )));
                }
                if row.metrics.is_empty() {
                    // Measured by the manifest but its folder is gone: measure again.
                    cells.push(new_entry(c));
                    records.push(CellRecord::default());
                    continue;
                }
                records.push(CellRecord {
                    status: entry.status,
                    prior: Some(row.clone()),
                    ..Default::default()
                });
                cells.push(entry.clone());
            }
            _ => {
                cells.push(new_entry(c));
                records.push(CellRecord::default());
            }
        }
    }
    for e in &old.cells {
        if e.status.is_measured() && !plan.cells.iter().any(|c| c.id == e.id) {
            return Err(RunError::Usage(format!(
                "--resume: cell {} was measured, but the plan no longer has it; start a new run (or restore the plan)",
                e.id
            )));
        }
    }
    results::clean_stale_temp(dir);
    // Visits of cells measured again are replaced by their new ones.
    let kept_ids: Vec<&str> = cells
        .iter()
        .zip(&records)
        .filter(|(_, r)| r.prior.is_some())
        .map(|(e, _)| e.id.as_str())
        .collect();
    let visits = old
        .visits
        .iter()
        .filter(|v| kept_ids.contains(&v.cell.as_str()))
        .cloned()
        .collect();
    let kept = records.iter().filter(|r| r.prior.is_some()).count();
    eprintln!(
        "resuming {}: {kept} of {} cells already measured",
        dir.display(),
        plan.cells.len()
    );
    Ok((
        Manifest {
            status: RunStatus::Running,
            finished: None,
            plan_hash: plan.hash.clone(),
            cells,
            visits,
            ..old
        },
        records,
    ))
}

/// One socket per user (or open-model request in flight), and some to spare.
fn fds_needed(plan: &Plan) -> u64 {
    let searched = match &plan.search {
        Some(s) if s.over == plan::raw::SearchOver::Users => s.to,
        _ => 0,
    };
    let per_cell = plan.cells.iter().map(|c| match &c.load.model {
        plan::LoadModel::Closed { users, .. } => (*users).max(searched),
        plan::LoadModel::Open { max_in_flight, .. } => *max_in_flight,
    });
    per_cell.max().unwrap_or(0) + 512
}

/// Raises the soft RLIMIT_NOFILE to what the plan needs, or says before any
/// load is sent that the hard limit is too low.
fn raise_fd_limit(plan: &Plan) -> Result<(), RunError> {
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
        return Err(RunError::Failed(format!(
            "the plan needs {needed} open files (one socket per user), but the hard limit is {}; raise it (e.g. `ulimit -Hn {needed}` as root, or LimitNOFILE in systemd) or lower `users`",
            lim.rlim_max
        )));
    }
    lim.rlim_cur = needed;
    // SAFETY: setrlimit reads the struct we own.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) } != 0 {
        return Err(RunError::Failed(format!(
            "cannot raise the open-file limit to {needed}: {}",
            std::io::Error::last_os_error()
        )));
    }
    Ok(())
}

async fn watch_signals(cancel: CancelToken) {
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
    cancel.cancel();
    tokio::select! {
        _ = int.recv() => {}
        _ = term.recv() => {}
    }
    std::process::exit(i32::from(crate::exit_code::INTERRUPTED));
}
