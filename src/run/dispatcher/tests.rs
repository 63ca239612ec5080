//! The dispatcher against stand-in executors: cells in matrix order,
//! searches probe by probe.

use std::cell::RefCell;
use std::time::Duration;

use super::*;
use crate::plan::graph::Step;
use crate::run::watch::WatchEvent;

/// Stands in for the real steps: sleeps a pseudo-random while and
/// records when each per-cell node ran.
struct Recorder {
    log: Rc<RefCell<Vec<(usize, tokio::time::Instant, tokio::time::Instant)>>>,
    seed: RefCell<u64>,
}

impl Executor for Recorder {
    fn execute(
        &self,
        _step: &Step,
        cell: Option<&Cell>,
        _input: StepInput,
    ) -> futures_util::future::LocalBoxFuture<'static, StepReport> {
        let mut s = self.seed.borrow_mut();
        *s ^= *s << 13;
        *s ^= *s >> 7;
        *s ^= *s << 17;
        let wait = Duration::from_micros(*s % 3000);
        let log = self.log.clone();
        let cell = cell.map(|c| c.index);
        Box::pin(async move {
            let start = tokio::time::Instant::now();
            tokio::time::sleep(wait).await;
            if let Some(c) = cell {
                log.borrow_mut()
                    .push((c, start, tokio::time::Instant::now()));
            }
            StepReport {
                result: Ok(StepOutput::Done),
                events: Vec::new(),
            }
        })
    }
}

fn plan_with(cells: usize, extra: &str) -> Plan {
    let values: Vec<String> = (1..=cells).map(|i| i.to_string()).collect();
    let text = format!(
        "name = \"p\"\n[matrix]\nusers = [{}]\n[load]\nbase_url = \"http://127.0.0.1:9\"\nusers = \"{{{{ matrix.users }}}}\"\n[[load.request]]\npath = \"/\"\n{extra}",
        values.join(", ")
    );
    crate::plan::load_str(std::path::Path::new("p.toml"), &text, Default::default()).unwrap()
}

fn data_for(plan: &Plan) -> RunData {
    RunData {
        manifest: Manifest {
            plan: plan.name.clone(),
            plan_file: String::new(),
            plan_hash: String::new(),
            tool_version: String::new(),
            run_id: String::new(),
            started: String::new(),
            finished: None,
            status: RunStatus::Running,
            axes: plan.axes.clone(),
            overrides: Vec::new(),
            only: None,
            cells: plan.cells.iter().map(crate::run::new_entry).collect(),
            visits: Vec::new(),
        },
        units: plan.cells.clone(),
        cells: vec![CellRecord::default(); plan.cells.len()],
        run_events: Vec::new(),
        analysis: None,
        thresholds_failed: 0,
        reported: false,
        baselines: Default::default(),
    }
}

/// Stands in for a system of 4 slots of 50 ms per replica: a probe of
/// `users` measures p95 = 50 ms × ceil(users / (4 · replicas)).
struct Queueing {
    ran: Rc<RefCell<Vec<String>>>,
    /// Where the load step reports a tick of its measured window, as the
    /// real one does; it names no cell.
    progress: Option<tokio::sync::mpsc::UnboundedSender<LoadProgress>>,
}

/// A tick of second `t` of a measured window holding `users` users.
fn tick(t: u64, users: u64) -> LoadProgress {
    let second = crate::engine::SecondFigures {
        t,
        requests: 10,
        failures: 0,
        p50_ms: 1.0,
        p95_ms: 2.0,
        stream: None,
    };
    LoadProgress {
        tick: crate::engine::ProgressTick {
            elapsed: Duration::from_secs(t + 1),
            phase: crate::engine::Phase::Measure,
            rps: 10.0,
            p50_ms: Some(1.0),
            p95_ms: Some(2.0),
            requests: 10,
            failures: 0,
            users,
            dropped: 0,
            window: crate::engine::WindowSoFar {
                secs: t + 1,
                requests: 10,
                failures: 0,
                last: Some(second),
                by_name: Vec::new(),
            },
        },
        warmup_secs: 0.0,
        total_secs: 1.0,
        repetition: 0,
    }
}

