//! Analysis findings on hand-built summary rows with known answers, and the
//! charts rendered from them.

use indexmap::IndexMap;
use loadmatrix::analysis::{Analysis, AnalysisInput, FindingKind, Severity, analyze};
use loadmatrix::plan::Cost;
use loadmatrix::plan::matrix::{CellValues, MatrixValue, cell_id};
use loadmatrix::report::charts::{charts, mermaid_xy, svg_line_chart};
use loadmatrix::results::CellStatus;
use loadmatrix::results::SummaryRow;

fn row(axes: &[(&str, i64)], metrics: &[(&str, f64)]) -> SummaryRow {
    let matrix: CellValues = axes
        .iter()
        .map(|(k, v)| (k.to_string(), MatrixValue::Int(*v)))
        .collect();
    SummaryRow {
        cell: cell_id(&matrix),
        matrix,
        status: CellStatus::Complete,
        metrics: metrics.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
        client_bound: false,
        bound: None,
        warnings: Vec::new(),
        repeat_rps: Vec::new(),
    }
}

/// Owns what an `AnalysisInput` borrows.
struct Case {
    axes: Vec<String>,
    rows: Vec<SummaryRow>,
    slo: IndexMap<String, f64>,
    cost: Option<Cost>,
    repeats: Option<Vec<Vec<f64>>>,
}

impl Case {
    fn new(axes: &[&str], rows: Vec<SummaryRow>) -> Case {
        Case {
            axes: axes.iter().map(|a| a.to_string()).collect(),
            rows,
            slo: IndexMap::new(),
            cost: None,
            repeats: None,
        }
    }

    fn slo(mut self, metric: &str, limit: f64) -> Case {
        self.slo.insert(metric.into(), limit);
        self
    }

    fn cost(mut self, per_replica_hour: f64, per_worker_hour: f64) -> Case {
        self.cost = Some(Cost {
            per_replica_hour,
            per_worker_hour,
        });
        self
    }

    fn run(&self) -> Analysis {
        let of = |name: &str| -> Vec<u64> {
            self.rows
                .iter()
                .map(|r| r.matrix.get(name).and_then(|v| v.as_f64()).unwrap_or(1.0) as u64)
                .collect()
        };
        let repeats = self.repeats.clone().unwrap_or_else(|| {
            self.rows
                .iter()
                .map(|r| r.metrics.get("rps").copied().into_iter().collect())
                .collect()
        });
        analyze(&AnalysisInput {
            axes: &self.axes,
            rows: &self.rows,
            slo: &self.slo,
            cost: self.cost.as_ref(),
            replicas_of: of("replicas"),
            workers_of: of("workers"),
            repeats,
        })
    }
}

fn kinds(a: &Analysis, kind: FindingKind) -> Vec<&loadmatrix::analysis::Finding> {
    a.of_kind(kind).collect()
}

fn replicas_series(rps: &[(i64, f64)], users: i64) -> Vec<SummaryRow> {
    rps.iter()
        .map(|&(n, r)| {
            row(
                &[("replicas", n), ("users", users)],
                &[("rps", r), ("p95", 100.0), ("fail_pct", 0.0)],
            )
        })
        .collect()
}

#[test]
fn linear_scaling_has_efficiency_one() {
    let mut rows = replicas_series(&[(1, 100.0), (2, 200.0), (4, 400.0)], 400);
    rows.extend(replicas_series(&[(1, 150.0), (2, 300.0), (4, 600.0)], 800));
    let a = Case::new(&["replicas", "users"], rows).run();
    let eff: Vec<_> = kinds(&a, FindingKind::ScalingEfficiency)
        .into_iter()
        .filter(|f| f.dimension.as_deref() == Some("replicas"))
        .collect();
    assert_eq!(eff.len(), 4, "{eff:#?}");
    for f in &eff {
        assert!((f.numbers["efficiency"] - 1.0).abs() < 0.01, "{f:#?}");
        assert_eq!(f.severity, Severity::Info);
    }
    let first = eff.iter().find(|f| f.numbers["to"] == 2.0).unwrap();
    assert_eq!(
        first.message,
        "2x replicas (1 -> 2) gave 2.00x RPS (efficiency 1.00) at users=400"
    );
    assert_eq!(
        first.cells,
        [
            "replicas1_users400".to_string(),
            "replicas2_users400".into()
        ]
    );
    assert!(
        kinds(&a, FindingKind::Plateau)
            .iter()
            .all(|f| f.dimension.as_deref() != Some("replicas"))
    );
    let series: Vec<_> = a
        .scaling
        .iter()
        .filter(|s| s.dimension == "replicas")
        .collect();
    assert_eq!(series.len(), 2);
    assert_eq!(series[0].fixed["users"], "400");
    assert_eq!(series[0].points[2], (4.0, 400.0, 100.0));
}

