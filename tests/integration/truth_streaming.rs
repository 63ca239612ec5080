//! plans/streaming.toml's answers name the objective that failed: its SLO
//! is ttft 500 ms and itl 50 ms, no p95. One replica at 8 users gives a
//! ~0.71 s time to first token (users beyond the 4 slots wait whole streams).

use std::path::Path;

use crate::common::*;

#[test]
fn streaming_answers_name_the_failed_objective_and_no_edge_stall() {
    let root = env!("CARGO_MANIFEST_DIR");
    let plan = std::fs::read_to_string(Path::new(root).join("plans/streaming.toml")).unwrap();
    let r = run_plan(
        "truth-streaming",
        &plan,
        &[
            "--only",
            "replicas == 1",
            "--set",
            "cell.duration=4s",
            "--set",
            "analysis.baseline=2s",
        ],
    );
    assert!(
        matches!(r.output.status.code(), Some(0) | Some(1)),
        "{}",
        stderr(&r.output)
    );
    let s: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(r.dir.join("summary.json")).unwrap())
            .unwrap();
    let messages = |kind: &str| -> Vec<String> {
        s["findings"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|f| f["kind"] == kind)
            .map(|f| f["message"].as_str().unwrap().to_string())
            .collect()
    };
    let capacity = messages("capacity");
    assert!(!capacity.is_empty(), "{s:#}");
    for m in &capacity {
        assert!(m.contains("ttft"), "{m}");
        assert!(!m.contains("p95 1") && !m.contains("(p95"), "{m}");
    }
    assert!(
        capacity
            .iter()
            .any(|m| m.contains("misses the SLO there (goodput")),
        "{capacity:#?}"
    );
    for m in messages("optimal") {
        assert!(m.contains("ttft"), "{m}");
        assert!(!m.contains(", p95 "), "{m}");
    }
    for m in messages("slo_excluded") {
        assert!(m.contains("ttft p"), "{m}");
    }
    for row in s["rows"].as_array().unwrap() {
        for w in row["warnings"].as_array().unwrap() {
            assert!(
                !w.as_str().unwrap().contains("coordinated omission"),
                "{row:#}"
            );
        }
    }
}
