//! `loadmatrix run` end to end against local demo-target replicas: real
//! processes, real HTTP on loopback, measured against queueing arithmetic.

use crate::common::*;

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const DEMO: &str = r#"command = ["loadmatrix", "demo-target", "--port", "{{ port }}", "--replica", "{{ replica }}", "--slots", "4", "--service-time", "50ms"]"#;

#[test]
fn measured_rps_and_latency_match_queueing_arithmetic() {
    // 4 slots x 50 ms per replica: capacity 80 RPS per replica. 50 ms keeps
    // the millisecond of timer and HTTP overhead well inside the tolerance.
    let plan = format!(
        r#"
name = "accuracy"
[matrix]
case = ["below", "r1", "r2", "r4", "think"]
[cell]
duration = "3s"
warmup = "1s"
[system]
backend = "local"
replicas = "{{{{ {{'below': 1, 'r1': 1, 'r2': 2, 'r4': 4, 'think': 1}}[matrix.case] }}}}"
{DEMO}
ready = {{ path = "/health", timeout = "10s" }}
[load]
users = "{{{{ {{'below': 2, 'r1': 8, 'r2': 16, 'r4': 32, 'think': 4}}[matrix.case] }}}}"
think_time = "{{{{ '80ms..120ms' if matrix.case == 'think' else '0s' }}}}"
[[load.request]]
method = "POST"
path = "/predict"
body = '{{"inputs": [1]}}'
expect = {{ status = 200 }}
[analysis]
baseline = "0s"
"#
    );
    let run = run_plan("accuracy", &plan, &[]);
    assert_eq!(run.output.status.code(), Some(0), "{}", stderr(&run.output));
    let rows = summary(&run.dir);
    // case -> (rps, p50 ms): below capacity 2 users / 50 ms; at capacity
    // replicas x 80 with 8 users queued on 4 slots (100 ms, Little's law);
    // think time: 4 users / (50 ms + 100 ms).
    let expected = [
        ("below", 40.0, 50.0),
        ("r1", 80.0, 100.0),
        ("r2", 160.0, 100.0),
        ("r4", 320.0, 100.0),
        ("think", 4.0 / 0.150, 50.0),
    ];
    for (case, rps, p50) in expected {
        let row = rows.iter().find(|r| r["case"] == case).unwrap();
        let (m_rps, m_p50) = (num(row, "rps"), num(row, "p50"));
        assert!(
            within(m_rps, rps, 0.10),
            "{case}: rps {m_rps:.1}, expected {rps:.1} ± 10%"
        );
        assert!(
            within(m_p50, p50, 0.10),
            "{case}: p50 {m_p50:.2} ms, expected {p50:.1} ± 10%"
        );
        assert_eq!(row["status"], "complete");
    }
}

#[test]
fn open_model_sees_stalls_that_the_closed_model_hides() {
    let open = run_plan(
        "stalls-open",
        r#"
name = "stalls-open"
[cell]
duration = "6s"
[system]
backend = "local"
command = ["loadmatrix", "demo-target", "--port", "{{ port }}", "--slots", "8", "--service-time", "10ms", "--stall-every", "5s", "--stall-for", "1s"]
ready = { path = "/health" }
[load]
rate = 50
timeout = "5s"
[[load.request]]
method = "POST"
path = "/predict"
body = '{"inputs": [1]}'
"#,
        &[],
    );
    assert_eq!(
        open.output.status.code(),
        Some(0),
        "{}",
        stderr(&open.output)
    );
    let row = &summary(&open.dir)[0];
    assert!(num(row, "p99") >= 900.0, "open-model p99 {} ms", row["p99"]);

    let closed = run_plan(
        "stalls-closed",
        r#"
name = "stalls-closed"
[cell]
duration = "6s"
[system]
backend = "local"
command = ["loadmatrix", "demo-target", "--port", "{{ port }}", "--slots", "8", "--service-time", "10ms", "--stall-every", "5s", "--stall-for", "1s"]
ready = { path = "/health" }
[load]
users = 4
[[load.request]]
method = "POST"
path = "/predict"
body = '{"inputs": [1]}'
"#,
        &[],
    );
    assert_eq!(
        closed.output.status.code(),
        Some(0),
        "{}",
        stderr(&closed.output)
    );
    let row = &summary(&closed.dir)[0];
    assert!(
        num(row, "p99") < 900.0,
        "closed-model p99 {} ms",
        row["p99"]
    );
    let stats = std::fs::read_to_string(closed.dir.join("cells/default/stats.json")).unwrap();
    assert!(
        stats.contains("coordinated omission"),
        "the closed-model cell is not flagged:\n{stats}"
    );
    let report = std::fs::read_to_string(closed.dir.join("report.md")).unwrap();
    assert!(report.contains("may under-report"), "{report}");
}