#[test]
fn sublinear_scaling_is_flagged() {
    let rows = replicas_series(&[(1, 100.0), (2, 150.0), (4, 180.0)], 100);
    let a = Case::new(&["replicas", "users"], rows).run();
    let eff = kinds(&a, FindingKind::ScalingEfficiency);
    let at4 = eff.iter().find(|f| f.numbers["to"] == 4.0).unwrap();
    assert!((at4.numbers["efficiency"] - 0.45).abs() < 1e-9);
    assert_eq!(at4.severity, Severity::Critical);
    let at2 = eff.iter().find(|f| f.numbers["to"] == 2.0).unwrap();
    assert_eq!(at2.severity, Severity::Warning);
}

#[test]
fn plateau_is_the_first_step_under_five_percent() {
    let rows = replicas_series(
        &[(1, 100.0), (2, 200.0), (4, 400.0), (8, 410.0), (16, 415.0)],
        400,
    );
    let a = Case::new(&["replicas", "users"], rows).run();
    let p = kinds(&a, FindingKind::Plateau);
    assert_eq!(p.len(), 1, "{p:#?}");
    assert_eq!(p[0].numbers["from"], 4.0);
    assert_eq!(p[0].numbers["to"], 8.0);
    assert!((p[0].numbers["gain_pct"] - 2.5).abs() < 1e-9);
    assert_eq!(p[0].severity, Severity::Warning);
    assert!(p[0].message.contains("4 -> 8"), "{}", p[0].message);
    assert!(
        a.recommendations
            .iter()
            .any(|r| r.starts_with("Adding replicas stops paying off past 4 (users=400)")),
        "{:#?}",
        a.recommendations
    );
}

#[test]
fn plateau_below_the_peak_load_is_no_scaling_problem() {
    // 100 users cannot keep more than 2 replicas busy; 400 users can.
    let mut rows = replicas_series(&[(1, 100.0), (2, 180.0), (4, 182.0)], 100);
    rows.extend(replicas_series(&[(1, 100.0), (2, 200.0), (4, 390.0)], 400));
    let a = Case::new(&["replicas", "users"], rows).run();
    let p: Vec<_> = kinds(&a, FindingKind::Plateau)
        .into_iter()
        .filter(|f| f.dimension.as_deref() == Some("replicas"))
        .collect();
    assert_eq!(p.len(), 1);
    assert_eq!(p[0].severity, Severity::Info);
    assert!(p[0].message.ends_with("at users=100"), "{}", p[0].message);
    let low = kinds(&a, FindingKind::ScalingEfficiency)
        .into_iter()
        .find(|f| f.numbers["to"] == 4.0 && f.message.ends_with("users=100"))
        .unwrap();
    assert_eq!(low.severity, Severity::Info);
    assert!(
        !a.recommendations
            .iter()
            .any(|r| r.starts_with("Adding replicas")),
        "{:#?}",
        a.recommendations
    );
}

