//! Steps along a resource axis: scaling efficiency and plateaus.

use indexmap::IndexMap;

use super::ctx::{Ctx, numbers};
use crate::analysis::frame::Point;
use crate::analysis::text::{self, at, num};
use crate::analysis::{FindingKind, PLATEAU_GAIN, Severity};
use crate::results::record::Bound;

/// Steps along a resource axis (replicas): efficiency and plateaus between
/// service-bound cells only; a step into a load-bound cell is "not saturated".
pub(super) fn resource_steps(
    cx: &mut Ctx,
    axis: &str,
    fixed: &IndexMap<String, String>,
    s: &[Point],
) {
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

/// "953.1±12.0" with a repeat interval, else "953.1".
fn rps_ci(cx: &Ctx, row: usize) -> String {
    match cx.ci(row) {
        Some(ci) => format!("{}±{}", text::rps(cx.ok_rps(row)), text::rps(ci)),
        None => text::rps(cx.ok_rps(row)),
    }
}
