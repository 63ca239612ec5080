//! `[analysis] ab` and `compare` intervals on the demo target: a variant
//! whose service time is 20% longer is told apart from its baseline with an
//! interval that holds the true change; identical runs are within noise.

use std::path::Path;
use std::process::{Command, Output};

use crate::common::{run_plan, stderr, temp_dir};

/// Closed model, 4 users on 4 slots: nothing queues, so every latency
/// quantile is the service time's and the variant's p95 is 24/20 = +20% of
/// the baseline's (the demo target's lognormal jitter keeps the mean).
fn plan(name: &str, service: &str, extra: &str) -> String {
    plan_of(
        name,
        &format!("service = {service}"),
        "{{ matrix.service }}",
        extra,
    )
}

fn plan_of(name: &str, matrix: &str, service_time: &str, extra: &str) -> String {
    format!(
        r#"name = "{name}"

[matrix]
{matrix}

[cell]
duration = "6s"
warmup   = "1s"
repeat   = 2

[system]
backend = "local"
command = ["loadmatrix", "demo-target", "--port", "{{{{ port }}}}", "--replica", "{{{{ replica }}}}",
           "--slots", "4", "--service-time", "{service_time}", "--jitter", "lognormal"]
ready   = {{ path = "/health", timeout = "10s" }}

[load]
engine     = "native"
users      = 4
workers    = 1
think_time = "0s"

[[load.request]]
name   = "predict"
method = "POST"
path   = "/predict"
body   = '{{"inputs": [1, 2, 3]}}'

[analysis]
baseline = "0s"
{extra}
"#
    )
}

fn csv(path: &Path) -> Vec<std::collections::HashMap<String, String>> {
    let text = std::fs::read_to_string(path).unwrap();
    let mut lines = text.lines();
    let header: Vec<String> = lines.next().unwrap().split(',').map(String::from).collect();
    lines
        .map(|l| {
            header
                .iter()
                .cloned()
                .zip(l.split(',').map(String::from))
                .collect()
        })
        .collect()
}