#[test]
fn more_workers_giving_more_rps_is_client_bound() {
    let rows = vec![
        row(
            &[("replicas", 2), ("workers", 4), ("users", 400)],
            &[("rps", 1000.0), ("p95", 80.0), ("client_cpu_pct", 60.0)],
        ),
        row(
            &[("replicas", 2), ("workers", 8), ("users", 400)],
            &[("rps", 1300.0), ("p95", 70.0), ("client_cpu_pct", 40.0)],
        ),
        // Enough generator at replicas 1: 4 -> 8 workers gains only 2%.
        row(
            &[("replicas", 1), ("workers", 4), ("users", 400)],
            &[("rps", 600.0), ("p95", 120.0), ("client_cpu_pct", 40.0)],
        ),
        row(
            &[("replicas", 1), ("workers", 8), ("users", 400)],
            &[("rps", 612.0), ("p95", 120.0), ("client_cpu_pct", 30.0)],
        ),
    ];
    let a = Case::new(&["replicas", "workers", "users"], rows).run();
    let cb = kinds(&a, FindingKind::ClientBound);
    assert_eq!(cb.len(), 1, "{cb:#?}");
    let f = cb[0];
    assert_eq!(f.cells[0], "replicas2_workers4_users400");
    assert_eq!(f.dimension.as_deref(), Some("workers"));
    assert!((f.numbers["gain_pct"] - 30.0).abs() < 1e-9);
    assert_eq!(
        f.message,
        "The load generator limits replicas2_workers4_users400: 8 workers gave 30.0% more RPS than 4 (1000.0 -> 1300.0) at replicas=2, users=400"
    );
}

#[test]
fn hot_client_cpu_is_client_bound() {
    let mut flagged = row(
        &[("replicas", 2)],
        &[("rps", 900.0), ("client_cpu_pct", 50.0)],
    );
    flagged.client_bound = true;
    let rows = vec![
        row(
            &[("replicas", 1)],
            &[("rps", 500.0), ("client_cpu_pct", 95.0)],
        ),
        flagged,
        row(
            &[("replicas", 4)],
            &[("rps", 950.0), ("client_cpu_pct", 89.9)],
        ),
    ];
    let a = Case::new(&["replicas"], rows).run();
    let cb = kinds(&a, FindingKind::ClientBound);
    let cells: Vec<&str> = cb.iter().map(|f| f.cells[0].as_str()).collect();
    assert_eq!(cells, ["replicas1", "replicas2"]);
    assert_eq!(cb[0].numbers["client_cpu_pct"], 95.0);
}

#[test]
fn slo_excludes_cells_from_capacity_and_optimal() {
    let rows = vec![
        row(
            &[("replicas", 1)],
            &[("rps", 400.0), ("p95", 200.0), ("fail_pct", 0.0)],
        ),
        row(
            &[("replicas", 2)],
            &[("rps", 700.0), ("p95", 450.0), ("fail_pct", 0.5)],
        ),
        // Highest RPS, but over the p95 limit.
        row(
            &[("replicas", 4)],
            &[("rps", 1000.0), ("p95", 612.3), ("fail_pct", 0.0)],
        ),
        // Fast enough, but failing too often.
        row(
            &[("replicas", 8)],
            &[("rps", 1100.0), ("p95", 100.0), ("fail_pct", 5.0)],
        ),
    ];
    let a = Case::new(&["replicas"], rows)
        .slo("p95", 500.0)
        .slo("fail_rate", 1.0)
        .run();
    let cap = kinds(&a, FindingKind::Capacity);
    assert_eq!(cap.len(), 1);
    assert_eq!(cap[0].cells, ["replicas2"]);
    assert_eq!(cap[0].numbers["rps"], 700.0);
    let opt = kinds(&a, FindingKind::OptimalConfig);
    assert_eq!(opt.len(), 1);
    assert_eq!(opt[0].cells, ["replicas2"]);
    let ex = kinds(&a, FindingKind::SloExcluded);
    let cells: Vec<&str> = ex.iter().map(|f| f.cells[0].as_str()).collect();
    assert_eq!(cells, ["replicas4", "replicas8"]);
    assert_eq!(
        ex[0].message,
        "replicas4 misses the SLO: p95 = 612.3 ms (limit p95 <= 500.0 ms)"
    );
    assert_eq!(ex[1].numbers["fail_rate"], 5.0);
    assert!(kinds(&a, FindingKind::NoCellMeetsSlo).is_empty());
}

