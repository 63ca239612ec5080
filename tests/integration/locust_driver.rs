//! The Locust driver against real Locust (`pip install locust`) and the demo
//! target on 127.0.0.1. Every test checks that no Locust process it started
//! outlives it: each run's work dir is unique and appears in the command line
//! of its master and workers (`-f LOCUSTFILE,WORK_DIR/probe.py`).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use loadmatrix::demo_target::{self, DemoConfig, Jitter, ServiceTime};
use loadmatrix::engine::locust::{LocustError, LocustSpec, run_locust};
use loadmatrix::engine::{CancelToken, Phase};

/// The demo target on an ephemeral port, served until dropped.
struct Target {
    port: u16,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Target {
    fn start(config: DemoConfig) -> Target {
        let (port_tx, port_rx) = std::sync::mpsc::channel();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                let listener = demo_target::bind_listener("127.0.0.1", 0)
                    .await
                    .expect("bind");
                port_tx
                    .send(listener.local_addr().expect("addr").port())
                    .expect("send port");
                demo_target::serve(listener, config, async {
                    let _ = stop_rx.await;
                })
                .await;
            });
        });
        let port = port_rx.recv().expect("demo target port");
        Target {
            port,
            stop: Some(stop_tx),
            thread: Some(thread),
        }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for Target {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn fast_target() -> Target {
    Target::start(DemoConfig {
        slots: 64,
        service_time: ServiceTime {
            mean: Duration::from_millis(5),
            jitter: Jitter::LogNormal { cv: 0.5 },
        },
        ..DemoConfig::default()
    })
}

const LOCUSTFILE: &str = r#"
from locust import HttpUser, task, constant

class Api(HttpUser):
    wait_time = constant(0.05)

    @task(3)
    def health(self):
        self.client.get("/health", name="health")

    @task
    def predict(self):
        self.client.post("/predict", json={"x": 1}, name="predict")
"#;

/// Command lines of live processes mentioning `marker`.
fn processes_with(marker: &str) -> Vec<String> {
    let mut found = Vec::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return found;
    };
    for e in dir.flatten() {
        if !e
            .file_name()
            .to_string_lossy()
            .bytes()
            .all(|b| b.is_ascii_digit())
        {
            continue;
        }
        if let Ok(cmd) = std::fs::read(e.path().join("cmdline")) {
            let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
            if cmd.contains(marker) {
                found.push(cmd);
            }
        }
    }
    found
}