#[test]
fn a_variant_20_percent_slower_is_significant_with_an_interval_holding_plus_20() {
    let run = run_plan(
        "ab-demo",
        &plan(
            "ab-demo",
            r#"["20ms", "24ms"]"#,
            "ab = \"service\"\nslo = { p99 = \"1s\", fail_rate = \"1%\" }\n\n[[threshold]]\nexpr = \"ab_rps_hi < 0%\"\n",
        ),
        &[],
    );
    let err = stderr(&run.output);
    assert_eq!(run.output.status.code(), Some(0), "{err}");
    let rows = csv(&run.dir.join("ab.csv"));
    let row = |m: &str| {
        rows.iter()
            .find(|r| r["metric"] == m)
            .unwrap_or_else(|| panic!("{m}: {rows:?}"))
    };
    let num = |r: &std::collections::HashMap<String, String>, k: &str| r[k].parse::<f64>().unwrap();
    // rps, p50, p95, then the SLO's p99 (fail_rate has no failures to compare).
    let metrics: Vec<&str> = rows.iter().map(|r| r["metric"].as_str()).collect();
    assert_eq!(metrics, ["rps", "p50", "p95", "p99"], "{rows:?}");
    let p95 = row("p95");
    assert_eq!(
        (p95["baseline"].as_str(), p95["variant"].as_str()),
        ("20ms", "24ms")
    );
    assert_eq!(p95["significant"], "true", "{p95:?}");
    let (lo, hi) = (num(p95, "ci95_low"), num(p95, "ci95_high"));
    assert!(
        lo <= 20.0 && 20.0 <= hi,
        "p95 interval {lo}..{hi} does not hold +20%"
    );
    assert!(lo > 0.0);
    // Four comparisons: Holm widens the first one's interval to 98.75%.
    let levels: Vec<f64> = rows.iter().map(|r| num(r, "confidence")).collect();
    assert!(levels.iter().all(|l| *l >= 0.95 - 1e-9), "{levels:?}");
    assert!(
        levels.iter().any(|l| (l - 0.9875).abs() < 1e-6),
        "{levels:?}"
    );
    // Closed model: throughput falls to 20/24 of the baseline's.
    let rps = row("rps");
    assert_eq!(rps["significant"], "true", "{rps:?}");
    assert!(num(rps, "ci95_high") < 0.0, "{rps:?}");
    assert!(
        (num(rps, "delta_pct") - (20.0 / 24.0 - 1.0) * 100.0).abs() < 3.0,
        "{rps:?}"
    );

    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.dir.join("summary.json")).unwrap())
            .unwrap();
    let ab: Vec<&serde_json::Value> = summary["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["kind"] == "ab")
        .collect();
    assert_eq!(ab.len(), 4);
    let f = ab.iter().find(|f| f["metric"] == "p95").unwrap();
    assert_eq!(f["baseline"], "20ms");
    assert_eq!(f["variant"], "24ms");
    assert_eq!(f["significant"], true);
    assert_eq!(f["ci95"].as_array().unwrap().len(), 2);
    assert_eq!(f["severity"], "warning", "a slower variant is a warning");

    let md = std::fs::read_to_string(run.dir.join("report.md")).unwrap();
    assert!(md.contains("## A/B"), "{md}");
    let line = md
        .lines()
        .find(|l| l.starts_with("- 24ms p95 +"))
        .unwrap_or_else(|| panic!("{md}"));
    assert!(
        line.contains("(95% CI +") && line.ends_with("), significant"),
        "{line}"
    );
    let html = std::fs::read_to_string(run.dir.join("report.html")).unwrap_or_default();
    if !html.is_empty() {
        assert!(html.contains(r#"<h2 id="ab">A/B</h2>"#));
    }
    // "Throughput fell, beyond the noise" judges the variant only.
    let judged: Vec<&serde_json::Value> = summary["thresholds"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["threshold"].as_str().unwrap().contains("ab_rps_hi"))
        .collect();
    assert_eq!(judged.len(), 1, "{judged:?}");
    assert_eq!(judged[0]["cell"], "service24ms");
    assert_eq!(judged[0]["passed"], true);
}

fn loadmatrix(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_loadmatrix"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap()
}

#[test]
fn an_ab_axis_that_is_not_in_the_matrix_is_an_error_naming_where_and_the_fix() {
    let dir = temp_dir("ab-bad-axis");
    let file = dir.join("plan.toml");
    std::fs::write(
        &file,
        plan("ab-bad", r#"["20ms", "24ms"]"#, "ab = \"servise\"\n"),
    )
    .unwrap();
    let o = loadmatrix(&["validate", file.to_str().unwrap()]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    let line = plan("ab-bad", "", "ab = \"servise\"\n")
        .lines()
        .position(|l| l.starts_with("ab = "))
        .unwrap()
        + 1;
    assert!(err.contains(&format!("plan.toml:{line}:6")), "{err}");
    assert!(
        err.contains("`analysis.ab` names `servise`, which is not a matrix axis"),
        "{err}"
    );
    assert!(err.contains("service"), "the hint names the axis: {err}");
}

/// Runs `plan` into `out` (each call a new run folder) and returns it.
fn run_into(out: &Path, file: &Path, args: &[&str]) -> std::path::PathBuf {
    let before: Vec<_> = std::fs::read_dir(out)
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    let o = Command::new(env!("CARGO_BIN_EXE_loadmatrix"))
        .arg("run")
        .arg(file)
        .arg("--out")
        .arg(out.parent().unwrap())
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    std::fs::read_dir(out)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| !before.contains(p))
        .unwrap()
}

#[test]
fn two_identical_quickstart_runs_compare_within_noise_and_pass() {
    let dir = temp_dir("ab-quickstart");
    let runs = dir.join("quickstart");
    let plan = Path::new(env!("CARGO_MANIFEST_DIR")).join("plans/quickstart.toml");
    let base = run_into(&runs, &plan, &[]);
    let new = run_into(&runs, &plan, &[]);
    let o = loadmatrix(&["compare", base.to_str().unwrap(), new.to_str().unwrap()]);
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert_eq!(o.status.code(), Some(0), "{out}{}", stderr(&o));
    assert!(out.contains("| within noise |"), "{out}");
    assert!(out.contains("(CI "), "every delta has an interval: {out}");
    let o = loadmatrix(&[
        "compare",
        base.to_str().unwrap(),
        new.to_str().unwrap(),
        "--format",
        "json",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let json: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(json["passed"], true);
    let cells = json["cells"].as_array().unwrap();
    assert_eq!(cells.len(), 4);
    for c in cells {
        let iv = &c["ok_rps_ci95"];
        assert!(
            iv["low"].as_f64().unwrap() <= iv["high"].as_f64().unwrap(),
            "{c}"
        );
    }
}

#[test]
fn compare_fails_a_significant_regression_beyond_the_bound_only() {
    let dir = temp_dir("ab-compare");
    let file = dir.join("plan.toml");
    let text = plan_of("ab-compare", "users = [4]", "{{ vars.service }}", "")
        .replace("repeat   = 2", "repeat   = 1")
        .replace("duration = \"6s\"", "duration = \"10s\"")
        .replace("[matrix]", "[vars]\nservice = \"20ms\"\n\n[matrix]");
    std::fs::write(&file, text).unwrap();
    let runs = dir.join("ab-compare");
    let base = run_into(&runs, &file, &[]);
    let new = run_into(&runs, &file, &["--set", "vars.service=24ms"]);
    let compare = |max: &str| {
        loadmatrix(&[
            "compare",
            base.to_str().unwrap(),
            new.to_str().unwrap(),
            "--max-regression",
            max,
            "--force",
        ])
    };
    let o = compare("5%");
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert_eq!(o.status.code(), Some(1), "{out}{}", stderr(&o));
    assert!(out.contains("**regressed**: ok RPS -1"), "{out}");
    assert!(out.contains("p95 +"), "{out}");
    // Beyond the noise but within the bound: not a regression.
    let o = compare("30%");
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert_eq!(o.status.code(), Some(0), "{out}{}", stderr(&o));
    assert!(out.contains("| beyond noise, within the bound |"), "{out}");
}