impl Executor for Queueing {
    fn execute(
        &self,
        step: &Step,
        cell: Option<&Cell>,
        _input: StepInput,
    ) -> futures_util::future::LocalBoxFuture<'static, StepReport> {
        let result = match (step.kind, cell) {
            (StepKind::Load, Some(c)) => {
                self.ran.borrow_mut().push(c.id.clone());
                if let Some(p) = &self.progress {
                    let _ = p.send(tick(0, c.probe.unwrap_or(0)));
                }
                let replicas = match c.matrix.get("replicas") {
                    Some(crate::plan::matrix::MatrixValue::Int(r)) => *r as u64,
                    _ => 1,
                };
                let users = c.probe.unwrap_or(1);
                let latency_us = 50_000 * users.div_ceil(4 * replicas);
                Ok(measured(latency_us))
            }
            _ => Ok(StepOutput::Done),
        };
        Box::pin(async move {
            tokio::task::yield_now().await;
            StepReport {
                result,
                events: Vec::new(),
            }
        })
    }
}

/// One repetition of 100 requests of `latency_us` each.
fn measured(latency_us: u64) -> StepOutput {
    let mut total = crate::engine::RequestStats::new();
    for _ in 0..100 {
        total.record_success(latency_us);
    }
    total.finalize(1.0);
    let stats = crate::engine::CellStats {
        total,
        by_name: Default::default(),
        timeline: Vec::new(),
        measured_secs: 1.0,
        dropped: 0,
        client_cpu_pct: 0.0,
        client_bound: false,
        schedule_lag_p99_ms: 0.0,
        cancelled: false,
        warnings: Vec::new(),
        degraded: None,
        rx_bytes: None,
        tx_bytes: None,
        completed_ok: None,
        connections: None,
    };
    StepOutput::Measured {
        reps: vec![crate::steps::Measurement {
            stats,
            samples: Vec::new(),
            degraded: None,
            scraped: Vec::new(),
            server: Default::default(),
        }],
        baseline: None,
    }
}

fn search_plan() -> Plan {
    let text = "name = \"p\"\n[matrix]\nreplicas = [1, 2]\n[load]\nbase_url = \"http://127.0.0.1:9\"\n[[load.request]]\npath = \"/\"\n[search]\nover = \"users\"\nfrom = 4\nto = 64\nslo = { p95 = \"175ms\" }\n";
    crate::plan::load_str(std::path::Path::new("p.toml"), text, Default::default()).unwrap()
}

fn search_run(plan: &Plan, data: RunData, dir: &RunDir) -> (RunData, Vec<String>) {
    let ran = Rc::new(RefCell::new(Vec::new()));
    let executor = Rc::new(Queueing {
        ran: ran.clone(),
        progress: None,
    });
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let local = tokio::task::LocalSet::new();
    let selected = vec![true; plan.cells.len()];
    let (outcome, data) = runtime.block_on(local.run_until(
        Dispatcher::new(plan, dir, data, &selected, executor, CancelToken::new()).run(),
    ));
    assert_eq!(outcome, Outcome::Completed);
    let ran = ran.borrow().clone();
    (data, ran)
}

