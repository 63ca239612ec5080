//! Capacity search against local demo-target replicas whose capacity is
//! known in closed form: 4 slots of 50 ms each serve 80 RPS per replica, and
//! with no think time a user waits 50 ms for every 4 users queued with it on
//! its replica (150 ms at 12 users per replica, some requests 200 ms at 13).

use std::collections::HashMap;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, SystemTime};

use crate::common::*;

/// A search plan over `matrix`, with `[search]` settings `search`.
fn plan(name: &str, matrix: &str, slots: &str, search: &str, extra: &str) -> String {
    let replicas = if matrix.contains("replicas") {
        "\"{{ matrix.replicas }}\""
    } else {
        "1"
    };
    let think = if search.contains("\"rate\"") {
        ""
    } else {
        "think_time = \"0s\""
    };
    format!(
        r#"
name = "{name}"
{matrix}
[cell]
duration = "3s"
warmup = "500ms"
[system]
backend = "local"
replicas = {replicas}
command = ["loadmatrix", "demo-target", "--port", "{{{{ port }}}}", "--slots", "{slots}", "--service-time", "50ms", "--jitter", "fixed"]
ready = {{ path = "/health", timeout = "10s" }}
[load]
{think}
[[load.request]]
method = "POST"
path = "/predict"
body = '{{"inputs": [1]}}'
[analysis]
baseline = "1s"
[search]
{search}
{extra}
"#
    )
}

/// capacity.csv as (header -> value) maps.
fn capacity(run: &Path) -> Vec<HashMap<String, String>> {
    let text = std::fs::read_to_string(run.join("capacity.csv")).unwrap();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    for col in ["over", "max_value", "rps", "p95", "probes", "status"] {
        assert!(header.contains(&col), "capacity.csv lacks {col}: {text}");
    }
    lines
        .map(|l| {
            header
                .iter()
                .zip(l.split(','))
                .map(|(h, v)| (h.to_string(), v.to_string()))
                .collect()
        })
        .collect()
}

/// The most probes a search may take: log2(to/from) + log2(1/tolerance) + 2.
fn probe_bound(from: f64, to: f64, tolerance: f64) -> f64 {
    (to / from).log2() + (1.0 / tolerance).log2() + 2.0
}

fn probe_dirs(run: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(run.join("cells"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with('.'))
        .collect();
    v.sort();
    v
}

#[test]
fn closed_model_search_finds_the_queueing_capacity_of_each_replica_count() {
    let text = plan(
        "search-users",
        "[matrix]\nreplicas = [1, 2]",
        "4",
        "over = \"users\"\nfrom = 8\nto = 64\ntolerance = \"5%\"\nslo = { p95 = \"175ms\", fail_rate = \"1%\" }",
        "[[threshold]]\nexpr = \"capacity >= 11\"\n[[threshold]]\nexpr = \"min(capacity) >= 11\"\nscope = \"run\"\n[[threshold]]\nexpr = \"fail_rate < 1%\"\n",
    );
    let run = run_plan("search-users", &text, &[]);
    let err = stderr(&run.output);
    // Probes at 16 users break the SLO by design: they fail no threshold.
    assert_eq!(run.output.status.code(), Some(0), "{err}");
    let rows = capacity(&run.dir);
    assert_eq!(rows.len(), 2, "{rows:?}");
    let (one, two) = (&rows[0], &rows[1]);
    assert_eq!(one["replicas"], "1");
    assert_eq!(one["status"], "found");
    assert_eq!(one["over"], "users");
    let users1 = num(one, "max_value");
    assert!((11.0..=13.0).contains(&users1), "1 replica: {one:?}\n{err}");
    let rps1 = num(one, "rps");
    assert!((70.0..=85.0).contains(&rps1), "1 replica: {one:?}");
    assert_eq!(two["status"], "found");
    let users2 = num(two, "max_value");
    assert!(
        (22.0..=26.0).contains(&users2),
        "2 replicas: {two:?}\n{err}"
    );
    let rps2 = num(two, "rps");
    assert!((140.0..=170.0).contains(&rps2), "2 replicas: {two:?}");
    assert!(num(one, "p95") <= 175.0 && num(two, "p95") <= 175.0);

    // The probe count stays within the bound, and every probe is a cell.
    let bound = probe_bound(8.0, 64.0, 0.05);
    for r in &rows {
        assert!(num(r, "probes") <= bound, "{r:?} over {bound}");
    }
    let probes = (num(one, "probes") + num(two, "probes")) as usize;
    let dirs = probe_dirs(&run.dir);
    assert_eq!(dirs.len(), probes, "{dirs:?}");
    for d in ["replicas1_users8", "replicas1_users16", "replicas1_users12"] {
        assert!(dirs.contains(&d.to_string()), "{dirs:?}");
        for f in ["stats.json", "timeline.csv", "events.log"] {
            assert!(run.dir.join("cells").join(d).join(f).is_file(), "{d}/{f}");
        }
    }
    assert!(
        run.dir
            .join("cells/replicas1_users8/baseline.json")
            .is_file()
    );
    let m = manifest(&run.dir);
    let cells = m["cells"].as_array().unwrap();
    assert_eq!(cells.len(), probes);
    assert!(cells.iter().all(|c| c["status"] == "complete"), "{m}");
    assert_eq!(m["status"], "complete");

    // Progress names each probe's verdict; events.log keeps the trail.
    assert!(
        err.contains("searching replicas=1: 8 users ✓ 16 users ✗ → 12 users"),
        "{err}"
    );
    let events = std::fs::read_to_string(run.dir.join("events.log")).unwrap();
    assert!(events.contains("searching replicas=2:"), "{events}");

    // summary.json carries the rows; the report leads with the frontier.
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.dir.join("summary.json")).unwrap())
            .unwrap();
    let cap = summary["capacity"].as_array().unwrap();
    assert_eq!(cap.len(), 2);
    assert_eq!(cap[0]["max_value"].as_f64(), Some(users1));
    let checks = summary["thresholds"].as_array().unwrap();
    assert_eq!(
        checks.len(),
        2 + 1 + 2,
        "capacity rows, not probes: {checks:?}"
    );
    assert!(checks.iter().all(|t| t["passed"] == true), "{checks:?}");
    let report = std::fs::read_to_string(run.dir.join("report.md")).unwrap();
    let frontier = report.find("## Capacity frontier").expect("frontier");
    assert!(frontier < report.find("## Answers").unwrap());
    assert!(report.contains("capacity-frontier.svg"));
    assert!(run.dir.join("capacity-frontier.svg").is_file());
}

