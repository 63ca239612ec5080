//! Turning the collected query results into findings and recommendations.

use indexmap::IndexMap;

use super::frame::{Point, Table};
use super::text::{self, at, num, pct};
use super::{
    Analysis, AnalysisInput, CLIENT_CPU_BOUND_PCT, DEFAULT_FAIL_PCT, Finding, FindingKind,
    MORE_WORKERS_GAIN, PLATEAU_GAIN, Role, ScalingSeries, Severity, UNSTABLE_CV,
};

struct Ctx<'a> {
    input: &'a AnalysisInput<'a>,
    t: &'a Table,
    findings: Vec<Finding>,
    /// Parts that polars could not compute.
    problems: Vec<String>,
    /// Axis -> "4 (users=400)" where a resource stopped paying off.
    plateaus: IndexMap<String, Vec<String>>,
    /// "Run X: ..." from the optimal config.
    run: Option<String>,
    /// "Keep users below ..." per failure onset.
    keep_below: Vec<String>,
    /// Per axis: the highest value among measured cells, for load axes.
    load_max: Vec<Option<f64>>,
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
        });
    }

    /// Whether the row runs at the highest tested load on every load axis
    /// other than `i`. Below it, a resource that stops adding RPS may just
    /// lack offered load, so that is no scaling problem.
    fn at_peak_load(&self, row: usize, i: usize) -> bool {
        self.load_max.iter().enumerate().all(|(a, max)| {
            let value = self.input.rows.get(row).and_then(|r| {
                let axis = &self.t.axes.get(a)?.name;
                r.matrix.get(axis)?.as_f64()
            });
            match (a == i, max, value) {
                (false, Some(max), Some(v)) => v >= *max,
                _ => true,
            }
        })
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
            .map(|s| text::limit(&s.metric, s.limit, s.floor))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

pub fn all(input: &AnalysisInput, t: &Table) -> Analysis {
    let mut cx = Ctx {
        input,
        t,
        findings: Vec::new(),
        problems: Vec::new(),
        plateaus: IndexMap::new(),
        run: None,
        keep_below: Vec::new(),
        load_max: Vec::new(),
    };
    let measured = match t.measured_rows() {
        Ok(m) => m,
        Err(e) => {
            cx.problems.push(format!("measured cells: {e}"));
            Vec::new()
        }
    };
    cx.load_max = t
        .axes
        .iter()
        .map(|axis| {
            if !(axis.numeric && axis.role.is_load()) {
                return None;
            }
            measured
                .iter()
                .filter_map(|&r| input.rows[r].matrix.get(&axis.name)?.as_f64())
                .filter(|v| v.is_finite())
                .reduce(f64::max)
        })
        .collect();

    let mut scaling = Vec::new();
    let has_load_axis = t.axes.iter().any(|a| a.numeric && a.role.is_load());
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
        for s in &series {
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
            let resource =
                matches!(axis.role, Role::Replicas | Role::Other) && cx.at_peak_load(s[0].row, i);
            efficiency(&mut cx, &axis.name, resource, &fixed, s);
            plateau(&mut cx, &axis.name, resource, &fixed, s);
            if axis.role == Role::Workers {
                more_workers(&mut cx, &axis.name, &fixed, s);
            }
            if axis.role.is_load() {
                degradation(&mut cx, &axis.name, axis.role, &fixed, s);
                onset(&mut cx, &axis.name, &fixed, s);
            }
        }
    }
    if !has_load_axis {
        failures_without_load_axis(&mut cx, &measured);
    }
    slo(&mut cx, &measured);
    client_hot(&mut cx);
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
        FindingKind::OptimalConfig => 1,
        FindingKind::Capacity => 2,
        FindingKind::ClientBound => 3,
        FindingKind::Unstable => 4,
        FindingKind::ScalingEfficiency => 5,
        FindingKind::Plateau => 6,
        FindingKind::LatencyDegradation => 7,
        FindingKind::FailureOnset => 8,
        FindingKind::SloExcluded => 9,
    }
}

