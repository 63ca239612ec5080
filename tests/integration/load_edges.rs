//! Edges of a cell's load against the demo target: requests cut at the hard
//! stop, stalls a closed model would hide, and ramps that are not stalls.

use std::path::Path;

use crate::common::*;

fn stats(dir: &Path, cell: &str) -> serde_json::Value {
    serde_json::from_str(
        &std::fs::read_to_string(dir.join("cells").join(cell).join("stats.json")).unwrap(),
    )
    .unwrap()
}

/// timeline.csv as (t, failures) pairs.
fn timeline_failures(dir: &Path, cell: &str) -> Vec<(u64, u64)> {
    let text = std::fs::read_to_string(dir.join("cells").join(cell).join("timeline.csv")).unwrap();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let col = |name: &str| header.iter().position(|h| *h == name).unwrap();
    let (t, f) = (col("t"), col("failures"));
    lines
        .map(|l| {
            let v: Vec<&str> = l.split(',').collect();
            (v[t].parse().unwrap(), v[f].parse().unwrap())
        })
        .collect()
}

#[test]
fn open_model_requests_cut_at_the_hard_stop_fail_as_abandoned_when_sent() {
    // /predict takes a minute (more slots than requests, so none queue), far
    // past the window and the 5 s drain after it: every /predict sent is
    // still in flight at the hard stop. /health answers at once. 10 arrivals
    // a second for 3 s: 30 requests, each /predict among them abandoned.
    let r = run_plan(
        "abandoned",
        r#"
name = "abandoned"
[cell]
duration = "3s"
[system]
backend = "local"
command = ["loadmatrix", "demo-target", "--port", "{{ port }}", "--slots", "100", "--service-time", "60s"]
[load]
rate = 10
[[load.request]]
name = "slow"
method = "POST"
path = "/predict"
body = '{"inputs": [1]}'
[[load.request]]
name = "health"
path = "/health"
[analysis]
baseline = "0s"
"#,
        &[],
    );
    assert_eq!(r.output.status.code(), Some(0), "{}", stderr(&r.output));
    let s = &stats(&r.dir, "default")["stats"];
    let total = &s["total"];
    let slow = &s["by_name"]["slow"];
    let abandoned = slow["requests"].as_u64().unwrap();
    assert_eq!(total["requests"], 30, "{total}");
    assert!(abandoned > 0, "{s}");
    assert_eq!(slow["failures"], abandoned, "{slow}");
    assert_eq!(slow["failures_by_kind"]["abandoned"], abandoned, "{slow}");
    assert_eq!(total["failures_by_kind"]["abandoned"], abandoned, "{total}");
    assert_eq!(s["by_name"]["health"]["failures"], 0);
    let row = &summary(&r.dir)[0];
    let fail_pct: f64 = row["fail_pct"].parse().unwrap();
    let expected = abandoned as f64 / 30.0 * 100.0;
    assert!(
        (fail_pct - expected).abs() < 0.01,
        "{fail_pct} vs {expected}"
    );
    // In the timeline each counts in the second it was sent: spread over
    // all three, not piled into the last.
    let rows = timeline_failures(&r.dir, "default");
    assert_eq!(rows.len(), 3, "{rows:?}");
    assert_eq!(rows.iter().map(|(_, f)| f).sum::<u64>(), abandoned);
    assert!(rows.iter().all(|(_, f)| *f > 0), "{rows:?}");
}

const STALL_WARNING: &str = "closed model: throughput fell";

#[test]
fn closed_model_flags_a_one_second_stall_every_five_seconds() {
    // 8 users on 8 slots of 20 ms: 400 requests a second, then nothing for
    // 1 s in every 5 (a stall that usually straddles two seconds).
    let r = run_plan(
        "stall-every",
        r#"
name = "stall-every"
[cell]
duration = "11s"
[system]
backend = "local"
command = ["loadmatrix", "demo-target", "--port", "{{ port }}", "--slots", "8", "--service-time", "20ms", "--stall-every", "5s", "--stall-for", "1s"]
[load]
users = 8
[analysis]
baseline = "0s"
[[load.request]]
method = "POST"
path = "/predict"
body = '{"inputs": [1]}'
"#,
        &[],
    );
    assert_eq!(r.output.status.code(), Some(0), "{}", stderr(&r.output));
    let warnings = stats(&r.dir, "default")["stats"]["warnings"].to_string();
    assert!(warnings.contains(STALL_WARNING), "{warnings}");
}

#[test]
fn closed_model_ramp_is_not_a_stall() {
    // 8 users arriving 2 a second: four seconds of ramp, then steady.
    let r = run_plan(
        "ramp",
        r#"
name = "ramp"
[cell]
duration = "8s"
[system]
backend = "local"
command = ["loadmatrix", "demo-target", "--port", "{{ port }}", "--slots", "8", "--service-time", "20ms"]
[load]
users = 8
spawn_rate = 2
[analysis]
baseline = "0s"
[[load.request]]
method = "POST"
path = "/predict"
body = '{"inputs": [1]}'
"#,
        &[],
    );
    assert_eq!(r.output.status.code(), Some(0), "{}", stderr(&r.output));
    let s = &stats(&r.dir, "default")["stats"];
    // The ramp is there: the first second ran with fewer users than the last.
    let timeline = s["timeline"].as_array().unwrap();
    let users = |i: usize| timeline[i]["users"].as_u64().unwrap();
    assert!(users(1) < users(timeline.len() - 1), "{timeline:?}");
    let warnings = s["warnings"].to_string();
    assert!(!warnings.contains(STALL_WARNING), "{warnings}");
}
