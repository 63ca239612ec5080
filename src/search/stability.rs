//! The stability rule: a probe is judged only once its throughput is
//! steady, and is measured longer (up to a limit) while it is not.

use crate::engine::stats::TimelineRow;

/// A probe is unstable when the RPS of its last three 1 s windows spreads
/// by more than this share of their mean: (max - min) / mean.
pub(crate) const STABLE_SPREAD: f64 = 0.10;
/// Windows the stability rule looks at.
pub(crate) const STABLE_WINDOWS: usize = 3;
/// A probe is measured for at most this many times its duration while it is
/// unstable.
pub const MAX_EXTENSION: u32 = 3;
/// Starts the warning a probe that never stabilized carries.
pub const UNSTABLE: &str = "unstable:";

/// The RPS spread, (max - min) / mean, of the last three 1 s windows of a
/// timeline when it makes the probe unstable: above 10 % of the mean, and
/// beyond what counting requests in 1 s windows explains by itself (two
/// standard deviations of a Poisson count, 2·√mean requests: at 80 RPS,
/// responses completing in batches make 72 and 84 in neighbouring seconds
/// of a perfectly steady system). None when steady, or too short to judge.
pub(crate) fn unstable_spread(timeline: &[TimelineRow]) -> Option<f64> {
    if timeline.len() < STABLE_WINDOWS {
        return None;
    }
    let last = &timeline[timeline.len() - STABLE_WINDOWS..];
    let rps: Vec<f64> = last.iter().map(|r| r.rps).collect();
    let mean = rps.iter().sum::<f64>() / rps.len() as f64;
    if mean <= 0.0 {
        return None;
    }
    let max = rps.iter().copied().fold(f64::MIN, f64::max);
    let min = rps.iter().copied().fold(f64::MAX, f64::min);
    let spread = (max - min) / mean;
    (spread > STABLE_SPREAD && max - min > 2.0 * mean.sqrt()).then_some(spread)
}

/// Whether a probe measured in these back-to-back segments (its window, then
/// each extension) is unstable, and by what spread. Only full windows count:
/// the first second of a segment misses the requests started during warm-up
/// (or before it started), and the last holds those drained after the window
/// closed, so both are left out; the rule then looks at the last three.
pub(crate) fn probe_instability(segments: &[&[TimelineRow]]) -> Option<f64> {
    let full: Vec<TimelineRow> = segments
        .iter()
        .flat_map(|rows| {
            rows.iter()
                .skip(1)
                .take(rows.len().saturating_sub(2))
                .cloned()
        })
        .collect();
    unstable_spread(&full)
}

/// The warning of a probe that never stabilized.
pub(crate) fn unstable_warning(spread: f64, secs: f64) -> String {
    format!(
        "{UNSTABLE} RPS of the last {STABLE_WINDOWS} full seconds spread {:.0}% (limit {:.0}%) after {secs:.0} s measured; judged failing",
        spread * 100.0,
        STABLE_SPREAD * 100.0
    )
}

/// What the stability rule says of a probe measured in `parts` (its window,
/// then each extension) after `measured` of its durations.
#[derive(Debug, PartialEq)]
pub(crate) enum Steadiness {
    /// Steady (or too short to judge): judge it as it is.
    Steady,
    /// Unstable: measure it for another `duration`; the event says why.
    MeasureMore(String),
    /// Unstable after the longest it may be measured: judged failing, with
    /// this warning.
    Unstable(String),
}

pub(crate) fn judge(
    probe: &str,
    parts: &[crate::engine::CellStats],
    measured: u32,
    duration: std::time::Duration,
) -> Steadiness {
    let segments: Vec<&[TimelineRow]> = parts.iter().map(|p| p.timeline.as_slice()).collect();
    let Some(spread) = probe_instability(&segments) else {
        return Steadiness::Steady;
    };
    if measured >= MAX_EXTENSION {
        let secs: f64 = parts.iter().map(|p| p.measured_secs).sum();
        return Steadiness::Unstable(unstable_warning(spread, secs));
    }
    Steadiness::MeasureMore(format!(
        "probe {probe}: RPS of the last {STABLE_WINDOWS} full seconds spread {:.0}% (limit {:.0}%); measuring {:.0} s more",
        spread * 100.0,
        STABLE_SPREAD * 100.0,
        duration.as_secs_f64()
    ))
}
