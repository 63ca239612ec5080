//! `engine = "locust"` through `loadmatrix run`: the same matrix, the same
//! results folder, and against a server-bound target the same RPS as the
//! native engine. The locustfiles of tests/fixtures/locust, one per style
//! people write, count exactly what Locust's own statistics count; load
//! shapes, unimportable locustfiles and listeners that hide requests from
//! Locust fail or degrade their cell as they should.

use std::process::Command;

#[test]
fn native_and_locust_agree_on_a_server_bound_target() {
    if !crate::common::locust_available("native_and_locust_agree_on_a_server_bound_target") {
        return;
    }
    let dir = std::env::temp_dir().join(format!("lm-locust-run-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("locustfile.py"),
        r#"
from locust import HttpUser, constant, task

class Predict(HttpUser):
    wait_time = constant(0)

    @task
    def predict(self):
        self.client.post("/predict", json={"inputs": [1]}, name="predict")
"#,
    )
    .unwrap();
    // 2 slots x 50 ms: 40 RPS, whatever the generator.
    std::fs::write(
        dir.join("plan.toml"),
        r#"
name = "engines"
[matrix]
engine = ["native", "locust"]
[cell]
duration = "5s"
warmup = "1s"
[system]
backend = "local"
command = ["loadmatrix", "demo-target", "--port", "{{ port }}", "--slots", "2", "--service-time", "50ms"]
ready = { path = "/health" }
[load]
engine = "{{ matrix.engine }}"
locustfile = "locustfile.py"
users = 8
workers = 1
[analysis]
baseline = "0s"
[[load.request]]
name = "predict"
method = "POST"
path = "/predict"
body = '{"inputs": [1]}'
"#,
    )
    .unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_loadmatrix"))
        .arg("run")
        .arg(dir.join("plan.toml"))
        .arg("--out")
        .arg(dir.join("results"))
        .output()
        .unwrap();
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let run = std::fs::read_dir(dir.join("results/engines"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let summary = std::fs::read_to_string(run.join("summary.csv")).unwrap();
    let rps: Vec<f64> = summary
        .lines()
        .skip(1)
        .map(|l| l.split(',').nth(4).unwrap().parse().unwrap())
        .collect();
    assert_eq!(rps.len(), 2, "{summary}");
    for r in &rps {
        assert!((r - 40.0).abs() <= 4.0, "{summary}");
    }
    assert!((rps[0] - rps[1]).abs() <= 0.1 * rps[0], "{summary}");
    let stats = std::fs::read_to_string(run.join("cells/enginelocust/stats.json")).unwrap();
    assert!(stats.contains("2 significant digits"), "{stats}");
    let timeline = std::fs::read_to_string(run.join("cells/enginelocust/timeline.csv")).unwrap();
    assert_eq!(timeline.lines().count(), 1 + 5, "{timeline}");
}

/// The project's own locustfiles, in the styles people write them.
const CORPUS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/locust");

/// One locustfile of the corpus and how to run it.
struct Style {
    file: &'static str,
    users: u64,
    workers: u64,
    tags: &'static [&'static str],
    /// Request names the run must have (each as Locust names it).
    names: &'static [&'static str],
    /// Request names it must not have (tasks that do not run).
    absent: &'static [&'static str],
}

const STYLES: &[Style] = &[
    Style {
        file: "http_user.py",
        users: 6,
        workers: 2,
        tags: &[],
        names: &["/predict", "/health", "/items/[id]"],
        absent: &[],
    },
    Style {
        file: "fast_http_user.py",
        users: 4,
        workers: 1,
        tags: &[],
        names: &["/predict", "/health", "/v2/models"],
        absent: &[],
    },
    Style {
        file: "task_sets.py",
        users: 4,
        workers: 1,
        tags: &[],
        names: &["listing", "details", "cart", "pay"],
        absent: &[],
    },
    Style {
        file: "catch_response.py",
        users: 4,
        workers: 1,
        tags: &[],
        names: &["predict", "gone"],
        absent: &[],
    },
    Style {
        file: "reschedule_on_failure.py",
        users: 4,
        workers: 1,
        tags: &[],
        names: &["predict", "missing"],
        absent: &["never reached"],
    },
    Style {
        file: "stop_user_on_failure.py",
        users: 6,
        workers: 1,
        tags: &[],
        names: &["predict", "expired"],
        absent: &[],
    },
    Style {
        file: "custom_client.py",
        users: 4,
        workers: 1,
        tags: &[],
        names: &["health", "missing", "ping"],
        absent: &[],
    },
    Style {
        file: "login_on_start.py",
        users: 4,
        workers: 1,
        tags: &[],
        names: &["login", "predict", "profile"],
        absent: &[],
    },
    Style {
        file: "weighted_classes.py",
        users: 5,
        workers: 2,
        tags: &["api"],
        names: &["read health", "read predict", "write", "audit"],
        absent: &["untagged", "admin"],
    },
];