#[test]
fn missing_slo_metric_does_not_meet_the_slo() {
    let rows = vec![
        row(&[("replicas", 1)], &[("rps", 400.0), ("p95", 200.0)]),
        row(&[("replicas", 2)], &[("rps", 800.0)]),
    ];
    let a = Case::new(&["replicas"], rows).slo("p95", 500.0).run();
    assert_eq!(kinds(&a, FindingKind::Capacity)[0].cells, ["replicas1"]);
    let ex = kinds(&a, FindingKind::SloExcluded);
    assert_eq!(
        ex[0].message,
        "replicas2 misses the SLO: p95 was not measured"
    );
}

#[test]
fn no_cell_meeting_the_slo_is_critical() {
    let rows = replicas_series(&[(1, 100.0), (2, 200.0)], 100);
    let a = Case::new(&["replicas", "users"], rows)
        .slo("p95", 50.0)
        .run();
    let none = kinds(&a, FindingKind::NoCellMeetsSlo);
    assert_eq!(none.len(), 1);
    assert_eq!(none[0].severity, Severity::Critical);
    assert_eq!(none[0].numbers["best_p95"], 100.0);
    assert!(kinds(&a, FindingKind::Capacity).is_empty());
    assert!(kinds(&a, FindingKind::OptimalConfig).is_empty());
    assert_eq!(a.findings[0].kind, FindingKind::NoCellMeetsSlo);
}

#[test]
fn cost_ranking_prefers_rps_per_dollar_over_rps() {
    let rows = vec![
        row(
            &[("replicas", 1), ("workers", 1)],
            &[("rps", 300.0), ("p95", 100.0)],
        ),
        row(
            &[("replicas", 2), ("workers", 1)],
            &[("rps", 620.0), ("p95", 100.0)],
        ),
        row(
            &[("replicas", 4), ("workers", 1)],
            &[("rps", 900.0), ("p95", 100.0)],
        ),
    ];
    // Costs per hour: 1.1, 2.1, 4.1 -> RPS per $/h: 272.7, 295.2, 219.5.
    let a = Case::new(&["replicas", "workers"], rows)
        .slo("p95", 500.0)
        .cost(1.0, 0.1)
        .run();
    let opt = kinds(&a, FindingKind::OptimalConfig);
    assert_eq!(opt.len(), 1);
    assert_eq!(opt[0].cells, ["replicas2_workers1"]);
    assert!((opt[0].numbers["cost_per_hour"] - 2.1).abs() < 1e-9);
    assert!((opt[0].numbers["rps_per_dollar_hour"] - 620.0 / 2.1).abs() < 1e-9);
    assert!(
        opt[0]
            .message
            .contains("the highest-RPS cell replicas4_workers1 serves 900.0 RPS for $4.10/h"),
        "{}",
        opt[0].message
    );
    assert_eq!(
        kinds(&a, FindingKind::Capacity)[0].cells,
        ["replicas4_workers1"]
    );
    assert!(a.recommendations[0].starts_with("Run replicas2_workers1"));
}

#[test]
fn without_cost_the_optimal_config_is_the_highest_rps() {
    let rows = replicas_series(&[(1, 100.0), (2, 190.0)], 100);
    let a = Case::new(&["replicas", "users"], rows).run();
    assert_eq!(
        kinds(&a, FindingKind::OptimalConfig)[0].cells,
        ["replicas2_users100"]
    );
}

#[test]
fn failure_onset_is_the_first_level_over_the_limit() {
    let mk = |users, fail| {
        row(
            &[("replicas", 1), ("users", users)],
            &[("rps", 100.0), ("p95", 50.0), ("fail_pct", fail)],
        )
    };
    let rows = vec![mk(100, 0.1), mk(200, 0.5), mk(400, 3.2), mk(800, 9.0)];
    let a = Case::new(&["replicas", "users"], rows.clone()).run();
    let on = kinds(&a, FindingKind::FailureOnset);
    assert_eq!(on.len(), 1, "{on:#?}");
    assert_eq!(on[0].numbers["level"], 400.0);
    assert_eq!(on[0].numbers["limit_pct"], 1.0);
    assert_eq!(
        on[0].message,
        "Failures start at users=400: 3.20% of requests failed (limit 1%) at replicas=1; users=200 had 0.50%"
    );
    assert!(
        a.recommendations
            .iter()
            .any(|r| r == "Keep users below 400 at replicas=1: failures pass 1% from there."),
        "{:#?}",
        a.recommendations
    );

    // The SLO's fail_rate is the limit when there is one.
    let a = Case::new(&["replicas", "users"], rows)
        .slo("fail_rate", 0.2)
        .run();
    let on = kinds(&a, FindingKind::FailureOnset);
    assert_eq!(on[0].numbers["level"], 200.0);
}

