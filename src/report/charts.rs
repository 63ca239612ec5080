//! Charts of the scaling series: Mermaid `xychart-beta` blocks (GitHub renders
//! them inline) and standalone SVG files drawn with plotters. plotters runs
//! without a font backend: SVG text is left to the viewer's fonts, so no
//! system font library is needed.

use std::fmt::Write as _;

use plotters::prelude::*;
use serde::Serialize;

use crate::analysis::{Analysis, Role, ScalingSeries};

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
    /// template can list these under the block.
    pub legend: Vec<String>,
}

/// Series points with NaN and infinities dropped, sorted by x.
fn clean(points: &[(f64, f64)]) -> Vec<(f64, f64)> {
    let mut p: Vec<(f64, f64)> = points
        .iter()
        .copied()
        .filter(|(x, y)| x.is_finite() && y.is_finite())
        .collect();
    p.sort_by(|a, b| a.0.total_cmp(&b.0));
    p
}

/// Text that is safe inside a Mermaid quoted string and a Markdown fence.
fn mermaid_text(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '"' => '\'',
            '`' => '\'',
            '\n' | '\r' => ' ',
            c => c,
        })
        .collect()
}

fn short(x: f64) -> String {
    if (x - x.round()).abs() < 1e-9 && x.abs() < 1e15 {
        return format!("{}", x.round() as i64);
    }
    let s = format!("{x:.2}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// The values of one series at each category. Categories a series lacks are
/// filled so the line stays continuous: linear between its neighbours,
/// its first value before it starts; after its last point the line ends.
fn at_categories(cats: &[f64], pts: &[(f64, f64)]) -> Vec<f64> {
    let Some(&(last_x, _)) = pts.last() else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for &c in cats {
        if c > last_x {
            break;
        }
        let v = match pts.iter().position(|p| p.0 >= c) {
            Some(k) if pts[k].0 == c || k == 0 => pts[k].1,
            Some(k) => {
                let (a, b) = (pts[k - 1], pts[k]);
                a.1 + (b.1 - a.1) * (c - a.0) / (b.0 - a.0)
            }
            None => pts[pts.len() - 1].1,
        };
        out.push(v);
    }
    out
}

/// A ```mermaid xychart-beta block: the union of the series' x values as
/// categories, one `line` per series (named, though GitHub draws no legend).
pub fn mermaid_xy(
    title: &str,
    x_label: &str,
    y_label: &str,
    series: &[(String, Vec<(f64, f64)>)],
) -> String {
    let cleaned: Vec<(&str, Vec<(f64, f64)>)> = series
        .iter()
        .map(|(name, pts)| (name.as_str(), clean(pts)))
        .filter(|(_, p)| !p.is_empty())
        .collect();
    let mut cats: Vec<f64> = cleaned
        .iter()
        .flat_map(|(_, p)| p.iter().map(|q| q.0))
        .collect();
    cats.sort_by(f64::total_cmp);
    cats.dedup();
    let y_max = cleaned
        .iter()
        .flat_map(|(_, p)| p.iter().map(|q| q.1))
        .fold(0.0_f64, f64::max);
    let y_min = cleaned
        .iter()
        .flat_map(|(_, p)| p.iter().map(|q| q.1))
        .fold(0.0_f64, f64::min);
    let top = if y_max > 0.0 {
        (y_max * 1.1).ceil()
    } else {
        1.0
    };

    let mut out = String::from("```mermaid\nxychart-beta\n");
    let _ = writeln!(out, "    title \"{}\"", mermaid_text(title));
    if cats.is_empty() {
        // Mermaid needs a data set to render at all.
        let _ = writeln!(
            out,
            "    x-axis \"{}\" [\"no data\"]",
            mermaid_text(x_label)
        );
        let _ = writeln!(out, "    y-axis \"{}\" 0 --> 1", mermaid_text(y_label));
        out.push_str("    line [0]\n```\n");
        return out;
    }
    let labels: Vec<String> = cats.iter().map(|c| format!("\"{}\"", short(*c))).collect();
    let _ = writeln!(
        out,
        "    x-axis \"{}\" [{}]",
        mermaid_text(x_label),
        labels.join(", ")
    );
    let _ = writeln!(
        out,
        "    y-axis \"{}\" {} --> {}",
        mermaid_text(y_label),
        short(y_min.floor()),
        short(top)
    );
    for (name, pts) in &cleaned {
        let values: Vec<String> = at_categories(&cats, pts)
            .iter()
            .map(|v| format!("{v:.2}"))
            .collect();
        let _ = writeln!(
            out,
            "    line \"{}\" [{}]",
            mermaid_text(name),
            values.join(", ")
        );
    }
    out.push_str("```\n");
    out
}

fn escape_xml(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            c => out.push(c),
        }
    }
    out
}

const WIDTH: u32 = 800;
const HEIGHT: u32 = 480;

/// Tableau 10: distinguishable on white, unlike plotters' default yellow.
const COLORS: [RGBColor; 10] = [
    RGBColor(0x4e, 0x79, 0xa7),
    RGBColor(0xf2, 0x8e, 0x2b),
    RGBColor(0xe1, 0x57, 0x59),
    RGBColor(0x76, 0xb7, 0xb2),
    RGBColor(0x59, 0xa1, 0x4f),
    RGBColor(0xed, 0xc9, 0x48),
    RGBColor(0xb0, 0x7a, 0xa1),
    RGBColor(0xff, 0x9d, 0xa7),
    RGBColor(0x9c, 0x75, 0x5f),
    RGBColor(0xba, 0xb0, 0xac),
];