const SMALL: &str = r#"
[cell]
duration = "1s"
[system]
backend = "local"
command = ["loadmatrix", "demo-target", "--port", "{{ port }}", "--service-time", "5ms"]
[matrix]
users = [1, 2]
[load]
users = "{{ matrix.users }}"
[[load.request]]
method = "POST"
path = "/predict"
body = '{"inputs": [1]}'
[analysis]
baseline = "0s"
"#;

#[test]
fn a_failing_threshold_exits_1_and_names_the_cell() {
    let plan = format!(
        "name = \"gate-fail\"\n{SMALL}\n[[threshold]]\nexpr = \"p50 < 1ms\"\nwhere = \"users == 2\"\n"
    );
    let run = run_plan("gate-fail", &plan, &[]);
    let err = stderr(&run.output);
    assert_eq!(run.output.status.code(), Some(1), "{err}");
    assert!(
        err.contains("FAIL  p50 < 1ms where users == 2  users2"),
        "{err}"
    );
    assert!(!err.contains("users1 "), "{err}");
}

#[test]
fn a_passing_threshold_exits_0() {
    let plan = format!(
        "name = \"gate-pass\"\n{SMALL}\n[[threshold]]\nexpr = \"p50 < 5s and fail_rate < 1%\"\n[[threshold]]\nexpr = \"min(rps) > 10\"\n"
    );
    let run = run_plan("gate-pass", &plan, &[]);
    let err = stderr(&run.output);
    assert_eq!(run.output.status.code(), Some(0), "{err}");
    assert!(err.contains("all 3 threshold checks passed"), "{err}");
}

#[test]
fn quickstart_runs_in_under_a_minute_and_writes_every_file() {
    let dir = temp_dir("quickstart");
    let start = Instant::now();
    let output = Command::new(env!("CARGO_BIN_EXE_loadmatrix"))
        .args(["run", "plans/quickstart.toml", "--out"])
        .arg(&dir)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    let took = start.elapsed();
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert!(took < Duration::from_secs(60), "took {took:?}");
    let run = std::fs::read_dir(dir.join("quickstart"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    for f in [
        "run.json",
        "plan.toml",
        "summary.csv",
        "summary.json",
        "report.md",
    ] {
        assert!(run.join(f).is_file(), "{f} missing");
    }
    for cell in [
        "replicas1_users8",
        "replicas1_users32",
        "replicas2_users8",
        "replicas2_users32",
    ] {
        for f in ["stats.json", "timeline.csv", "system.csv", "events.log"] {
            assert!(
                run.join("cells").join(cell).join(f).is_file(),
                "{cell}/{f} missing"
            );
        }
        let system =
            std::fs::read_to_string(run.join("cells").join(cell).join("system.csv")).unwrap();
        assert!(system.lines().count() > 3, "{cell}: no system samples");
    }
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("run.json")).unwrap()).unwrap();
    assert_eq!(manifest["status"], "complete");
    assert!(
        manifest["cells"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["status"] == "complete")
    );
    assert_eq!(summary(&run).len(), 4);
}

fn long_plan(name: &str, seed: &str) -> String {
    format!(
        r#"
name = "{name}"
[matrix]
users = [1, 2, 3]
[cell]
duration = "20s"
[system]
backend = "local"
replicas = 2
command = ["loadmatrix", "demo-target", "--port", "{{{{ port }}}}", "--seed", "{seed}", "--service-time", "5ms"]
[load]
users = "{{{{ matrix.users }}}}"
[[load.request]]
path = "/health"
[analysis]
baseline = "0s"
"#
    )
}