fn assert_no_orphans(work_dir: &Path) {
    let marker = work_dir.to_string_lossy().into_owned();
    // Reaped children vanish at once; allow for a kernel lag anyway.
    let t0 = Instant::now();
    loop {
        let left = processes_with(&marker);
        if left.is_empty() {
            return;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(2),
            "Locust processes outlived the run: {left:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn spec_for(dir: &Path, locustfile: &str, target: &str) -> LocustSpec {
    let lf = dir.join("locustfile.py");
    std::fs::write(&lf, locustfile).unwrap();
    LocustSpec::new(lf, target, dir.join("out"))
}

/// Locust's own final numbers: the `Aggregated` row and the per-name rows of
/// `locust_stats.csv`, keyed by name.
fn locust_csv(work_dir: &Path) -> BTreeMap<String, BTreeMap<String, String>> {
    let text = std::fs::read_to_string(work_dir.join("locust_stats.csv")).unwrap();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    lines
        .map(|l| {
            let row: BTreeMap<String, String> = header
                .iter()
                .zip(l.split(','))
                .map(|(h, v)| (h.to_string(), v.to_string()))
                .collect();
            (row["Name"].clone(), row)
        })
        .collect()
}

/// Total requests in Locust's `--json-file` output.
fn locust_json_total(work_dir: &Path) -> u64 {
    let text = std::fs::read_to_string(work_dir.join("locust.json")).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    v.as_array()
        .unwrap()
        .iter()
        .map(|e| e["num_requests"].as_u64().unwrap())
        .sum()
}

/// One bucket step of Locust's rounding at `ms`, plus HDR's 0.1%.
fn tolerance(ms: f64) -> f64 {
    let step = if ms < 100.0 {
        1.0
    } else if ms < 1000.0 {
        10.0
    } else if ms < 10_000.0 {
        100.0
    } else {
        1000.0
    };
    step + ms * 0.002
}

fn assert_close(what: &str, ours: f64, locust: &str) {
    let locust: f64 = locust.parse().unwrap();
    assert!(
        (ours - locust).abs() <= tolerance(locust),
        "{what}: ours {ours} ms, Locust's {locust} ms"
    );
}

fn no_progress(_: loadmatrix::engine::ProgressTick) {}

/// Runs 20 users; with no warm-up the ingested totals must equal Locust's.
fn run_and_compare(workers: usize, warmup: u64, duration: u64) {
    let target = fast_target();
    let dir = tempfile::tempdir().unwrap();
    let mut spec = spec_for(dir.path(), LOCUSTFILE, &target.url());
    spec.users = 20;
    spec.workers = workers;
    spec.warmup = Duration::from_secs(warmup);
    spec.duration = Duration::from_secs(duration);
    let ticks = std::sync::Mutex::new(Vec::new());
    let t0 = Instant::now();
    let stats = run_locust(&spec, CancelToken::new(), &|t| {
        ticks.lock().unwrap().push(t)
    })
    .unwrap_or_else(|e| panic!("{e}"));
    eprintln!("run with {workers} worker(s) took {:?}", t0.elapsed());
    assert_no_orphans(&spec.work_dir);
    assert!(!stats.cancelled);
    assert!(stats.total.requests > 100, "{:?}", stats.total);
    assert_eq!(stats.total.failures, 0);

    let csv = locust_csv(&spec.work_dir);
    let json_total = locust_json_total(&spec.work_dir);
    let locust_total: u64 = csv["Aggregated"]["Request Count"].parse().unwrap();
    assert_eq!(json_total, locust_total);
    if warmup == 0 {
        assert_eq!(stats.total.requests, json_total);
        for (name, s) in &stats.by_name {
            let row = &csv[name];
            assert_eq!(s.requests.to_string(), row["Request Count"], "{name}");
            assert_close(&format!("{name} p50"), s.p50_ms, &row["50%"]);
            assert_close(&format!("{name} p95"), s.p95_ms, &row["95%"]);
            assert_close(&format!("{name} p99"), s.p99_ms, &row["99%"]);
        }
        let agg = &csv["Aggregated"];
        assert_close("p50", stats.total.p50_ms, &agg["50%"]);
        assert_close("p95", stats.total.p95_ms, &agg["95%"]);
        assert_close("p99", stats.total.p99_ms, &agg["99%"]);
        assert_close("max", stats.total.max_ms, &agg["Max Response Time"]);
    } else {
        // Warm-up + measured, as the probe split them, is Locust's total.
        let probe: serde_json::Value = serde_json::from_slice(
            &std::fs::read(spec.work_dir.join("loadmatrix_probe.json")).unwrap(),
        )
        .unwrap();
        let warm: u64 = probe["warmup"]
            .as_object()
            .unwrap()
            .values()
            .flat_map(|m| m.as_object().unwrap().values())
            .map(|e| e["n"].as_u64().unwrap())
            .sum();
        assert!(warm > 0, "warm-up requests were not excluded");
        assert_eq!(warm + stats.total.requests, json_total);
    }

    assert_eq!(
        stats.timeline.len() as u64,
        duration,
        "{:?}",
        stats.timeline
    );
    let in_rows: u64 = stats.timeline.iter().map(|r| r.requests).sum();
    assert_eq!(in_rows, stats.total.requests);
    for row in &stats.timeline {
        assert!(row.requests > 0 && row.p50_ms > 0.0, "{row:?}");
        assert_eq!(row.users, 20, "{row:?}");
    }
    assert!((stats.measured_secs - duration as f64).abs() < 0.5);
    assert!(stats.warnings[0].contains("2 significant digits"));
    assert!(stats.client_cpu_pct > 0.0);
    let ticks = ticks.into_inner().unwrap();
    assert!(ticks.len() as u64 >= duration, "{} ticks", ticks.len());
    let warm_ticks = ticks.iter().filter(|t| t.phase == Phase::Warmup).count();
    assert_eq!(warm_ticks > 0, warmup > 0, "{ticks:?}");
    assert!(
        ticks
            .iter()
            .any(|t| t.phase == Phase::Measure && t.requests > 0)
    );
    // The live window holds the seconds every worker has reported, counted
    // as the timeline counts them (warm-up excluded).
    for t in ticks.iter().filter(|t| t.window.secs > 0) {
        let rows = &stats.timeline[..t.window.secs as usize];
        let in_rows: u64 = rows.iter().map(|r| r.requests).sum();
        assert_eq!(t.window.requests, in_rows, "{t:?} vs {rows:?}");
    }
}

#[test]
fn one_worker_totals_and_percentiles_match_locust() {
    if !crate::common::locust_available("one_worker_totals_and_percentiles_match_locust") {
        return;
    }
    run_and_compare(1, 0, 5);
}

#[test]
fn two_workers_totals_and_percentiles_match_locust() {
    if !crate::common::locust_available("two_workers_totals_and_percentiles_match_locust") {
        return;
    }
    run_and_compare(2, 0, 5);
}

#[test]
fn two_workers_exclude_the_warm_up() {
    if !crate::common::locust_available("two_workers_exclude_the_warm_up") {
        return;
    }
    run_and_compare(2, 2, 4);
}

#[test]
fn failures_are_classified() {
    if !crate::common::locust_available("failures_are_classified") {
        return;
    }
    let target = Target::start(DemoConfig {
        slots: 64,
        service_time: ServiceTime {
            mean: Duration::from_millis(50),
            jitter: Jitter::Fixed,
        },
        fail_rate: 1.0,
        ..DemoConfig::default()
    });
    // Port 9 (discard) is closed on loopback here: connection refused.
    let locustfile = r#"
from locust import HttpUser, task, constant

class Api(HttpUser):
    wait_time = constant(0.1)

    @task
    def status(self):
        self.client.post("/predict", json={}, name="status")

    @task
    def timeout(self):
        self.client.post("/predict", json={}, name="timeout", timeout=0.005)

    @task
    def refused(self):
        self.client.get("http://127.0.0.1:9/", name="refused")
"#;
    let dir = tempfile::tempdir().unwrap();
    let mut spec = spec_for(dir.path(), locustfile, &target.url());
    spec.users = 3;
    spec.duration = Duration::from_secs(3);
    let stats =
        run_locust(&spec, CancelToken::new(), &no_progress).unwrap_or_else(|e| panic!("{e}"));
    assert_no_orphans(&spec.work_dir);
    let kinds = |n: &str| stats.by_name[n].failures_by_kind;
    assert!(
        kinds("status").status > 0 && kinds("status").total() == stats.by_name["status"].requests
    );
    assert!(
        kinds("timeout").timeout > 0
            && kinds("timeout").total() == stats.by_name["timeout"].requests
    );
    assert!(
        kinds("refused").connect > 0
            && kinds("refused").total() == stats.by_name["refused"].requests
    );
    assert_eq!(stats.total.failures, stats.total.requests);
    assert_eq!(stats.total.hist.len(), 0, "failures carry no latency");
}

#[test]
fn syntax_error_names_the_locustfile() {
    if !crate::common::locust_available("syntax_error_names_the_locustfile") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let spec = spec_for(
        dir.path(),
        "from locust import HttpUser\nclass Api(HttpUser:\n    pass\n",
        "http://127.0.0.1:9",
    );
    let t0 = Instant::now();
    let err = run_locust(&spec, CancelToken::new(), &no_progress).unwrap_err();
    assert_no_orphans(&spec.work_dir);
    assert!(matches!(err, LocustError::Locustfile { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains("locustfile.py"), "{msg}");
    assert!(msg.contains("SyntaxError"), "{msg}");
    assert!(t0.elapsed() < Duration::from_secs(20));
}

#[test]
fn missing_locust_is_not_installed() {
    let dir = tempfile::tempdir().unwrap();
    let mut spec = spec_for(dir.path(), LOCUSTFILE, "http://127.0.0.1:9");
    spec.path = Some("".into());
    let err = run_locust(&spec, CancelToken::new(), &no_progress).unwrap_err();
    assert!(matches!(err, LocustError::NotInstalled { .. }), "{err:?}");
    assert!(err.to_string().contains("pip install locust"));
    assert_no_orphans(&spec.work_dir);
}

#[test]
fn external_workers_that_never_come() {
    if !crate::common::locust_available("external_workers_that_never_come") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut spec = spec_for(dir.path(), LOCUSTFILE, "http://127.0.0.1:9");
    spec.workers = 2;
    spec.external_workers = true;
    spec.master_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    spec.expect_workers_timeout = Duration::from_secs(2);
    let t0 = Instant::now();
    let err = run_locust(&spec, CancelToken::new(), &no_progress).unwrap_err();
    let took = t0.elapsed();
    assert_no_orphans(&spec.work_dir);
    match &err {
        LocustError::WorkersMissing {
            expected,
            connected,
            stderr_tail,
            ..
        } => {
            assert_eq!((*expected, *connected), (2, 0));
            assert!(stderr_tail.contains("Gave up waiting"), "{stderr_tail}");
        }
        other => panic!("{other:?}"),
    }
    assert!(took < Duration::from_secs(15), "{took:?}");
}

#[test]
fn cancel_stops_everything_within_a_second_or_two() {
    if !crate::common::locust_available("cancel_stops_everything_within_a_second_or_two") {
        return;
    }
    let target = fast_target();
    let dir = tempfile::tempdir().unwrap();
    let mut spec = spec_for(dir.path(), LOCUSTFILE, &target.url());
    spec.users = 10;
    spec.workers = 2;
    spec.duration = Duration::from_secs(60);
    let flag = Arc::new(AtomicBool::new(false));
    let cancel = CancelToken::from_flag(flag.clone());
    let cancelled_at = std::sync::Mutex::new(None);
    let result = run_locust(&spec, cancel.clone(), &|t| {
        if t.elapsed >= Duration::from_secs(3) && !cancel.is_cancelled() {
            *cancelled_at.lock().unwrap() = Some(Instant::now());
            cancel.cancel();
        }
    });
    let at = cancelled_at.into_inner().unwrap().expect("cancelled");
    let stop_took = at.elapsed();
    assert_no_orphans(&spec.work_dir);
    let stats = result.unwrap_or_else(|e| panic!("{e}"));
    assert!(stats.cancelled);
    assert!(stats.total.requests > 0);
    assert!(stats.measured_secs < 10.0);
    assert!(stop_took < Duration::from_millis(2500), "{stop_took:?}");
}

/// Run by `driver_killed_leaves_no_orphans` in a child process of its own.
#[test]
#[ignore = "helper: runs only as the child of driver_killed_leaves_no_orphans"]
fn long_run_in_child() {
    if !crate::common::locust_available("long_run_in_child") {
        return;
    }
    let (Some(dir), Some(url)) = (
        std::env::var_os("LM_LOCUST_CHILD_DIR"),
        std::env::var_os("LM_LOCUST_CHILD_URL"),
    ) else {
        return;
    };
    let dir = Path::new(&dir);
    let mut spec = spec_for(dir, LOCUSTFILE, &url.to_string_lossy());
    spec.users = 5;
    spec.workers = 2;
    spec.duration = Duration::from_secs(60);
    let _ = run_locust(&spec, CancelToken::new(), &no_progress);
}

#[test]
fn driver_killed_leaves_no_orphans() {
    if !crate::common::locust_available("driver_killed_leaves_no_orphans") {
        return;
    }
    let target = fast_target();
    let dir = tempfile::tempdir().unwrap();
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "locust_driver::long_run_in_child",
            "--ignored",
            "--nocapture",
        ])
        .env("LM_LOCUST_CHILD_DIR", dir.path())
        .env("LM_LOCUST_CHILD_URL", target.url())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let work_dir = dir.path().join("out");
    let progress = work_dir.join("loadmatrix_progress.jsonl");
    let t0 = Instant::now();
    while !std::fs::read_to_string(&progress).is_ok_and(|p| p.contains("\"measure\"")) {
        if t0.elapsed() > Duration::from_secs(20) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the child's Locust run never started measuring");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let marker = work_dir.to_string_lossy().into_owned();
    assert_eq!(
        processes_with(&marker).len(),
        3,
        "master and two workers run"
    );
    child.kill().unwrap();
    child.wait().unwrap();
    assert_no_orphans(&work_dir);
}

/// Kills the process on drop.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn external_worker_fetches_locustfile_and_probe_from_master() {
    if !crate::common::locust_available("external_worker_fetches_locustfile_and_probe_from_master")
    {
        return;
    }
    let target = fast_target();
    let dir = tempfile::tempdir().unwrap();
    let mut spec = spec_for(dir.path(), LOCUSTFILE, &target.url());
    spec.users = 5;
    spec.external_workers = true;
    spec.master_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    spec.warmup = Duration::from_secs(1);
    spec.duration = Duration::from_secs(3);
    spec.expect_workers_timeout = Duration::from_secs(20);
    let port = spec.master_port.to_string();
    // Retries the connection until the master is up.
    let worker = KillOnDrop(
        std::process::Command::new("locust")
            .args(["--worker", "-f", "-", "--master-host", "127.0.0.1"])
            .args(["--master-port", &port])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("locust on PATH"),
    );
    let stats =
        run_locust(&spec, CancelToken::new(), &no_progress).unwrap_or_else(|e| panic!("{e}"));
    drop(worker);
    assert_no_orphans(&spec.work_dir);
    assert!(processes_with(&format!("--master-port {port}")).is_empty());
    assert!(stats.total.requests > 0);
    assert_eq!(stats.timeline.len(), 3);
}

#[test]
fn user_classes_and_tags_select_what_runs() {
    if !crate::common::locust_available("user_classes_and_tags_select_what_runs") {
        return;
    }
    let target = fast_target();
    let locustfile = r#"
from locust import HttpUser, task, tag, constant

class A(HttpUser):
    wait_time = constant(0.1)

    @task
    def a(self):
        self.client.get("/health", name="a")

class B(HttpUser):
    wait_time = constant(0.1)

    @tag("x")
    @task
    def bx(self):
        self.client.get("/health", name="bx")

    @tag("y")
    @task
    def by(self):
        self.client.get("/health", name="by")
"#;
    let dir = tempfile::tempdir().unwrap();
    let mut spec = spec_for(dir.path(), locustfile, &target.url());
    spec.users = 4;
    spec.duration = Duration::from_secs(2);
    spec.user_classes = vec!["B".into()];
    spec.tags = vec!["x".into()];
    let stats =
        run_locust(&spec, CancelToken::new(), &no_progress).unwrap_or_else(|e| panic!("{e}"));
    assert_no_orphans(&spec.work_dir);
    let names: Vec<&str> = stats.by_name.keys().map(String::as_str).collect();
    assert_eq!(names, ["bx"]);
}

#[test]
fn a_load_shape_is_refused_within_seconds() {
    if !crate::common::locust_available("a_load_shape_is_refused_within_seconds") {
        return;
    }
    let target = fast_target();
    let locustfile = r#"
from locust import HttpUser, LoadTestShape, constant, task

class Api(HttpUser):
    wait_time = constant(0.1)

    @task
    def health(self):
        self.client.get("/health", name="health")

class Ramp(LoadTestShape):
    def tick(self):
        return (10, 10) if self.get_run_time() < 60 else None
"#;
    let dir = tempfile::tempdir().unwrap();
    let mut spec = spec_for(dir.path(), locustfile, &target.url());
    spec.workers = 2;
    spec.duration = Duration::from_secs(3);
    let t0 = Instant::now();
    let err = run_locust(&spec, CancelToken::new(), &no_progress).unwrap_err();
    let took = t0.elapsed();
    assert_no_orphans(&spec.work_dir);
    match &err {
        LocustError::LoadShape { class, .. } => assert_eq!(class, "Ramp"),
        other => panic!("{other:?}"),
    }
    assert!(err.to_string().contains("`Ramp`"), "{err}");
    assert!(took < Duration::from_secs(10), "{took:?}");
    // The shape never started a user.
    assert!(!spec.work_dir.join("locust.json").exists());
}