/// A standalone SVG line chart, one colored line with point markers per series
/// and a legend.
pub fn svg_line_chart(
    title: &str,
    x_label: &str,
    y_label: &str,
    series: &[(String, Vec<(f64, f64)>)],
) -> String {
    let cleaned: Vec<(&str, Vec<(f64, f64)>)> = series
        .iter()
        .map(|(name, pts)| (name.as_str(), clean(pts)))
        .filter(|(_, p)| !p.is_empty())
        .collect();
    // plotters asserts on some degenerate layouts; a report must not die of a chart.
    let drawn = std::panic::catch_unwind(|| {
        draw(title, x_label, y_label, &cleaned).map_err(|e| e.to_string())
    });
    match drawn {
        Ok(Ok(svg)) => svg,
        Ok(Err(e)) => fallback_svg(title, &format!("chart could not be drawn: {e}")),
        Err(_) => fallback_svg(title, "chart could not be drawn"),
    }
}

fn fallback_svg(title: &str, note: &str) -> String {
    format!(
        "<svg width=\"{WIDTH}\" height=\"{HEIGHT}\" viewBox=\"0 0 {WIDTH} {HEIGHT}\" xmlns=\"http://www.w3.org/2000/svg\">\n\
         <rect x=\"0\" y=\"0\" width=\"{WIDTH}\" height=\"{HEIGHT}\" fill=\"#FFFFFF\"/>\n\
         <text x=\"{}\" y=\"40\" text-anchor=\"middle\" font-family=\"sans-serif\" font-size=\"20\">{}</text>\n\
         <text x=\"{}\" y=\"{}\" text-anchor=\"middle\" font-family=\"sans-serif\" font-size=\"14\">{}</text>\n\
         </svg>\n",
        WIDTH / 2,
        escape_xml(title),
        WIDTH / 2,
        HEIGHT / 2,
        escape_xml(note)
    )
}

fn range(values: impl Iterator<Item = f64> + Clone, from_zero: bool) -> (f64, f64) {
    let lo = values.clone().fold(f64::INFINITY, f64::min);
    let hi = values.fold(f64::NEG_INFINITY, f64::max);
    let lo = if from_zero { lo.min(0.0) } else { lo };
    if !(hi - lo).is_finite() || !(hi + (hi - lo) * 0.1).is_finite() {
        return (0.0, 1.0);
    }
    if hi - lo < 1e-9 {
        let pad = if lo.abs() > 1.0 { lo.abs() * 0.1 } else { 1.0 };
        return (lo - pad, hi + pad);
    }
    let pad = if from_zero { (hi - lo) * 0.1 } else { 0.0 };
    (lo, hi + pad)
}

fn draw(
    title: &str,
    x_label: &str,
    y_label: &str,
    series: &[(&str, Vec<(f64, f64)>)],
) -> Result<String, Box<dyn std::error::Error>> {
    if series.is_empty() {
        return Ok(fallback_svg(title, "no data"));
    }
    let xs = series.iter().flat_map(|(_, p)| p.iter().map(|q| q.0));
    let ys = series.iter().flat_map(|(_, p)| p.iter().map(|q| q.1));
    let (x0, x1) = range(xs, false);
    let (y0, y1) = range(ys, true);

    let mut buf = String::new();
    {
        let root = SVGBackend::with_string(&mut buf, (WIDTH, HEIGHT)).into_drawing_area();
        root.fill(&WHITE)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 24))
            .margin(16)
            .x_label_area_size(44)
            .y_label_area_size(64)
            .build_cartesian_2d(x0..x1, y0..y1)?;
        chart
            .configure_mesh()
            .x_desc(x_label)
            .y_desc(y_label)
            .axis_desc_style(("sans-serif", 16))
            .label_style(("sans-serif", 14))
            .x_label_formatter(&|x| short(*x))
            .y_label_formatter(&|y| short(*y))
            .light_line_style(WHITE.mix(0.0))
            .draw()?;
        for (i, (name, pts)) in series.iter().enumerate() {
            let color = COLORS[i % COLORS.len()];
            chart
                .draw_series(LineSeries::new(pts.iter().copied(), color.stroke_width(2)))?
                .label(*name)
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
                });
            chart.draw_series(pts.iter().map(|&p| Circle::new(p, 3, color.filled())))?;
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .label_font(("sans-serif", 14))
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK.mix(0.4))
            .draw()?;
        root.present()?;
    }
    Ok(buf)
}

/// The report's charts: RPS vs replicas (a line per users level and other
/// fixed values) and p95 vs users (a line per replicas level and other
/// fixed values) when those axes exist; otherwise RPS vs the first numeric
/// axis that has a scaling series.
pub fn charts(analysis: &Analysis, axes: &[String]) -> Vec<Chart> {
    let mut out = Vec::new();
    let of_role = |role| axes.iter().find(|a| Role::of(a) == role);
    if let Some(r) = of_role(Role::Replicas) {
        out.extend(chart(analysis, r, Y::Rps));
    }
    if let Some(u) = of_role(Role::Users) {
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
    let series: Vec<(String, Vec<(f64, f64)>)> = analysis
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
            (s.label(), pts)
        })
        .filter(|(_, pts)| !pts.is_empty())
        .collect();
    if series.is_empty() {
        return None;
    }
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
    Some(Chart {
        mermaid: mermaid_xy(&title, axis, y_label, &series),
        svg: svg_line_chart(&title, axis, y_label, &series),
        legend: series.into_iter().map(|(name, _)| name).collect(),
        id,
        title,
    })
}