/// `graded`: the axis is a resource expected to scale RPS and the series runs
/// at the highest tested load, so low efficiency is a problem.
fn efficiency(
    cx: &mut Ctx,
    axis: &str,
    graded: bool,
    fixed: &IndexMap<String, String>,
    s: &[Point],
) {
    let first = &s[0];
    for p in &s[1..] {
        let Some(eff) = p.efficiency else { continue };
        if p.x <= p.x0 {
            continue;
        }
        let factor = p.x / p.x0;
        let ratio = p.rps / p.rps0;
        let severity = match eff {
            e if graded && e < 0.5 => Severity::Critical,
            e if graded && e < 0.8 => Severity::Warning,
            _ => Severity::Info,
        };
        let message = format!(
            "{}x {axis} ({} -> {}) gave {:.2}x RPS (efficiency {:.2}){}",
            num(factor),
            num(p.x0),
            num(p.x),
            ratio,
            eff,
            at(fixed)
        );
        let cells = vec![cx.cell(first.row), cx.cell(p.row)];
        cx.push(
            FindingKind::ScalingEfficiency,
            severity,
            cells,
            Some(axis),
            numbers(&[
                ("from", p.x0),
                ("to", p.x),
                ("factor", factor),
                ("rps_from", p.rps0),
                ("rps_to", p.rps),
                ("rps_ratio", ratio),
                ("efficiency", eff),
            ]),
            message,
        );
    }
}

fn plateau(cx: &mut Ctx, axis: &str, graded: bool, fixed: &IndexMap<String, String>, s: &[Point]) {
    for w in s.windows(2) {
        let (prev, p) = (&w[0], &w[1]);
        let Some(gain) = p.gain else { continue };
        if p.x <= prev.x || gain >= PLATEAU_GAIN {
            continue;
        }
        let severity = if graded {
            Severity::Warning
        } else {
            Severity::Info
        };
        let message = format!(
            "RPS plateaus along {axis} after {}: {} -> {} gained {:+.1}% RPS ({} -> {}){}",
            num(prev.x),
            num(prev.x),
            num(p.x),
            gain * 100.0,
            text::rps(prev.rps),
            text::rps(p.rps),
            at(fixed)
        );
        if severity >= Severity::Warning {
            let place = match text::fixed_label(fixed) {
                Some(l) => format!("{} ({l})", num(prev.x)),
                None => num(prev.x),
            };
            cx.plateaus.entry(axis.to_string()).or_default().push(place);
        }
        let cells = vec![cx.cell(prev.row), cx.cell(p.row)];
        cx.push(
            FindingKind::Plateau,
            severity,
            cells,
            Some(axis),
            numbers(&[
                ("from", prev.x),
                ("to", p.x),
                ("gain_pct", gain * 100.0),
                ("rps_from", prev.rps),
                ("rps_to", p.rps),
            ]),
            message,
        );
        return;
    }
}

