//! Charts of the scaling series: Mermaid `xychart-beta` blocks (GitHub renders
//! them inline) and standalone SVG files drawn with plotters. plotters runs
//! without a font backend: SVG text is left to the viewer's fonts, so no
//! system font library is needed.
//!
//! Every line has its own colour and marker shape (and, past the palette, a
//! dash pattern); a model's prediction is dashed with hollow markers. The
//! legend sits right of the plot, never on the data.

mod axis;
mod mermaid;
mod style;
mod svg;
#[cfg(test)]
mod tests;

use serde::Serialize;

use crate::analysis::{Analysis, Role, Roles, ScalingSeries};
pub use axis::LOG_SPAN;
use axis::wants_log;
pub use mermaid::mermaid_xy;
use style::Line;
use svg::svg_chart;
pub use svg::svg_line_chart;

#[derive(Serialize, Clone, Debug)]
pub struct Chart {
    /// File stem, e.g. `rps-vs-replicas`.
    pub id: String,
    pub title: String,
    /// A fenced ```mermaid block.
    pub mermaid: String,
    /// A standalone SVG document.
    pub svg: String,
    /// Series names in line order: GitHub's Mermaid draws no legend, so a
    /// template can list these under the block. A model's prediction comes
    /// last and is named "… (predicted)".
    pub legend: Vec<String>,
    /// Whether the SVG's y axis is logarithmic (latency spanning more than
    /// [`LOG_SPAN`] times). The Mermaid block is always linear.
    pub log: bool,
}

/// The report's charts: RPS vs the replicas axis (a line per users level and
/// other fixed values) and p95 vs the users axis (a line per replicas level
/// and other fixed values) when those axes exist, by their `roles`;
/// otherwise RPS vs the first numeric axis that has a scaling series.
pub fn charts(analysis: &Analysis, axes: &[String], roles: &Roles) -> Vec<Chart> {
    let mut out = Vec::new();
    if let Some(r) = roles.find(axes, Role::Replicas) {
        out.extend(chart(analysis, r, Y::Rps));
    }
    if let Some(u) = roles.find(axes, Role::Users) {
        out.extend(chart(analysis, u, Y::P95));
    }
    if out.is_empty()
        && let Some(c) = axes.iter().find_map(|a| chart(analysis, a, Y::Rps))
    {
        out.push(c);
    }
    out
}

#[derive(Clone, Copy)]
enum Y {
    Rps,
    P95,
}

fn file_stem(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect()
}

fn chart(analysis: &Analysis, axis: &str, y: Y) -> Option<Chart> {
    let mut lines: Vec<Line> = analysis
        .scaling
        .iter()
        .filter(|s| s.dimension == axis)
        .map(|s: &ScalingSeries| {
            let pts = s
                .points
                .iter()
                .map(|&(x, rps, p95)| match y {
                    Y::Rps => (x, rps),
                    Y::P95 => (x, p95),
                })
                .filter(|(x, v)| x.is_finite() && v.is_finite())
                .collect::<Vec<_>>();
            Line {
                label: s.label(),
                points: pts,
                predicted: s.predicted,
            }
        })
        .filter(|l| !l.points.is_empty())
        .collect();
    if lines.is_empty() {
        return None;
    }
    // Predictions after the measurements (a stable sort keeps each group's order).
    lines.sort_by_key(|l| l.predicted);
    let log =
        matches!(y, Y::P95) && wants_log(lines.iter().flat_map(|l| l.points.iter().map(|p| p.1)));
    let (id, title, y_label) = match y {
        Y::Rps => (
            format!("rps-vs-{}", file_stem(axis)),
            format!("RPS vs {axis}"),
            "RPS",
        ),
        Y::P95 => (
            format!("p95-vs-{}", file_stem(axis)),
            format!("p95 latency vs {axis}"),
            "p95 (ms)",
        ),
    };
    let svg_y_label = if log {
        format!("{y_label} (log)")
    } else {
        y_label.to_string()
    };
    let named: Vec<(String, Vec<(f64, f64)>)> =
        lines.iter().map(|l| (l.name(), l.points.clone())).collect();
    Some(Chart {
        mermaid: mermaid_xy(&title, axis, y_label, &named),
        svg: svg_chart(&title, axis, &svg_y_label, &lines, log),
        legend: named.into_iter().map(|(name, _)| name).collect(),
        id,
        title,
        log,
    })
}