/// A one-cell plan running `locustfile` against a local demo target.
fn corpus_plan(name: &str, locustfile: &str, users: u64, workers: u64, extra: &str) -> String {
    format!(
        r#"
name = "{name}"
[cell]
duration = "2s"
warmup = "0s"
[system]
backend = "local"
command = ["loadmatrix", "demo-target", "--port", "{{{{ port }}}}", "--slots", "32", "--service-time", "2ms"]
ready = {{ path = "/health" }}
[load]
engine = "locust"
locustfile = "{locustfile}"
users = {users}
workers = {workers}
{extra}
[analysis]
baseline = "0s"
"#
    )
}

/// Requests and failures by request name: (total, per name).
type Counts = ((u64, u64), std::collections::BTreeMap<String, (u64, u64)>);

/// Locust's own statistics of a cell (its --json-file output, kept in
/// logs/locust/<cell>/), keyed as loadmatrix keys them: the name, or
/// "METHOD name" for a name seen with several methods.
fn locust_counts(run: &std::path::Path, cell: &str) -> Counts {
    let path = run.join("logs/locust").join(cell).join("locust.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    let rows: Vec<serde_json::Value> = serde_json::from_str(&text).unwrap();
    let method = |r: &serde_json::Value| r["method"].as_str().unwrap_or("").to_string();
    let name = |r: &serde_json::Value| r["name"].as_str().unwrap().to_string();
    let mut per = std::collections::BTreeMap::new();
    let mut total = (0, 0);
    for r in &rows {
        let shared = rows
            .iter()
            .filter(|o| name(o) == name(r) && method(o) != method(r))
            .count()
            > 0;
        let key = if shared {
            format!("{} {}", method(r), name(r))
        } else {
            name(r)
        };
        let n = r["num_requests"].as_u64().unwrap();
        let f = r["num_failures"].as_u64().unwrap();
        total.0 += n;
        total.1 += f;
        let slot: &mut (u64, u64) = per.entry(key).or_default();
        slot.0 += n;
        slot.1 += f;
    }
    (total, per)
}

/// What loadmatrix recorded for a cell (cells/<cell>/stats.json).
fn loadmatrix_counts(run: &std::path::Path, cell: &str) -> Counts {
    let path = run.join("cells").join(cell).join("stats.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let counts = |s: &serde_json::Value| {
        (
            s["requests"].as_u64().unwrap(),
            s["failures"].as_u64().unwrap(),
        )
    };
    let per = v["stats"]["by_name"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, s)| (k.clone(), counts(s)))
        .collect();
    (counts(&v["stats"]["total"]), per)
}

/// Every way loadmatrix's counts differ from Locust's own.
fn mismatches(ours: &Counts, locust: &Counts) -> Vec<String> {
    let mut out = Vec::new();
    if ours.0 != locust.0 {
        out.push(format!(
            "total: loadmatrix {:?}, Locust {:?} (requests, failures)",
            ours.0, locust.0
        ));
    }
    let keys: std::collections::BTreeSet<&String> = ours.1.keys().chain(locust.1.keys()).collect();
    for k in keys {
        let (a, b) = (ours.1.get(k), locust.1.get(k));
        if a != b {
            out.push(format!("`{k}`: loadmatrix {a:?}, Locust {b:?}"));
        }
    }
    out
}

fn only_cell(run: &std::path::Path) -> String {
    let m = crate::common::manifest(run);
    m["cells"][0]["id"].as_str().unwrap().to_string()
}

