//! Request mixes: the quickstart sends `/predict` (20 ms of service) and
//! `/health` (no service time) half and half. Each name's figures are its
//! own, thresholds can select one name, and the baseline (each name's
//! unloaded latency weighted by the mix) does not move with the random draw
//! of the mix.

use std::path::Path;

use crate::common::*;

fn repo_plan(name: &str) -> String {
    let root = env!("CARGO_MANIFEST_DIR");
    std::fs::read_to_string(Path::new(root).join("plans").join(name)).unwrap()
}

#[test]
fn the_quickstart_mix_has_per_name_figures_and_a_steady_baseline() {
    let mut baselines = Vec::new();
    for i in 0..3 {
        let r = run_plan(
            &format!("mix-quickstart-{i}"),
            &repo_plan("quickstart.toml"),
            &[
                "--only",
                "replicas == 2 and users == 8",
                "--set",
                "cell.duration=2s",
                "--set",
                "cell.warmup=0s",
            ],
        );
        assert!(
            matches!(r.output.status.code(), Some(0) | Some(1)),
            "{}",
            stderr(&r.output)
        );
        let rows = summary_by_name(&r.dir);
        let header = std::fs::read_to_string(r.dir.join("summary_by_name.csv")).unwrap();
        assert!(
            header.starts_with("replicas,users,name,requests,failures,fail_pct,rps,ok_rps,"),
            "{header}"
        );
        let row = |name: &str| rows.iter().find(|r| r["name"] == name).unwrap().clone();
        let (predict, health) = (row("predict"), row("health"));
        // 8 users, half of them on 2 x 4 slots of 20 ms at any time: no queue.
        let p50 = num(&predict, "p50");
        assert!(
            (18.0..=30.0).contains(&p50),
            "predict p50 {p50}: {predict:?}"
        );
        assert!(num(&health, "p50") < 5.0, "{health:?}");
        // The cell's own folder has the same rows.
        let cell = r.dir.join("cells/replicas2_users8/summary_by_name.csv");
        assert_eq!(std::fs::read_to_string(cell).unwrap().lines().count(), 3);
        let b: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(r.dir.join("cells/replicas2_users8/baseline.json")).unwrap(),
        )
        .unwrap();
        let (p, h) = (
            b["by_name"]["predict"].as_f64().unwrap(),
            b["by_name"]["health"].as_f64().unwrap(),
        );
        let mean = b["mean_ms"].as_f64().unwrap();
        // Weighted 1:1 by the plan, whatever share each had in the draw.
        assert!((mean - (p + h) / 2.0).abs() < 1e-6, "{b:#}");
        baselines.push(mean);
        let report = std::fs::read_to_string(r.dir.join("report.md")).unwrap();
        assert!(report.contains("### Per request name"), "{report}");
        assert!(
            report.contains("| replicas2_users8 | predict |"),
            "{report}"
        );
    }
    let mean = baselines.iter().sum::<f64>() / 3.0;
    for b in &baselines {
        assert!(within(*b, mean, 0.05), "baselines {baselines:?}");
    }
}

#[test]
fn a_threshold_can_select_one_request_name() {
    let plan = r#"
name = "mix-thresholds"
[cell]
duration = "2s"
warmup = "0s"
[system]
backend = "local"
command = ["loadmatrix", "demo-target", "--port", "{{ port }}", "--slots", "4", "--service-time", "20ms", "--jitter", "fixed"]
ready = { path = "/health", timeout = "10s" }
[load]
users = 2
[[load.request]]
name = "predict"
method = "POST"
path = "/predict"
body = "{}"
[[load.request]]
name = "health"
path = "/health"
[[threshold]]
name = "predict takes its 20 ms"
expr = "p50{name:predict} > 15ms"
[[threshold]]
name = "health is fast"
expr = "p95{name:health} < 5ms"
[[threshold]]
name = "predict is not fast"
expr = "p95{name:predict} < 15ms"
[[threshold]]
name = "over the run"
expr = "max(p95{name:predict}) < 100ms"
[analysis]
baseline = "1s"
"#;
    let r = run_plan("mix-thresholds", plan, &[]);
    assert_eq!(r.output.status.code(), Some(1), "{}", stderr(&r.output));
    let s: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(r.dir.join("summary.json")).unwrap())
            .unwrap();
    let passed = |name: &str| {
        let t = s["thresholds"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["threshold"] == name)
            .unwrap_or_else(|| panic!("{name}: {s:#}"));
        (t["passed"].as_bool().unwrap(), t["detail"].to_string())
    };
    assert!(passed("predict takes its 20 ms").0, "{s:#}");
    assert!(passed("health is fast").0, "{s:#}");
    let (ok, detail) = passed("predict is not fast");
    assert!(!ok, "{s:#}");
    assert!(detail.contains("p95{name:predict} = 2"), "{detail}");
    assert!(passed("over the run").0, "{s:#}");
}

#[test]
fn a_bad_name_selector_is_a_plan_error_with_the_fix() {
    let dir = temp_dir("mix-bad-selector");
    let file = dir.join("plan.toml");
    std::fs::write(
        &file,
        r#"
name = "bad-selector"
[system]
backend = "local"
[load]
users = 1
[[load.request]]
path = "/health"
[[threshold]]
expr = "p95{host:a} < 5ms"
"#,
    )
    .unwrap();
    let o = loadmatrix().arg("validate").arg(&file).output().unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(err.contains("p95{name:predict}"), "{err}");
}

/// The demo service times `/predict` only. With `/health` three times as
/// frequent, the client's mixed median is a health check's; the series says
/// it covers `predict`, so the service's median is set beside the client's
/// median of `predict` alone (both ~20 ms), like with like.
#[test]
fn the_service_metrics_are_compared_with_the_names_they_cover() {
    let plan = r#"
name = "mix-scrape"
[cell]
duration = "3s"
warmup = "1s"
[system]
backend = "local"
command = ["loadmatrix", "demo-target", "--port", "{{ port }}", "--slots", "4", "--service-time", "20ms", "--jitter", "fixed"]
ready = { path = "/health", timeout = "10s" }
[load]
users = 2
[[load.request]]
name = "predict"
method = "POST"
path = "/predict"
body = "{}"
[[load.request]]
name = "health"
path = "/health"
weight = 3
[[scrape]]
name = "model"
path = "/metrics"
interval = "500ms"
series = [
  { metric = "demo_request_duration_seconds", agg = "p50", as = "server_p50", names = ["predict"] },
]
[analysis]
baseline = "1s"
"#;
    let r = run_plan("mix-scrape", plan, &[]);
    assert_eq!(r.output.status.code(), Some(0), "{}", stderr(&r.output));
    let s: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(r.dir.join("summary.json")).unwrap())
            .unwrap();
    let f = s["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["kind"] == "server_latency")
        .unwrap_or_else(|| panic!("{s:#}"));
    let message = f["message"].as_str().unwrap();
    assert!(message.contains("covers `predict` only"), "{message}");
    let client = f["numbers"]["client_ms"].as_f64().unwrap();
    let server = f["numbers"]["server_ms"].as_f64().unwrap();
    // The mixed median would be a health check's (well under 1 ms).
    assert!((18.0..=30.0).contains(&client), "{f:#}");
    assert!((15.0..=30.0).contains(&server), "{f:#}");
    let mixed = num(&summary(&r.dir)[0], "p50");
    assert!(mixed < 5.0, "mixed p50 {mixed}");
}
