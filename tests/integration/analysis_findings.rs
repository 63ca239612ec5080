//! Analysis findings on hand-built summary rows with known answers, and the
//! charts rendered from them. Every row carries what bounded it, as a run
//! measures it: throughput verdicts come from `service`-bound cells only.

use indexmap::IndexMap;
use loadmatrix::analysis::{Analysis, AnalysisInput, FindingKind, Role, Roles, Severity, analyze};
use loadmatrix::plan::Cost;
use loadmatrix::plan::matrix::{CellValues, MatrixValue, cell_id};
use loadmatrix::report::charts::{charts, mermaid_xy, svg_line_chart};
use loadmatrix::results::CellStatus;
use loadmatrix::results::SummaryRow;
use loadmatrix::results::record::Bound;

fn row(axes: &[(&str, i64)], metrics: &[(&str, f64)]) -> SummaryRow {
    let matrix: CellValues = axes
        .iter()
        .map(|(k, v)| (k.to_string(), MatrixValue::Int(*v)))
        .collect();
    let mut metrics: IndexMap<String, f64> =
        metrics.iter().map(|(k, v)| (k.to_string(), *v)).collect();
    // What a run writes: every request counted, all of them successful
    // unless the row says otherwise.
    if let Some(&rps) = metrics.get("rps") {
        let fail = metrics.get("fail_pct").copied().unwrap_or(0.0);
        metrics
            .entry("ok_rps".into())
            .or_insert(rps * (1.0 - fail / 100.0));
        metrics
            .entry("requests".into())
            .or_insert((rps * 10.0).round());
        let requests = metrics["requests"];
        metrics
            .entry("failures".into())
            .or_insert((requests * fail / 100.0).round());
    }
    SummaryRow {
        cell: cell_id(&matrix),
        matrix,
        status: CellStatus::Complete,
        metrics,
        client_bound: false,
        bound: None,
        warnings: Vec::new(),
        repeat_rps: Vec::new(),
        by_name: Default::default(),
        seconds: Vec::new(),
    }
}

/// The roles a plan would give these axes, were each read by the field of
/// its name (`replicas = "{{ matrix.replicas }}"` and so on).
fn roles(axes: &[String]) -> Roles {
    axes.iter().fold(Roles::default(), |roles, a| {
        let role = match a.as_str() {
            "replicas" => Role::Replicas,
            "workers" => Role::Workers,
            "users" => Role::Users,
            "rate" => Role::Rate,
            _ => return roles,
        };
        roles.with(a.as_str(), role)
    })
}

fn bound(mut r: SummaryRow, b: Bound) -> SummaryRow {
    r.bound = Some(b);
    r
}

/// Owns what an `AnalysisInput` borrows.
struct Case {
    axes: Vec<String>,
    rows: Vec<SummaryRow>,
    slo: IndexMap<String, f64>,
    cost: Option<Cost>,
    repeats: Option<Vec<Vec<f64>>>,
    think_s: Option<f64>,
}

impl Case {
    fn new(axes: &[&str], rows: Vec<SummaryRow>) -> Case {
        Case {
            axes: axes.iter().map(|a| a.to_string()).collect(),
            rows,
            slo: IndexMap::new(),
            cost: None,
            repeats: None,
            think_s: Some(0.0),
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
            roles: &roles(&self.axes),
            rows: &self.rows,
            slo: &self.slo,
            cost: self.cost.as_ref(),
            replicas_of: of("replicas"),
            workers_of: of("workers"),
            repeats,
            think_s: vec![self.think_s; self.rows.len()],
        })
    }
}

fn kinds(a: &Analysis, kind: FindingKind) -> Vec<&loadmatrix::analysis::Finding> {
    a.of_kind(kind).collect()
}

/// Rows along replicas at one load, each service-bound.
fn service_series(rps: &[(i64, f64)], users: i64) -> Vec<SummaryRow> {
    rps.iter()
        .map(|&(n, r)| {
            bound(
                row(
                    &[("replicas", n), ("users", users)],
                    &[
                        ("rps", r),
                        ("p95", 100.0),
                        ("fail_pct", 0.0),
                        ("baseline_ms", 50.0),
                    ],
                ),
                Bound::Service,
            )
        })
        .collect()
}

