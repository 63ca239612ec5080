//! `[cell] order = "interleave"` on the demo target: the A/B axis' cells take
//! turns one repeat per visit (A B B A), each visit restarts the system as
//! its cell configures it, and a resume goes on in the same order.

use std::path::Path;
use std::process::{Output, Stdio};
use std::time::Duration;

use crate::common::{csv_rows, loadmatrix, manifest, num, only_run, stderr, temp_dir, wait_for};

/// Closed model, 2 users on 4 slots: nothing queues, so each cell's p50 is
/// its service time, which tells which variant served a visit.
fn plan(name: &str, matrix: &str, order: &str, ab: bool) -> String {
    let ab = if ab { "ab = \"service\"" } else { "" };
    format!(
        r#"name = "{name}"

[matrix]
{matrix}

[cell]
duration = "1s"
warmup   = "0s"
repeat   = 2
order    = "{order}"

[system]
backend = "local"
command = ["loadmatrix", "demo-target", "--port", "{{{{ port }}}}", "--replica", "{{{{ replica }}}}",
           "--slots", "4", "--service-time", "{{{{ matrix.service }}}}"]
ready   = {{ path = "/health", timeout = "10s" }}

[load]
engine     = "native"
users      = 2
workers    = 1
think_time = "0s"

[[load.request]]
name   = "predict"
method = "POST"
path   = "/predict"
body   = '{{"inputs": [1, 2, 3]}}'

[analysis]
baseline = "0s"
{ab}
"#
    )
}

const SERVICE: &str = r#"service = ["20ms", "40ms"]"#;

fn write(dir: &Path, text: &str) -> std::path::PathBuf {
    let file = dir.join("plan.toml");
    std::fs::write(&file, text).unwrap();
    file
}

fn run(file: &Path, out: &Path, args: &[&str]) -> Output {
    loadmatrix()
        .arg("run")
        .arg(file)
        .arg("--out")
        .arg(out)
        .args(args)
        .output()
        .unwrap()
}

/// run.json's visits as `cell#repeat`, checking each starts after the one
/// before it finished.
fn visits(run: &Path) -> Vec<String> {
    let m = manifest(run);
    let visits = m["visits"].as_array().unwrap_or_else(|| panic!("{m}"));
    let mut last_finished = String::new();
    let mut out = Vec::new();
    for v in visits {
        let started = v["started"].as_str().unwrap().to_string();
        let finished = v["finished"].as_str().unwrap().to_string();
        assert!(started >= last_finished, "visits overlap: {m}");
        assert!(finished >= started, "{v}");
        last_finished = finished;
        out.push(format!("{}#{}", v["cell"].as_str().unwrap(), v["repeat"]));
    }
    out
}

