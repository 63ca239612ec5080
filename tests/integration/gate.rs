//! The CI gate never passes a failed run: `compare` judges successful
//! throughput and fail rates, thresholds fail on cells without a successful
//! request, and damaged figures are errors, not zeros. Runs are real, on a
//! local demo-target replica whose `--fail-rate` makes the failures.

use std::path::{Path, PathBuf};
use std::process::Output;

use crate::common::*;

/// One short cell against a demo target failing `fail_rate` of its requests.
fn plan(name: &str, threshold: &str) -> String {
    format!(
        r#"
name = "{name}"
[vars]
fail = "0"
[cell]
duration = "1s"
[system]
backend = "local"
command = ["loadmatrix", "demo-target", "--port", "{{{{ port }}}}", "--service-time", "5ms", "--fail-rate", "{{{{ vars.fail }}}}"]
ready = {{ path = "/health", timeout = "10s" }}
[load]
users = 2
[[load.request]]
path = "/predict"
method = "POST"
body = "{{}}"
[[threshold]]
expr = "{threshold}"
[analysis]
baseline = "0s"
"#
    )
}

fn run_with_fail_rate(name: &str, threshold: &str, fail: &str) -> Run {
    run_plan(
        name,
        &plan(name, threshold),
        &["--set", &format!("vars.fail={fail}")],
    )
}

fn compare(base: &Path, new: &Path) -> Output {
    loadmatrix()
        .arg("compare")
        .arg(base)
        .arg(new)
        .output()
        .unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Two runs of one plan: the base healthy, the new one failing `fail` of
/// its requests. Both run folders share a plan name, so compare takes them.
fn base_and_new(name: &str, fail: &str) -> (PathBuf, PathBuf) {
    let base = run_with_fail_rate(&format!("{name}-base"), "fail_rate < 100%", "0");
    assert_eq!(
        base.output.status.code(),
        Some(0),
        "{}",
        stderr(&base.output)
    );
    let new = run_plan(
        &format!("{name}-new"),
        &plan(&format!("{name}-base"), "fail_rate < 100%"),
        &["--set", &format!("vars.fail={fail}")],
    );
    (base.dir, new.dir)
}

#[test]
fn compare_fails_when_every_request_of_new_failed() {
    let (base, new) = base_and_new("gate-all-fail", "1");
    assert_eq!(manifest(&new)["cells"][0]["status"], "failed");
    let o = compare(&base, &new);
    let (out, err) = (stdout(&o), stderr(&o));
    assert_eq!(o.status.code(), Some(1), "{out}\n{err}");
    assert!(
        out.contains("no successful request in the new run") && out.contains("**regressed**"),
        "{out}"
    );
    assert!(
        err.contains("the new run has no successful request"),
        "{err}"
    );
    assert!(out.contains("1 of 1 cells regressed"), "{out}");
}

#[test]
fn compare_judges_successful_throughput_so_half_failing_regresses() {
    let (base, new) = base_and_new("gate-half-fail", "0.5");
    let row = &summary(&new)[0];
    // rps counts the failures and held up; ok_rps lost about half.
    assert!(num(row, "ok_rps") < 0.7 * num(row, "rps"), "{row:?}");
    let o = compare(&base, &new);
    let out = stdout(&o);
    assert_eq!(o.status.code(), Some(1), "{out}\n{}", stderr(&o));
    assert!(out.contains("**regressed**"), "{out}");
    assert!(out.contains("ok RPS -"), "{out}");
    assert!(out.contains("fail rate 0.0% -> "), "{out}");
    // The same run against itself holds.
    let o = compare(&base, &base);
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
}

#[test]
fn compare_calls_a_newly_failing_cell_a_regression() {
    // 5% failures: ok RPS within the 10% bound, the fail rate beyond 1%.
    let (base, new) = base_and_new("gate-newly-failing", "0.05");
    let fail = num(&summary(&new)[0], "fail_pct");
    assert!(fail > 1.0, "{fail}");
    let o = compare(&base, &new);
    let out = stdout(&o);
    assert_eq!(o.status.code(), Some(1), "{out}\n{}", stderr(&o));
    assert!(out.contains("fail rate 0.0% -> "), "{out}");
    assert!(out.contains("(limit 1%)"), "{out}");
}

/// A copy of the complete fixture run.
fn fixture_copy(name: &str) -> PathBuf {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/runs/complete");
    let dir = temp_dir(name);
    copy_dir(&src, &dir);
    dir
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap().flatten() {
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), &target).unwrap();
        }
    }
}