#[test]
fn a_search_probes_one_cell_at_a_time_and_never_measures_a_probe_twice() {
    let plan = search_plan();
    let tmp = std::env::temp_dir().join(format!("lm-dispatch-search-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).unwrap();
    let dir = RunDir::open(&tmp);
    let mut data = data_for(&plan);
    data.units.clear();
    data.cells.clear();
    data.manifest.cells.clear();
    let (data, ran) = search_run(&plan, data, &dir);
    let expected = [
        "replicas1_users4",
        "replicas1_users8",
        "replicas1_users16",
        "replicas1_users12",
        "replicas1_users14",
        "replicas1_users13",
        "replicas2_users4",
        "replicas2_users8",
        "replicas2_users16",
        "replicas2_users32",
        "replicas2_users24",
        "replicas2_users28",
        "replicas2_users26",
        "replicas2_users25",
    ];
    assert_eq!(ran, expected);
    let ids: Vec<&str> = data.manifest.cells.iter().map(|e| e.id.as_str()).collect();
    assert_eq!(ids, expected);
    assert!(data.cells.iter().all(|r| r.status == CellStatus::Complete));
    let capacity = search::capacity(&plan, &data.rows());
    let found: Vec<(Option<u64>, &str)> = capacity
        .iter()
        .map(|(r, _)| (r.max_value, r.status.as_str()))
        .collect();
    assert_eq!(found, [(Some(12), "found"), (Some(24), "found")]);

    // Resumed with the first three probes measured: they are judged
    // from their rows and the search goes on from there.
    let rows = data.rows();
    let mut resumed = data_for(&plan);
    resumed.units = data.units[..3].to_vec();
    resumed.manifest.cells = data.manifest.cells[..3].to_vec();
    resumed.cells = rows[..3]
        .iter()
        .map(|row| CellRecord {
            status: CellStatus::Complete,
            prior: Some(row.clone()),
            ..Default::default()
        })
        .collect();
    let (again, ran) = search_run(&plan, resumed, &dir);
    assert_eq!(ran, expected[3..]);
    assert_eq!(again.units.len(), expected.len());
    let _ = std::fs::remove_dir_all(&tmp);
}

#[test]
fn cells_never_overlap_and_run_in_order_whatever_is_selected() {
    // Steps inside a cell run concurrently (two exec steps after ready).
    let extra = "[[step]]\nid = \"a\"\nuses = \"sleep\"\nduration = \"1ms\"\nper_cell = true\nneeds = [\"ready\"]\n[[step]]\nid = \"b\"\nuses = \"sleep\"\nduration = \"1ms\"\nper_cell = true\nneeds = [\"ready\"]\nbefore = [\"load\"]\n";
    let plan = plan_with(7, extra);
    let tmp = std::env::temp_dir().join(format!("lm-dispatch-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).unwrap();
    let dir = RunDir::open(&tmp);
    let mut rng = 0x9e37_79b9_7f4a_7c15u64;
    for round in 0..32 {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let selected: Vec<bool> = (0..plan.cells.len()).map(|c| rng >> c & 1 == 1).collect();
        let log = Rc::new(RefCell::new(Vec::new()));
        let executor = Rc::new(Recorder {
            log: log.clone(),
            seed: RefCell::new(rng | 1),
        });
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        let local = tokio::task::LocalSet::new();
        let (outcome, data) = runtime.block_on(
            local.run_until(
                Dispatcher::new(
                    &plan,
                    &dir,
                    data_for(&plan),
                    &selected,
                    executor,
                    CancelToken::new(),
                )
                .run(),
            ),
        );
        assert_eq!(outcome, Outcome::Completed, "round {round}");
        let log = log.borrow();
        // Each cell's span: from its first node's start to its last node's end.
        let mut spans: Vec<(usize, tokio::time::Instant, tokio::time::Instant)> = Vec::new();
        for &(c, s, e) in log.iter() {
            assert!(
                selected[c],
                "round {round}: cell {c} ran but was not selected"
            );
            match spans.iter_mut().find(|x| x.0 == c) {
                Some(x) => {
                    x.1 = x.1.min(s);
                    x.2 = x.2.max(e);
                }
                None => spans.push((c, s, e)),
            }
        }
        spans.sort_by_key(|x| x.1);
        let order: Vec<usize> = spans.iter().map(|x| x.0).collect();
        let expected: Vec<usize> = (0..plan.cells.len()).filter(|c| selected[*c]).collect();
        assert_eq!(order, expected, "round {round}: cells out of matrix order");
        for w in spans.windows(2) {
            assert!(
                w[0].2 <= w[1].1,
                "round {round}: cells {} and {} overlap",
                w[0].0,
                w[1].0
            );
        }
        for (c, rec) in data.cells.iter().enumerate() {
            let expected = if selected[c] {
                CellStatus::Complete
            } else {
                CellStatus::Pending
            };
            assert_eq!(rec.status, expected, "round {round}: cell {c}");
        }
    }
    let _ = std::fs::remove_dir_all(&tmp);
}

#[test]
fn probes_past_the_plans_cells_reach_the_watch_under_their_own_index() {
    let plan = search_plan();
    let tmp = std::env::temp_dir().join(format!("lm-dispatch-watch-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).unwrap();
    let dir = RunDir::open(&tmp);
    let mut data = data_for(&plan);
    data.units.clear();
    data.cells.clear();
    data.manifest.cells.clear();
    let watch = Watch::new(&plan, &data.units, &[true, true]);
    let mut events = watch.subscribe();
    let (progress, ticks) = tokio::sync::mpsc::unbounded_channel();
    let executor = Rc::new(Queueing {
        ran: Rc::new(RefCell::new(Vec::new())),
        progress: Some(progress),
    });
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let local = tokio::task::LocalSet::new();
    let (outcome, data) = runtime.block_on(
        local.run_until(
            Dispatcher::new(
                &plan,
                &dir,
                data,
                &[true, true],
                executor,
                CancelToken::new(),
            )
            .with_watch(watch.clone(), ticks)
            .run(),
        ),
    );
    assert_eq!(outcome, Outcome::Completed);
    let s = watch.snapshot();
    // Every probe is a unit of the watch, in the dispatcher's order.
    let ids: Vec<&str> = s.cells.iter().map(|c| c.id.as_str()).collect();
    let units: Vec<&str> = data.units.iter().map(|c| c.id.as_str()).collect();
    assert_eq!(ids, units);
    assert_eq!(ids.len(), 14);
    for (i, c) in s.cells.iter().enumerate() {
        assert_eq!(c.status, CellStatus::Complete, "{}", c.id);
        assert_eq!(c.outer, data.units[i].index);
        assert!(c.summary.is_some(), "{}", c.id);
    }
    assert_eq!(s.cells[13].position, Some(2));
    assert_eq!(s.cells[13].probe_no, Some(8));
    // Each probe's tick landed on the probe that ran it.
    let cells_ticked: Vec<usize> = s.series.iter().map(|p| p.cell).collect();
    assert_eq!(cells_ticked, (0..14).collect::<Vec<_>>());
    // Started and finished once per probe, in order, and a search line per verdict.
    let mut started = Vec::new();
    let mut lines = 0;
    while let Ok(e) = events.try_recv() {
        match e {
            WatchEvent::Cell(c, CellStatus::Running) => started.push(c),
            WatchEvent::Search(_) => lines += 1,
            _ => {}
        }
    }
    assert_eq!(started, (0..14).collect::<Vec<_>>());
    // Per outer cell: the start, each probe's verdict, the capacity.
    assert_eq!(lines, 2 + 14 + 2);
    let _ = std::fs::remove_dir_all(&tmp);
}

/// Records each load step as `cell-id#repeat` (the repetition asked for, 1-based)
/// and stops the run after `stop_after` of them.
struct Turns {
    ran: Rc<RefCell<Vec<String>>>,
    stop_after: Option<(usize, CancelToken)>,
}

impl Executor for Turns {
    fn execute(
        &self,
        step: &Step,
        cell: Option<&Cell>,
        input: StepInput,
    ) -> futures_util::future::LocalBoxFuture<'static, StepReport> {
        let result = match (step.kind, cell, input) {
            (StepKind::Load, Some(c), StepInput::Load { repetition, .. }) => {
                let mut ran = self.ran.borrow_mut();
                ran.push(match repetition {
                    Some(r) => format!("{}#{}", c.id, r + 1),
                    None => c.id.clone(),
                });
                if let Some((n, cancel)) = &self.stop_after
                    && ran.len() == *n
                {
                    cancel.cancel();
                }
                measured(1000)
            }
            _ => StepOutput::Done,
        };
        Box::pin(async move {
            tokio::task::yield_now().await;
            StepReport {
                result: Ok(result),
                events: Vec::new(),
            }
        })
    }
}

fn ab_plan(order: &str) -> Plan {
    let text = format!(
        "name = \"p\"\n[matrix]\nreplicas = [1, 2]\nversion = [\"a\", \"b\"]\n[cell]\nrepeat = 2\norder = \"{order}\"\n[load]\nbase_url = \"http://127.0.0.1:9\"\nusers = 1\n[[load.request]]\npath = \"/\"\n[analysis]\nab = \"version\"\n"
    );
    crate::plan::load_str(std::path::Path::new("p.toml"), &text, Default::default()).unwrap()
}

fn turns(
    plan: &Plan,
    dir: &RunDir,
    selected: &[bool],
    stop_after: Option<usize>,
) -> (Outcome, RunData, Vec<String>) {
    let ran = Rc::new(RefCell::new(Vec::new()));
    let cancel = CancelToken::new();
    let executor = Rc::new(Turns {
        ran: ran.clone(),
        stop_after: stop_after.map(|n| (n, cancel.clone())),
    });
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let local = tokio::task::LocalSet::new();
    let (outcome, data) =
        runtime.block_on(local.run_until(
            Dispatcher::new(plan, dir, data_for(plan), selected, executor, cancel).run(),
        ));
    let ran = ran.borrow().clone();
    (outcome, data, ran)
}

#[test]
fn interleaved_cells_take_turns_one_repeat_per_visit_and_keep_every_repeat() {
    let tmp = std::env::temp_dir().join(format!("lm-dispatch-turns-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).unwrap();
    let dir = RunDir::open(&tmp);

    // Sequential: each cell once, its repeats inside one load step.
    let plan = ab_plan("sequential");
    let (outcome, data, ran) = turns(&plan, &dir, &[true; 4], None);
    assert_eq!(outcome, Outcome::Completed);
    assert_eq!(
        ran,
        [
            "replicas1_versiona",
            "replicas1_versionb",
            "replicas2_versiona",
            "replicas2_versionb"
        ]
    );
    assert!(data.manifest.visits.is_empty());

    let plan = ab_plan("interleave");
    let (outcome, data, ran) = turns(&plan, &dir, &[true; 4], None);
    assert_eq!(outcome, Outcome::Completed);
    let expected = [
        "replicas1_versiona#1",
        "replicas1_versionb#1",
        "replicas1_versionb#2",
        "replicas1_versiona#2",
        "replicas2_versiona#1",
        "replicas2_versionb#1",
        "replicas2_versionb#2",
        "replicas2_versiona#2",
    ];
    assert_eq!(ran, expected);
    for (c, rec) in data.cells.iter().enumerate() {
        assert_eq!(rec.status, CellStatus::Complete, "cell {c}");
        assert_eq!(rec.runs.len(), 2, "cell {c}: both repeats kept");
    }
    let visits: Vec<String> = data
        .manifest
        .visits
        .iter()
        .map(|v| format!("{}#{}", v.cell, v.repeat))
        .collect();
    assert_eq!(visits, expected);
    assert!(data.manifest.visits.iter().all(|v| v.finished.is_some()));
    assert!(
        data.manifest
            .visits
            .windows(2)
            .all(|w| w[0].started <= w[1].started)
    );
    let written: Manifest =
        serde_json::from_slice(&std::fs::read(tmp.join("run.json")).unwrap()).unwrap();
    assert_eq!(written.visits, data.manifest.visits);

    // A resume that kept the first combination measures the second, in the same turns.
    let (_, _, ran) = turns(&plan, &dir, &[false, false, true, true], None);
    assert_eq!(ran, expected[4..]);
    let _ = std::fs::remove_dir_all(&tmp);
}

#[test]
fn a_run_stopped_between_visits_keeps_no_cell_with_half_its_repeats() {
    let tmp = std::env::temp_dir().join(format!("lm-dispatch-turns-stop-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).unwrap();
    let dir = RunDir::open(&tmp);
    let plan = ab_plan("interleave");
    // Stopped as the second visit (B, repeat 1) measures: A and B have one
    // repeat of two each.
    let (outcome, data, ran) = turns(&plan, &dir, &[true; 4], Some(2));
    assert_eq!(outcome, Outcome::Interrupted);
    assert_eq!(ran, ["replicas1_versiona#1", "replicas1_versionb#1"]);
    let statuses: Vec<CellStatus> = data.manifest.cells.iter().map(|e| e.status).collect();
    assert_eq!(
        statuses,
        [
            CellStatus::Interrupted,
            CellStatus::Interrupted,
            CellStatus::Pending,
            CellStatus::Pending
        ]
    );
    assert!(!data.cells.iter().any(|r| r.status == CellStatus::Complete));
    let _ = std::fs::remove_dir_all(&tmp);
}
