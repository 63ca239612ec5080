//! `[analysis] ab = "axis"`: within each combination of the other axes,
//! every value of the axis against the first (the baseline), for rps, p50,
//! p95 and the SLO's metrics a second records. Each change gets a block
//! bootstrap interval over the per-second windows of both cells (pooled
//! over their repetitions), and Holm's correction across every comparison
//! of the run keeps the family-wise error at 5%: an interval is widened to
//! the level its rank in Holm's order calls for, so `significant` is always
//! "the interval excludes 0".

use std::fmt::Write as _;

use indexmap::IndexMap;
use serde::Serialize;

use super::bootstrap::{self, Stat};
use super::{Finding, FindingKind, Severity};
use crate::plan::Plan;
use crate::plan::matrix::MatrixValue;
use crate::results::SummaryRow;

/// The family-wise error rate: a 95% confidence for the whole family.
pub(crate) const ALPHA: f64 = 0.05;

/// One variant against its baseline, for one metric.
#[derive(Debug, Clone, Serialize)]
pub struct Comparison {
    /// The other axes' values, as the plan writes them.
    pub fixed: IndexMap<String, String>,
    pub metric: String,
    /// The ab axis' values.
    pub baseline: String,
    pub variant: String,
    pub baseline_cell: String,
    pub variant_cell: String,
    /// The metric over each cell's seconds (see `bootstrap::Stat`).
    pub baseline_value: f64,
    pub variant_value: f64,
    pub delta_pct: f64,
    /// `[low, high]` in percent, at the Holm-adjusted level of `confidence`.
    pub ci95: [f64; 2],
    pub significant: bool,
    /// The level the interval is drawn at, e.g. 0.9875 for the first of four
    /// comparisons (95% for the whole family).
    pub confidence: f64,
    pub p_value: f64,
    /// Holm's adjusted p-value.
    pub p_holm: f64,
}

/// What each comparison's finding adds to the common fields.
#[derive(Debug, Clone, Serialize)]
pub struct Detail {
    pub metric: String,
    pub baseline: String,
    pub variant: String,
    pub delta_pct: f64,
    pub ci95: [f64; 2],
    pub significant: bool,
}

pub(crate) fn seed(parts: &[&str]) -> u64 {
    // FNV-1a: the same run always gives the same intervals.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for p in parts {
        for b in p.bytes().chain([0]) {
            h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
    }
    h
}

/// Every comparison of the run; empty without `[analysis] ab`.
pub fn compare(plan: &Plan, rows: &[SummaryRow]) -> Vec<Comparison> {
    let Some(ab) = &plan.analysis.ab else {
        return Vec::new();
    };
    compare_rows(
        &ab.axis,
        Some(&ab.baseline),
        &plan.analysis.slo,
        rows,
        (0, bootstrap::RESAMPLES),
    )
}

/// The comparisons over rows that carry their seconds; without a baseline
/// given, the axis value of the first row (rows come in matrix order).
pub(crate) fn compare_rows(
    axis: &str,
    baseline: Option<&MatrixValue>,
    slo: &IndexMap<String, f64>,
    rows: &[SummaryRow],
    (run_seed, resamples): (u64, usize),
) -> Vec<Comparison> {
    let Some(baseline) = baseline.or_else(|| rows.iter().find_map(|r| r.matrix.get(axis))) else {
        return Vec::new();
    };
    let metrics = crate::plan::ab::metrics(slo.keys().map(String::as_str));
    let others = |r: &SummaryRow| -> IndexMap<String, String> {
        r.matrix
            .iter()
            .filter(|(k, _)| *k != axis)
            .map(|(k, v)| (k.clone(), v.to_string()))
            .collect()
    };
    let measured = |r: &&SummaryRow| r.status.is_final() && r.seconds.iter().any(|s| !s.is_empty());
    let mut out = Vec::new();
    let mut diffs = Vec::new();
    for base in rows
        .iter()
        .filter(measured)
        .filter(|r| r.matrix.get(axis) == Some(baseline))
    {
        let fixed = others(base);
        for new in rows
            .iter()
            .filter(measured)
            .filter(|r| r.matrix.get(axis).is_some_and(|v| v != baseline) && others(r) == fixed)
        {
            for m in &metrics {
                let Some(stat) = Stat::of(m) else { continue };
                let s = seed(&[&run_seed.to_string(), &base.cell, &new.cell, m]);
                let Some(d) =
                    bootstrap::difference(&base.seconds, &new.seconds, stat, s, resamples)
                else {
                    continue;
                };
                out.push(Comparison {
                    fixed: fixed.clone(),
                    metric: m.clone(),
                    baseline: baseline.to_string(),
                    variant: new
                        .matrix
                        .get(axis)
                        .map(|v| v.to_string())
                        .unwrap_or_default(),
                    baseline_cell: base.cell.clone(),
                    variant_cell: new.cell.clone(),
                    baseline_value: d.base,
                    variant_value: d.new,
                    delta_pct: d.delta_pct,
                    ci95: [0.0, 0.0],
                    significant: false,
                    confidence: 1.0 - ALPHA,
                    p_value: d.p_value(),
                    p_holm: 1.0,
                });
                diffs.push(d);
            }
        }
    }
    let p: Vec<f64> = out.iter().map(|c| c.p_value).collect();
    for ((c, d), h) in out.iter_mut().zip(&diffs).zip(bootstrap::holm(&p, ALPHA)) {
        let (lo, hi) = d.interval(h.level);
        c.ci95 = [lo, hi];
        c.significant = h.reject;
        c.confidence = 1.0 - h.level;
        c.p_holm = h.adjusted;
    }
    out
}