#[test]
fn every_locustfile_style_counts_what_locust_counts() {
    if !crate::common::locust_available("every_locustfile_style_counts_what_locust_counts") {
        return;
    }
    let mut problems: Vec<String> = Vec::new();
    for style in STYLES {
        let stem = style.file.trim_end_matches(".py").replace('_', "-");
        let tags = if style.tags.is_empty() {
            String::new()
        } else {
            format!("tags = {:?}", style.tags)
        };
        let plan = corpus_plan(
            &format!("corpus-{stem}"),
            &format!("{CORPUS}/{}", style.file),
            style.users,
            style.workers,
            &tags,
        );
        let run = crate::common::run_plan(&format!("locust-corpus-{stem}"), &plan, &[]);
        let mut problem = |p: String| problems.push(format!("{}: {p}", style.file));
        if run.output.status.code() != Some(0) {
            problem(format!(
                "exit {:?}: {}",
                run.output.status.code(),
                crate::common::stderr(&run.output)
            ));
            continue;
        }
        let cell = only_cell(&run.dir);
        let m = crate::common::manifest(&run.dir);
        if m["cells"][0]["status"] != "complete" {
            problem(format!(
                "cell {}: {}",
                m["cells"][0]["status"], m["cells"][0]["message"]
            ));
        }
        let ours = loadmatrix_counts(&run.dir, &cell);
        let locust = locust_counts(&run.dir, &cell);
        for p in mismatches(&ours, &locust) {
            problem(p);
        }
        if ours.0.0 < 20 {
            problem(format!("only {} requests", ours.0.0));
        }
        if ours.0.1 == 0 {
            problem("no failures: the style's failing requests did not run".into());
        }
        for name in style.names {
            if !ours
                .1
                .keys()
                .any(|k| k == name || k.ends_with(&format!(" {name}")))
            {
                problem(format!(
                    "no `{name}` row (rows: {:?})",
                    ours.1.keys().collect::<Vec<_>>()
                ));
            }
        }
        for name in style.absent {
            if ours
                .1
                .keys()
                .any(|k| k == name || k.ends_with(&format!(" {name}")))
            {
                problem(format!("a `{name}` row, which should not run"));
            }
        }
    }
    assert!(
        problems.is_empty(),
        "{} mismatch(es):\n{}",
        problems.len(),
        problems.join("\n")
    );
}

#[test]
fn a_request_listener_that_raises_hides_no_failures() {
    if !crate::common::locust_available("a_request_listener_that_raises_hides_no_failures") {
        return;
    }
    // 3 of 4 tasks POST /predict (200), 1 of 4 GETs a path that is not
    // there (404) and its listener reschedules the task.
    let plan = corpus_plan(
        "listener-raises",
        &format!("{CORPUS}/reschedule_on_failure.py"),
        4,
        2,
        "[[threshold]]\nexpr = \"fail_rate < 1%\"",
    );
    let run = crate::common::run_plan("locust-listener-raises", &plan, &[]);
    // The threshold sees the failures.
    assert_eq!(
        run.output.status.code(),
        Some(1),
        "{}",
        crate::common::stderr(&run.output)
    );
    let cell = only_cell(&run.dir);
    let ours = loadmatrix_counts(&run.dir, &cell);
    let locust = locust_counts(&run.dir, &cell);
    assert_eq!(mismatches(&ours, &locust), Vec::<String>::new());
    let ((n, f), per) = &ours;
    let share = *f as f64 / *n as f64;
    assert!((0.15..=0.35).contains(&share), "failure share {share}");
    assert_eq!(per["missing"].0, per["missing"].1, "{per:?}");
    assert_eq!(per["predict"].1, 0, "{per:?}");
    assert!(!per.contains_key("never reached"), "{per:?}");
    let row = &crate::common::summary(&run.dir)[0];
    let fail_pct: f64 = row["fail_pct"].parse().unwrap();
    assert!((fail_pct - share * 100.0).abs() < 0.01, "{row:?}");
    assert_eq!(row["status"], "complete");
}

