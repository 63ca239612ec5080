//! The open model against a service whose capacity is known in closed form:
//! 2 demo-target replicas of 4 slots x 20 ms serve 2 x 200 = 400 RPS. Below
//! it the cell keeps up with its arrivals; past it the queue grows through
//! the window, the throughput is what the service completed, and no answer
//! calls the cell unsaturated.

use crate::common::*;

#[test]
fn an_overloaded_open_model_cell_is_service_bound_at_the_service_rate() {
    let plan = r#"
name = "open-truth"
[matrix]
rate = [200, 500]
[cell]
duration = "4s"
warmup = "1s"
[system]
backend = "local"
replicas = 2
command = ["loadmatrix", "demo-target", "--port", "{{ port }}", "--slots", "4", "--service-time", "20ms", "--jitter", "fixed"]
ready = { path = "/health", timeout = "10s" }
[load]
rate = "{{ matrix.rate }}"
workers = 1
max_in_flight = 5000
timeout = "20s"
[[load.request]]
name = "predict"
method = "POST"
path = "/predict"
body = "{}"
[analysis]
baseline = "1s"
slo = { p99 = "10s" }
"#;
    let r = run_plan("open-truth", plan, &[]);
    assert_eq!(r.output.status.code(), Some(0), "{}", stderr(&r.output));
    let rows = summary(&r.dir);
    assert_eq!(rows.len(), 2, "{rows:#?}");
    let (low, high) = (&rows[0], &rows[1]);
    assert_eq!(low["bound"], "load", "{low:#?}");
    assert!(within(num(low, "ok_rps"), 200.0, 0.1), "{low:#?}");
    assert_eq!(high["bound"], "service", "{high:#?}");
    // Sent at 500/s, completed at the service's 400/s at most.
    assert!(within(num(high, "rps"), 500.0, 0.05), "{high:#?}");
    let ok = num(high, "ok_rps");
    assert!((300.0..=420.0).contains(&ok), "ok_rps {ok}: {high:#?}");
    let report = std::fs::read_to_string(r.dir.join("report.md")).unwrap();
    assert!(!report.contains("never saturated"), "{report}");
    assert!(!report.contains("raise rate"), "{report}");
}