#[test]
fn linear_scaling_between_service_bound_cells_has_efficiency_one() {
    let rows = service_series(&[(1, 100.0), (2, 200.0), (4, 400.0)], 64);
    let a = Case::new(&["replicas", "users"], rows).run();
    let eff = kinds(&a, FindingKind::Scaling);
    assert_eq!(eff.len(), 2, "{eff:#?}");
    for f in &eff {
        assert!((f.numbers["efficiency"] - 1.0).abs() < 1e-9, "{f:#?}");
        assert_eq!(f.severity, Severity::Info);
    }
    assert_eq!(
        eff[1].message,
        "replicas 2 -> 4: 200.0 -> 400.0 RPS (+100.0%), efficiency 1.00 against replicas=1; both service-bound at users=64"
    );
    assert!(kinds(&a, FindingKind::Plateau).is_empty());
}

#[test]
fn sublinear_scaling_and_a_plateau_between_service_bound_cells() {
    let rows = service_series(&[(1, 100.0), (2, 130.0), (4, 131.0)], 64);
    let a = Case::new(&["replicas", "users"], rows).run();
    let eff = kinds(&a, FindingKind::Scaling);
    assert!((eff[0].numbers["efficiency"] - 0.65).abs() < 1e-9);
    assert_eq!(eff[0].severity, Severity::Warning);
    assert_eq!(eff[1].severity, Severity::Critical);
    let p = kinds(&a, FindingKind::Plateau);
    assert_eq!(p.len(), 1, "{p:#?}");
    assert_eq!(p[0].numbers["from"], 2.0);
    assert!(
        a.recommendations
            .iter()
            .any(|r| r.contains("look for a shared bottleneck")),
        "{:#?}",
        a.recommendations
    );
}

/// 200 users with 0.5-1 s think time offer ~260 RPS whatever the replica
/// count: 4 and 8 replicas both keep up, so nothing about scaling follows.
#[test]
fn load_bound_cells_make_no_plateau_and_no_capacity() {
    let mk = |n| {
        bound(
            row(
                &[("replicas", n), ("users", 200)],
                &[
                    ("rps", 258.4),
                    ("p95", 31.0),
                    ("offered_rps", 260.0),
                    ("baseline_ms", 20.0),
                ],
            ),
            Bound::Load,
        )
    };
    let mut case = Case::new(&["replicas", "users"], vec![mk(4), mk(8)]).slo("p95", 500.0);
    case.think_s = Some(0.75);
    let a = case.run();
    assert!(
        kinds(&a, FindingKind::Plateau).is_empty(),
        "{:#?}",
        a.findings
    );
    let steps = kinds(&a, FindingKind::Scaling);
    assert_eq!(steps.len(), 1);
    assert!(!steps[0].numbers.contains_key("efficiency"));
    assert!(
        steps[0]
            .message
            .starts_with("replicas 4 -> 8 at users=200: not saturated (both load-bound at ~260.0 RPS offered); raise users to at least"),
        "{}",
        steps[0].message
    );
    let cap = kinds(&a, FindingKind::Capacity);
    assert_eq!(cap.len(), 2);
    assert!(cap.iter().all(|c| c.numbers["reached"] == 0.0));
    assert!(
        cap[1]
            .message
            .contains("at least 258.4 RPS; never saturated"),
        "{}",
        cap[1].message
    );
    assert!(a.findings.iter().all(|f| f.severity != Severity::Critical));
    let recs = a.recommendations.join("\n");
    assert!(!recs.contains("shared bottleneck"), "{recs}");
    assert!(!recs.contains("Plan for at most"), "{recs}");
}