#[test]
fn latency_degradation_with_users() {
    let mk = |users, p95| {
        row(
            &[("replicas", 2), ("users", users)],
            &[("rps", 100.0), ("p95", p95)],
        )
    };
    let rows = vec![mk(100, 50.0), mk(200, 80.0), mk(400, 200.0)];
    let a = Case::new(&["replicas", "users"], rows).run();
    let d = kinds(&a, FindingKind::LatencyDegradation);
    assert_eq!(d.len(), 1);
    let f = d[0];
    assert_eq!(f.numbers["ratio"], 4.0);
    assert!((f.numbers["ms_per_unit"] - 0.5).abs() < 1e-9);
    assert_eq!(f.numbers["steepest_from"], 200.0);
    assert_eq!(f.severity, Severity::Warning);
    assert_eq!(
        f.message,
        "p95 grows 4.00x from users=100 to users=400 (50.0 ms -> 200.0 ms, +0.500 ms per added user) at replicas=2; steepest between 200 and 400 (+0.600 ms per added user)"
    );
}

#[test]
fn unstable_repeats_warn_above_ten_percent_cv() {
    let rows = vec![
        row(&[("replicas", 1)], &[("rps", 100.0)]),
        row(&[("replicas", 2)], &[("rps", 200.0)]),
    ];
    let mut case = Case::new(&["replicas"], rows);
    case.repeats = Some(vec![vec![100.0, 130.0, 70.0], vec![200.0, 202.0, 198.0]]);
    let a = case.run();
    let u = kinds(&a, FindingKind::Unstable);
    assert_eq!(u.len(), 1, "{u:#?}");
    assert_eq!(u[0].cells, ["replicas1"]);
    assert!((u[0].numbers["cv_pct"] - 30.0).abs() < 1e-9);
    assert_eq!(u[0].numbers["repeats"], 3.0);
}

#[test]
fn empty_input_has_no_findings() {
    let a = Case::new(&["replicas", "users"], Vec::new())
        .slo("p95", 100.0)
        .cost(1.0, 1.0)
        .run();
    assert!(a.findings.is_empty(), "{:#?}", a.findings);
    assert!(a.scaling.is_empty());
    assert!(charts(&a, &["replicas".into(), "users".into()]).is_empty());
    let a = Case::new(&[], Vec::new()).run();
    assert!(a.findings.is_empty());
}

#[test]
fn single_cell_gives_capacity_only() {
    let rows = vec![row(&[], &[("rps", 123.0), ("p95", 10.0)])];
    let a = Case::new(&[], rows).slo("p95", 100.0).run();
    let k: Vec<FindingKind> = a.findings.iter().map(|f| f.kind).collect();
    assert_eq!(k, [FindingKind::OptimalConfig, FindingKind::Capacity]);
    assert_eq!(a.findings[1].cells, ["default"]);
    assert!(a.scaling.is_empty());
    assert!(charts(&a, &[]).is_empty());
}

