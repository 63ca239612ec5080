//! Streamed completions end to end: `loadmatrix run` against local
//! demo-target replicas, and what `validate` says about `stream`.

use crate::common::*;

#[test]
fn a_streaming_matrix_reports_ttft_itl_tokens_and_goodput() {
    // 100 ms prefill + 15 x 10 ms decode = 0.25 s a completion, 2 slots.
    // 2 users: no queue, ttft 100 ms. 4 users: every request waits one
    // stream for a slot, ttft 350 ms, so the 300 ms ttft objective fails.
    let plan = r#"
name = "streaming-e2e"
[matrix]
users = [2, 4]
[cell]
duration = "3s"
warmup = "600ms"
[system]
backend = "local"
replicas = 1
command = ["loadmatrix", "demo-target", "--port", "{{ port }}", "--slots", "2", "--first-token", "100ms", "--token-time", "10ms"]
ready = { path = "/health", timeout = "10s" }
[load]
users = "{{ matrix.users }}"
[[load.request]]
name = "generate"
method = "POST"
path = "/v1/completions"
body = '{"prompt": "hi", "max_tokens": 16, "stream": true}'
expect = { status = 200 }
stream = "sse"
[[threshold]]
expr = "ttft_p95 < 200ms"
where = "users <= 2"
[[threshold]]
expr = "goodput_pct >= 99%"
[analysis]
slo = { ttft = "300ms", itl = "50ms" }
baseline = "0s"
"#;
    let run = run_plan("streaming-e2e", plan, &[]);
    // The goodput threshold fails in the queued cell: exit 1.
    assert_eq!(run.output.status.code(), Some(1), "{}", stderr(&run.output));
    let rows = summary(&run.dir);
    let row = |users: &str| rows.iter().find(|r| r["users"] == users).unwrap();
    let (free, queued) = (row("2"), row("4"));
    for r in [free, queued] {
        assert_eq!(r["status"], "complete");
        assert_eq!(num(r, "failures"), 0.0);
    }
    assert!(within(num(free, "ttft_p50"), 100.0, 0.15), "{free:?}");
    assert!(within(num(free, "itl_p50"), 10.0, 0.25), "{free:?}");
    assert!(
        within(num(free, "tokens_per_s"), 2.0 * 16.0 / 0.25, 0.2),
        "{free:?}"
    );
    assert_eq!(num(free, "goodput_pct"), 100.0);
    assert!(within(num(queued, "ttft_p50"), 350.0, 0.15), "{queued:?}");
    assert!(num(queued, "goodput_pct") < 10.0, "{queued:?}");
    assert!(
        within(num(queued, "tokens_per_s"), 2.0 * 16.0 / 0.25, 0.2),
        "{queued:?}"
    );
    // Per-second figures of streams in the timeline; stats.json per name.
    let cells = run.dir.join("cells");
    let cell = std::fs::read_dir(&cells)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.to_string_lossy().ends_with("users2"))
        .unwrap();
    let timeline = std::fs::read_to_string(cell.join("timeline.csv")).unwrap();
    assert!(
        timeline.starts_with(
            "t,users,rps,requests,failures,p50,p95,p99,ttft_p95,itl_p95,tokens_per_s\n"
        ),
        "{timeline}"
    );
    let stats: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(cell.join("stats.json")).unwrap()).unwrap();
    assert_eq!(
        stats["stats"]["by_name"]["generate"]["stream"]["tokens"].as_u64(),
        Some(16 * num(free, "requests") as u64)
    );
    let report = std::fs::read_to_string(run.dir.join("report.md")).unwrap();
    assert!(report.contains("## Streaming"), "{report}");
    let junit = std::fs::read_to_string(run.dir.join("junit.xml")).unwrap();
    assert!(junit.contains("goodput_pct"), "{junit}");
}

fn validate(name: &str, plan: &str, files: &[(&str, &str)]) -> (Option<i32>, String) {
    let dir = temp_dir(name);
    for (f, text) in files {
        std::fs::write(dir.join(f), text).unwrap();
    }
    let file = dir.join("plan.toml");
    std::fs::write(&file, plan).unwrap();
    let o = loadmatrix().arg("validate").arg(&file).output().unwrap();
    (o.status.code(), stderr(&o))
}

#[test]
fn validate_rejects_unknown_stream_modes_and_locust_streams() {
    let (code, err) = validate(
        "stream-typo",
        r#"name = "t"
[load]
base_url = "http://127.0.0.1:9"
users = 1
[[load.request]]
path = "/v1/completions"
stream = "sce"
[analysis]
baseline = "0s"
"#,
        &[],
    );
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("plan.toml:7:10"), "{err}");
    assert!(err.contains("did you mean `sse`?"), "{err}");

    let (code, err) = validate(
        "stream-locust",
        r#"name = "t"
[load]
engine = "locust"
locustfile = "locustfile.py"
base_url = "http://127.0.0.1:9"
users = 1
[[load.request]]
path = "/v1/completions"
stream = "sse"
[analysis]
baseline = "0s"
"#,
        &[("locustfile.py", "from locust import HttpUser\n")],
    );
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("plan.toml:9:10"), "{err}");
    assert!(err.contains("needs the native engine"), "{err}");
    assert!(err.contains("time to first token"), "{err}");
}

#[test]
fn validate_accepts_the_streaming_plan() {
    let o = loadmatrix()
        .args(["validate", "plans/streaming.toml"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
}

/// Capacity search judged by goodput: 4 slots of 0.25 s streams (100 ms
/// first token, then 15 tokens of 10 ms). Up to 4 users every first token
/// comes after 100 ms; with 5 or more, some requests wait a whole stream for
/// a slot (ttft about 350 ms), so a 200 ms ttft objective holds up to exactly
/// 4 users per replica.
#[test]
fn capacity_search_finds_the_users_whose_first_tokens_stay_fast() {
    let plan = r#"
name = "streaming-search"
[cell]
duration = "2s"
warmup = "500ms"
[system]
backend = "local"
replicas = 1
command = ["loadmatrix", "demo-target", "--port", "{{ port }}", "--slots", "4", "--first-token", "100ms", "--token-time", "10ms"]
ready = { path = "/health", timeout = "10s" }
[[load.request]]
name = "generate"
method = "POST"
path = "/v1/completions"
body = '{"prompt": "hi", "max_tokens": 16, "stream": true}'
stream = "sse"
[analysis]
baseline = "0s"
[search]
over = "users"
from = 1
to = 32
tolerance = "5%"
slo = { ttft = "200ms", fail_rate = "1%" }
"#;
    let run = run_plan("streaming-search", plan, &[]);
    assert_eq!(run.output.status.code(), Some(0), "{}", stderr(&run.output));
    let text = std::fs::read_to_string(run.dir.join("capacity.csv")).unwrap();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let row: Vec<&str> = lines.next().unwrap().split(',').collect();
    let col = |name: &str| row[header.iter().position(|h| *h == name).unwrap()];
    assert_eq!(col("status"), "found", "{text}");
    assert_eq!(col("max_value"), "4", "{text}");
    // The probes above capacity failed on goodput, not on a missing metric.
    let rows = summary(&run.dir);
    let over: Vec<_> = rows
        .iter()
        .filter(|r| r["users"].parse::<u64>().is_ok_and(|u| u > 4))
        .collect();
    assert!(!over.is_empty(), "{rows:?}");
    for r in over {
        assert!(num(r, "goodput_pct") < 99.0, "{r:?}");
    }
}
