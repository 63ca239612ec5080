//! Turning the collected query results into findings and recommendations.
//!
//! Every cell carries what bounded it (`client`, `failing`, `load`,
//! `service`). Throughput verdicts (scaling efficiency, plateaus, capacity)
//! are drawn only from `service`-bound cells, where the system under test was
//! the limit; a step into a `load`-bound cell says the cell was not saturated
//! and how much load would saturate it. Cells that failed, or whose figures
//! describe the load generator, are never recommended.

use indexmap::IndexMap;

use super::frame::{Point, SloLimit, Table};
use super::text::{self, at, num, pct};
use super::{
    Analysis, AnalysisInput, CLIENT_CPU_BOUND_PCT, DEFAULT_FAIL_PCT, Finding, FindingKind,
    MORE_WORKERS_GAIN, PLATEAU_GAIN, Role, ScalingSeries, Severity, UNSTABLE_CV,
};
use crate::results::record::Bound;

mod objectives;

struct Ctx<'a> {
    input: &'a AnalysisInput<'a>,
    t: &'a Table,
    findings: Vec<Finding>,
    /// Parts that polars could not compute.
    problems: Vec<String>,
    /// Axis -> "4 (users=400)" where a resource stopped paying off.
    plateaus: IndexMap<String, Vec<String>>,
    /// "Keep users below ..." per failure onset.
    keep_below: Vec<String>,
    /// Per row: meets every SLO limit.
    meets: Vec<bool>,
    /// Recommendations the findings give, in reading order.
    advice: Vec<String>,
}

fn numbers(pairs: &[(&str, f64)]) -> IndexMap<String, f64> {
    pairs
        .iter()
        .filter(|(_, v)| v.is_finite())
        .map(|(k, v)| (k.to_string(), *v))
        .collect()
}

impl Ctx<'_> {
    fn cell(&self, row: usize) -> String {
        self.input
            .rows
            .get(row)
            .map(|r| r.cell.clone())
            .unwrap_or_default()
    }

    fn bound(&self, row: usize) -> Option<Bound> {
        self.input.rows.get(row).and_then(|r| r.bound)
    }

    fn metric(&self, row: usize, name: &str) -> Option<f64> {
        self.input
            .rows
            .get(row)
            .and_then(|r| r.metric(name))
            .filter(|v| v.is_finite())
    }

    /// Successful requests per second: ok_rps, or rps less failures for
    /// runs recorded before ok_rps existed.
    /// What a cell served that counts for capacity: good requests per
    /// second when the SLO has per-request objectives, else successful ones.
    fn served(&self, row: usize) -> f64 {
        if self.goodput() {
            self.metric(row, "goodput_rps").unwrap_or(0.0)
        } else {
            self.ok_rps(row)
        }
    }

    /// The SLO has per-request objectives (ttft, itl, e2e).
    fn goodput(&self) -> bool {
        self.input
            .slo
            .keys()
            .any(|k| crate::metrics::is_per_request(k))
    }

    fn ok_rps(&self, row: usize) -> f64 {
        self.metric(row, "ok_rps")
            .or_else(|| {
                let rps = self.metric(row, "rps")?;
                Some(rps * (1.0 - self.metric(row, "fail_pct").unwrap_or(0.0) / 100.0))
            })
            .unwrap_or(0.0)
    }

    fn replicas(&self, row: usize) -> f64 {
        self.input
            .replicas_of
            .get(row)
            .map_or(f64::NAN, |&v| v as f64)
    }

    /// A cell that may be recommended: it ran, served successful requests,
    /// did not fail beyond the SLO and was not limited by the client.
    fn usable(&self, row: usize) -> bool {
        let Some(r) = self.input.rows.get(row) else {
            return false;
        };
        r.status.is_measured()
            && r.successes() > 0.0
            && !matches!(r.bound, Some(Bound::Failing) | Some(Bound::Client))
            && self.metric(row, "fail_pct").unwrap_or(0.0) <= self.fail_limit()
            && !r.client_bound
    }

    /// The other axes' values of a row, for a series along axis `i`.
    fn fixed(&self, row: usize, i: usize) -> IndexMap<String, String> {
        self.t
            .axes
            .iter()
            .enumerate()
            .filter(|&(a, _)| a != i)
            .filter_map(|(a, axis)| {
                let v = self.t.keys.get(row)?.get(a)?;
                (!v.is_empty()).then(|| (axis.name.clone(), v.clone()))
            })
            .collect()
    }

    fn push(
        &mut self,
        kind: FindingKind,
        severity: Severity,
        cells: Vec<String>,
        dimension: Option<&str>,
        numbers: IndexMap<String, f64>,
        message: String,
    ) {
        self.findings.push(Finding {
            kind,
            severity,
            cells,
            dimension: dimension.map(str::to_string),
            numbers,
            message,
            detail: None,
        });
    }

    fn fail_limit(&self) -> f64 {
        ["fail_rate", "fail_pct"]
            .iter()
            .find_map(|k| self.input.slo.get(*k).copied())
            .filter(|v| v.is_finite())
            .unwrap_or(DEFAULT_FAIL_PCT)
    }

    fn slo_text(&self) -> String {
        self.t
            .slo
            .iter()
            .map(|s| self.limit_text(s))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// One SLO limit in words; goodput names the per-request objectives.
    fn limit_text(&self, s: &SloLimit) -> String {
        let limit = text::limit(&s.metric, s.limit, s.floor);
        if s.metric != "goodput_pct" || !self.goodput() {
            return limit;
        }
        let objectives: Vec<String> = self
            .input
            .slo
            .iter()
            .filter(|(k, _)| crate::metrics::is_per_request(k))
            .map(|(k, v)| format!("{k} <= {}", text::ms(*v)))
            .collect();
        format!("{limit} of requests meeting {}", objectives.join(" and "))
    }

    fn under(&self) -> &'static str {
        if self.t.slo.is_empty() {
            "(no SLO set)"
        } else {
            "under the SLO"
        }
    }

    /// The axis whose values set the offered load (users or rate).
    fn load_axis(&self) -> Option<usize> {
        self.t
            .axes
            .iter()
            .position(|a| a.numeric && a.role.is_load())
    }

    fn replicas_axis(&self) -> Option<usize> {
        self.t
            .axes
            .iter()
            .position(|a| a.numeric && a.role == Role::Replicas)
    }

    /// The best successful RPS per replica any service-bound cell reached:
    /// what one replica can serve, as far as this run has seen.
    fn per_replica(&self) -> Option<f64> {
        (0..self.input.rows.len())
            .filter(|&r| self.bound(r) == Some(Bound::Service) && self.usable(r))
            .map(|r| self.ok_rps(r) / self.replicas(r))
            .filter(|v| v.is_finite() && *v > 0.0)
            .reduce(f64::max)
    }

    /// "users=512" or "rate=640/s": the load that would saturate `replicas`
    /// replicas, from the best per-replica throughput seen and this row's
    /// think time and baseline; none when the run gives no basis for it.
    fn load_needed(&self, row: usize, replicas: f64) -> Option<(String, f64)> {
        let per = self.per_replica().or_else(|| {
            // Never saturated anywhere: what the busiest cell served is a floor.
            (0..self.input.rows.len())
                .filter(|&r| self.usable(r))
                .map(|r| self.ok_rps(r) / self.replicas(r))
                .filter(|v| v.is_finite() && *v > 0.0)
                .reduce(f64::max)
        })?;
        let target = per * replicas;
        // The cell's own load was not enough: ask for clearly more than it.
        let offered = self.metric(row, "offered_rps").unwrap_or(0.0);
        let target = target.max(offered * 1.25);
        match self.input.think_s.get(row).copied().flatten() {
            Some(think) => {
                let cycle = think + self.metric(row, "baseline_ms").unwrap_or(0.0) / 1000.0;
                (cycle > 0.0).then(|| ("users".to_string(), (target * cycle).ceil()))
            }
            None => Some(("rate".to_string(), target.ceil())),
        }
    }

    fn ci(&self, row: usize) -> Option<f64> {
        self.metric(row, "rps_ci95")
    }
}

