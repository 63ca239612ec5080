use super::ingest::{Context, LocustEntry, ProbeOutput, cell_stats, disagreement};
use super::*;

const OUTPUT: &str = r#"{
  "version": 1, "locust_version": "2.47.0", "started": true, "measure_started": true,
  "measured_secs": 2.0,
  "warmup": {"GET": {"a": {"n": 5, "f": 0, "k": {}, "rt": {"10": 5}}}},
  "measure": {
    "GET": {"a": {"n": 10, "f": 2, "k": {"status": 1, "connect": 1}, "rt": {"10": 4, "120": 4}},
            "b": {"n": 3, "f": 0, "k": {}, "rt": {"5": 3}}},
    "POST": {"a": {"n": 1, "f": 1, "k": {"timeout": 1}, "rt": {}}}
  },
  "secs": {"0": {"n": 7, "f": 1, "k": {}, "rt": {"10": 4, "5": 2}},
           "1": {"n": 6, "f": 2, "k": {}, "rt": {"120": 4}},
           "2": {"n": 1, "f": 0, "k": {}, "rt": {"5": 1}}},
  "users": [20, 20], "cpu": [[0.5, 2.0], [1.5, 2.0]], "unprobed": [],
  "locust_total": {"requests": 19, "failures": 3}
}"#;

fn ctx(rows: usize) -> Context {
    Context {
        rows,
        cancelled: false,
        client_bound: false,
        warnings: Vec::new(),
        locust_stats: None,
    }
}

#[test]
fn ingests_probe_output() {
    let out: ProbeOutput = serde_json::from_str(OUTPUT).unwrap();
    let s = cell_stats(&out, ctx(2));
    assert_eq!(s.total.requests, 14);
    assert_eq!(s.total.failures, 3);
    assert_eq!(s.total.failures_by_kind.status, 1);
    assert_eq!(s.total.failures_by_kind.connect, 1);
    assert_eq!(s.total.failures_by_kind.timeout, 1);
    assert_eq!(s.total.hist.len(), 11);
    // "a" was seen with two methods, "b" with one.
    let keys: Vec<&str> = s.by_name.keys().map(String::as_str).collect();
    assert_eq!(keys, ["GET a", "POST a", "b"]);
    assert!((s.by_name["b"].p50_ms - 5.0).abs() < 0.01);
    assert!((s.total.max_ms - 120.0).abs() < 0.1);
    assert!((s.total.rps - 7.0).abs() < 1e-9);
    // The late second folds into the last row.
    assert_eq!(s.timeline.len(), 2);
    assert_eq!(s.timeline[1].requests, 7);
    assert_eq!(s.timeline[1].users, 20);
    assert!((s.timeline[1].p50_ms - 120.0).abs() < 0.1);
    assert!((s.client_cpu_pct - 50.0).abs() < 1e-9);
    assert!(s.warnings[0].contains("2 significant digits"));
    // 5 warm-up + 14 measured = Locust's 19.
    assert_eq!(s.warnings.len(), 1, "{:?}", s.warnings);
}

/// Locust's own statistics for OUTPUT, as its --json-file writes them.
fn locust_json() -> Vec<LocustEntry> {
    serde_json::from_str(
        r#"[
  {"name": "a", "method": "GET", "num_requests": 15, "num_failures": 2, "extra": 1},
  {"name": "b", "method": "GET", "num_requests": 3, "num_failures": 0},
  {"name": "a", "method": "POST", "num_requests": 1, "num_failures": 1}
]"#,
    )
    .unwrap()
}

#[test]
fn agrees_with_locusts_own_statistics() {
    let out: ProbeOutput = serde_json::from_str(OUTPUT).unwrap();
    assert_eq!(disagreement(&out, Some(&locust_json())), None);
    let mut c = ctx(2);
    c.locust_stats = Some(locust_json());
    let s = cell_stats(&out, c);
    assert_eq!(s.degraded, None);
}

