use indexmap::IndexMap;

use super::probing::*;
use super::stability::*;
use crate::engine::stats::TimelineRow;
use crate::plan::Search;
use crate::plan::matrix::CellValues;
use crate::plan::raw::SearchOver;
use crate::results::{CellStatus, SummaryRow};

fn search(from: u64, to: u64, tolerance: f64) -> Search {
    Search {
        over: SearchOver::Users,
        from,
        to,
        tolerance,
        slo: IndexMap::new(),
    }
}

/// Runs a search against a system whose capacity is `cap`.
fn run(s: &Search, cap: u64) -> (Vec<u64>, Option<u64>) {
    let mut p = Probing::new(s);
    let mut seen = Vec::new();
    while let Some(v) = p.next() {
        assert!(!seen.contains(&v), "{v} probed twice");
        seen.push(v);
        p.observe(v, v <= cap);
    }
    (seen, p.lo())
}

#[test]
fn doubles_then_bisects_within_tolerance_and_bound() {
    let s = search(4, 4096, 0.05);
    for cap in [4, 5, 12, 13, 24, 100, 1000, 4095] {
        let (seen, lo) = run(&s, cap);
        let lo = lo.unwrap();
        assert!(lo <= cap, "cap {cap}: {lo}");
        assert!(
            cap as f64 <= lo as f64 * 1.05 + 1.0,
            "cap {cap}: found {lo}"
        );
        let bound = (4096f64 / 4.0).log2() + (1.0 / 0.05f64).log2() + 2.0;
        assert!(seen.len() as f64 <= bound, "cap {cap}: {seen:?}");
        assert!(seen.len() as u64 <= s.max_probes(), "cap {cap}: {seen:?}");
    }
    assert_eq!(run(&s, 12).0[..3], [4, 8, 16]);
}

#[test]
fn out_of_range_ends_early() {
    let s = search(4, 100, 0.05);
    let (seen, lo) = run(&s, 1000);
    assert_eq!(
        seen,
        [4, 8, 16, 32, 64, 100],
        "the last doubling is clamped to `to`"
    );
    assert_eq!(lo, Some(100));
    let (seen, lo) = run(&s, 2);
    assert_eq!(seen, [4]);
    assert_eq!(lo, None);
}

#[test]
fn stability_is_the_spread_of_the_last_three_seconds() {
    let tl = |rps: &[f64]| -> Vec<TimelineRow> {
        rps.iter()
            .enumerate()
            .map(|(t, r)| TimelineRow {
                t: t as u64,
                users: 1,
                rps: *r,
                requests: *r as u64,
                failures: 0,
                p50_ms: 1.0,
                p95_ms: 1.0,
                p99_ms: 1.0,
                stream: None,
            })
            .collect()
    };
    assert_eq!(unstable_spread(&tl(&[10.0, 100.0, 100.0, 95.0])), None);
    let spread = unstable_spread(&tl(&[1000.0, 1000.0, 800.0])).unwrap();
    assert!((spread - 200.0 / (2800.0 / 3.0)).abs() < 1e-9);
    assert_eq!(
        unstable_spread(&tl(&[72.0, 84.0, 76.0])),
        None,
        "within counting noise"
    );
    assert!(unstable_spread(&tl(&[80.0, 80.0, 40.0])).is_some());
    // A window's edges are left out: its first second misses requests
    // started in warm-up, its last holds the drained ones.
    let edges = tl(&[136.0, 152.0, 152.0, 152.0, 184.0]);
    assert_eq!(probe_instability(&[&edges]), None);
    let stalled = tl(&[80.0, 80.0, 24.0, 80.0, 80.0]);
    assert!(probe_instability(&[&stalled]).is_some());
    let short = tl(&[136.0, 152.0, 184.0]);
    assert_eq!(
        probe_instability(&[&short, &short, &short]),
        None,
        "three 3 s segments give three full windows"
    );
    assert_eq!(
        unstable_spread(&tl(&[1.0, 100.0])),
        None,
        "too short to judge"
    );
}

#[test]
fn output_tokens_per_second_is_a_floor_and_goodput_tokens_too() {
    let mut row = SummaryRow::unmeasured("c", &CellValues::default(), CellStatus::Complete);
    for (k, v) in [
        ("requests", 100.0),
        ("failures", 0.0),
        ("output_tokens_per_s", 900.0),
        ("goodput_output_tokens_per_s", 450.0),
    ] {
        row.metrics.insert(k.into(), v);
    }
    let slo = |k: &str, v: f64| IndexMap::from([(k.to_string(), v)]);
    assert!(meets_slo(&slo("output_tokens_per_s", 800.0), &row));
    assert!(!meets_slo(&slo("output_tokens_per_s", 1000.0), &row));
    assert!(meets_slo(&slo("goodput_output_tokens_per_s", 400.0), &row));
    assert!(!meets_slo(&slo("goodput_output_tokens_per_s", 500.0), &row));
}