pub fn all(input: &AnalysisInput, t: &Table) -> Analysis {
    let mut cx = Ctx {
        input,
        t,
        findings: Vec::new(),
        problems: Vec::new(),
        plateaus: IndexMap::new(),
        keep_below: Vec::new(),
        meets: Vec::new(),
        advice: Vec::new(),
    };
    cx.meets = match t.meets() {
        Ok(m) => m,
        Err(e) => {
            cx.problems.push(format!("SLO check: {e}"));
            vec![false; input.rows.len()]
        }
    };
    let measured = match t.measured_rows() {
        Ok(m) => m,
        Err(e) => {
            cx.problems.push(format!("measured cells: {e}"));
            Vec::new()
        }
    };

    let mut scaling = Vec::new();
    let has_load_axis = cx.load_axis().is_some();
    let mut worker_series = Vec::new();
    for (i, axis) in t.axes.iter().enumerate() {
        if !axis.numeric {
            continue;
        }
        let series = match t.series(i) {
            Ok(s) => s,
            Err(e) => {
                cx.problems.push(format!("series along {}: {e}", axis.name));
                continue;
            }
        };
        for s in series {
            let distinct = s.windows(2).filter(|w| w[1].x > w[0].x).count() + 1;
            if distinct < 2 {
                continue;
            }
            let fixed = cx.fixed(s[0].row, i);
            scaling.push(ScalingSeries {
                dimension: axis.name.clone(),
                fixed: fixed.clone(),
                points: s
                    .iter()
                    .map(|p| (p.x, p.rps, p.p95.unwrap_or(f64::NAN)))
                    .collect(),
                predicted: false,
            });
            match axis.role {
                Role::Replicas | Role::Other => resource_steps(&mut cx, &axis.name, &fixed, &s),
                Role::Workers => worker_series.push((axis.name.clone(), fixed.clone(), s.clone())),
                Role::Users | Role::Rate => {
                    degradation(&mut cx, &axis.name, axis.role, &fixed, &s);
                    knee(&mut cx, &axis.name, axis.role, &fixed, &s);
                    onset(&mut cx, &axis.name, &fixed, &s);
                }
            }
        }
    }
    if !has_load_axis {
        failures_without_load_axis(&mut cx, &measured);
    }
    slo_excluded(&mut cx);
    let frontier = capacity(&mut cx, &measured);
    usl(&mut cx, &frontier, &mut scaling);
    optimal(&mut cx, &measured);
    client(&mut cx, &measured, &worker_series);
    unstable(&mut cx);

    cx.findings.sort_by_key(|f| rank(f.kind));
    let recommendations = recommend(&cx, &measured);
    Analysis {
        findings: cx.findings,
        scaling,
        recommendations,
    }
}

/// Findings in reading order: the answer first, then what qualifies it.
fn rank(kind: FindingKind) -> u8 {
    match kind {
        FindingKind::NoCellMeetsSlo => 0,
        FindingKind::Optimal => 1,
        FindingKind::Capacity => 2,
        FindingKind::Client => 3,
        FindingKind::Unstable => 4,
        FindingKind::Scaling => 5,
        FindingKind::Plateau => 6,
        FindingKind::Usl => 7,
        FindingKind::Knee => 8,
        FindingKind::Latency => 9,
        FindingKind::FailureOnset => 10,
        FindingKind::SloExcluded => 11,
        FindingKind::ServerLatency => 12,
        FindingKind::Ab => 13,
    }
}

/// "953.1±12.0" with a repeat interval, else "953.1".
fn rps_ci(cx: &Ctx, row: usize) -> String {
    match cx.ci(row) {
        Some(ci) => format!("{}±{}", text::rps(cx.ok_rps(row)), text::rps(ci)),
        None => text::rps(cx.ok_rps(row)),
    }
}