#[test]
fn failed_cells_nan_and_missing_metrics_do_not_panic() {
    let mut failed = row(&[("replicas", 8), ("users", 100)], &[("rps", 5000.0)]);
    failed.status = CellStatus::Failed;
    let mut skipped = row(&[("replicas", 16), ("users", 100)], &[]);
    skipped.status = CellStatus::Interrupted;
    let mut degraded = row(
        &[("replicas", 4), ("users", 100)],
        &[("rps", 380.0), ("p95", 90.0)],
    );
    degraded.status = CellStatus::Degraded;
    let mut text_axis = row(&[("replicas", 2)], &[("rps", 150.0)]);
    text_axis
        .matrix
        .insert("users".into(), MatrixValue::Str("lots".into()));
    let rows = vec![
        row(
            &[("replicas", 1), ("users", 100)],
            &[
                ("rps", 100.0),
                ("p95", f64::NAN),
                ("fail_pct", f64::INFINITY),
            ],
        ),
        row(&[("replicas", 2), ("users", 100)], &[("rps", f64::NAN)]),
        row(&[("replicas", 3), ("users", 100)], &[]),
        degraded,
        failed,
        skipped,
        text_axis,
        row(&[("users", 100)], &[("rps", 1.0)]),
    ];
    let mut case = Case::new(&["replicas", "users"], rows)
        .slo("p95", 100.0)
        .slo("rps", 50.0)
        .cost(f64::NAN, 1.0);
    case.repeats = Some(vec![vec![f64::NAN, 1.0], vec![]]);
    let a = case.run();
    let cap = kinds(&a, FindingKind::Capacity);
    assert_eq!(cap[0].cells, ["replicas4_users100"], "{:#?}", a.findings);
    assert!(
        a.findings
            .iter()
            .all(|f| !f.cells.iter().any(|c| c.starts_with("replicas8")))
    );
    assert!(
        a.recommendations
            .iter()
            .any(|r| r.starts_with("2 cell(s) were not measured")),
        "{:#?}",
        a.recommendations
    );
    let json = serde_json::to_string(&a).unwrap();
    assert!(!json.contains("NaN"));
    let axes = vec!["replicas".to_string(), "users".to_string()];
    for c in charts(&a, &axes) {
        assert_balanced_svg(&c.svg);
    }
}

#[test]
fn charts_for_replicas_and_users() {
    let mut rows = Vec::new();
    for (users, base) in [(100, 100.0), (200, 180.0)] {
        for (n, f) in [(1, 1.0), (2, 1.9), (4, 3.5)] {
            rows.push(row(
                &[("replicas", n), ("users", users)],
                &[("rps", base * f), ("p95", users as f64 / n as f64)],
            ));
        }
    }
    let axes = vec!["replicas".to_string(), "users".to_string()];
    let a = Case::new(&["replicas", "users"], rows).run();
    let cs = charts(&a, &axes);
    let ids: Vec<&str> = cs.iter().map(|c| c.id.as_str()).collect();
    assert_eq!(ids, ["rps-vs-replicas", "p95-vs-users"]);
    assert_eq!(line_count(&cs[0].mermaid), 2);
    assert!(
        cs[0]
            .mermaid
            .contains("line \"users=100\" [100.00, 190.00, 350.00]")
    );
    assert_eq!(line_count(&cs[1].mermaid), 3);
    assert_eq!(cs[1].legend, ["replicas=1", "replicas=2", "replicas=4"]);
    for c in &cs {
        assert_balanced_svg(&c.svg);
        assert!(c.svg.contains(&c.title));
    }

    // No replicas or users axis: RPS against the first numeric axis.
    let rows = vec![
        row(&[("batch", 1)], &[("rps", 10.0)]),
        row(&[("batch", 8)], &[("rps", 40.0)]),
    ];
    let a = Case::new(&["batch"], rows).run();
    let cs = charts(&a, &["batch".into()]);
    assert_eq!(cs.len(), 1);
    assert_eq!(cs[0].id, "rps-vs-batch");
}

fn line_count(mermaid: &str) -> usize {
    mermaid
        .lines()
        .filter(|l| l.trim_start().starts_with("line "))
        .count()
}