/// Higher is worse for latencies and fail rates, lower for throughput.
fn worse(c: &Comparison) -> bool {
    if crate::metrics::higher_is_better(&c.metric) {
        c.delta_pct < 0.0
    } else {
        c.delta_pct > 0.0
    }
}

/// "v2 p95 +6.1% (95% CI +3.9..+8.4), significant" or "v2 p95: no
/// significant difference (CI -1.2..+2.0)", after the other axes' values.
pub fn line(c: &Comparison) -> String {
    let fixed = super::text::fixed_label(&c.fixed)
        .map(|l| format!("{l}: "))
        .unwrap_or_default();
    let [lo, hi] = c.ci95;
    if c.significant {
        format!(
            "{fixed}{} {} {:+.1}% (95% CI {lo:+.1}..{hi:+.1}), significant",
            c.variant, c.metric, c.delta_pct
        )
    } else {
        format!(
            "{fixed}{} {}: no significant difference (CI {lo:+.1}..{hi:+.1})",
            c.variant, c.metric
        )
    }
}

/// One finding of kind `ab` per comparison; a significant change for the
/// worse is a warning.
pub fn findings(axis: &str, comparisons: &[Comparison]) -> Vec<Finding> {
    comparisons
        .iter()
        .map(|c| Finding {
            kind: FindingKind::Ab,
            severity: if c.significant && worse(c) {
                Severity::Warning
            } else {
                Severity::Info
            },
            cells: vec![c.baseline_cell.clone(), c.variant_cell.clone()],
            dimension: Some(axis.to_string()),
            numbers: [
                ("delta_pct", c.delta_pct),
                ("ci95_low", c.ci95[0]),
                ("ci95_high", c.ci95[1]),
                ("baseline_value", c.baseline_value),
                ("variant_value", c.variant_value),
                ("p_holm", c.p_holm),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect(),
            message: line(c),
            detail: Some(Detail {
                metric: c.metric.clone(),
                baseline: c.baseline.clone(),
                variant: c.variant.clone(),
                delta_pct: c.delta_pct,
                ci95: c.ci95,
                significant: c.significant,
            }),
        })
        .collect()
}

/// `ab_<metric>_pct` and `ab_<metric>_hi` on each variant's row, for
/// thresholds.
pub(crate) fn annotate(rows: &mut [SummaryRow], comparisons: &[Comparison]) {
    for c in comparisons {
        if let Some(r) = rows.iter_mut().find(|r| r.cell == c.variant_cell) {
            r.metrics
                .insert(format!("ab_{}_pct", c.metric), c.delta_pct);
            r.metrics.insert(format!("ab_{}_hi", c.metric), c.ci95[1]);
        }
    }
}

/// A baseline cell has no `ab_*` figures: thresholds reading them judge
/// the variants only.
pub(crate) fn exempt(plan: &Plan, expr: &crate::plan::expr::Expr, row: &SummaryRow) -> bool {
    let Some(ab) = &plan.analysis.ab else {
        return false;
    };
    let reads_ab = expr.comparisons().iter().any(|c| {
        [&c.lhs, &c.rhs].into_iter().any(|op| match op {
            crate::plan::expr::Operand::Ident { name, .. }
            | crate::plan::expr::Operand::Aggregate { arg: name, .. } => name.starts_with("ab_"),
            crate::plan::expr::Operand::Literal(_) => false,
        })
    });
    reads_ab && row.matrix.get(&ab.axis) == Some(&ab.baseline)
}

/// `ab.csv`: the other axes, then one row per comparison.
pub fn csv(axes: &[String], axis: &str, comparisons: &[Comparison]) -> String {
    let others: Vec<&String> = axes.iter().filter(|a| *a != axis).collect();
    let mut out = String::new();
    for a in &others {
        let _ = write!(out, "{a},");
    }
    out.push_str("metric,baseline,variant,baseline_value,variant_value,delta_pct,ci95_low,ci95_high,confidence,significant,p_value,p_holm\n");
    for c in comparisons {
        for a in &others {
            let _ = write!(out, "{},", c.fixed.get(*a).map_or("", String::as_str));
        }
        let _ = writeln!(
            out,
            "{},{},{},{:.3},{:.3},{:.3},{:.3},{:.3},{:.5},{},{:.5},{:.5}",
            c.metric,
            c.baseline,
            c.variant,
            c.baseline_value,
            c.variant_value,
            c.delta_pct,
            c.ci95[0],
            c.ci95[1],
            c.confidence,
            c.significant,
            c.p_value,
            c.p_holm
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::matrix::CellValues;
    use crate::results::CellStatus;
    use crate::results::seconds::{Second, parse_timeline};

    /// Two cells of the demo target with identical settings (4 slots, 20 ms
    /// lognormal service time, 4 users), 3 repetitions of 10 s each, their
    /// repetitions run alternately A B B A A B: timeline.csv as written.
    const AA_A: &str = include_str!("../../tests/fixtures/ab/aa-a.csv");
    const AA_B: &str = include_str!("../../tests/fixtures/ab/aa-b.csv");

    fn row(variant: &str, seconds: Vec<Vec<Second>>) -> SummaryRow {
        let matrix: CellValues = [("variant".to_string(), MatrixValue::Str(variant.into()))]
            .into_iter()
            .collect();
        let mut r =
            SummaryRow::unmeasured(&format!("variant{variant}"), &matrix, CellStatus::Complete);
        r.metrics.insert("rps".into(), 1.0);
        r.seconds = seconds;
        r
    }

    fn slo() -> IndexMap<String, f64> {
        [("p99".to_string(), 1000.0), ("fail_rate".to_string(), 1.0)]
            .into_iter()
            .collect()
    }

    /// The B cell's seconds `factor` times slower: latencies up, throughput
    /// down (closed model: users / latency).
    fn slower(reps: &[Vec<Second>], factor: f64) -> Vec<Vec<Second>> {
        reps.iter()
            .map(|r| {
                r.iter()
                    .map(|s| Second {
                        requests: (s.requests / factor).round(),
                        failures: s.failures,
                        p50: s.p50 * factor,
                        p95: s.p95 * factor,
                        p99: s.p99 * factor,
                    })
                    .collect()
            })
            .collect()
    }

    #[test]
    fn the_fixture_is_three_repetitions_of_ten_seconds() {
        for text in [AA_A, AA_B] {
            let reps = parse_timeline(text);
            assert_eq!(reps.len(), 3);
            assert!(
                reps.iter().all(|r| r.len() >= 9),
                "{:?}",
                reps.iter().map(Vec::len).collect::<Vec<_>>()
            );
        }
    }

    #[test]
    fn an_identical_variant_is_not_significant_in_19_of_20_seeds() {
        let rows = [
            row("a", parse_timeline(AA_A)),
            row("b", parse_timeline(AA_B)),
        ];
        let mut flagged = 0;
        for seed in 0..20 {
            let c = compare_rows("variant", None, &slo(), &rows, (seed, 2000));
            // rps, p50, p95 and the SLO's p99; no failure to compare.
            let metrics: Vec<&str> = c.iter().map(|c| c.metric.as_str()).collect();
            assert_eq!(metrics, ["rps", "p50", "p95", "p99"]);
            if c.iter().any(|c| c.significant) {
                flagged += 1;
            }
            for c in &c {
                assert_eq!(c.significant, c.ci95[0] > 0.0 || c.ci95[1] < 0.0, "{c:?}");
            }
        }
        assert!(
            flagged <= 1,
            "{flagged} of 20 seeds found a difference between identical cells"
        );
    }

    #[test]
    fn a_20_percent_slower_variant_is_significant_with_the_interval_holding_plus_20() {
        let a = parse_timeline(AA_A);
        let b = slower(&parse_timeline(AA_B), 1.2);
        let c = compare_rows(
            "variant",
            None,
            &slo(),
            &[row("a", a), row("b", b)],
            (0, 2000),
        );
        let of = |m: &str| c.iter().find(|c| c.metric == m).unwrap();
        for m in ["p50", "p95", "p99"] {
            let c = of(m);
            assert!(c.significant, "{c:?}");
            assert!(c.ci95[0] <= 20.0 && 20.0 <= c.ci95[1], "{c:?}");
            assert_eq!(c.baseline, "a");
            assert_eq!(c.variant, "b");
        }
        let rps = of("rps");
        assert!(rps.significant && rps.ci95[1] < 0.0, "{rps:?}");
        assert!(
            rps.ci95[0] <= -100.0 / 6.0 && -100.0 / 6.0 <= rps.ci95[1],
            "{rps:?}"
        );
        // Holm: four comparisons, the smallest p-value judged at 0.05 / 4.
        assert!(
            c.iter().any(|c| (c.confidence - 0.9875).abs() < 1e-9),
            "{c:?}"
        );
        let line = line(of("p95"));
        assert!(
            line.starts_with("b p95 +") && line.ends_with("), significant"),
            "{line}"
        );
        assert!(line.contains("(95% CI +"), "{line}");
        let found = findings("variant", &c);
        assert_eq!(found.len(), 4);
        assert_eq!(found[2].severity, Severity::Warning);
        let json = serde_json::to_value(&found[2]).unwrap();
        assert_eq!(json["kind"], "ab");
        assert_eq!(json["metric"], "p95");
        assert_eq!(json["significant"], true);
        assert_eq!(json["ci95"].as_array().unwrap().len(), 2);
    }

    #[test]
    fn variants_are_compared_within_each_combination_of_the_other_axes() {
        let a = parse_timeline(AA_A);
        let with = |variant: &str, users: i64, secs: &Vec<Vec<Second>>| {
            let mut r = row(variant, secs.clone());
            r.matrix.insert("users".into(), MatrixValue::Int(users));
            r.cell = format!("variant{variant}_users{users}");
            r
        };
        let slow = slower(&a, 1.2);
        let rows = [
            with("a", 4, &a),
            with("b", 4, &slow),
            with("a", 8, &a),
            with("b", 8, &a),
        ];
        let c = compare_rows("variant", None, &IndexMap::new(), &rows, (0, 1000));
        assert_eq!(c.len(), 6);
        assert!(c.iter().all(|c| c.baseline == "a" && c.variant == "b"));
        let p95: Vec<(&str, bool)> = c
            .iter()
            .filter(|c| c.metric == "p95")
            .map(|c| (c.fixed["users"].as_str(), c.significant))
            .collect();
        assert_eq!(p95, [("4", true), ("8", false)]);
        let text = csv(&["variant".into(), "users".into()], "variant", &c);
        assert!(text.starts_with("users,metric,baseline,variant,"), "{text}");
        assert_eq!(text.lines().count(), 7);
        assert!(
            line(&c[5]).starts_with("users=8: b p95: no significant difference (CI "),
            "{}",
            line(&c[5])
        );
        let mut annotated = rows.to_vec();
        annotate(&mut annotated, &c);
        assert!(annotated[0].metric("ab_p95_pct").is_none());
        assert_eq!(annotated[1].metric("ab_p95_hi"), Some(c[2].ci95[1]));
    }

    /// The power table of docs/ab.md: from the recorded A/A noise, the
    /// smallest change found 80% of the time by one comparison at 95%.
    /// `cargo test power_table -- --ignored --nocapture`.
    #[test]
    #[ignore]
    fn power_table() {
        let (a, b) = (parse_timeline(AA_A), parse_timeline(AA_B));
        let z80 = 0.8416;
        println!("repeats | rps | p50 | p95 | p99   (smallest change, %, found 80% of the time)");
        let mut at3 = Vec::new();
        for r in 1..=3 {
            let mut cells = Vec::new();
            for stat in [Stat::Rps, Stat::P50, Stat::P95, Stat::P99] {
                let mut widths = Vec::new();
                // Every choice of r repetitions per side, averaged.
                for skip in 0..3 {
                    let pick = |reps: &Vec<Vec<Second>>| -> Vec<Vec<Second>> {
                        reps.iter().cycle().skip(skip).take(r).cloned().collect()
                    };
                    let d = bootstrap::difference(&pick(&a), &pick(&b), stat, skip as u64, 4000)
                        .unwrap();
                    let (lo, hi) = d.interval(0.05);
                    widths.push((hi - lo) / 2.0);
                }
                let half = widths.iter().sum::<f64>() / widths.len() as f64;
                cells.push(half / 1.96 * (1.96 + z80));
            }
            if r == 3 {
                at3 = cells.clone();
            }
            println!(
                "{r} | {}",
                cells
                    .iter()
                    .map(|c| format!("{c:.1}"))
                    .collect::<Vec<_>>()
                    .join(" | ")
            );
        }
        for r in [5, 10, 20] {
            let scale = (3.0 / r as f64).sqrt();
            println!(
                "{r} (extrapolated) | {}",
                at3.iter()
                    .map(|c| format!("{:.1}", c * scale))
                    .collect::<Vec<_>>()
                    .join(" | ")
            );
        }
    }
}