/// Steps along a resource axis (replicas): efficiency and plateaus between
/// service-bound cells only; a step into a load-bound cell is "not saturated".
fn resource_steps(cx: &mut Ctx, axis: &str, fixed: &IndexMap<String, String>, s: &[Point]) {
    let first_service = s
        .iter()
        .find(|p| cx.bound(p.row) == Some(Bound::Service) && cx.usable(p.row))
        .cloned();
    let mut plateau_found = false;
    for w in s.windows(2) {
        let (a, b) = (&w[0], &w[1]);
        if b.x <= a.x {
            continue;
        }
        let (ba, bb) = (cx.bound(a.row), cx.bound(b.row));
        let cells = vec![cx.cell(a.row), cx.cell(b.row)];
        let (ra, rb) = (cx.ok_rps(a.row), cx.ok_rps(b.row));
        match (ba, bb) {
            (Some(Bound::Service), Some(Bound::Service))
                if cx.usable(a.row) && cx.usable(b.row) =>
            {
                let gain = if ra > 0.0 { rb / ra - 1.0 } else { f64::NAN };
                let (x0, r0) = first_service
                    .as_ref()
                    .map_or((a.x, ra), |f| (f.x, cx.ok_rps(f.row)));
                let eff = if x0 > 0.0 && r0 > 0.0 {
                    rb / (r0 * b.x / x0)
                } else {
                    f64::NAN
                };
                // With repeats, a difference inside both intervals is noise.
                let within_noise = match (cx.ci(a.row), cx.ci(b.row)) {
                    (Some(ca), Some(cb)) => (rb - ra).abs() <= ca + cb,
                    _ => false,
                };
                let severity = match eff {
                    e if within_noise => {
                        if e < 0.8 {
                            Severity::Warning
                        } else {
                            Severity::Info
                        }
                    }
                    e if e < 0.5 => Severity::Critical,
                    e if e < 0.8 => Severity::Warning,
                    _ => Severity::Info,
                };
                let message = if within_noise {
                    format!(
                        "{} {axis} is not significantly faster than {}: {} vs {} RPS (95% intervals overlap){}",
                        num(b.x),
                        num(a.x),
                        rps_ci(cx, b.row),
                        rps_ci(cx, a.row),
                        at(fixed)
                    )
                } else {
                    format!(
                        "{axis} {} -> {}: {} -> {} RPS ({:+.1}%), efficiency {:.2} against {axis}={}; both service-bound{}",
                        num(a.x),
                        num(b.x),
                        rps_ci(cx, a.row),
                        rps_ci(cx, b.row),
                        gain * 100.0,
                        eff,
                        num(x0),
                        at(fixed)
                    )
                };
                cx.push(
                    FindingKind::Scaling,
                    severity,
                    cells.clone(),
                    Some(axis),
                    numbers(&[
                        ("from", a.x),
                        ("to", b.x),
                        ("rps_from", ra),
                        ("rps_to", rb),
                        ("gain_pct", gain * 100.0),
                        ("efficiency", eff),
                        ("significant", if within_noise { 0.0 } else { 1.0 }),
                    ]),
                    message,
                );
                if !plateau_found && gain < PLATEAU_GAIN {
                    plateau_found = true;
                    let place = match text::fixed_label(fixed) {
                        Some(l) => format!("{} ({l})", num(a.x)),
                        None => num(a.x),
                    };
                    cx.plateaus.entry(axis.to_string()).or_default().push(place);
                    let message = format!(
                        "RPS plateaus along {axis} after {}: {} -> {} gained {:+.1}% ({} -> {} RPS) with both cells service-bound{}",
                        num(a.x),
                        num(a.x),
                        num(b.x),
                        gain * 100.0,
                        text::rps(ra),
                        text::rps(rb),
                        at(fixed)
                    );
                    cx.push(
                        FindingKind::Plateau,
                        Severity::Warning,
                        cells,
                        Some(axis),
                        numbers(&[
                            ("from", a.x),
                            ("to", b.x),
                            ("gain_pct", gain * 100.0),
                            ("rps_from", ra),
                            ("rps_to", rb),
                        ]),
                        message,
                    );
                }
            }
            (_, Some(Bound::Load)) => {
                let offered = cx.metric(b.row, "offered_rps").unwrap_or(f64::NAN);
                let both = ba == Some(Bound::Load);
                let state = if both {
                    format!("both load-bound at ~{} RPS offered", text::rps(offered))
                } else {
                    format!(
                        "{} {axis} load-bound at ~{} RPS offered",
                        num(b.x),
                        text::rps(offered)
                    )
                };
                let mut nums = vec![
                    ("from", a.x),
                    ("to", b.x),
                    ("rps_from", ra),
                    ("rps_to", rb),
                    ("offered_rps", offered),
                ];
                let advice = match cx.load_needed(b.row, cx.replicas(b.row)) {
                    Some((what, n)) => {
                        nums.push(("needed", n));
                        let unit = if what == "rate" { "/s" } else { "" };
                        format!(
                            "; raise {what} to at least {}{unit} to measure {} {axis}",
                            num(n),
                            num(b.x)
                        )
                    }
                    None => format!("; raise the load to measure {} {axis}", num(b.x)),
                };
                let message = format!(
                    "{axis} {} -> {}{}: not saturated ({state}){advice}",
                    num(a.x),
                    num(b.x),
                    at(fixed)
                );
                cx.push(
                    FindingKind::Scaling,
                    Severity::Info,
                    cells,
                    Some(axis),
                    numbers(&nums),
                    message,
                );
            }
            _ => {}
        }
    }
}

/// One value of the scaled axis (and of any other resource axis): its
/// label, and the rows that share it.
fn groups_by(
    cx: &Ctx,
    rows: &[usize],
    keep: impl Fn(Role) -> bool,
) -> Vec<(IndexMap<String, String>, Vec<usize>)> {
    let mut out: Vec<(IndexMap<String, String>, Vec<usize>)> = Vec::new();
    for &r in rows {
        let key: IndexMap<String, String> =
            cx.t.axes
                .iter()
                .enumerate()
                .filter(|(_, a)| keep(a.role))
                .filter_map(|(i, a)| {
                    let v = cx.t.keys.get(r)?.get(i)?;
                    (!v.is_empty()).then(|| (a.name.clone(), v.clone()))
                })
                .collect();
        match out.iter_mut().find(|(k, _)| *k == key) {
            Some((_, v)) => v.push(r),
            None => out.push((key, vec![r])),
        }
    }
    out
}