#[test]
fn mermaid_block_has_one_line_per_series() {
    let series = vec![
        ("a \"quoted\"".to_string(), vec![(1.0, 10.0), (2.0, 20.0)]),
        ("b".to_string(), vec![(2.0, 5.0), (4.0, 8.0), (1.0, 1.0)]),
        ("c".to_string(), vec![(1.0, 3.0), (4.0, f64::NAN)]),
        // A missing category in the middle is interpolated.
        ("d".to_string(), vec![(1.0, 10.0), (4.0, 40.0)]),
    ];
    let m = mermaid_xy("RPS vs replicas", "replicas", "RPS", &series);
    assert!(m.starts_with("```mermaid\nxychart-beta\n"), "{m}");
    assert!(m.trim_end().ends_with("```"));
    assert_eq!(line_count(&m), 4, "{m}");
    assert!(
        m.contains("x-axis \"replicas\" [\"1\", \"2\", \"4\"]"),
        "{m}"
    );
    assert!(m.contains("line \"a 'quoted'\" [10.00, 20.00]"), "{m}");
    assert!(m.contains("line \"b\" [1.00, 5.00, 8.00]"), "{m}");
    assert!(m.contains("line \"c\" [3.00]"), "{m}");
    assert!(m.contains("line \"d\" [10.00, 20.00, 40.00]"), "{m}");
    let empty = mermaid_xy("t", "x", "y", &[]);
    assert!(empty.starts_with("```mermaid"));
    assert_eq!(line_count(&empty), 1);
}

#[test]
fn svg_is_a_balanced_document() {
    let series = vec![
        (
            "users=100 <&>".to_string(),
            vec![(1.0, 100.0), (2.0, 190.0)],
        ),
        ("users=200".to_string(), vec![(1.0, 180.0), (2.0, 300.0)]),
    ];
    let svg = svg_line_chart("RPS vs replicas", "replicas", "RPS", &series);
    assert_balanced_svg(&svg);
    assert!(svg.contains("users=100 &lt;&amp;&gt;"));
    assert!(svg.contains("<polyline") || svg.contains("<path"));
    for odd in [
        vec![],
        vec![("x".to_string(), vec![(1.0, f64::NAN)])],
        vec![("one".to_string(), vec![(3.0, 7.0)])],
        vec![("flat".to_string(), vec![(1.0, 0.0), (2.0, 0.0)])],
        vec![(
            "extreme".to_string(),
            vec![
                (-1e300, 1e300),
                (1e300, -1e300),
                (0.0, 1e-300),
                (1e-300, 0.0),
            ],
        )],
        vec![(
            "tiny".to_string(),
            vec![(1e15, 1.0), (1e15 + 0.125, 1.0 + 1e-12)],
        )],
    ] {
        assert_balanced_svg(&svg_line_chart("t", "x", "y", &odd));
    }
}

/// Starts with `<svg`, declares the SVG namespace, and every element that
/// opens is closed in order.
fn assert_balanced_svg(svg: &str) {
    assert!(svg.starts_with("<svg"), "{}", &svg[..svg.len().min(80)]);
    assert!(svg.contains("xmlns=\"http://www.w3.org/2000/svg\""));
    let mut stack: Vec<String> = Vec::new();
    let mut rest = svg;
    while let Some(start) = rest.find('<') {
        let end = rest[start..].find('>').expect("unterminated tag") + start;
        let tag = &rest[start + 1..end];
        rest = &rest[end + 1..];
        if tag.starts_with('?') || tag.starts_with('!') {
            continue;
        }
        if let Some(name) = tag.strip_prefix('/') {
            assert_eq!(stack.pop().as_deref(), Some(name.trim()), "in {svg}");
        } else if !tag.ends_with('/') {
            let name = tag.split_whitespace().next().unwrap_or_default();
            stack.push(name.to_string());
        }
    }
    assert!(stack.is_empty(), "unclosed {stack:?}");
    assert!(!rest.contains('>'), "stray '>' after the last tag");
}

