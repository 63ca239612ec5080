//! Locust cells classified like native ones, against a target whose truth
//! is known in closed form: one replica of 4 slots x 20 ms serves 200 RPS;
//! users thinking 50 ms offer users / (50 ms + 20 ms): 2 users 28.6 RPS
//! (kept up with), 24 users 343 RPS (the service is the limit at 200).

use std::path::Path;

use crate::common::*;

#[test]
fn locust_cells_are_load_then_service_bound_like_native_ones() {
    if !locust_available("locust_cells_are_load_then_service_bound_like_native_ones") {
        return;
    }
    let dir = temp_dir("truth-locust-files");
    std::fs::write(
        dir.join("locustfile.py"),
        r#"
from locust import HttpUser, constant, task

class Predict(HttpUser):
    wait_time = constant(0.05)

    @task
    def predict(self):
        self.client.post("/predict", json={"inputs": [1]}, name="predict")
"#,
    )
    .unwrap();
    let locustfile = dir.join("locustfile.py");
    let plan = format!(
        r#"
name = "locust-truth"
[matrix]
users = [2, 24]
[cell]
duration = "5s"
warmup = "2s"
[system]
backend = "local"
command = ["loadmatrix", "demo-target", "--port", "{{{{ port }}}}", "--slots", "4", "--service-time", "20ms", "--jitter", "fixed"]
ready = {{ path = "/health", timeout = "10s" }}
[load]
engine = "locust"
locustfile = "{}"
users = "{{{{ matrix.users }}}}"
workers = 1
[analysis]
baseline = "2s"
"#,
        locustfile.display()
    );
    let r = run_plan("truth-locust", &plan, &[]);
    assert_eq!(r.output.status.code(), Some(0), "{}", stderr(&r.output));
    let rows = summary(&r.dir);
    assert_eq!(rows.len(), 2, "{rows:#?}");
    let (two, many) = (&rows[0], &rows[1]);
    let baseline = num(two, "baseline_ms");
    // 20 ms of service plus Locust's own few milliseconds.
    assert!((19.0..=30.0).contains(&baseline), "{two:#?}");
    assert_eq!(two["bound"], "load", "{two:#?}");
    assert!(
        within(num(two, "offered_rps"), 2.0 / 0.07, 0.15),
        "{two:#?}"
    );
    assert_eq!(many["bound"], "service", "{many:#?}");
    assert!(within(num(many, "rps"), 200.0, 0.1), "{many:#?}");
    assert!(
        within(num(many, "offered_rps"), 24.0 / 0.07, 0.15),
        "{many:#?}"
    );
    // The think time came from the measurement.
    let s: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(r.dir.join("summary.json")).unwrap())
            .unwrap();
    for row in s["rows"].as_array().unwrap() {
        let think = row["metrics"]["think_ms"].as_f64().unwrap();
        assert!((40.0..=60.0).contains(&think), "{row:#}");
    }
    assert!(Path::new(&r.dir.join("cells/users2/baseline.json")).exists());
}