/// Capacity per value of the scaled axis: the most successful RPS a
/// service-bound cell served under the SLO; when none did, what is known
/// (a floor, and where the service saturated but missed the SLO). Returns
/// (replicas, RPS) where the service was the limit, for the USL fit.
fn capacity(cx: &mut Ctx, measured: &[usize]) -> Vec<(f64, f64)> {
    let mut frontier = Vec::new();
    let any_slo_meets = measured.iter().any(|&r| cx.meets[r] && cx.usable(r));
    if !any_slo_meets && !measured.is_empty() && !cx.t.slo.is_empty() {
        no_cell_meets(cx, measured);
    }
    let groups = groups_by(cx, measured, |role| {
        matches!(role, Role::Replicas | Role::Other)
    });
    for (key, rows) in groups {
        let label = text::fixed_label(&key).unwrap_or_else(|| "the tested configuration".into());
        let best = |rs: &mut dyn Iterator<Item = usize>| {
            rs.max_by(|&a, &b| cx.served(a).total_cmp(&cx.served(b)))
        };
        let usable: Vec<usize> = rows.iter().copied().filter(|&r| cx.usable(r)).collect();
        let service = |r: &usize| cx.bound(*r) == Some(Bound::Service);
        let saturated = best(&mut usable.iter().copied().filter(service));
        let reached = best(
            &mut usable
                .iter()
                .copied()
                .filter(|r| service(r) && cx.meets[*r]),
        );
        let floor = best(&mut usable.iter().copied().filter(|&r| cx.meets[r]));
        let replicas = rows.first().map_or(f64::NAN, |&r| cx.replicas(r));
        if let Some(s) = saturated {
            frontier.push((replicas, cx.ok_rps(s)));
            // The USL fit describes throughput, good or not.
        }

        let good = if cx.goodput() { " good" } else { "" };
        let (row, was_reached, message) = match (reached, floor, saturated) {
            (Some(r), _, _) => (
                r,
                true,
                format!(
                    "{label}: capacity {}{good} RPS {} at {} ({}, service-bound)",
                    text::rps(cx.served(r)),
                    cx.under(),
                    cx.cell(r),
                    cx.latency_quote(r)
                ),
            ),
            (None, Some(f), Some(s)) => (
                f,
                false,
                format!(
                    "{label}: at least {}{good} RPS {} ({}); the service saturates at {} RPS ({}) but misses the SLO there ({})",
                    text::rps(cx.served(f)),
                    cx.under(),
                    cx.cell(f),
                    text::rps(cx.ok_rps(s)),
                    cx.cell(s),
                    cx.miss_text(s)
                ),
            ),
            (None, None, Some(s)) => (
                s,
                false,
                format!(
                    "{label}: no cell met the SLO ({}); the service saturates at {} RPS ({}: {})",
                    cx.slo_text(),
                    text::rps(cx.ok_rps(s)),
                    cx.cell(s),
                    cx.miss_text(s)
                ),
            ),
            (None, Some(f), None) if failing_above(cx, &rows, f).is_some() => {
                let over = failing_above(cx, &rows, f).unwrap_or(f);
                (
                    f,
                    false,
                    format!(
                        "{label}: at least {}{good} RPS {} ({}); {} failed ({} failures at ~{} RPS offered), so the capacity lies below that load",
                        text::rps(cx.served(f)),
                        cx.under(),
                        cx.cell(f),
                        cx.cell(over),
                        text::pct(cx.metric(over, "fail_pct").unwrap_or(f64::NAN)),
                        text::rps(cx.metric(over, "offered_rps").unwrap_or(f64::NAN)),
                    ),
                )
            }
            (None, Some(f), None) if cx.bound(f).is_some() => {
                let advice = match cx.load_needed(f, replicas) {
                    Some((what, n)) => {
                        let unit = if what == "rate" { "/s" } else { "" };
                        let a = format!(
                            "raise {what} to at least {}{unit} to find {label}'s capacity",
                            num(n)
                        );
                        cx.advice.push(format!("{label} was never saturated: {a}."));
                        format!("; {a}")
                    }
                    None => String::new(),
                };
                (
                    f,
                    false,
                    format!(
                        "{label}: at least {}{good} RPS; never saturated (every cell there kept up with its load, best at {}){advice}",
                        text::rps(cx.served(f)),
                        cx.cell(f)
                    ),
                )
            }
            (None, Some(f), None) => (
                f,
                false,
                format!(
                    "{label}: at least {}{good} RPS {} at {} (no baseline was measured, so whether the service was the limit is unknown)",
                    text::rps(cx.served(f)),
                    cx.under(),
                    cx.cell(f)
                ),
            ),
            (None, None, None) => {
                if !usable.is_empty() && !cx.t.slo.is_empty() {
                    let message = format!("{label}: no cell met the SLO ({})", cx.slo_text());
                    cx.push(
                        FindingKind::Capacity,
                        Severity::Warning,
                        rows.iter().map(|&r| cx.cell(r)).collect(),
                        None,
                        numbers(&[("replicas", replicas), ("reached", 0.0)]),
                        message,
                    );
                }
                continue;
            }
        };
        let mut nums = vec![
            ("replicas", replicas),
            ("rps", cx.served(row)),
            ("p95", cx.metric(row, "p95").unwrap_or(f64::NAN)),
            ("reached", if was_reached { 1.0 } else { 0.0 }),
        ];
        if let Some(s) = saturated {
            nums.push(("saturated_rps", cx.ok_rps(s)));
        }
        cx.push(
            FindingKind::Capacity,
            Severity::Info,
            vec![cx.cell(row)],
            cx.replicas_axis().map(|i| cx.t.axes[i].name.as_str()),
            numbers(&nums),
            message,
        );
    }
    frontier
}

/// A cell of the group offered more than `best` and failed: the service did
/// not keep up there, so "never saturated" would be false.
fn failing_above(cx: &Ctx, rows: &[usize], best: usize) -> Option<usize> {
    let offered = |r: usize| cx.metric(r, "offered_rps").unwrap_or(f64::NAN);
    rows.iter()
        .copied()
        .filter(|&r| cx.bound(r) == Some(Bound::Failing) && offered(r) > offered(best))
        .max_by(|&a, &b| offered(a).total_cmp(&offered(b)))
}