/// Not a test: how long analyze() takes for a 24-cell matrix.
/// `cargo nextest run --run-ignored only bench_24_cells --no-capture`
#[test]
#[ignore]
fn bench_24_cells() {
    let mut rows = Vec::new();
    for replicas in [1, 2, 4, 8] {
        for workers in [2, 4] {
            for users in [100, 200, 400] {
                let rps =
                    (replicas as f64 * 120.0).min(users as f64 * 2.0) * (workers as f64).sqrt();
                rows.push(row(
                    &[
                        ("replicas", replicas),
                        ("workers", workers),
                        ("users", users),
                    ],
                    &[
                        ("rps", rps),
                        ("p95", users as f64 / replicas as f64),
                        ("fail_pct", users as f64 / replicas as f64 / 100.0),
                        ("client_cpu_pct", 40.0 + users as f64 / 10.0),
                    ],
                ));
            }
        }
    }
    let case = Case::new(&["replicas", "workers", "users"], rows)
        .slo("p95", 150.0)
        .slo("fail_rate", 1.0)
        .cost(0.5, 0.1);
    let _warm = case.run();
    let n = 20;
    let t = std::time::Instant::now();
    for _ in 0..n {
        std::hint::black_box(case.run());
    }
    let per = t.elapsed() / n;
    let a = case.run();
    for f in &a.findings {
        println!("{:?} {:?}: {}", f.kind, f.severity, f.message);
    }
    for r in &a.recommendations {
        println!("-> {r}");
    }
    let t = std::time::Instant::now();
    let cs = charts(&a, &case.axes);
    if let Ok(dir) = std::env::var("LOADMATRIX_BENCH_CHARTS") {
        for c in &cs {
            let _ = std::fs::write(format!("{dir}/{}.svg", c.id), &c.svg);
            let _ = std::fs::write(format!("{dir}/{}.md", c.id), &c.mermaid);
        }
    }
    println!(
        "analyze(24 cells): {per:?} per call, {} findings; charts: {:?} for {}",
        a.findings.len(),
        t.elapsed(),
        cs.len()
    );
}

#[test]
fn arbitrary_rows_never_panic() {
    let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let values = [0.0, -1.0, 1.0, 5.0, 1e9, f64::NAN, f64::INFINITY, 250.0];
    let statuses = [
        CellStatus::Complete,
        CellStatus::Degraded,
        CellStatus::Failed,
        CellStatus::Interrupted,
        CellStatus::Pending,
    ];
    let axes = ["replicas", "workers", "users", "rate", "mode"];
    for _ in 0..60 {
        let n = (next() % 14) as usize;
        let mut rows = Vec::new();
        for _ in 0..n {
            let mut matrix = CellValues::new();
            for a in axes {
                match next() % 5 {
                    0 => {}
                    1 => {
                        matrix.insert(a.into(), MatrixValue::Str("x".into()));
                    }
                    2 => {
                        matrix.insert(a.into(), MatrixValue::Float(values[(next() % 8) as usize]));
                    }
                    _ => {
                        matrix.insert(a.into(), MatrixValue::Int((next() % 4) as i64));
                    }
                }
            }
            let mut metrics = IndexMap::new();
            for m in ["rps", "p95", "fail_pct", "client_cpu_pct", "p99"] {
                if next() % 4 != 0 {
                    metrics.insert(m.to_string(), values[(next() % 8) as usize]);
                }
            }
            rows.push(SummaryRow {
                cell: cell_id(&matrix),
                matrix,
                status: statuses[(next() % 5) as usize],
                metrics,
                client_bound: next() % 7 == 0,
                bound: None,
                warnings: Vec::new(),
                repeat_rps: Vec::new(),
            });
        }
        let mut case = Case::new(&axes, rows);
        if next() % 2 == 0 {
            case = case.slo("p95", values[(next() % 8) as usize]);
        }
        if next() % 2 == 0 {
            case = case.slo("rps", 10.0).slo("fail_rate", 1.0);
        }
        if next() % 2 == 0 {
            case = case.cost(values[(next() % 8) as usize], values[(next() % 8) as usize]);
        }
        case.repeats = Some(
            (0..(next() % 16))
                .map(|_| {
                    (0..(next() % 4))
                        .map(|_| values[(next() % 8) as usize])
                        .collect()
                })
                .collect(),
        );
        let a = case.run();
        serde_json::to_string(&a).unwrap();
        for c in charts(&a, &case.axes) {
            assert_balanced_svg(&c.svg);
        }
    }
}