/// 8 users, no think time, a 2-slot x 50 ms target: 40 RPS a replica,
/// 160 offered. 1 and 2 replicas are the limit; 4 and 8 keep up.
#[test]
fn the_users_needed_come_from_the_baseline_and_the_best_replica() {
    let mk = |n, rps, b| {
        bound(
            row(
                &[("replicas", n), ("users", 8)],
                &[
                    ("rps", rps),
                    ("p95", 50.0),
                    ("offered_rps", 160.0),
                    ("baseline_ms", 50.0),
                ],
            ),
            b,
        )
    };
    let rows = vec![
        mk(1, 40.0, Bound::Service),
        mk(2, 80.0, Bound::Service),
        mk(4, 160.0, Bound::Load),
        mk(8, 160.0, Bound::Load),
    ];
    let a = Case::new(&["replicas", "users"], rows).run();
    let steps = kinds(&a, FindingKind::Scaling);
    assert_eq!(steps.len(), 3, "{steps:#?}");
    assert!((steps[0].numbers["efficiency"] - 1.0).abs() < 1e-9);
    // 8 replicas x 40 RPS x (0 s think + 50 ms) = 16 users.
    assert_eq!(steps[2].numbers["needed"], 16.0);
    let cap = kinds(&a, FindingKind::Capacity);
    let at8 = cap.iter().find(|c| c.numbers["replicas"] == 8.0).unwrap();
    assert_eq!(at8.numbers["reached"], 0.0);
    let at2 = cap.iter().find(|c| c.numbers["replicas"] == 2.0).unwrap();
    assert_eq!((at2.numbers["reached"], at2.numbers["rps"]), (1.0, 80.0));
    assert!(
        a.recommendations
            .iter()
            .any(|r| r.contains("replicas=8 was never saturated: raise users to at least 16")),
        "{:#?}",
        a.recommendations
    );
    assert!(kinds(&a, FindingKind::Plateau).is_empty());
}

#[test]
fn more_workers_giving_more_rps_is_client_bound() {
    let rows = vec![
        row(
            &[("workers", 1), ("users", 400)],
            &[("rps", 100.0), ("p95", 10.0)],
        ),
        row(
            &[("workers", 2), ("users", 400)],
            &[("rps", 150.0), ("p95", 10.0)],
        ),
    ];
    let a = Case::new(&["workers", "users"], rows).run();
    let c = kinds(&a, FindingKind::Client);
    assert_eq!(c.len(), 1, "one sentence: {c:#?}");
    assert_eq!(c[0].severity, Severity::Warning);
    assert_eq!(c[0].cells, ["workers1_users400"]);
    assert!(
        c[0].message.contains("more workers gave +50.0%"),
        "{}",
        c[0].message
    );
}

#[test]
fn enough_workers_is_one_sentence() {
    let rows = vec![
        row(
            &[("workers", 4), ("users", 400)],
            &[("rps", 1000.0), ("client_cpu_pct", 4.0)],
        ),
        row(
            &[("workers", 8), ("users", 400)],
            &[("rps", 1012.0), ("client_cpu_pct", 2.0)],
        ),
    ];
    let a = Case::new(&["workers", "users"], rows).run();
    let c = kinds(&a, FindingKind::Client);
    assert_eq!(c.len(), 1);
    assert_eq!(
        c[0].message,
        "4 load-generator workers are enough: 8 gave +1.2% at 4% generator CPU"
    );
    // Workers are never the configuration to deploy.
    assert!(
        a.recommendations.iter().all(|r| !r.contains("workers=")),
        "{:#?}",
        a.recommendations
    );
}

#[test]
fn hot_client_cpu_is_client_bound() {
    let rows = vec![bound(
        row(
            &[("replicas", 1)],
            &[("rps", 100.0), ("client_cpu_pct", 95.0)],
        ),
        Bound::Client,
    )];
    let a = Case::new(&["replicas"], rows).run();
    let c = kinds(&a, FindingKind::Client);
    assert_eq!(c[0].severity, Severity::Warning);
    assert!(
        c[0].message.contains("replicas1 (95% generator CPU)"),
        "{}",
        c[0].message
    );
    // Its figures describe the client: no capacity from it.
    assert!(
        kinds(&a, FindingKind::Capacity)
            .iter()
            .all(|f| f.numbers.get("rps").is_none())
    );
}