#[test]
fn degraded_when_the_totals_disagree() {
    let mut out: ProbeOutput = serde_json::from_str(OUTPUT).unwrap();
    out.locust_total.requests = 20;
    let s = cell_stats(&out, ctx(2));
    let d = s.degraded.as_deref().expect("degraded");
    assert!(
        d.contains("Locust's own statistics count 20 requests and 3 failures"),
        "{d}"
    );
    assert!(d.contains("probe 19 requests and 3 failures"), "{d}");
    assert!(d.contains("lower than Locust's"), "{d}");
    assert!(s.warnings.iter().any(|w| w == d));
}

#[test]
fn degraded_when_locust_missed_a_request_name() {
    // A listener added before Locust's own raised on every failure: Locust
    // never counted `POST a`, and two failures of `GET a`.
    let out: ProbeOutput = serde_json::from_str(OUTPUT).unwrap();
    let mut locust = locust_json();
    locust.retain(|e| e.method.as_deref() == Some("GET"));
    locust[0].num_requests -= 2;
    locust[0].num_failures = 0;
    let d = disagreement(&out, Some(&locust)).expect("degraded");
    assert!(d.contains("count 16 requests and 0 failures"), "{d}");
    assert!(d.contains("`GET a` 13 requests, 0 failures / 15, 2"), "{d}");
    assert!(d.contains("`POST a` 0 requests, 0 failures / 1, 1"), "{d}");
    assert!(!d.contains("`GET b`"), "{d}");
    assert!(d.contains("missed requests"), "{d}");
}

#[test]
fn reads_the_shape_line() {
    let line: ProgressLine =
        serde_json::from_str(r#"{"event": "shape", "class": "Steps", "module": "lf"}"#).unwrap();
    assert!(matches!(line, ProgressLine::Shape { class } if class == "Steps"));
}

#[test]
fn progress_reader_keeps_partial_lines() {
    let dir = std::env::temp_dir().join(format!("lm-locust-progress-{}", std::process::id()));
    fs::create_dir_all(&dir).unwrap();
    let path = dir.join("p.jsonl");
    fs::write(
        &path,
        "{\"event\": \"waiting\", \"connected\": 1}\n{\"event\": \"wai",
    )
    .unwrap();
    let mut r = ProgressReader {
        path: path.clone(),
        offset: 0,
        partial: Vec::new(),
    };
    assert!(matches!(
        r.read().as_slice(),
        [ProgressLine::Waiting { connected: 1 }]
    ));
    let mut f = fs::OpenOptions::new().append(true).open(&path).unwrap();
    std::io::Write::write_all(&mut f, b"ting\", \"connected\": 2}\n").unwrap();
    assert!(matches!(
        r.read().as_slice(),
        [ProgressLine::Waiting { connected: 2 }]
    ));
    let _ = fs::remove_dir_all(&dir);
}

#[test]
fn master_args_put_tags_before_other_options() {
    let mut spec = LocustSpec::new("/x/lf.py", "http://127.0.0.1:1", "/tmp/w");
    spec.tags = vec!["a".into(), "b".into()];
    spec.args = vec!["--stop-timeout".into(), "1".into()];
    let files = Files {
        dir: "/tmp/w".into(),
        probe: "/tmp/w/p.py".into(),
        out: "/tmp/w/o.json".into(),
        progress: "/tmp/w/p.jsonl".into(),
    };
    let a: Vec<String> = master_args(&spec, &files, 5557, 7)
        .iter()
        .map(|s| s.to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        a[..6],
        [
            "-f",
            "/x/lf.py,/tmp/w/p.py",
            "--tags",
            "a",
            "b",
            "--headless"
        ]
    );
    assert!(a.windows(2).any(|w| w == ["-t", "7s"]));
    assert!(a.windows(2).any(|w| w == ["-r", "1"]));
    assert_eq!(a[a.len() - 2..], ["--stop-timeout", "1"]);
}