#[test]
fn open_model_search_finds_a_rate_just_below_capacity() {
    let text = plan(
        "search-rate",
        "",
        "4",
        "over = \"rate\"\nfrom = 20\nto = 320\ntolerance = \"5%\"\nslo = { p95 = \"100ms\" }",
        "",
    );
    let run = run_plan("search-rate", &text, &[]);
    let err = stderr(&run.output);
    assert_eq!(run.output.status.code(), Some(0), "{err}");
    let rows = capacity(&run.dir);
    assert_eq!(rows.len(), 1);
    let r = &rows[0];
    assert_eq!(r["status"], "found", "{r:?}\n{err}");
    assert_eq!(r["over"], "rate");
    let rate = num(r, "max_value");
    assert!((72.0..=80.0).contains(&rate), "{r:?}\n{err}");
    assert!(num(r, "probes") <= probe_bound(20.0, 320.0, 0.05), "{r:?}");
    assert!(run.dir.join(format!("cells/default_rate{rate}")).is_dir());
}

#[test]
fn out_of_range_searches_say_so_and_capacity_thresholds_judge_them() {
    // One slot: 8 users already wait 400 ms. Sixteen slots: 8 users never queue.
    let text = plan(
        "search-range",
        "[matrix]\nslots = [1, 16]",
        "{{ matrix.slots }}",
        "over = \"users\"\nfrom = 8\nto = 8\nslo = { p95 = \"175ms\" }",
        "[[threshold]]\nexpr = \"capacity >= 8\"\n",
    )
    .replace("[cell]\n", "[cell]\nrepeat = 2\n");
    let run = run_plan("search-range", &text, &[]);
    let err = stderr(&run.output);
    assert_eq!(run.output.status.code(), Some(1), "{err}");
    let rows = capacity(&run.dir);
    assert_eq!(rows[0]["slots"], "1");
    assert_eq!(rows[0]["status"], "below_range", "{rows:?}");
    assert_eq!(rows[0]["max_value"], "");
    assert_eq!(rows[0]["probes"], "1");
    assert_eq!(rows[1]["status"], "above_range", "{rows:?}");
    assert_eq!(rows[1]["max_value"], "8");
    // `repeat` applies to every probe.
    let stats: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(run.dir.join("cells/slots16_users8/stats.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(stats["repetitions"].as_array().unwrap().len(), 2, "{stats}");
    let junit = std::fs::read_to_string(run.dir.join("junit.xml")).unwrap();
    assert!(junit.contains("slots1"), "{junit}");
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.dir.join("summary.json")).unwrap())
            .unwrap();
    let failed: Vec<&serde_json::Value> = summary["thresholds"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["passed"] == false)
        .collect();
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert_eq!(failed[0]["cell"], "slots1");
}

