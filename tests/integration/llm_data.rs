//! Inference traffic from request rows against the demo target's closed
//! forms: a dataset's tokens and time to first token, the prefix cache hit
//! by shared hash ids, a trace replayed on schedule, and what `validate`
//! says about rows a template cannot read.

use crate::common::*;

use std::path::{Path, PathBuf};
use std::process::Command;

/// A folder for data files that `run_plan` (which recreates its own) leaves alone.
fn data_dir(name: &str) -> PathBuf {
    temp_dir(&format!("{name}-data"))
}

fn write_lines(path: &Path, lines: impl IntoIterator<Item = serde_json::Value>) {
    let text: String = lines.into_iter().map(|l| format!("{l}\n")).collect();
    std::fs::write(path, text).unwrap();
}

fn cell_stats(run: &Path, cell_suffix: &str) -> serde_json::Value {
    let cell = std::fs::read_dir(run.join("cells"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.to_string_lossy().ends_with(cell_suffix))
        .unwrap();
    serde_json::from_str(&std::fs::read_to_string(cell.join("stats.json")).unwrap()).unwrap()
}

#[test]
fn a_dataset_reports_usage_tokens_and_the_closed_form_ttft() {
    // Row k: 20 + 5k prompt words (mean and median 117.5), max_tokens
    // 4 + k % 8 (mean 7.5). TTFT = 10 ms + words x 0.5 ms: median 68.75 ms.
    let dir = data_dir("llm-dataset");
    let file = dir.join("prompts.jsonl");
    write_lines(
        &file,
        (0..40).map(|k| {
            let words: Vec<String> = (0..20 + 5 * k).map(|j| format!("w{k}x{j}")).collect();
            serde_json::json!({"prompt": words.join(" "), "max_tokens": 4 + k % 8})
        }),
    );
    let plan = format!(
        r#"
name = "llm-dataset"
[cell]
duration = "3s"
warmup = "300ms"
[system]
backend = "local"
replicas = 1
command = ["loadmatrix", "demo-target", "--port", "{{{{ port }}}}", "--slots", "8", "--first-token", "10ms", "--token-time", "1ms", "--prefill-time", "500us"]
ready = {{ path = "/health", timeout = "10s" }}
[load]
users = 8
[[load.request]]
name = "chat"
method = "POST"
path = "/v1/chat/completions?tokens={{{{ row.max_tokens }}}}"
data = "{}"
body = '''{{"model": "demo", "max_tokens": {{{{ row.max_tokens }}}}, "stream": true,
  "stream_options": {{"include_usage": true}},
  "messages": [{{"role": "user", "content": {{{{ row.prompt | tojson }}}}}}]}}'''
stream = "sse"
expect = {{ status = 200 }}
"#,
        file.display()
    );
    let run = run_plan("llm-dataset", &plan, &[]);
    assert_eq!(run.output.status.code(), Some(0), "{}", stderr(&run.output));
    let rows = summary(&run.dir);
    let row = &rows[0];
    assert_eq!(num(row, "failures"), 0.0, "{row:?}");
    assert!(
        num(row, "requests") >= 120.0,
        "three passes at least: {row:?}"
    );
    assert_eq!(row["tokens_source"], "usage");
    assert!(within(num(row, "input_tokens"), 117.5, 0.02), "{row:?}");
    assert!(within(num(row, "output_tokens"), 7.5, 0.02), "{row:?}");
    assert!(within(num(row, "ttft_p50"), 68.75, 0.10), "{row:?}");
    // One event per token: the usage-only chunk is no token.
    assert!(
        within(
            num(row, "output_tokens_per_s"),
            num(row, "tokens_per_s"),
            0.001
        ),
        "{row:?}"
    );
    assert!(
        within(
            num(row, "input_tokens_per_s"),
            num(row, "input_tokens") * num(row, "rps"),
            0.02
        ),
        "{row:?}"
    );
}

#[test]
fn shared_hash_ids_hit_the_prefix_cache_and_ttft_drops_as_predicted() {
    // 1100 words: two 512-word blocks every row shares, 76 its own. Without
    // a cache TTFT = 10 ms + 1100 x 0.2 ms = 230 ms; with one every request
    // after the first prefills 76 words: 10 + 76 x 0.2 = 25.2 ms.
    let dir = data_dir("llm-prefix");
    let file = dir.join("shared.jsonl");
    write_lines(
        &file,
        (0..30).map(|k| {
            serde_json::json!({"input_length": 1100, "output_length": 4, "hash_ids": [1, 2, 100 + k]})
        }),
    );
    let plan = format!(
        r#"
name = "llm-prefix"
[matrix]
cache = [0, 64]
[cell]
duration = "2s"
warmup = "300ms"
[system]
backend = "local"
replicas = 1
command = ["loadmatrix", "demo-target", "--port", "{{{{ port }}}}", "--slots", "8", "--first-token", "10ms", "--token-time", "1ms", "--prefill-time", "200us", "--prefix-cache", "{{{{ matrix.cache }}}}"]
ready = {{ path = "/health", timeout = "10s" }}
[load]
users = 4
[[load.request]]
name = "complete"
method = "POST"
path = "/v1/completions"
data = "{}"
order = "sequential"
body = '''{{"model": "demo", "max_tokens": {{{{ row.output_length }}}}, "stream": true,
  "prompt": {{{{ prompt(row.input_length, row.hash_ids) | tojson }}}}}}'''
stream = "sse"
expect = {{ status = 200 }}
"#,
        file.display()
    );
    let run = run_plan("llm-prefix", &plan, &[]);
    assert_eq!(run.output.status.code(), Some(0), "{}", stderr(&run.output));
    let rows = summary(&run.dir);
    let row = |cache: &str| rows.iter().find(|r| r["cache"] == cache).unwrap();
    let (cold, cached) = (row("0"), row("64"));
    for r in [cold, cached] {
        assert_eq!(num(r, "failures"), 0.0, "{r:?}");
        // No include_usage: output tokens are the streamed events.
        assert_eq!(r["tokens_source"], "events", "{r:?}");
        assert!(within(num(r, "output_tokens"), 4.0, 0.001), "{r:?}");
    }
    assert!(within(num(cold, "ttft_p50"), 230.0, 0.10), "{cold:?}");
    assert!(within(num(cached, "ttft_p50"), 25.2, 0.10), "{cached:?}");
}

#[test]
fn a_trace_replays_every_arrival_on_its_schedule() {
    // 100 Mooncake lines 20 ms apart, replayed twice as fast: one every
    // 10 ms over a 0.99 s window.
    let dir = data_dir("llm-trace");
    let file = dir.join("trace.jsonl");
    write_lines(
        &file,
        (0..100).map(|k| {
            serde_json::json!({"timestamp": 20 * k, "input_length": 300, "output_length": 2, "hash_ids": [k]})
        }),
    );
    let plan = format!(
        r#"
name = "llm-trace"
[system]
backend = "local"
replicas = 1
command = ["loadmatrix", "demo-target", "--port", "{{{{ port }}}}", "--slots", "64", "--first-token", "5ms", "--token-time", "1ms"]
ready = {{ path = "/health", timeout = "10s" }}
[load]
trace = "{}"
time_scale = 2.0
[[load.request]]
name = "complete"
method = "POST"
path = "/v1/completions"
body = '''{{"model": "demo", "max_tokens": {{{{ row.output_length }}}},
  "prompt": {{{{ prompt(row.input_length, row.hash_ids) | tojson }}}}}}'''
expect = {{ status = 200 }}
"#,
        file.display()
    );
    let run = run_plan("llm-trace", &plan, &[]);
    assert_eq!(run.output.status.code(), Some(0), "{}", stderr(&run.output));
    let rows = summary(&run.dir);
    let row = &rows[0];
    assert_eq!(num(row, "requests"), 100.0, "{row:?}");
    assert_eq!(num(row, "failures"), 0.0, "{row:?}");
    assert_eq!(row["tokens_source"], "usage");
    assert!(within(num(row, "input_tokens"), 300.0, 0.001), "{row:?}");
    let stats = cell_stats(&run.dir, "");
    let s = &stats["stats"];
    assert_eq!(s["dropped"].as_u64(), Some(0), "{s}");
    let window = s["measured_secs"].as_f64().unwrap();
    assert!((window - 0.991).abs() < 0.002, "{window}");
    let lag = s["schedule_lag_p99_ms"].as_f64().unwrap();
    assert!(lag < 5.0, "p99 lag {lag} ms");
}

fn validate(dir: &Path, plan: &str) -> (Option<i32>, String) {
    let file = dir.join("plan.toml");
    std::fs::write(&file, plan).unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_loadmatrix"))
        .arg("validate")
        .arg(&file)
        .output()
        .unwrap();
    (o.status.code(), stderr(&o))
}

#[test]
fn validate_names_the_row_a_template_cannot_read() {
    let dir = temp_dir("llm-validate");
    std::fs::write(
        dir.join("rows.jsonl"),
        "{\"prompt\": \"a\", \"max_tokens\": 3}\n\n{\"prompt\": \"b\"}\n",
    )
    .unwrap();
    let plan = |extra: &str| {
        format!(
            r#"name = "t"
[load]
base_url = "http://127.0.0.1:9"
users = 1
{extra}
[[load.request]]
method = "POST"
path = "/v1/completions"
data = "rows.jsonl"
body = '{{"max_tokens": {{{{ row.max_tokens }}}}, "prompt": {{{{ row.prompt | tojson }}}}}}'
"#
        )
    };
    let (code, err) = validate(&dir, &plan(""));
    assert_eq!(code, Some(2), "{err}");
    // The template's own line and column, the data file and its line.
    assert!(err.contains("plan.toml:10:27"), "{err}");
    assert!(err.contains("`row.max_tokens`"), "{err}");
    assert!(err.contains("line 3 of"), "{err}");
    assert!(err.contains("rows.jsonl"), "{err}");
    assert!(err.contains("that row's fields: prompt"), "{err}");

    // Beyond the size limit: refused before a byte is parsed.
    let big = std::fs::File::create(dir.join("rows.jsonl")).unwrap();
    big.set_len((1 << 30) + 1).unwrap();
    let (code, err) = validate(&dir, &plan(""));
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("beyond the limit"), "{err}");

    // A trace out of time order names its line.
    std::fs::write(
        dir.join("t.jsonl"),
        "{\"timestamp\": 0}\n{\"timestamp\": 50}\n{\"timestamp\": 10}\n",
    )
    .unwrap();
    let trace_plan = r#"name = "t"
[load]
base_url = "http://127.0.0.1:9"
trace = "t.jsonl"
[[load.request]]
path = "/"
"#;
    let (code, err) = validate(&dir, trace_plan);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("t.jsonl:3"), "{err}");
    assert!(err.contains("time order"), "{err}");
}