/// The Universal Scalability Law over the capacity frontier: with three or
/// more replica counts where the service was the limit.
fn usl(cx: &mut Ctx, frontier: &[(f64, f64)], scaling: &mut Vec<ScalingSeries>) {
    let Some(axis) = cx.replicas_axis().map(|i| cx.t.axes[i].name.clone()) else {
        return;
    };
    let mut pts = frontier.to_vec();
    pts.sort_by(|a, b| a.0.total_cmp(&b.0));
    pts.dedup_by(|a, b| a.0 == b.0);
    if pts.len() < 3 {
        return;
    }
    let tested: Vec<f64> = pts.iter().map(|p| p.0).collect();
    match super::usl::fit(&pts) {
        Ok(f) => {
            let predict_at = super::usl::prediction_points(&tested, &f);
            let predictions: Vec<String> = predict_at
                .iter()
                .map(|&n| format!("{} {axis}: {} RPS", num(n), text::rps(f.predict(n))))
                .collect();
            let peak = match f.peak_n {
                Some(n) => format!(
                    "predicted peak at {} {axis} ({} RPS)",
                    num((n * 10.0).round() / 10.0),
                    text::rps(f.predict(n))
                ),
                None => "no predicted peak (no coherency cost measured)".to_string(),
            };
            let message = format!(
                "Universal Scalability Law fit over {} {axis} (service-bound capacity): σ = {:.4} (contention), κ = {:.5} (coherency), R² = {:.3}; {peak}; predictions, not measurements: {}",
                tested
                    .iter()
                    .map(|&n| num(n))
                    .collect::<Vec<_>>()
                    .join(", "),
                f.sigma,
                f.kappa,
                f.r2,
                predictions.join(", ")
            );
            let mut nums = vec![
                ("lambda", f.lambda),
                ("sigma", f.sigma),
                ("kappa", f.kappa),
                ("r2", f.r2),
            ];
            if let Some(n) = f.peak_n {
                nums.push(("peak_n", n));
                nums.push(("peak_rps", f.predict(n)));
            }
            let mut all: Vec<f64> = tested.iter().chain(&predict_at).copied().collect();
            all.sort_by(f64::total_cmp);
            scaling.push(ScalingSeries {
                dimension: axis.clone(),
                fixed: IndexMap::from([("USL".to_string(), "fit".to_string())]),
                points: all.iter().map(|&n| (n, f.predict(n), f64::NAN)).collect(),
                predicted: true,
            });
            let mut n = numbers(&nums);
            for &x in &predict_at {
                n.insert(format!("predicted_rps_at_{}", num(x)), f.predict(x));
            }
            cx.push(
                FindingKind::Usl,
                Severity::Info,
                Vec::new(),
                Some(&axis),
                n,
                message,
            );
        }
        Err(why) => {
            let message = format!("No Universal Scalability Law fit over {axis}: {why}");
            cx.push(
                FindingKind::Usl,
                Severity::Info,
                Vec::new(),
                Some(&axis),
                numbers(&[("points", pts.len() as f64)]),
                message,
            );
        }
    }
}

/// Per load level: the cheapest replica count meeting the SLO (fewest
/// replicas without a cost model). Users and workers are load, not
/// configuration: they are never what is recommended.
fn optimal(cx: &mut Ctx, measured: &[usize]) {
    let load = cx.load_axis().map(|i| cx.t.axes[i].name.clone());
    let groups = groups_by(cx, measured, |role| {
        !matches!(role, Role::Replicas | Role::Workers)
    });
    let price = |p: f64| Some(p).filter(|c| c.is_finite() && *c > 0.0);
    let per_replica_hour = cx.input.cost.and_then(|c| price(c.per_replica_hour));
    let per_worker_hour = cx.input.cost.and_then(|c| price(c.per_worker_hour));
    let priced = per_replica_hour.is_some() || per_worker_hour.is_some();
    // Replicas and load-generator workers both cost money.
    let input = cx.input;
    let cost_of = move |r: usize| {
        let workers = input.workers_of.get(r).copied().unwrap_or(0) as f64;
        let replicas = input.replicas_of.get(r).map_or(f64::NAN, |&v| v as f64);
        replicas * per_replica_hour.unwrap_or(0.0) + workers * per_worker_hour.unwrap_or(0.0)
    };
    for (key, rows) in groups {
        let level = match text::fixed_label(&key) {
            Some(l) => format!("for {l}"),
            None => "at the tested load".to_string(),
        };
        let ok: Vec<usize> = rows
            .iter()
            .copied()
            .filter(|&r| cx.meets[r] && cx.usable(r))
            .collect();
        let pick = ok.iter().copied().min_by(|&a, &b| {
            let cost = if priced {
                cost_of(a).total_cmp(&cost_of(b))
            } else {
                std::cmp::Ordering::Equal
            };
            cost.then(cx.replicas(a).total_cmp(&cx.replicas(b)))
                .then(cx.served(b).total_cmp(&cx.served(a)))
                .then(
                    cx.metric(a, "p95")
                        .unwrap_or(f64::INFINITY)
                        .total_cmp(&cx.metric(b, "p95").unwrap_or(f64::INFINITY)),
                )
        });
        let Some(r) = pick else {
            if !cx.t.slo.is_empty() && !rows.is_empty() {
                let message = format!(
                    "{level}: no tested replica count met the SLO ({}); test more replicas or less load",
                    cx.slo_text()
                );
                cx.push(
                    FindingKind::Optimal,
                    Severity::Warning,
                    rows.iter().map(|&r| cx.cell(r)).collect(),
                    load.as_deref(),
                    IndexMap::new(),
                    message,
                );
            }
            continue;
        };
        let replicas = cx.replicas(r);
        let rps = cx.served(r);
        let p95 = cx.metric(r, "p95").unwrap_or(f64::NAN);
        let mut nums = vec![("replicas", replicas), ("rps", rps), ("p95", p95)];
        let why = if priced {
            let cost_h = cost_of(r);
            let per_million = if rps > 0.0 {
                cost_h / (rps * 3600.0) * 1e6
            } else {
                f64::NAN
            };
            let per_dollar = if cost_h > 0.0 {
                rps * 3600.0 / cost_h
            } else {
                f64::NAN
            };
            nums.extend([
                ("cost_per_hour", cost_h),
                ("cost_per_million_requests", per_million),
                ("requests_per_dollar", per_dollar),
            ]);
            let parts = match per_worker_hour {
                Some(w) => {
                    let workers = cx.input.workers_of.get(r).copied().unwrap_or(0);
                    format!(
                        " ({} replica{} x ${:.2} + {workers} worker{} x ${w:.2})",
                        num(replicas),
                        if replicas == 1.0 { "" } else { "s" },
                        per_replica_hour.unwrap_or(0.0),
                        if workers == 1 { "" } else { "s" },
                    )
                }
                None => String::new(),
            };
            format!(
                "cheapest {}: ${cost_h:.2}/h{parts}, ${per_million:.3} per 1M successful requests, {} requests per $",
                cx.under(),
                text::big(per_dollar)
            )
        } else {
            format!("fewest replicas {}", cx.under())
        };
        let message = format!(
            "{level}: {} replica{} ({why}; {} {}RPS, {})",
            num(replicas),
            if replicas == 1.0 { "" } else { "s" },
            text::rps(rps),
            if cx.goodput() { "good " } else { "" },
            cx.latency_quote(r)
        );
        cx.advice.push(format!(
            "Deploy {} replica{} {level} ({why}).",
            num(replicas),
            if replicas == 1.0 { "" } else { "s" }
        ));
        cx.push(
            FindingKind::Optimal,
            Severity::Info,
            vec![cx.cell(r)],
            load.as_deref(),
            numbers(&nums),
            message,
        );
    }
}

