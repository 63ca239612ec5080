//! The whole run on one clock: every measured cell's per-second RPS and p95
//! from its timeline.csv, cells one after another in the order they ran.

use std::path::Path;

use serde::Serialize;

use crate::results::Manifest;
use crate::results::files::{TimelinePoint, read_timeline};

#[derive(Debug, Clone, Serialize)]
pub(crate) struct RunTimeline {
    /// Inline SVG documents.
    pub rps_svg: String,
    pub p95_svg: String,
    /// Where each cell's window starts on the chart's clock (seconds).
    pub starts: Vec<(String, f64)>,
}

/// None when no cell has a per-second timeline.
pub(crate) fn run_timeline(dir: &Path, manifest: &Manifest) -> Option<RunTimeline> {
    let mut rps = Vec::new();
    let mut p95 = Vec::new();
    let mut starts = Vec::new();
    let mut offset = 0.0;
    for entry in &manifest.cells {
        if !entry.status.is_measured() {
            continue;
        }
        let Some(points) = read_timeline(dir, &entry.id) else {
            continue;
        };
        let mut last = 0.0f64;
        let start = offset;
        for TimelinePoint {
            t: tv,
            rps: rv,
            p95: pv,
        } in points
        {
            let x = start + tv;
            last = last.max(tv + 1.0);
            rps.push((x, rv));
            if pv.is_finite() && pv > 0.0 {
                p95.push((x, pv));
            }
        }
        starts.push((entry.id.clone(), start));
        offset = start + last;
    }
    if rps.is_empty() {
        return None;
    }
    let x_label = "seconds measured (cells in the order they ran)";
    Some(RunTimeline {
        rps_svg: super::charts::svg_line_chart(
            "RPS, second by second, the whole run",
            x_label,
            "RPS",
            &[("RPS".to_string(), rps)],
        ),
        p95_svg: super::charts::svg_line_chart(
            "p95, second by second, the whole run",
            x_label,
            "p95 (ms)",
            &[("p95".to_string(), p95)],
        ),
        starts,
    })
}
