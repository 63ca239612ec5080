//! `engine = "locust"` through `loadmatrix run`: the same matrix, the same
//! results folder, and against a server-bound target the same RPS as the
//! native engine.

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