/// Whether the load generator limited anything, in one sentence.
fn client(
    cx: &mut Ctx,
    measured: &[usize],
    workers: &[(String, IndexMap<String, String>, Vec<Point>)],
) {
    let hot: Vec<usize> = measured
        .iter()
        .copied()
        .filter(|&r| {
            cx.bound(r) == Some(Bound::Client)
                || cx.input.rows[r].client_bound
                || cx
                    .metric(r, "client_cpu_pct")
                    .is_some_and(|c| c >= CLIENT_CPU_BOUND_PCT)
        })
        .collect();
    // More workers giving clearly more throughput: the fewer were too few.
    let mut short: Vec<(usize, usize, f64)> = Vec::new();
    let mut enough: Option<(f64, f64, f64, f64)> = None;
    for (_, _, s) in workers {
        let (Some(lo), Some(hi)) = (s.first(), s.iter().max_by(|a, b| a.x.total_cmp(&b.x))) else {
            continue;
        };
        if hi.x <= lo.x {
            continue;
        }
        let (rl, rh) = (cx.ok_rps(lo.row), cx.ok_rps(hi.row));
        let gain = if rl > 0.0 { rh / rl - 1.0 } else { f64::NAN };
        if gain > MORE_WORKERS_GAIN {
            short.push((lo.row, hi.row, gain));
        } else {
            let cpu = cx.metric(lo.row, "client_cpu_pct").unwrap_or(f64::NAN);
            if enough.is_none_or(|(_, _, g, _)| gain > g) {
                enough = Some((lo.x, hi.x, gain, cpu));
            }
        }
    }
    let workers_axis = workers.first().map(|(a, _, _)| a.clone());
    let (severity, cells, message, nums) = if !hot.is_empty() || !short.is_empty() {
        let mut parts: Vec<String> = hot
            .iter()
            .map(|&r| {
                format!(
                    "{} ({}% generator CPU)",
                    cx.cell(r),
                    num(cx.metric(r, "client_cpu_pct").unwrap_or(f64::NAN).round())
                )
            })
            .collect();
        for &(lo, hi, gain) in &short {
            parts.push(format!(
                "{} (more workers gave {:+.1}% in {})",
                cx.cell(lo),
                gain * 100.0,
                cx.cell(hi)
            ));
        }
        let mut cells: Vec<String> = hot.iter().map(|&r| cx.cell(r)).collect();
        cells.extend(short.iter().map(|&(lo, _, _)| cx.cell(lo)));
        cells.dedup();
        (
            Severity::Warning,
            cells,
            format!(
                "The load generator was the bottleneck in these cells, so their figures describe the client, not the service: {}",
                list(&parts)
            ),
            numbers(&[("cells", (hot.len() + short.len()) as f64)]),
        )
    } else if let (Some((lo, hi, gain, cpu)), Some(axis)) = (enough, workers_axis) {
        (
            Severity::Info,
            Vec::new(),
            format!(
                "{} load-generator {axis} are enough: {} gave {:+.1}% at {}% generator CPU",
                num(lo),
                num(hi),
                gain * 100.0,
                num(cpu.round())
            ),
            numbers(&[
                ("workers", lo),
                ("more_workers", hi),
                ("gain_pct", gain * 100.0),
                ("client_cpu_pct", cpu),
            ]),
        )
    } else {
        let max_cpu = measured
            .iter()
            .filter_map(|&r| cx.metric(r, "client_cpu_pct"))
            .reduce(f64::max);
        let Some(max_cpu) = max_cpu else { return };
        (
            Severity::Info,
            Vec::new(),
            format!(
                "The load generator was not the bottleneck: at most {}% generator CPU (the limit is {}%)",
                num(max_cpu.round()),
                num(CLIENT_CPU_BOUND_PCT)
            ),
            numbers(&[("max_client_cpu_pct", max_cpu)]),
        )
    };
    cx.push(FindingKind::Client, severity, cells, None, nums, message);
}