#[test]
fn failing_cells_are_never_recommended_nor_capacity() {
    let rows = vec![
        bound(
            row(
                &[("replicas", 1), ("users", 100)],
                &[("rps", 90.0), ("p95", 40.0)],
            ),
            Bound::Service,
        ),
        bound(
            row(
                &[("replicas", 2), ("users", 100)],
                &[("rps", 2709.0), ("p95", 1.0), ("fail_pct", 100.0)],
            ),
            Bound::Failing,
        ),
    ];
    let a = Case::new(&["replicas", "users"], rows)
        .slo("p95", 500.0)
        .run();
    let json = serde_json::to_string(&kinds(&a, FindingKind::Capacity)).unwrap();
    assert!(!json.contains("2709"), "{json}");
    let opt = kinds(&a, FindingKind::Optimal);
    assert_eq!(opt[0].cells, ["replicas1_users100"]);
    assert!(
        a.recommendations.iter().all(|r| !r.contains("replicas2")),
        "{:#?}",
        a.recommendations
    );
}

/// Per load level, the cheapest replica count under the SLO, with what a
/// million successful requests cost.
#[test]
fn optimal_is_the_cheapest_replica_count_per_load_level() {
    let mut rows = Vec::new();
    for (users, p95s) in [
        (200, [90.0, 40.0, 30.0, 30.0]),
        (800, [900.0, 400.0, 128.0, 60.0]),
    ] {
        for (n, p95) in [1, 2, 4, 8].into_iter().zip(p95s) {
            let rps = (users as f64 * 1.2).min(100.0 * n as f64);
            rows.push(bound(
                row(
                    &[("replicas", n), ("users", users)],
                    &[("rps", rps), ("p95", p95)],
                ),
                Bound::Service,
            ));
        }
    }
    let a = Case::new(&["replicas", "users"], rows)
        .slo("p95", 150.0)
        .cost(0.90, 0.05)
        .run();
    let opt = kinds(&a, FindingKind::Optimal);
    assert_eq!(opt.len(), 2, "{opt:#?}");
    assert_eq!(opt[0].numbers["replicas"], 1.0);
    assert_eq!(opt[1].numbers["replicas"], 4.0);
    // The load generator's worker costs money too: 4 x $0.90 + 1 x $0.05.
    assert!((opt[1].numbers["cost_per_hour"] - 3.65).abs() < 1e-9);
    // $3.65/h for 400 RPS: 1.44M requests an hour, $2.535 per 1M.
    assert!((opt[1].numbers["cost_per_million_requests"] - 3.65 / 1.44).abs() < 1e-9);
    assert!(
        opt[1].message.starts_with(
            "for users=800: 4 replicas (cheapest under the SLO: $3.65/h (4 replicas x $0.90 + 1 worker x $0.05)"
        ),
        "{}",
        opt[1].message
    );
    assert!(
        a.recommendations
            .iter()
            .any(|r| r.starts_with("Deploy 4 replicas for users=800")),
        "{:#?}",
        a.recommendations
    );
}

#[test]
fn no_cell_meeting_the_slo_is_critical() {
    let rows = service_series(&[(1, 100.0), (2, 200.0)], 100);
    let a = Case::new(&["replicas", "users"], rows)
        .slo("p95", 10.0)
        .run();
    let n = kinds(&a, FindingKind::NoCellMeetsSlo);
    assert_eq!(n.len(), 1);
    assert_eq!(n[0].severity, Severity::Critical);
    assert!(
        kinds(&a, FindingKind::Optimal)
            .iter()
            .all(|f| f.severity == Severity::Warning)
    );
}