fn more_workers(cx: &mut Ctx, axis: &str, fixed: &IndexMap<String, String>, s: &[Point]) {
    for (k, p) in s.iter().enumerate() {
        let best = s[k + 1..]
            .iter()
            .filter(|q| q.x > p.x)
            .max_by(|a, b| a.rps.total_cmp(&b.rps));
        let Some(best) = best else { continue };
        if p.rps <= 0.0 || best.rps <= p.rps * (1.0 + MORE_WORKERS_GAIN) {
            continue;
        }
        let gain = best.rps / p.rps - 1.0;
        let message = format!(
            "The load generator limits {}: {} {axis} gave {:.1}% more RPS than {} ({} -> {}){}",
            cx.cell(p.row),
            num(best.x),
            gain * 100.0,
            num(p.x),
            text::rps(p.rps),
            text::rps(best.rps),
            at(fixed)
        );
        let cells = vec![cx.cell(p.row), cx.cell(best.row)];
        cx.push(
            FindingKind::ClientBound,
            Severity::Warning,
            cells,
            Some(axis),
            numbers(&[
                ("workers", p.x),
                ("more_workers", best.x),
                ("rps", p.rps),
                ("rps_more_workers", best.rps),
                ("gain_pct", gain * 100.0),
            ]),
            message,
        );
    }
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
        FindingKind::LatencyDegradation,
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

fn slo(cx: &mut Ctx, measured: &[usize]) {
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
                            why.push(format!(
                                "{} = {} (limit {})",
                                s.metric,
                                text::metric(&s.metric, v),
                                text::limit(&s.metric, s.limit, s.floor)
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

    let capacity = match cx.t.capacity() {
        Ok(c) => c,
        Err(e) => {
            cx.problems.push(format!("capacity: {e}"));
            return;
        }
    };
    let Some(best) = capacity else {
        if !measured.is_empty() && !cx.t.slo.is_empty() {
            no_cell_meets(cx, measured);
        }
        return;
    };
    let row = &rows[best];
    let rps = row.metric("rps").unwrap_or(f64::NAN);
    let p95 = row.metric("p95").unwrap_or(f64::NAN);
    let fail = row.metric("fail_pct").unwrap_or(f64::NAN);
    let p95_text = if p95.is_finite() {
        format!(", p95 {}", text::ms(p95))
    } else {
        String::new()
    };
    let message = if cx.t.slo.is_empty() {
        format!(
            "Highest throughput is {} RPS at {}{p95_text} (no SLO set, so every measured cell counts)",
            text::rps(rps),
            row.cell
        )
    } else {
        format!(
            "Capacity under the SLO ({}) is {} RPS at {}{p95_text}",
            cx.slo_text(),
            text::rps(rps),
            row.cell
        )
    };
    cx.push(
        FindingKind::Capacity,
        Severity::Info,
        vec![row.cell.clone()],
        None,
        numbers(&[("rps", rps), ("p95", p95), ("fail_pct", fail)]),
        message,
    );
    optimal(cx, best);
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

fn cost_of(cx: &Ctx, row: usize) -> Option<f64> {
    let c = cx.input.cost?;
    let r = *cx.input.replicas_of.get(row)? as f64;
    let w = *cx.input.workers_of.get(row)? as f64;
    Some(r * c.per_replica_hour + w * c.per_worker_hour).filter(|v| v.is_finite())
}

fn optimal(cx: &mut Ctx, capacity_row: usize) {
    let cheapest = match cx.t.cheapest() {
        Ok(c) => c,
        Err(e) => {
            cx.problems.push(format!("cost ranking: {e}"));
            None
        }
    };
    let rows = cx.input.rows;
    let under = if cx.t.slo.is_empty() {
        "(no SLO set)"
    } else {
        "under the SLO"
    };
    let input = cx.input;
    let replicas = |r: usize| input.replicas_of.get(r).map_or(f64::NAN, |&v| v as f64);
    let workers = |r: usize| input.workers_of.get(r).map_or(f64::NAN, |&v| v as f64);
    let (row, nums, message) = match cheapest {
        Some((r, cost_h, rpc)) => {
            let rps = rows[r].metric("rps").unwrap_or(f64::NAN);
            let per_dollar = rpc * 3600.0;
            let mut message = format!(
                "{} gives the most RPS per dollar {under}: {} RPS for ${:.2}/h ({:.1} RPS per $/h, {} requests per $)",
                rows[r].cell,
                text::rps(rps),
                cost_h,
                rpc,
                text::big(per_dollar)
            );
            if r != capacity_row {
                let top = rows[capacity_row].metric("rps").unwrap_or(f64::NAN);
                if let Some(c) = cost_of(cx, capacity_row) {
                    message.push_str(&format!(
                        "; the highest-RPS cell {} serves {} RPS for ${c:.2}/h",
                        rows[capacity_row].cell,
                        text::rps(top)
                    ));
                }
            }
            cx.run = Some(format!(
                "Run {}: the best RPS per dollar {under} ({:.1} RPS per $/h).",
                rows[r].cell, rpc
            ));
            let nums = numbers(&[
                ("rps", rps),
                ("cost_per_hour", cost_h),
                ("rps_per_dollar_hour", rpc),
                ("requests_per_dollar", per_dollar),
                ("replicas", replicas(r)),
                ("workers", workers(r)),
            ]);
            (r, nums, message)
        }
        None => {
            let r = capacity_row;
            let rps = rows[r].metric("rps").unwrap_or(f64::NAN);
            let why = if cx.input.cost.is_some() {
                "the cost model gives no positive cost, so"
            } else {
                "without a cost model"
            };
            let message = format!(
                "{} is the best config {under}: {why} the highest RPS wins ({} RPS)",
                rows[r].cell,
                text::rps(rps)
            );
            cx.run = Some(format!(
                "Run {}: the highest RPS {under} ({} RPS).",
                rows[r].cell,
                text::rps(rps)
            ));
            let nums = numbers(&[
                ("rps", rps),
                ("replicas", replicas(r)),
                ("workers", workers(r)),
            ]);
            (r, nums, message)
        }
    };
    cx.push(
        FindingKind::OptimalConfig,
        Severity::Info,
        vec![rows[row].cell.clone()],
        None,
        nums,
        message,
    );
}

fn client_hot(cx: &mut Ctx) {
    let hot = match cx.t.client_hot() {
        Ok(h) => h,
        Err(e) => {
            cx.problems.push(format!("client CPU: {e}"));
            return;
        }
    };
    for (r, cpu, flagged) in hot {
        let cell = cx.cell(r);
        let message = match cpu {
            Some(c) if c >= CLIENT_CPU_BOUND_PCT => format!(
                "The load generator may be the bottleneck at {cell}: client CPU {c:.1}% (>= {}%)",
                num(CLIENT_CPU_BOUND_PCT)
            ),
            _ if flagged => format!(
                "The load engine reported {cell} as client-bound{}",
                cpu.map(|c| format!(" (client CPU {c:.1}%)"))
                    .unwrap_or_default()
            ),
            _ => continue,
        };
        cx.push(
            FindingKind::ClientBound,
            Severity::Warning,
            vec![cell],
            None,
            numbers(&[("client_cpu_pct", cpu.unwrap_or(f64::NAN))]),
            message,
        );
    }
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
    out.extend(cx.run.clone());
    for f in of(FindingKind::Capacity) {
        if let Some(rps) = f.numbers.get("rps") {
            out.push(format!(
                "Plan for at most {} RPS: the most any tested config served{} ({}).",
                text::rps(*rps),
                if cx.t.slo.is_empty() {
                    ""
                } else {
                    " within the SLO"
                },
                f.cells.join(", ")
            ));
        }
    }
    for (dim, places) in &cx.plateaus {
        out.push(format!(
            "Adding {dim} stops paying off past {}: the next step gave less than {}% more RPS; look for a shared bottleneck.",
            places.join(", "),
            num(PLATEAU_GAIN * 100.0)
        ));
    }
    let mut bound: Vec<String> = Vec::new();
    for f in of(FindingKind::ClientBound) {
        if let Some(c) = f.cells.first()
            && !bound.contains(c)
        {
            bound.push(c.clone());
        }
    }
    if !bound.is_empty() {
        out.push(format!(
            "Give the load generator more capacity (workers or hosts) and re-run {}: the generator, not the service, limited them.",
            list(&bound)
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
        .map(|r| r.cell.clone())
        .collect();
    if !unmeasured.is_empty() {
        out.push(format!(
            "{} cell(s) were not measured (failed or skipped) and are left out: {}.",
            unmeasured.len(),
            list(&unmeasured)
        ));
    }
    for p in &cx.problems {
        out.push(format!("Part of the analysis could not be computed ({p})."));
    }
    out
}