/// Where p95 starts to climb along the load axis, per series.
fn knee(cx: &mut Ctx, axis: &str, role: Role, fixed: &IndexMap<String, String>, s: &[Point]) {
    let pts: Vec<(f64, f64)> = s.iter().filter_map(|p| Some((p.x, p.p95?))).collect();
    let Some(k) = super::knee::knee(&pts) else {
        return;
    };
    let unit = if role == Role::Rate {
        "req/s of rate"
    } else {
        "user"
    };
    let message = format!(
        "p95 starts to climb at about {axis}={}{}: {:+.3} ms per {unit} before, {:+.3} ms per {unit} after",
        num((k.at * 10.0).round() / 10.0),
        at(fixed),
        k.slope_before,
        k.slope_after
    );
    let cells = s.iter().map(|p| cx.cell(p.row)).collect();
    cx.push(
        FindingKind::Knee,
        Severity::Info,
        cells,
        Some(axis),
        numbers(&[
            ("at", k.at),
            ("slope_before", k.slope_before),
            ("slope_after", k.slope_after),
        ]),
        message,
    );
}

fn degradation(
    cx: &mut Ctx,
    axis: &str,
    role: Role,
    fixed: &IndexMap<String, String>,
    s: &[Point],
) {
    let pts: Vec<(&Point, f64)> = s.iter().filter_map(|p| Some((p, p.p95?))).collect();
    let (Some(&(a, pa)), Some(&(b, pb))) = (pts.first(), pts.last()) else {
        return;
    };
    if b.x <= a.x {
        return;
    }
    let unit = if role == Role::Rate {
        "added req/s of rate"
    } else {
        "added user"
    };
    let slope = (pb - pa) / (b.x - a.x);
    let ratio = if pa > 0.0 { pb / pa } else { f64::NAN };
    let steepest = pts
        .windows(2)
        .filter(|w| w[1].0.x > w[0].0.x)
        .map(|w| {
            (
                w[0].0.x,
                w[1].0.x,
                (w[1].1 - w[0].1) / (w[1].0.x - w[0].0.x),
            )
        })
        .max_by(|x, y| x.2.total_cmp(&y.2));
    let grows = if ratio.is_finite() {
        format!("p95 grows {ratio:.2}x")
    } else {
        "p95 grows".to_string()
    };
    let mut message = format!(
        "{grows} from {axis}={} to {axis}={} ({} -> {}, {:+.3} ms per {unit}){}",
        num(a.x),
        num(b.x),
        text::ms(pa),
        text::ms(pb),
        slope,
        at(fixed)
    );
    let mut nums = vec![
        ("from", a.x),
        ("to", b.x),
        ("p95_from", pa),
        ("p95_to", pb),
        ("ratio", ratio),
        ("ms_per_unit", slope),
    ];
    if let Some((x1, x2, st)) = steepest.filter(|_| pts.len() > 2) {
        message.push_str(&format!(
            "; steepest between {} and {} ({:+.3} ms per {unit})",
            num(x1),
            num(x2),
            st
        ));
        nums.extend([
            ("steepest_from", x1),
            ("steepest_to", x2),
            ("steepest_ms_per_unit", st),
        ]);
    }
    let severity = if ratio >= 2.0 {
        Severity::Warning
    } else {
        Severity::Info
    };
    let cells = vec![cx.cell(a.row), cx.cell(b.row)];
    cx.push(
        FindingKind::Latency,
        severity,
        cells,
        Some(axis),
        numbers(&nums),
        message,
    );
}

fn onset(cx: &mut Ctx, axis: &str, fixed: &IndexMap<String, String>, s: &[Point]) {
    let limit = cx.fail_limit();
    let Some(k) = s.iter().position(|p| p.fail_pct.is_some_and(|f| f > limit)) else {
        return;
    };
    let p = &s[k];
    let fail = p.fail_pct.unwrap_or(f64::NAN);
    let mut nums = vec![("level", p.x), ("fail_pct", fail), ("limit_pct", limit)];
    let mut cells = vec![cx.cell(p.row)];
    let (message, severity) = if k == 0 {
        (
            format!(
                "Failures exceed {}% already at the lowest {axis} tested, {axis}={}: {} of requests failed{}",
                num(limit),
                num(p.x),
                pct(fail),
                at(fixed)
            ),
            Severity::Critical,
        )
    } else {
        let prev = &s[k - 1];
        let before = prev
            .fail_pct
            .map(|f| format!("; {axis}={} had {}", num(prev.x), pct(f)))
            .unwrap_or_default();
        nums.push(("prev_level", prev.x));
        if let Some(f) = prev.fail_pct {
            nums.push(("prev_fail_pct", f));
        }
        cells.insert(0, cx.cell(prev.row));
        (
            format!(
                "Failures start at {axis}={}: {} of requests failed (limit {}%){}{before}",
                num(p.x),
                pct(fail),
                num(limit),
                at(fixed)
            ),
            Severity::Warning,
        )
    };
    cx.keep_below.push(format!(
        "Keep {axis} below {}{}: failures pass {}% from there.",
        num(p.x),
        at(fixed),
        num(limit)
    ));
    cx.push(
        FindingKind::FailureOnset,
        severity,
        cells,
        Some(axis),
        numbers(&nums),
        message,
    );
}

fn failures_without_load_axis(cx: &mut Ctx, measured: &[usize]) {
    let limit = cx.fail_limit();
    for &r in measured {
        let Some(fail) = cx.input.rows[r]
            .metric("fail_pct")
            .filter(|f| f.is_finite())
        else {
            continue;
        };
        if fail <= limit {
            continue;
        }
        let message = format!(
            "{} of requests failed at {} (limit {}%)",
            pct(fail),
            cx.cell(r),
            num(limit)
        );
        let cells = vec![cx.cell(r)];
        cx.push(
            FindingKind::FailureOnset,
            Severity::Warning,
            cells,
            None,
            numbers(&[("fail_pct", fail), ("limit_pct", limit)]),
            message,
        );
    }
}