#[test]
fn usl_fit_over_service_bound_capacity_recovers_sigma_and_kappa() {
    let (lambda, sigma, kappa) = (100.0, 0.05, 0.002);
    let x = |n: f64| lambda * n / (1.0 + sigma * (n - 1.0) + kappa * n * (n - 1.0));
    let rows: Vec<SummaryRow> = [1, 2, 4, 8, 16]
        .iter()
        .map(|&n| {
            bound(
                row(
                    &[("replicas", n), ("users", 4096)],
                    &[("rps", x(n as f64)), ("p95", 100.0)],
                ),
                Bound::Service,
            )
        })
        .collect();
    let a = Case::new(&["replicas", "users"], rows).run();
    let u = kinds(&a, FindingKind::Usl);
    assert_eq!(u.len(), 1);
    assert!(
        (u[0].numbers["sigma"] - sigma).abs() / sigma < 0.05,
        "{:#?}",
        u[0]
    );
    assert!(
        (u[0].numbers["kappa"] - kappa).abs() / kappa < 0.05,
        "{:#?}",
        u[0]
    );
    assert!(u[0].message.contains("predictions, not measurements"));
    assert!(u[0].numbers.contains_key("predicted_rps_at_32"));
    let predicted: Vec<_> = a.scaling.iter().filter(|s| s.predicted).collect();
    assert_eq!(predicted.len(), 1);
}

#[test]
fn usl_is_refused_with_a_reason() {
    // Two replica counts only: no fit, not even a refusal to show.
    let a = Case::new(
        &["replicas", "users"],
        service_series(&[(1, 100.0), (2, 190.0)], 64),
    )
    .run();
    assert!(kinds(&a, FindingKind::Usl).is_empty());
    // Superlinear capacity cannot be a USL curve.
    let rows = service_series(&[(1, 100.0), (2, 400.0), (4, 1600.0)], 64);
    let a = Case::new(&["replicas", "users"], rows).run();
    let u = kinds(&a, FindingKind::Usl);
    assert!(
        u[0].message
            .starts_with("No Universal Scalability Law fit over replicas:"),
        "{}",
        u[0].message
    );
}

#[test]
fn the_latency_knee_along_users() {
    let rows: Vec<SummaryRow> = (1..=12)
        .map(|i| {
            let users = 4 * i;
            let p95 = 50.0 + 4.0 * (users as f64 - 24.0).max(0.0);
            row(
                &[("replicas", 2), ("users", users)],
                &[("rps", 100.0), ("p95", p95)],
            )
        })
        .collect();
    let a = Case::new(&["replicas", "users"], rows).run();
    let k = kinds(&a, FindingKind::Knee);
    assert_eq!(k.len(), 1, "{k:#?}");
    assert!((k[0].numbers["at"] - 24.0).abs() <= 0.5, "{:#?}", k[0]);
    assert!(
        k[0].message
            .starts_with("p95 starts to climb at about users=24 at replicas=2"),
        "{}",
        k[0].message
    );
}

#[test]
fn overlapping_repeat_intervals_are_not_significant() {
    let mut rows = service_series(&[(4, 917.0), (8, 935.0)], 800);
    rows[0].metrics.insert("rps_ci95".into(), 15.0);
    rows[1].metrics.insert("rps_ci95".into(), 12.0);
    let a = Case::new(&["replicas", "users"], rows).run();
    let s = kinds(&a, FindingKind::Scaling);
    assert_eq!(
        s[0].message,
        "8 replicas is not significantly faster than 4: 935.0±12.0 vs 917.0±15.0 RPS (95% intervals overlap) at users=800"
    );
    assert_eq!(s[0].numbers["significant"], 0.0);
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
    let d = kinds(&a, FindingKind::Latency);
    assert_eq!(d.len(), 1);
    let f = d[0];
    assert_eq!(f.numbers["ratio"], 4.0);
    assert!((f.numbers["ms_per_unit"] - 0.5).abs() < 1e-9);
    assert_eq!(f.numbers["steepest_from"], 200.0);
    assert_eq!(f.severity, Severity::Warning);
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
}

#[test]
fn empty_input_has_no_findings() {
    let a = Case::new(&["replicas", "users"], Vec::new())
        .slo("p95", 100.0)
        .cost(1.0, 1.0)
        .run();
    assert!(a.findings.is_empty(), "{:#?}", a.findings);
    assert!(a.scaling.is_empty());
    let axes = ["replicas".to_string(), "users".to_string()];
    assert!(charts(&a, &axes, &roles(&axes)).is_empty());
    let a = Case::new(&[], Vec::new()).run();
    assert!(a.findings.is_empty());
}