#[test]
fn two_variants_of_two_repeats_run_a_b_b_a_each_on_its_own_system() {
    let dir = temp_dir("ab-order-run");
    let file = write(&dir, &plan("ab-order", SERVICE, "interleave", true));
    let out = dir.join("results");
    let o = run(&file, &out, &[]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let run = only_run(&out, "ab-order");
    assert_eq!(
        visits(&run),
        [
            "service20ms#1",
            "service40ms#1",
            "service40ms#2",
            "service20ms#2"
        ]
    );
    let m = manifest(&run);
    for c in m["cells"].as_array().unwrap() {
        assert_eq!(c["status"], "complete", "{m}");
    }
    // Every repeat measured its own variant: the system was restarted with
    // the visiting cell's service time each time.
    for (cell, service_ms) in [("service20ms", 20.0), ("service40ms", 40.0)] {
        let rows = csv_rows(&run.join("cells").join(cell).join("timeline.csv"));
        for repeat in ["1", "2"] {
            let p50: Vec<f64> = rows
                .iter()
                .filter(|r| r["repeat"] == repeat)
                .map(|r| num(r, "p50"))
                .filter(|p| *p > 0.0)
                .collect();
            assert!(!p50.is_empty(), "{cell} repeat {repeat}: {rows:?}");
            for p in p50 {
                assert!(
                    (p - service_ms).abs() <= service_ms * 0.25,
                    "{cell} repeat {repeat}: p50 {p} ms, service time {service_ms} ms"
                );
            }
        }
    }
}

#[test]
fn a_resumed_interleaved_run_keeps_the_order_and_skips_measured_cells() {
    let dir = temp_dir("ab-order-resume");
    let matrix = format!("{SERVICE}\npool = [1, 2]");
    let file = write(&dir, &plan("ab-order-resume", &matrix, "interleave", true));
    let out = dir.join("results");
    let o = run(&file, &out, &["--only", "pool == 1"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let run_dir = only_run(&out, "ab-order-resume");
    let first = [
        "service20ms_pool1#1",
        "service40ms_pool1#1",
        "service40ms_pool1#2",
        "service20ms_pool1#2",
    ];
    assert_eq!(visits(&run_dir), first);
    let o = loadmatrix()
        .arg("run")
        .arg(&file)
        .arg("--resume")
        .arg(&run_dir)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("2 of 4 cells already measured"),
        "{}",
        stderr(&o)
    );
    let mut expected: Vec<String> = first.iter().map(|s| s.to_string()).collect();
    expected.extend(first.iter().map(|s| s.replace("pool1", "pool2")));
    assert_eq!(visits(&run_dir), expected);
}

#[test]
fn a_run_killed_between_visits_resumes_measuring_the_unfinished_cells_in_turn_again() {
    let dir = temp_dir("ab-order-kill");
    let file = write(&dir, &plan("ab-order-kill", SERVICE, "interleave", true));
    let out = dir.join("results");
    let mut child = loadmatrix()
        .arg("run")
        .arg(&file)
        .arg("--out")
        .arg(&out)
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let finished_visits = || {
        std::fs::read_dir(out.join("ab-order-kill"))
            .ok()
            .and_then(|mut d| d.next())
            .and_then(|e| std::fs::read_to_string(e.ok()?.path().join("run.json")).ok())
            .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
            .and_then(|m| {
                let visits = m["visits"].as_array()?;
                Some(visits.iter().filter(|v| v["finished"].is_string()).count())
            })
            .unwrap_or(0)
    };
    wait_for("two finished visits", Duration::from_secs(40), || {
        finished_visits() >= 2
    });
    child.kill().unwrap();
    child.wait().unwrap();
    let run_dir = only_run(&out, "ab-order-kill");
    // Each cell has one of its two repeats: neither is written.
    for cell in ["service20ms", "service40ms"] {
        assert!(!run_dir.join("cells").join(cell).exists(), "{cell} written");
    }
    let o = loadmatrix()
        .arg("run")
        .arg(&file)
        .arg("--resume")
        .arg(&run_dir)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("0 of 2 cells already measured"),
        "{}",
        stderr(&o)
    );
    // The visits of the killed run are replaced by the new ones, in the same turns.
    assert_eq!(
        visits(&run_dir),
        [
            "service20ms#1",
            "service40ms#1",
            "service40ms#2",
            "service20ms#2"
        ]
    );
    for cell in ["service20ms", "service40ms"] {
        let rows = csv_rows(&run_dir.join("cells").join(cell).join("timeline.csv"));
        for repeat in ["1", "2"] {
            assert!(
                rows.iter().any(|r| r["repeat"] == repeat),
                "{cell} lacks repeat {repeat}: {rows:?}"
            );
        }
    }
}

#[test]
fn plan_lists_the_visits_in_the_order_they_run() {
    let dir = temp_dir("ab-order-plan");
    let file = write(&dir, &plan("ab-order-plan", SERVICE, "interleave", true));
    let o = loadmatrix().arg("plan").arg(&file).output().unwrap();
    let text = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(0), "{text}{}", stderr(&o));
    assert!(
        text.contains("order: interleave: the `service` cells take turns"),
        "{text}"
    );
    assert!(
        text.contains("service20ms #1, service40ms #1, service40ms #2, service20ms #2\n"),
        "{text}"
    );
    // Sequential (the default) lists no visits.
    let file = write(&dir, &plan("ab-order-plan", SERVICE, "sequential", true));
    let o = loadmatrix().arg("plan").arg(&file).output().unwrap();
    let text = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(0), "{text}{}", stderr(&o));
    assert!(!text.contains("order:"), "{text}");
}

#[test]
fn interleave_without_an_ab_axis_is_an_error_naming_where_and_the_fix() {
    let dir = temp_dir("ab-order-no-ab");
    let text = plan("ab-order-no-ab", SERVICE, "interleave", false);
    let file = write(&dir, &text);
    let o = loadmatrix().arg("validate").arg(&file).output().unwrap();
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    let line = text.lines().position(|l| l.starts_with("order ")).unwrap() + 1;
    assert!(err.contains(&format!("plan.toml:{line}:12")), "{err}");
    assert!(
        err.contains("`cell.order = \"interleave\"` alternates the values of the `[analysis] ab` axis, and the plan has no `ab`"),
        "{err}"
    );
    assert!(
        err.contains("add `[analysis] ab = \"service\"`"),
        "the hint gives the fix: {err}"
    );
}