#[test]
fn a_listener_ahead_of_locusts_statistics_makes_the_cell_degraded() {
    if !crate::common::locust_available(
        "a_listener_ahead_of_locusts_statistics_makes_the_cell_degraded",
    ) {
        return;
    }
    // Added at import time, the raising listener runs before Locust's own
    // statistics listener: Locust never counts the failed requests.
    let plan = corpus_plan(
        "listener-at-import",
        &format!("{CORPUS}/listener_at_import.py"),
        4,
        1,
        "",
    );
    let run = crate::common::run_plan("locust-listener-at-import", &plan, &[]);
    assert_eq!(
        run.output.status.code(),
        Some(0),
        "{}",
        crate::common::stderr(&run.output)
    );
    let cell = only_cell(&run.dir);
    let ours = loadmatrix_counts(&run.dir, &cell);
    let ((ln, lf), _) = locust_counts(&run.dir, &cell);
    assert_eq!(lf, 0);
    assert!(
        ours.0.1 > 0 && ours.0.0 == ln + ours.0.1,
        "{ours:?} vs {ln}"
    );
    let m = crate::common::manifest(&run.dir);
    assert_eq!(m["cells"][0]["status"], "degraded");
    let msg = m["cells"][0]["message"].as_str().unwrap();
    assert!(
        msg.contains(&format!(
            "Locust's own statistics count {ln} requests and 0 failures"
        )),
        "{msg}"
    );
    assert!(msg.contains("`GET missing`"), "{msg}");
    let row = &crate::common::summary(&run.dir)[0];
    assert_eq!(row["status"], "degraded");
    let report = std::fs::read_to_string(run.dir.join("report.md")).unwrap();
    assert!(report.contains("Locust's own statistics count"), "{report}");
}

/// Seconds since midnight of an RFC 3339 UTC timestamp (run.json's).
fn day_secs(ts: &str) -> f64 {
    let time = ts.split('T').nth(1).unwrap().trim_end_matches('Z');
    time.split(':')
        .map(|p| p.parse::<f64>().unwrap())
        .fold(0.0, |acc, p| acc * 60.0 + p)
}

#[test]
fn a_load_shape_fails_its_cell_within_seconds_and_the_run_goes_on() {
    if !crate::common::locust_available(
        "a_load_shape_fails_its_cell_within_seconds_and_the_run_goes_on",
    ) {
        return;
    }
    let plan = corpus_plan(
        "shape",
        &format!("{CORPUS}/{{{{ matrix.style }}}}.py"),
        2,
        1,
        "",
    )
    .replace(
        "[cell]",
        "[matrix]\nstyle = [\"load_shape\", \"http_user\"]\n[cell]",
    );
    let run = crate::common::run_plan("locust-shape", &plan, &[]);
    assert_eq!(
        run.output.status.code(),
        Some(0),
        "{}",
        crate::common::stderr(&run.output)
    );
    let m = crate::common::manifest(&run.dir);
    let shape = &m["cells"][0];
    assert_eq!(shape["status"], "failed", "{shape}");
    let msg = shape["message"].as_str().unwrap();
    assert!(msg.contains("`StepLoad`"), "{msg}");
    assert!(msg.contains("LoadTestShape"), "{msg}");
    assert!(msg.contains("remove the shape class"), "{msg}");
    let took = day_secs(shape["finished"].as_str().unwrap())
        - day_secs(shape["started"].as_str().unwrap());
    assert!((0.0..10.0).contains(&took), "the shape cell took {took} s");
    assert_eq!(m["cells"][1]["status"], "complete", "{}", m["cells"][1]);
}

#[test]
fn an_unimportable_locustfile_fails_the_cell_and_the_run_exits_4() {
    if !crate::common::locust_available(
        "an_unimportable_locustfile_fails_the_cell_and_the_run_exits_4",
    ) {
        return;
    }
    let plan = corpus_plan(
        "unimportable",
        &format!("{CORPUS}/missing_module.py"),
        2,
        1,
        "",
    );
    let run = crate::common::run_plan("locust-unimportable", &plan, &[]);
    let stderr = crate::common::stderr(&run.output);
    assert_eq!(run.output.status.code(), Some(4), "{stderr}");
    let m = crate::common::manifest(&run.dir);
    assert_eq!(m["cells"][0]["status"], "failed");
    let msg = m["cells"][0]["message"].as_str().unwrap();
    assert!(msg.contains("could not load the locustfile"), "{msg}");
    assert!(msg.contains("Traceback"), "{msg}");
    assert!(
        msg.contains("ModuleNotFoundError") && msg.contains("loadmatrix_no_such_module"),
        "{msg}"
    );
    assert!(
        stderr.contains("no cell produced a successful request"),
        "{stderr}"
    );
}