#[test]
fn single_cell_gives_optimal_and_capacity() {
    let rows = vec![row(&[], &[("rps", 123.0), ("p95", 10.0)])];
    let a = Case::new(&[], rows).slo("p95", 100.0).run();
    let k: Vec<FindingKind> = a.findings.iter().map(|f| f.kind).collect();
    assert_eq!(k, [FindingKind::Optimal, FindingKind::Capacity]);
    assert_eq!(a.findings[1].cells, ["default"]);
    assert!(a.scaling.is_empty());
    assert!(charts(&a, &[], &Roles::default()).is_empty());
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
    assert!(
        cap.iter().any(|c| c.cells == ["replicas4_users100"]),
        "{:#?}",
        a.findings
    );
    assert!(
        a.findings
            .iter()
            .all(|f| !f.cells.iter().any(|c| c.starts_with("replicas8")))
    );
    assert!(
        a.recommendations
            .iter()
            .any(|r| r.starts_with("2 cell(s) have no figures")),
        "{:#?}",
        a.recommendations
    );
    let json = serde_json::to_string(&a).unwrap();
    assert!(!json.contains("NaN"));
    let axes = vec!["replicas".to_string(), "users".to_string()];
    for c in charts(&a, &axes, &roles(&axes)) {
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
    let cs = charts(&a, &axes, &roles(&axes));
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
    let cs = charts(&a, &["batch".into()], &Roles::default());
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
    let cs = charts(&a, &case.axes, &roles(&case.axes));
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
                by_name: Default::default(),
                seconds: Vec::new(),
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
        for c in charts(&a, &case.axes, &roles(&case.axes)) {
            assert_balanced_svg(&c.svg);
        }
    }
}

#[test]
fn per_request_objectives_judge_cells_by_goodput() {
    // Streamed completions, judged per request against a 500 ms time to
    // first token: 1 replica serves 100 RPS but only half of them in time.
    let rows: Vec<SummaryRow> = [(1, 100.0, 50.0), (2, 200.0, 99.5), (4, 300.0, 100.0)]
        .into_iter()
        .map(|(n, rps, good_pct)| {
            bound(
                row(
                    &[("replicas", n), ("users", 64)],
                    &[
                        ("rps", rps),
                        ("p95", 2000.0),
                        ("ttft_p95", 900.0 / n as f64),
                        ("goodput_pct", good_pct),
                        ("goodput_rps", rps * good_pct / 100.0),
                    ],
                ),
                Bound::Service,
            )
        })
        .collect();
    let a = Case::new(&["replicas", "users"], rows)
        .slo("ttft", 500.0)
        .run();
    let excluded = kinds(&a, FindingKind::SloExcluded);
    assert_eq!(excluded.len(), 1, "{excluded:#?}");
    assert!(
        excluded[0].message.contains(
            "goodput_pct = 50% (limit goodput_pct >= 99% of requests meeting ttft <= 500.0 ms)"
        ),
        "{}",
        excluded[0].message
    );
    let opt = kinds(&a, FindingKind::Optimal);
    assert_eq!(opt.len(), 1, "{opt:#?}");
    assert_eq!(opt[0].numbers["replicas"], 2.0);
    assert_eq!(opt[0].numbers["rps"], 199.0);
    assert!(
        opt[0].message.contains("199.0 good RPS"),
        "{}",
        opt[0].message
    );
    let cap = kinds(&a, FindingKind::Capacity);
    let two = cap
        .iter()
        .find(|f| f.numbers["replicas"] == 2.0)
        .expect("capacity at 2 replicas");
    assert_eq!(two.numbers["rps"], 199.0);
    assert!(two.message.contains("good RPS"), "{}", two.message);
    assert!(kinds(&a, FindingKind::NoCellMeetsSlo).is_empty());
}