fn start_run(name: &str, plan: &str) -> (std::process::Child, PathBuf) {
    let dir = temp_dir(name);
    std::fs::write(dir.join("plan.toml"), plan).unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_loadmatrix"))
        .arg("run")
        .arg(dir.join("plan.toml"))
        .arg("--out")
        .arg(dir.join("results"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    (child, dir)
}

#[test]
fn replicas_die_with_a_sigkilled_loadmatrix() {
    let seed = format!("{}", 900_000 + std::process::id() % 1000);
    let (mut child, _dir) = start_run("orphans", &long_plan("orphans", &seed));
    wait_for("2 replicas", Duration::from_secs(20), || {
        demo_pids(&seed).len() == 2
    });
    child.kill().unwrap();
    child.wait().unwrap();
    wait_for("replicas to exit", Duration::from_secs(5), || {
        demo_pids(&seed).is_empty()
    });
}

#[test]
fn ctrl_c_stops_within_a_second_keeps_finished_cells_and_exits_130() {
    let seed = format!("{}", 800_000 + std::process::id() % 1000);
    let plan = long_plan("interrupt", &seed)
        .replace("duration = \"20s\"", "duration = \"2s\"")
        .replace("users = [1, 2, 3]", "users = [1, 2, 3, 4]")
        .replace("[load]", "[load]\nspawn_rate = 100");
    let plan = plan.replacen(
        "duration = \"2s\"",
        "duration = \"2s\"\ncooldown = \"0s\"",
        1,
    );
    let (mut child, dir) = start_run("interrupt", &plan);
    let cells = dir.join("results/interrupt");
    // Wait until the first cell's folder exists, i.e. cell 2 is under way.
    wait_for("the first cell", Duration::from_secs(30), || {
        std::fs::read_dir(&cells)
            .ok()
            .and_then(|mut d| d.next())
            .and_then(|e| e.ok())
            .is_some_and(|e| e.path().join("cells/users1/stats.json").is_file())
    });
    std::thread::sleep(Duration::from_millis(500));
    let sent = Instant::now();
    // SAFETY: plain kill(2) on our own child.
    unsafe { kill(child.id() as i32, 2) };
    let status = child.wait().unwrap();
    let took = sent.elapsed();
    assert_eq!(status.code(), Some(130));
    // load stops within a second; stopping replicas and writing files adds a little
    assert!(took < Duration::from_secs(4), "took {took:?}");
    let run = std::fs::read_dir(&cells)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("run.json")).unwrap()).unwrap();
    assert_eq!(manifest["status"], "interrupted");
    assert_eq!(manifest["cells"][0]["status"], "complete");
    assert_ne!(manifest["cells"][3]["status"], "complete");
    assert!(run.join("cells/users1/stats.json").is_file());
    assert!(!run.join("cells/users4").exists());
    assert!(run.join("summary.csv").is_file());
    wait_for("replicas to exit", Duration::from_secs(5), || {
        demo_pids(&seed).is_empty()
    });
}

#[test]
fn declared_steps_run_as_written() {
    let plan = r#"
name = "steps"
[matrix]
users = [1, 2]
[cell]
duration = "1s"
[system]
backend = "local"
command = ["loadmatrix", "demo-target", "--port", "{{ port }}", "--service-time", "5ms"]
[load]
users = "{{ matrix.users }}"
[[load.request]]
path = "/health"

[[step]]
id = "mark"
uses = "exec"
run = ["sh", "-c", "echo {{ cell.id }} > marker-{{ cell.id }}.txt; echo hello-{{ matrix.users }}"]
per_cell = true
needs = ["ready"]
before = ["load"]

[[step]]
id = "slow"
uses = "exec"
run = ["sleep", "5"]
timeout = "200ms"
per_cell = true
needs = ["load"]

[[step]]
id = "final"
uses = "report"
template = "summary.md.j2"
output = "final.md"
needs = ["load"]
[analysis]
baseline = "0s"
"#;
    let run = run_plan("steps", plan, &[]);
    let err = stderr(&run.output);
    assert_eq!(run.output.status.code(), Some(0), "{err}");
    let plan_dir = run
        .dir
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .parent()
        .unwrap();
    for cell in ["users1", "users2"] {
        let marker = std::fs::read_to_string(plan_dir.join(format!("marker-{cell}.txt"))).unwrap();
        assert_eq!(marker.trim(), cell);
        let events =
            std::fs::read_to_string(run.dir.join("cells").join(cell).join("events.log")).unwrap();
        let users = &cell[5..];
        assert!(
            events.contains(&format!("stdout: hello-{users}")),
            "{events}"
        );
        assert!(
            events.contains("still running after 200ms: killed"),
            "{events}"
        );
    }
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.dir.join("run.json")).unwrap()).unwrap();
    for c in manifest["cells"].as_array().unwrap() {
        assert_eq!(c["status"], "degraded", "{c}");
        assert!(c["message"].as_str().unwrap().contains("slow"), "{c}");
    }
    assert!(run.dir.join("final.md").is_file());
    assert!(run.dir.join("report.md").is_file());
}