#[test]
fn compare_refuses_garbage_stats_in_base_naming_the_file() {
    let good = fixture_copy("gate-good");
    for (case, garbage) in [
        ("text", "\u{1}\u{2}garbage, not json".to_string()),
        ("empty-object", "{}".to_string()),
        ("no-figures", {
            let path = good.join("cells/replicas1_users4/stats.json");
            let mut v: serde_json::Value =
                serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
            v["summary"]["metrics"] = serde_json::json!({});
            v.to_string()
        }),
        ("negative", {
            let path = good.join("cells/replicas1_users4/stats.json");
            let mut v: serde_json::Value =
                serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
            v["summary"]["metrics"]["rps"] = serde_json::json!(-5.0);
            v.to_string()
        }),
    ] {
        let bad = fixture_copy(&format!("gate-garbage-{case}"));
        let file = bad.join("cells/replicas1_users4/stats.json");
        std::fs::write(&file, garbage).unwrap();
        let o = compare(&bad, &good);
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(2), "{case}: {err}\n{}", stdout(&o));
        assert!(err.contains(&file.display().to_string()), "{case}: {err}");
        assert!(!stdout(&o).contains("| replicas1_users4 |"), "{case}");
    }
}

#[test]
fn compare_with_no_cell_measured_in_both_runs_exits_2() {
    let base = fixture_copy("gate-none-base");
    let new = fixture_copy("gate-none-new");
    // Every cell of the new run is pending (e.g. a run stopped before its
    // first cell): nothing to compare is no pass.
    let mut m = manifest(&new);
    for c in m["cells"].as_array_mut().unwrap() {
        c["status"] = "pending".into();
    }
    std::fs::write(new.join("run.json"), m.to_string()).unwrap();
    std::fs::remove_dir_all(new.join("cells")).unwrap();
    let o = compare(&base, &new);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{err}\n{}", stdout(&o));
    assert!(err.contains("no cell was measured in both"), "{err}");
}

#[test]
fn a_throughput_threshold_fails_on_a_cell_where_every_request_failed() {
    let r = run_with_fail_rate("gate-rps-threshold", "rps > 10", "1");
    let err = stderr(&r.output);
    // No cell produced a successful request: the run fails (4), and the
    // threshold is failed, not passed on the failures' rate.
    assert_eq!(r.output.status.code(), Some(4), "{err}");
    let junit = std::fs::read_to_string(r.dir.join("junit.xml")).unwrap();
    assert!(junit.contains("rps: no successful requests"), "{junit}");
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(r.dir.join("summary.json")).unwrap())
            .unwrap();
    let t = json["thresholds"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["threshold"] == "rps > 10")
        .unwrap();
    assert_eq!(t["passed"], false, "{t}");
}

#[test]
fn summary_csv_leaves_latency_empty_for_a_cell_without_success() {
    let r = run_with_fail_rate("gate-empty-latency", "fail_rate < 100%", "1");
    let row = &summary(&r.dir)[0];
    assert_eq!(row["status"], "failed", "{row:?}");
    assert!(num(row, "requests") > 0.0, "{row:?}");
    for col in ["mean", "p50", "p90", "p95", "p99", "max"] {
        assert_eq!(row[col], "", "{col} in {row:?}");
    }
    // A cell with successes keeps its figures.
    let ok = run_with_fail_rate("gate-latency-kept", "fail_rate < 100%", "0");
    let row = &summary(&ok.dir)[0];
    assert!(num(row, "p95") > 0.0, "{row:?}");
}
