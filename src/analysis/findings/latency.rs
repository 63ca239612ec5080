//! Along the load axis: how p95 grows, where it turns up (the knee) and
//! where failures start.

use indexmap::IndexMap;

use super::ctx::{Ctx, numbers};
use crate::analysis::frame::Point;
use crate::analysis::text::{self, at, num, pct};
use crate::analysis::{FindingKind, Role, Severity};

/// Where p95 starts to climb along the load axis, per series.
pub(super) fn knee(
    cx: &mut Ctx,
    axis: &str,
    role: Role,
    fixed: &IndexMap<String, String>,
    s: &[Point],
) {
    let pts: Vec<(f64, f64)> = s.iter().filter_map(|p| Some((p.x, p.p95?))).collect();
    let Some(k) = crate::analysis::knee::knee(&pts) else {
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

pub(super) fn degradation(
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

pub(super) fn onset(cx: &mut Ctx, axis: &str, fixed: &IndexMap<String, String>, s: &[Point]) {
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

pub(super) fn failures_without_load_axis(cx: &mut Ctx, measured: &[usize]) {
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