#[test]
fn a_failed_preflight_exits_3_before_any_load() {
    let plan = r#"
name = "preflight"
[cell]
duration = "1s"
[system]
backend = "local"
command = ["loadmatrix", "demo-target", "--port", "{{ port }}"]
[load]
users = 1
[[load.request]]
path = "/health"

[[check]]
name = "nothing listens here"
http = { url = "http://127.0.0.1:9/health" }
timeout = "2s"

[[check]]
name = "disk"
disk = { path = ".", min_free = "1KiB" }

[[check]]
name = "false"
command = { run = ["false"] }
[analysis]
baseline = "0s"
"#;
    let run = run_plan("preflight", plan, &[]);
    let err = stderr(&run.output);
    assert_eq!(run.output.status.code(), Some(3), "{err}");
    assert!(err.contains("preflight failed (2 of 3)"), "{err}");
    assert!(err.contains("nothing listens here  FAILED"), "{err}");
    assert!(err.contains("disk                  ok"), "{err}");
    assert!(err.contains("`false` exited 1, expected 0"), "{err}");
    assert!(!run.dir.join("cells/default").exists());
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.dir.join("run.json")).unwrap()).unwrap();
    assert_eq!(manifest["status"], "preflight_failed");
    assert_eq!(manifest["cells"][0]["status"], "pending");
}