#[test]
fn a_sigkilled_search_resumes_from_the_probes_already_measured() {
    let dir = temp_dir("search-resume");
    let file = dir.join("plan.toml");
    let text = plan(
        "search-resume",
        "",
        "4",
        "over = \"users\"\nfrom = 4\nto = 64\ntolerance = \"5%\"\nslo = { p95 = \"175ms\" }",
        "",
    );
    std::fs::write(&file, &text).unwrap();
    let results = dir.join("results");
    let mut child = loadmatrix()
        .arg("run")
        .arg(&file)
        .arg("--out")
        .arg(&results)
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let run = || only_run(&results, "search-resume");
    wait_for("three measured probes", Duration::from_secs(90), || {
        results.join("search-resume").is_dir()
            && std::fs::read_dir(run().join("cells")).is_ok_and(|d| {
                d.flatten()
                    .filter(|e| e.path().join("stats.json").is_file())
                    .count()
                    >= 3
            })
    });
    std::thread::sleep(Duration::from_millis(1500));
    child.kill().unwrap();
    child.wait().unwrap();
    let run = run();
    let stamps = |run: &Path| -> HashMap<String, SystemTime> {
        probe_dirs(run)
            .into_iter()
            .filter_map(|d| {
                let t = std::fs::metadata(run.join("cells").join(&d).join("stats.json"))
                    .ok()?
                    .modified()
                    .ok()?;
                Some((d, t))
            })
            .collect()
    };
    let before = stamps(&run);
    assert!(before.len() >= 3, "{before:?}");
    assert!(!run.join("capacity.csv").exists());

    let o = loadmatrix()
        .arg("run")
        .arg(&file)
        .arg("--resume")
        .arg(&run)
        .output()
        .unwrap();
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(0), "{err}");
    assert!(
        err.contains(&format!("{} probes already measured", before.len())),
        "{err}"
    );
    assert!(err.contains("(measured before)"), "{err}");
    let after = stamps(&run);
    for (probe, t) in &before {
        assert_eq!(after.get(probe), Some(t), "{probe} was measured again");
    }
    let rows = capacity(&run);
    let r = &rows[0];
    assert_eq!(r["status"], "found", "{r:?}");
    assert!((11.0..=13.0).contains(&num(r, "max_value")), "{r:?}");
    // Every probe the search counts has one folder: none was measured twice.
    assert_eq!(after.len(), num(r, "probes") as usize, "{after:?}");
    let m = manifest(&run);
    assert_eq!(m["status"], "complete");
    let ids: Vec<&str> = m["cells"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["status"] == "complete")
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), after.len(), "{m}");
}

#[test]
fn plan_shows_the_most_probes_and_validate_keeps_capacity_to_searches() {
    let dir = temp_dir("search-plan");
    let file = dir.join("plan.toml");
    let text = plan(
        "search-plan",
        "[matrix]\nreplicas = [1, 2, 4]",
        "4",
        "over = \"users\"\nfrom = 4\nto = 4096\ntolerance = \"5%\"\nslo = { p95 = \"150ms\" }",
        "",
    );
    std::fs::write(&file, &text).unwrap();
    let o = loadmatrix().arg("plan").arg(&file).output().unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}", stderr(&o));
    // Doubling 4 → 4096 takes 11 probes; bisecting 2048..4096 to 5% takes 5 more.
    assert!(
        out.contains("each of the 3 outer cells takes at most 16 probes"),
        "{out}"
    );
    assert!(out.contains("worst-case wall time"), "{out}");

    let plain = dir.join("plain.toml");
    std::fs::write(
        &plain,
        "name = \"plain\"\n[load]\nbase_url = \"http://127.0.0.1:9\"\nusers = 1\n[[load.request]]\npath = \"/\"\n[[threshold]]\nexpr = \"capacity >= 12\"\n",
    )
    .unwrap();
    let o = loadmatrix().arg("validate").arg(&plain).output().unwrap();
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o);
    assert!(
        err.contains("only a capacity search measures") && err.contains("plain.toml:8:"),
        "{err}"
    );
}

#[test]
fn a_probe_that_never_steadies_is_measured_three_times_as_long_then_judged_failing() {
    // The server stalls for 1 s every 3 s. Any three consecutive seconds hold
    // one whole stall, which spans at most two of them: one second serves all
    // 80 requests and the others lose 80 between them, wherever the seconds
    // fall against the stalls (a 2 s period split evenly across second
    // boundaries would look steady).
    let text = plan(
        "search-unsteady",
        "",
        "4\", \"--stall-every\", \"3s\", \"--stall-for\", \"1s",
        "over = \"users\"\nfrom = 4\nto = 4\nslo = { p95 = \"10s\" }",
        "",
    )
    .replace("duration = \"3s\"", "duration = \"5s\"");
    let run = run_plan("search-unsteady", &text, &[]);
    let err = stderr(&run.output);
    let rows = capacity(&run.dir);
    let r = &rows[0];
    assert_eq!(r["status"], "below_range", "{r:?}\n{err}");
    assert!(r["note"].contains("never stabilized"), "{r:?}");
    let cell = run.dir.join("cells/default_users4");
    let events = std::fs::read_to_string(cell.join("events.log")).unwrap();
    assert_eq!(events.matches("measuring 5 s more").count(), 2, "{events}");
    assert!(events.contains("unstable:"), "{events}");
    let timeline = std::fs::read_to_string(cell.join("timeline.csv")).unwrap();
    assert_eq!(
        timeline.lines().count(),
        1 + 15,
        "three times 5 s: {timeline}"
    );
}