fn slo_excluded(cx: &mut Ctx) {
    let rows = cx.input.rows;
    match cx.t.excluded() {
        Ok(excluded) => {
            for (r, oks) in excluded {
                let mut why = Vec::new();
                let mut nums = Vec::new();
                for (s, ok) in cx.t.slo.iter().zip(oks) {
                    if ok {
                        continue;
                    }
                    match rows[r].metric(&s.metric).filter(|v| v.is_finite()) {
                        Some(v) => {
                            let failed = if s.metric == "goodput_pct" {
                                cx.failed_objectives(r)
                            } else {
                                Vec::new()
                            };
                            let failed = if failed.is_empty() {
                                String::new()
                            } else {
                                format!(": {}", failed.join(", "))
                            };
                            why.push(format!(
                                "{} = {} (limit {}){failed}",
                                s.metric,
                                text::metric(&s.metric, v),
                                cx.limit_text(s)
                            ));
                            nums.push((s.metric.clone(), v));
                        }
                        None => why.push(format!("{} was not measured", s.metric)),
                    }
                    nums.push((format!("{}_limit", s.metric), s.limit));
                }
                let message = format!("{} misses the SLO: {}", cx.cell(r), why.join("; "));
                let nums: Vec<(&str, f64)> = nums.iter().map(|(k, v)| (k.as_str(), *v)).collect();
                let cells = vec![cx.cell(r)];
                cx.push(
                    FindingKind::SloExcluded,
                    Severity::Info,
                    cells,
                    None,
                    numbers(&nums),
                    message,
                );
            }
        }
        Err(e) => cx.problems.push(format!("SLO check: {e}")),
    }
}

fn no_cell_meets(cx: &mut Ctx, measured: &[usize]) {
    let mut nums = vec![("measured_cells".to_string(), measured.len() as f64)];
    let mut closest = Vec::new();
    for s in &cx.t.slo {
        let values = measured
            .iter()
            .filter_map(|&r| cx.input.rows[r].metric(&s.metric))
            .filter(|v| v.is_finite());
        let best = if s.floor {
            values.reduce(f64::max)
        } else {
            values.reduce(f64::min)
        };
        if let Some(b) = best {
            closest.push(format!("best {} {}", s.metric, text::metric(&s.metric, b)));
            nums.push((format!("best_{}", s.metric), b));
        }
        nums.push((format!("{}_limit", s.metric), s.limit));
    }
    let closest = if closest.is_empty() {
        String::new()
    } else {
        format!("; {}", closest.join(", "))
    };
    let message = format!(
        "None of the {} measured cells meets the SLO ({}){closest}",
        measured.len(),
        cx.slo_text()
    );
    let nums: Vec<(&str, f64)> = nums.iter().map(|(k, v)| (k.as_str(), *v)).collect();
    cx.push(
        FindingKind::NoCellMeetsSlo,
        Severity::Critical,
        Vec::new(),
        None,
        numbers(&nums),
        message,
    );
}

fn unstable(cx: &mut Ctx) {
    let stats = match cx.t.repeat_stats(&cx.input.repeats) {
        Ok(s) => s,
        Err(e) => {
            cx.problems.push(format!("repeat variation: {e}"));
            return;
        }
    };
    for super::frame::RepeatStats {
        row: r,
        mean,
        std,
        repeats: n,
        cv,
    } in stats
    {
        if cv <= UNSTABLE_CV {
            continue;
        }
        let message = format!(
            "{} is unstable: RPS varied by {:.1}% (coefficient of variation) across {n} repeats (mean {}, std {})",
            cx.cell(r),
            cv * 100.0,
            text::rps(mean),
            text::rps(std)
        );
        let cells = vec![cx.cell(r)];
        cx.push(
            FindingKind::Unstable,
            Severity::Warning,
            cells,
            None,
            numbers(&[
                ("cv_pct", cv * 100.0),
                ("mean_rps", mean),
                ("std_rps", std),
                ("repeats", n as f64),
            ]),
            message,
        );
    }
}

fn list(cells: &[String]) -> String {
    const SHOWN: usize = 5;
    let mut out = cells
        .iter()
        .take(SHOWN)
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    if cells.len() > SHOWN {
        out.push_str(&format!(" and {} more", cells.len() - SHOWN));
    }
    out
}

fn recommend(cx: &Ctx, measured: &[usize]) -> Vec<String> {
    let mut out = Vec::new();
    let of = |kind| {
        cx.findings
            .iter()
            .filter(move |f: &&Finding| f.kind == kind)
    };
    if cx.input.rows.is_empty() {
        out.push("No cells to analyze.".to_string());
    } else if measured.is_empty() {
        out.push("No cell was measured, so there is nothing to compare.".to_string());
    }
    if of(FindingKind::NoCellMeetsSlo).next().is_some() {
        out.push(format!(
            "No tested configuration met the SLO ({}): test more replicas, lower the load, or revisit the SLO.",
            cx.slo_text()
        ));
    }
    out.extend(cx.advice.iter().cloned());
    for (dim, places) in &cx.plateaus {
        out.push(format!(
            "Adding {dim} stops paying off past {}: the next step gave less than {}% more RPS while the service was the limit; look for a shared bottleneck.",
            places.join(", "),
            num(PLATEAU_GAIN * 100.0)
        ));
    }
    let hot: Vec<String> = of(FindingKind::Client)
        .filter(|f| f.severity >= Severity::Warning)
        .flat_map(|f| f.cells.clone())
        .collect();
    if !hot.is_empty() {
        out.push(format!(
            "Give the load generator more capacity (workers or hosts) and re-run {}: the generator, not the service, limited them.",
            list(&hot)
        ));
    }
    let shaky: Vec<String> = of(FindingKind::Unstable)
        .flat_map(|f| f.cells.clone())
        .collect();
    if !shaky.is_empty() {
        out.push(format!(
            "Re-run {} longer or with more repeats: RPS varied more than {}% between repeats.",
            list(&shaky),
            num(UNSTABLE_CV * 100.0)
        ));
    }
    out.extend(cx.keep_below.iter().cloned());
    let unmeasured: Vec<String> = cx
        .input
        .rows
        .iter()
        .filter(|r| !r.status.is_measured())
        .map(|r| format!("{} ({})", r.cell, r.status))
        .collect();
    if !unmeasured.is_empty() {
        out.push(format!(
            "{} cell(s) have no figures and are left out: {}.",
            unmeasured.len(),
            list(&unmeasured)
        ));
    }
    for p in &cx.problems {
        out.push(format!("Part of the analysis could not be computed ({p})."));
    }
    out
}