fn loadmatrix(args: &[&std::ffi::OsStr]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_loadmatrix"))
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn report_rebuilds_outputs_and_compare_gates_regressions() {
    let plan = r#"
name = "regress"
[vars]
svc = "10ms"
[matrix]
users = [2, 4]
[cell]
duration = "2s"
[system]
backend = "local"
command = ["loadmatrix", "demo-target", "--port", "{{ port }}", "--slots", "8", "--service-time", "{{ vars.svc }}"]
[load]
users = "{{ matrix.users }}"
[[load.request]]
method = "POST"
path = "/predict"
body = '{"inputs": [1]}'
[[threshold]]
expr = "p95 < 1s"
[analysis]
baseline = "0s"
"#;
    let base = run_plan("regress-base", plan, &[]);
    assert_eq!(
        base.output.status.code(),
        Some(0),
        "{}",
        stderr(&base.output)
    );
    let slow = run_plan("regress-new", plan, &["--set", "vars.svc=20ms"]);
    assert_eq!(
        slow.output.status.code(),
        Some(0),
        "{}",
        stderr(&slow.output)
    );

    // report: outputs rebuilt from the cell folders alone
    let summary = std::fs::read_to_string(base.dir.join("summary.csv")).unwrap();
    let report = std::fs::read_to_string(base.dir.join("report.md")).unwrap();
    for f in ["summary.csv", "summary.json", "report.md", "junit.xml"] {
        std::fs::remove_file(base.dir.join(f)).unwrap();
    }
    let o = loadmatrix(&["report".as_ref(), base.dir.as_os_str()]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(
        std::fs::read_to_string(base.dir.join("summary.csv")).unwrap(),
        summary
    );
    assert_eq!(
        std::fs::read_to_string(base.dir.join("report.md")).unwrap(),
        report
    );
    let junit = std::fs::read_to_string(base.dir.join("junit.xml")).unwrap();
    assert_eq!(junit.matches("<testcase ").count(), 2, "{junit}");

    // compare: a run against itself holds; double the service time regresses
    let o = loadmatrix(&[
        "compare".as_ref(),
        base.dir.as_os_str(),
        base.dir.as_os_str(),
    ]);
    assert_eq!(o.status.code(), Some(0));
    let o = loadmatrix(&[
        "compare".as_ref(),
        base.dir.as_os_str(),
        slow.dir.as_os_str(),
        "--max-regression".as_ref(),
        "10%".as_ref(),
    ]);
    let table = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(1), "{table}");
    assert!(
        table.contains("| users2 |") && table.contains("**regressed**"),
        "{table}"
    );
    assert!(
        table.contains("2 of 2 cells regressed by more than 10%"),
        "{table}"
    );
    let o = loadmatrix(&[
        "compare".as_ref(),
        base.dir.as_os_str(),
        "/nonexistent".as_ref(),
    ]);
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn the_report_names_the_cheapest_replica_count_and_no_false_plateau() {
    // 8 users against replicas of 4 slots x 50 ms: 1 replica serves 80 RPS
    // (the service is the limit); 2 serve all 8 users at 160 RPS and 4 add
    // nothing because the load offers no more: not a plateau.
    let plan = r#"
name = "plateau"
[matrix]
replicas = [1, 2, 4]
[cell]
duration = "3s"
[system]
backend = "local"
replicas = "{{ matrix.replicas }}"
command = ["loadmatrix", "demo-target", "--port", "{{ port }}", "--slots", "4", "--service-time", "50ms"]
ready = { path = "/health" }
[load]
users = 8
[[load.request]]
method = "POST"
path = "/predict"
body = '{"inputs": [1]}'
[analysis]
slo = { p95 = "500ms", fail_rate = "1%" }
cost = { per_replica_hour = 1.0, per_worker_hour = 1.0 }
baseline = "1s"
"#;
    let run = run_plan("plateau", plan, &[]);
    assert_eq!(run.output.status.code(), Some(0), "{}", stderr(&run.output));
    let report = std::fs::read_to_string(run.dir.join("report.md")).unwrap();
    assert!(!report.contains("RPS plateaus"), "{report}");
    assert!(
        report.contains("replicas 2 -> 4: not saturated (both load-bound at ~"),
        "{report}"
    );
    // 1 replica meets the SLO at 8 users (p95 about 100 ms): the cheapest,
    // with its load generator's worker in the price.
    assert!(
        report.contains(
            "- Deploy 1 replica at the tested load (cheapest under the SLO: $2.00/h (1 replica x $1.00 + 1 worker x $1.00)"
        ),
        "{report}"
    );
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.dir.join("summary.json")).unwrap())
            .unwrap();
    let optimal = summary["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["kind"] == "optimal")
        .unwrap();
    assert_eq!(optimal["cells"][0], "replicas1", "{optimal}");
}

#[test]
fn repeated_cells_report_mean_and_spread() {
    let plan = format!(
        "name = \"repeats\"\n{}",
        SMALL.replace("duration = \"1s\"", "duration = \"1s\"\nrepeat = 3")
    );
    let run = run_plan("repeats", &plan, &[]);
    assert_eq!(run.output.status.code(), Some(0), "{}", stderr(&run.output));
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.dir.join("summary.json")).unwrap())
            .unwrap();
    for row in summary["rows"].as_array().unwrap() {
        let m = &row["metrics"];
        let (min, max, rps) = (
            m["rps_min"].as_f64().unwrap(),
            m["rps_max"].as_f64().unwrap(),
            m["rps"].as_f64().unwrap(),
        );
        assert!(min <= rps && rps <= max, "{m}");
        assert!(m["rps_cv_pct"].as_f64().unwrap() >= 0.0);
        assert_eq!(row["repeat_rps"].as_array().unwrap().len(), 3);
    }
    let stats: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(run.dir.join("cells/users1/stats.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(stats["repetitions"].as_array().unwrap().len(), 3);
    let timeline = std::fs::read_to_string(run.dir.join("cells/users1/timeline.csv")).unwrap();
    assert!(timeline.starts_with("repeat,t,"), "{timeline}");
    let page = std::fs::read_to_string(run.dir.join("cells/users1/cell.md")).unwrap();
    assert!(page.contains("over 3 repetitions (RPS"), "{page}");
}
