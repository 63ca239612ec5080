//! Charts of the scaling series: Mermaid `xychart-beta` blocks (GitHub renders
//! them inline) and standalone SVG files drawn with plotters. plotters runs
//! without a font backend: SVG text is left to the viewer's fonts, so no
//! system font library is needed.
//!
//! Every line has its own colour and marker shape (and, past the palette, a
//! dash pattern); a model's prediction is dashed with hollow markers. The
//! legend sits right of the plot, never on the data.

use std::fmt::Write as _;

use plotters::coord::ranged1d::{DefaultFormatting, KeyPointHint};
use plotters::coord::types::RangedCoordf64;
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
    /// template can list these under the block. A model's prediction comes
    /// last and is named "… (predicted)".
    pub legend: Vec<String>,
    /// Whether the SVG's y axis is logarithmic (latency spanning more than
    /// [`LOG_SPAN`] times). The Mermaid block is always linear.
    pub log: bool,
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

/// Width of the part left of the legend: axes and plot.
const PLOT_WIDTH: u32 = 800;
/// The least height; a long legend makes the drawing taller.
const HEIGHT: u32 = 480;
/// Latency charts get a log y axis when max/min of the values exceeds this.
pub const LOG_SPAN: f64 = 20.0;
/// Legend labels longer than this many characters end in "…".
const LEGEND_CHARS: usize = 40;
const PREDICTED: &str = " (predicted)";

const FONT: &str = "sans-serif";
/// plotters writes font sizes divided by 1.24: 15 is a 12.1px tick label.
const TICK_FONT: f64 = 15.0;
const LEGEND_FONT: f64 = 13.0;
/// A generous average advance of a sans-serif character, in ems.
const CHAR_EM: f64 = 0.62;
const LEGEND_ROW: f64 = 22.0;
const LEGEND_PAD: f64 = 10.0;
const LEGEND_SAMPLE: f64 = 32.0;
/// Between the plot's right edge and the legend box.
const LEGEND_GAP: f64 = 20.0;
const MARGIN: u32 = 16;
/// Grid lines: a solid light grey, since not every renderer knows opacity.
const GRID: RGBColor = RGBColor(0xE4, 0xE4, 0xE4);

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

/// Seven shapes against ten colours: colour and shape together repeat only
/// every 70 lines.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Shape {
    Circle,
    Square,
    Triangle,
    Diamond,
    Cross,
    TriangleDown,
    Plus,
}

const SHAPES: [Shape; 7] = [
    Shape::Circle,
    Shape::Square,
    Shape::Triangle,
    Shape::Diamond,
    Shape::Cross,
    Shape::TriangleDown,
    Shape::Plus,
];

/// A prediction's dashes.
const PREDICTED_DASH: &str = "8 5";
/// Measured lines past the first ten (one colour each), by round: dotted,
/// dash-dot, long dashes.
const ROUND_DASHES: [&str; 3] = ["2 4", "12 4 2 4", "16 6"];

/// One line of a chart: measured, or a model's prediction.
#[derive(Clone, Debug)]
struct Line {
    label: String,
    points: Vec<(f64, f64)>,
    predicted: bool,
}

impl Line {
    /// The name in the Mermaid block and the legend list.
    fn name(&self) -> String {
        if self.predicted {
            format!("{}{PREDICTED}", self.label)
        } else {
            self.label.clone()
        }
    }

    /// The name in the SVG legend: at most [`LEGEND_CHARS`] characters,
    /// keeping the " (predicted)" ending.
    fn legend_name(&self) -> String {
        let suffix = if self.predicted { PREDICTED } else { "" };
        let room = LEGEND_CHARS - suffix.chars().count();
        format!("{}{suffix}", truncate(&self.label, room))
    }
}

fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut t: String = s.chars().take(max.saturating_sub(1)).collect();
    t.push('…');
    t
}

/// How line `i` of `n` is drawn.
#[derive(Clone, Debug, PartialEq)]
struct Style {
    color: String,
    shape: Shape,
    dash: Option<&'static str>,
    hollow: bool,
    width: f64,
    radius: f64,
}

fn style(i: usize, n: usize, predicted: bool) -> Style {
    let c = COLORS[i % COLORS.len()];
    let dash = if predicted {
        Some(PREDICTED_DASH)
    } else {
        match i / COLORS.len() {
            0 => None,
            round => Some(ROUND_DASHES[(round - 1) % ROUND_DASHES.len()]),
        }
    };
    // Earlier lines are wider with bigger markers, so a later line drawn on
    // top of an identical one leaves the earlier's edges and markers showing.
    let rank = if n > 1 {
        (n - 1 - i) as f64 / (n - 1) as f64
    } else {
        0.5
    };
    Style {
        color: format!("#{:02X}{:02X}{:02X}", c.0, c.1, c.2),
        shape: SHAPES[i % SHAPES.len()],
        dash,
        hollow: predicted,
        width: round1(2.0 + 1.5 * rank),
        radius: round1(4.5 + 3.5 * rank),
    }
}

fn round1(v: f64) -> f64 {
    (v * 10.0).round() / 10.0
}

/// One axis: its range and ticks in drawing coordinates (log10 of the value
/// on a log axis) and the tick labels.
#[derive(Clone, Debug)]
struct Axis {
    lo: f64,
    hi: f64,
    ticks: Vec<f64>,
    labels: Vec<String>,
}

impl Axis {
    /// Drops ticks whose label repeats an earlier one.
    fn new(lo: f64, hi: f64, ticks: Vec<f64>, values: &[f64]) -> Axis {
        let labels = tick_labels(values);
        let mut axis = Axis {
            lo,
            hi,
            ticks: Vec::new(),
            labels: Vec::new(),
        };
        for (t, l) in ticks.into_iter().zip(labels) {
            if t >= lo && t <= hi && !axis.labels.contains(&l) {
                axis.ticks.push(t);
                axis.labels.push(l);
            }
        }
        axis
    }

    fn label(&self, t: f64) -> String {
        self.ticks
            .iter()
            .position(|&k| k == t)
            .map(|i| self.labels[i].clone())
            .unwrap_or_default()
    }

    fn widest_label(&self) -> usize {
        self.labels
            .iter()
            .map(|l| l.chars().count())
            .max()
            .unwrap_or(1)
    }
}

/// plotters draws exactly these ticks (as bold mesh lines) and no light lines.
impl Ranged for Axis {
    type ValueType = f64;
    type FormatOption = DefaultFormatting;

    fn map(&self, v: &f64, limit: (i32, i32)) -> i32 {
        RangedCoordf64::from(self.lo..self.hi).map(v, limit)
    }

    fn key_points<H: KeyPointHint>(&self, hint: H) -> Vec<f64> {
        if hint.weight().allow_light_points() {
            Vec::new()
        } else {
            self.ticks.clone()
        }
    }

    fn range(&self) -> std::ops::Range<f64> {
        self.lo..self.hi
    }
}

/// The shortest decimal (at most six places) that reads back as `v`.
fn exact(v: f64) -> String {
    for places in 0..=6 {
        let s = format!("{v:.places$}");
        if s.parse::<f64>()
            .is_ok_and(|p| (p - v).abs() <= 1e-9 * v.abs().max(1e-12))
        {
            return s;
        }
    }
    let s = format!("{v:.6}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// Plain numbers: "0", "250", "2.5k", "12M"; a unit suffix from ten
/// thousand up, so no label needs exponent notation short of 1e15.
fn tick_labels(values: &[f64]) -> Vec<String> {
    let m = values.iter().fold(0.0_f64, |m, v| m.max(v.abs()));
    if m >= 1e15 || (m > 0.0 && m < 1e-6) {
        return values.iter().map(|v| format!("{v:e}")).collect();
    }
    let (unit, suffix) = [(1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")]
        .into_iter()
        .find(|(u, _)| m >= 10.0 * u)
        .unwrap_or((1.0, ""));
    values
        .iter()
        .map(|&v| {
            if v == 0.0 {
                "0".to_string()
            } else {
                format!("{}{suffix}", exact(v / unit))
            }
        })
        .collect()
}

/// 1, 2 or 5 times a power of ten, near `span / target`.
fn nice_step(span: f64, target: f64) -> f64 {
    let raw = span / target;
    let mag = 10f64.powf(raw.log10().floor());
    let norm = raw / mag;
    let m = if norm <= 1.0 {
        1.0
    } else if norm <= 2.0 {
        2.0
    } else if norm <= 5.0 {
        5.0
    } else {
        10.0
    };
    m * mag
}

/// The multiples of `step` in `lo..=hi`; `None` when there would be too
/// many or the numbers are beyond exact steps.
fn multiples(lo: f64, hi: f64, step: f64) -> Option<Vec<f64>> {
    let first = (lo / step).ceil();
    let last = (hi / step + 1e-9).floor();
    if !(first.is_finite() && last.is_finite() && step > 0.0)
        || first.abs() > 1e12
        || last.abs() > 1e12
        || last - first > 100.0
    {
        return None;
    }
    Some(
        (first as i64..=last as i64)
            .map(|k| k as f64 * step)
            .map(|v| if v == 0.0 { 0.0 } else { v })
            .collect(),
    )
}

fn min_max(values: &[f64]) -> (f64, f64) {
    values
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &v| {
            (lo.min(v), hi.max(v))
        })
}

/// Roughly how wide `chars` characters of text at `size` px are.
fn text_width(chars: usize, size: f64) -> f64 {
    chars as f64 * size * CHAR_EM
}

/// The x axis. When every x is a whole number the ticks are whole numbers:
/// the measured values themselves when their labels fit side by side in
/// `plot_px`, else whole steps of 1, 2 or 5 times a power of ten.
fn x_axis(xs: &[f64], plot_px: f64) -> Axis {
    let (lo, hi) = min_max(xs);
    let integer = xs.iter().all(|x| x.fract() == 0.0 && x.abs() < 1e15);
    let (a, b) = if !(hi - lo).is_finite() {
        (0.0, 1.0)
    } else if hi - lo <= 1e-9 * hi.abs().max(lo.abs()).max(1.0) {
        let pad = if integer || lo.abs() <= 1.0 {
            1.0
        } else {
            lo.abs() * 0.1
        };
        (lo - pad, hi + pad)
    } else {
        let pad = (hi - lo) * 0.05;
        (lo - pad, hi + pad)
    };
    if integer {
        let mut distinct = xs.to_vec();
        distinct.sort_by(f64::total_cmp);
        distinct.dedup();
        let widest = tick_labels(&distinct)
            .iter()
            .map(|l| l.chars().count())
            .max()
            .unwrap_or(1);
        let room = text_width(widest, TICK_FONT / 1.24) + 10.0;
        let gap = distinct
            .windows(2)
            .map(|w| (w[1] - w[0]) / (b - a) * plot_px)
            .fold(f64::INFINITY, f64::min);
        if distinct.len() <= 12 && gap >= room {
            return Axis::new(a, b, distinct.clone(), &distinct);
        }
    }
    let mut step = nice_step(b - a, 8.0);
    if integer {
        step = step.max(1.0);
    }
    let ticks = multiples(a, b, step).unwrap_or_else(|| vec![a, b]);
    Axis::new(a, b, ticks.clone(), &ticks)
}

/// A linear y axis from zero (or below, for negative values) to the first
/// tick above the largest value.
fn linear_y_axis(ys: &[f64]) -> Axis {
    let (lo, hi) = min_max(ys);
    let lo = lo.min(0.0);
    let (a, b) = if !(hi - lo).is_finite() || !(hi + (hi - lo) * 0.1).is_finite() {
        (0.0, 1.0)
    } else if hi - lo <= 1e-9 * hi.abs().max(lo.abs()).max(1.0) {
        let pad = if lo.abs() > 1.0 { lo.abs() * 0.1 } else { 1.0 };
        (lo - pad, hi + pad)
    } else {
        (lo, hi + (hi - lo) * 0.05)
    };
    let step = nice_step(b - a, 6.0);
    let top = (b / step).ceil() * step;
    let b = if top.is_finite() && top >= b { top } else { b };
    let ticks = multiples(a, b, step).unwrap_or_else(|| vec![a, b]);
    Axis::new(a, b, ticks.clone(), &ticks)
}

/// Whether latency values call for a log axis: their positive values span
/// more than [`LOG_SPAN`] times.
fn wants_log(ys: impl Iterator<Item = f64>) -> bool {
    let pos: Vec<f64> = ys.filter(|y| y.is_finite() && *y > 0.0).collect();
    let (lo, hi) = min_max(&pos);
    pos.len() >= 2 && lo > 1e-200 && hi < 1e200 && hi / lo > LOG_SPAN
}

/// A log y axis over positive values, in log10 coordinates: ticks at 1, 2
/// and 5 times powers of ten (only the powers when those are too many),
/// from the tick at or below the least value to the one at or above the
/// largest.
fn log_y_axis(ys: &[f64]) -> Axis {
    let (lo, hi) = min_max(ys);
    let (k0, k1) = (lo.log10().floor() as i32, hi.log10().ceil() as i32);
    let mut nice: Vec<f64> = (k0..=k1)
        .flat_map(|k| [1.0, 2.0, 5.0].map(|m| m * 10f64.powi(k)))
        .collect();
    let bottom = nice.iter().rev().find(|&&v| v <= lo).copied();
    let top = nice.iter().find(|&&v| v >= hi).copied();
    let (bottom, top) = (bottom.unwrap_or(lo), top.unwrap_or(hi));
    nice.retain(|&v| v >= bottom && v <= top);
    if nice.len() > 10 {
        nice.retain(|v| (v.log10() - v.log10().round()).abs() < 1e-9);
        let every = nice.len().div_ceil(10);
        let keep: Vec<f64> = nice.iter().copied().step_by(every).collect();
        nice = keep;
    }
    let (a, b) = (bottom.log10(), top.log10());
    let pad = (b - a) * 0.02;
    let ticks: Vec<f64> = nice.iter().map(|v| v.log10()).collect();
    Axis::new(a - pad, b + pad, ticks, &nice)
}

/// A standalone SVG line chart, one colored line with point markers per series
/// and a legend right of the plot.
pub fn svg_line_chart(
    title: &str,
    x_label: &str,
    y_label: &str,
    series: &[(String, Vec<(f64, f64)>)],
) -> String {
    let lines: Vec<Line> = series
        .iter()
        .map(|(name, pts)| Line {
            label: name.clone(),
            points: pts.clone(),
            predicted: false,
        })
        .collect();
    svg_chart(title, x_label, y_label, &lines, false)
}

/// The SVG of `lines`, in their order; `log` draws y on a log10 scale
/// (values at or below zero left out).
fn svg_chart(title: &str, x_label: &str, y_label: &str, lines: &[Line], log: bool) -> String {
    let cleaned: Vec<Line> = lines
        .iter()
        .map(|l| Line {
            points: clean(&l.points)
                .into_iter()
                .filter(|p| !log || p.1 > 0.0)
                .collect(),
            ..l.clone()
        })
        .filter(|l| !l.points.is_empty())
        .collect();
    // plotters asserts on some degenerate layouts; a report must not die of a chart.
    let drawn = std::panic::catch_unwind(|| {
        draw(title, x_label, y_label, &cleaned, log).map_err(|e| e.to_string())
    });
    match drawn {
        Ok(Ok(svg)) => svg,
        Ok(Err(e)) => fallback_svg(title, &format!("chart could not be drawn: {e}")),
        Err(_) => fallback_svg(title, "chart could not be drawn"),
    }
}

fn fallback_svg(title: &str, note: &str) -> String {
    let (w, h) = (PLOT_WIDTH, HEIGHT);
    format!(
        "<svg width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\" xmlns=\"http://www.w3.org/2000/svg\">\n\
         <rect x=\"0\" y=\"0\" width=\"{w}\" height=\"{h}\" fill=\"#FFFFFF\"/>\n\
         <text x=\"{}\" y=\"40\" text-anchor=\"middle\" font-family=\"{FONT}\" font-size=\"20\">{}</text>\n\
         <text x=\"{}\" y=\"{}\" text-anchor=\"middle\" font-family=\"{FONT}\" font-size=\"14\">{}</text>\n\
         </svg>\n",
        w / 2,
        super::xml::escape(title),
        w / 2,
        h / 2,
        super::xml::escape(note)
    )
}

/// plotters draws the frame, ticks and labels; the lines, markers and
/// legend are written here, since its SVG backend knows no dashes.
fn draw(
    title: &str,
    x_label: &str,
    y_label: &str,
    lines: &[Line],
    log: bool,
) -> Result<String, Box<dyn std::error::Error>> {
    if lines.is_empty() {
        return Ok(fallback_svg(title, "no data"));
    }
    let names: Vec<String> = lines.iter().map(Line::legend_name).collect();
    let widest = names.iter().map(|n| n.chars().count()).max().unwrap_or(0);
    let legend_w = LEGEND_PAD * 2.0 + LEGEND_SAMPLE + 8.0 + text_width(widest, LEGEND_FONT);
    let legend_h = LEGEND_PAD * 2.0 + LEGEND_ROW * lines.len() as f64;
    // Right of the plot: the gap, the box, a margin.
    let width = PLOT_WIDTH + (LEGEND_GAP - MARGIN as f64 + legend_w + 12.0).ceil() as u32;
    let height = HEIGHT.max((48.0 + MARGIN as f64 + legend_h + 60.0).ceil() as u32);

    let xs: Vec<f64> = lines
        .iter()
        .flat_map(|l| l.points.iter().map(|p| p.0))
        .collect();
    let ys: Vec<f64> = lines
        .iter()
        .flat_map(|l| l.points.iter().map(|p| p.1))
        .collect();
    let y_axis = if log {
        log_y_axis(&ys)
    } else {
        linear_y_axis(&ys)
    };
    let y_area = (text_width(y_axis.widest_label(), TICK_FONT / 1.24) + 40.0).max(60.0) as u32;
    let plot_px = f64::from(PLOT_WIDTH.saturating_sub(2 * MARGIN + y_area).max(100));
    let x_axis = x_axis(&xs, plot_px);
    let to_y = |y: f64| if log { y.log10() } else { y };

    let mut buf = String::new();
    let frame;
    let pixels: Vec<Vec<(i32, i32)>>;
    {
        let root = SVGBackend::with_string(&mut buf, (width, height)).into_drawing_area();
        root.fill(&WHITE)?;
        let body = root.titled(title, (FONT, 24))?;
        let (plot, _) = body.split_horizontally(PLOT_WIDTH);
        let mut chart = ChartBuilder::on(&plot)
            .margin(MARGIN)
            .x_label_area_size(44)
            .y_label_area_size(y_area)
            .build_cartesian_2d(x_axis.clone(), y_axis.clone())?;
        chart
            .configure_mesh()
            .x_desc(x_label)
            .y_desc(y_label)
            .axis_desc_style((FONT, 17))
            .label_style((FONT, TICK_FONT))
            .x_label_formatter(&|x| x_axis.label(*x))
            .y_label_formatter(&|y| y_axis.label(*y))
            .bold_line_style(GRID)
            .light_line_style(TRANSPARENT)
            .draw()?;
        let (xr, yr) = chart.plotting_area().get_pixel_range();
        frame = (xr.start, yr.start, xr.end, yr.end);
        let clamp = |(x, y): (i32, i32)| (x.clamp(frame.0, frame.2), y.clamp(frame.1, frame.3));
        pixels = lines
            .iter()
            .map(|l| {
                l.points
                    .iter()
                    .map(|&(x, y)| clamp(chart.backend_coord(&(x, to_y(y)))))
                    .collect()
            })
            .collect();
        root.present()?;
    }
    let mut buf = plain_text(&buf);
    let end = buf
        .rfind("</svg>")
        .ok_or("plotters left the SVG unterminated")?;
    buf.truncate(end);

    // Every line under every marker, so no line hides a point; earlier
    // markers are bigger, so a smaller later one on the same spot leaves
    // them showing.
    let n = lines.len();
    let styles: Vec<Style> = lines
        .iter()
        .enumerate()
        .map(|(i, l)| style(i, n, l.predicted))
        .collect();
    for (i, (s, px)) in styles.iter().zip(&pixels).enumerate() {
        if px.len() >= 2 {
            let points: Vec<String> = px.iter().map(|(x, y)| format!("{x},{y}")).collect();
            let _ = writeln!(
                buf,
                "<polyline class=\"line-{i}\" fill=\"none\" stroke=\"{}\" stroke-width=\"{}\" stroke-linejoin=\"round\"{} points=\"{}\"/>",
                s.color,
                s.width,
                dash_attr(s),
                points.join(" ")
            );
        }
    }
    for (i, (s, px)) in styles.iter().zip(&pixels).enumerate() {
        let _ = writeln!(buf, "<g class=\"markers-{i}\">");
        for &(x, y) in px {
            marker(&mut buf, s, f64::from(x), f64::from(y), s.radius);
        }
        buf.push_str("</g>\n");
    }

    let (lx, ly) = (f64::from(frame.2) + LEGEND_GAP, f64::from(frame.1));
    buf.push_str("<g class=\"legend\">\n");
    let _ = writeln!(
        buf,
        "<rect x=\"{lx}\" y=\"{ly}\" width=\"{:.0}\" height=\"{legend_h}\" fill=\"#FFFFFF\" stroke=\"#BBBBBB\" stroke-width=\"1\"/>",
        legend_w.ceil()
    );
    for (i, (s, name)) in styles.iter().zip(&names).enumerate() {
        let y = ly + LEGEND_PAD + LEGEND_ROW * (i as f64 + 0.5);
        let x = lx + LEGEND_PAD;
        let _ = writeln!(
            buf,
            "<line x1=\"{x}\" y1=\"{y}\" x2=\"{}\" y2=\"{y}\" stroke=\"{}\" stroke-width=\"{}\"{}/>",
            x + LEGEND_SAMPLE,
            s.color,
            s.width.min(3.0),
            dash_attr(s)
        );
        marker(&mut buf, s, x + LEGEND_SAMPLE / 2.0, y, s.radius.min(5.5));
        let _ = writeln!(
            buf,
            "<text x=\"{}\" y=\"{:.1}\" font-family=\"{FONT}\" font-size=\"{LEGEND_FONT}\" fill=\"#222222\">{}</text>",
            x + LEGEND_SAMPLE + 8.0,
            y + LEGEND_FONT * 0.35,
            super::xml::escape(name)
        );
    }
    buf.push_str("</g>\n</svg>\n");
    Ok(buf)
}

/// The `name="value"` pairs of a tag, in order.
fn attributes(tag: &str) -> Vec<(&str, &str)> {
    let mut out = Vec::new();
    let mut rest = tag;
    while let Some(eq) = rest.find("=\"") {
        let name = rest[..eq].trim();
        let value_and_more = &rest[eq + 2..];
        let Some(close) = value_and_more.find('"') else {
            break;
        };
        out.push((name, &value_and_more[..close]));
        rest = &value_and_more[close + 1..];
    }
    out
}

/// Turns an SVG length relative to the font ("0.76em", "-0.5ex") into
/// pixels; an ex is taken as half an em.
fn font_length(v: &str, font_size: f64) -> f64 {
    let v = v.trim();
    let (num, scale) = if let Some(n) = v.strip_suffix("em") {
        (n, font_size)
    } else if let Some(n) = v.strip_suffix("ex") {
        (n, font_size / 2.0)
    } else {
        (v.strip_suffix("px").unwrap_or(v), 1.0)
    };
    num.trim().parse::<f64>().map_or(0.0, |n| n * scale)
}

/// plotters' text elements, rewritten for renderers that know less SVG
/// (ImageMagick's own): the `dy` offset folded into `y`, no line breaks
/// around the text, and `rotate(a, cx, cy)` as `translate(cx cy) rotate(a)`.
fn plain_text(svg: &str) -> String {
    let mut out = String::with_capacity(svg.len());
    let mut rest = svg;
    while let Some(start) = rest.find("<text ") {
        out.push_str(&rest[..start]);
        let element = &rest[start..];
        let (Some(tag_end), Some(close)) = (element.find('>'), element.find("</text>")) else {
            break;
        };
        let attrs = attributes(&element[5..tag_end]);
        let num = |name: &str| {
            attrs
                .iter()
                .find(|(k, _)| *k == name)
                .and_then(|(_, v)| v.parse::<f64>().ok())
                .filter(|v| v.is_finite())
        };
        let size = num("font-size").unwrap_or(16.0);
        let dy = attrs
            .iter()
            .find(|(k, _)| *k == "dy")
            .map_or(0.0, |(_, v)| font_length(v, size));
        let (mut x, mut y) = (num("x").unwrap_or(0.0), num("y").unwrap_or(0.0) + dy);
        let mut transform = None;
        if let Some((_, t)) = attrs.iter().find(|(k, _)| *k == "transform") {
            let args: Vec<f64> = t
                .trim()
                .strip_prefix("rotate(")
                .and_then(|a| a.strip_suffix(')'))
                .map(|a| {
                    a.split([',', ' '])
                        .filter(|p| !p.is_empty())
                        .filter_map(|p| p.parse().ok())
                        .collect()
                })
                .unwrap_or_default();
            transform = Some(match args[..] {
                [a, cx, cy] => {
                    (x, y) = (x - cx, y - cy);
                    format!(
                        "translate({} {}) rotate({})",
                        round1(cx),
                        round1(cy),
                        round1(a)
                    )
                }
                _ => t.to_string(),
            });
        }
        let _ = write!(out, "<text x=\"{}\" y=\"{}\"", round1(x), round1(y));
        for (k, v) in &attrs {
            if !matches!(*k, "x" | "y" | "dy" | "transform") {
                let _ = write!(out, " {k}=\"{v}\"");
            }
        }
        if let Some(t) = transform {
            let _ = write!(out, " transform=\"{t}\"");
        }
        out.push('>');
        out.push_str(element[tag_end + 1..close].trim_matches('\n'));
        out.push_str("</text>");
        rest = &element[close + "</text>".len()..];
    }
    out.push_str(rest);
    out
}

fn dash_attr(s: &Style) -> String {
    s.dash
        .map(|d| format!(" stroke-dasharray=\"{d}\""))
        .unwrap_or_default()
}

/// A marker of radius about `r` at (x, y): filled with a white rim, or
/// hollow (white inside, coloured rim) for a prediction.
fn marker(out: &mut String, s: &Style, x: f64, y: f64, r: f64) {
    let paint = if s.hollow {
        format!("fill=\"#FFFFFF\" stroke=\"{}\" stroke-width=\"2\"", s.color)
    } else {
        format!("fill=\"{}\" stroke=\"#FFFFFF\" stroke-width=\"1\"", s.color)
    };
    let polygon = |out: &mut String, pts: &[(f64, f64)]| {
        let p: Vec<String> = pts
            .iter()
            .map(|(dx, dy)| format!("{:.1},{:.1}", x + dx * r, y + dy * r))
            .collect();
        let _ = writeln!(out, "<polygon points=\"{}\" {paint}/>", p.join(" "));
    };
    // The plus's outline, in units of r; the cross is it turned by 45°.
    let a = 0.38;
    let plus = [
        (-a, -1.0),
        (a, -1.0),
        (a, -a),
        (1.0, -a),
        (1.0, a),
        (a, a),
        (a, 1.0),
        (-a, 1.0),
        (-a, a),
        (-1.0, a),
        (-1.0, -a),
        (-a, -a),
    ];
    match s.shape {
        Shape::Circle => {
            let _ = writeln!(
                out,
                "<circle cx=\"{x:.1}\" cy=\"{y:.1}\" r=\"{r:.1}\" {paint}/>"
            );
        }
        Shape::Square => {
            let h = r * 0.9;
            let _ = writeln!(
                out,
                "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{:.1}\" {paint}/>",
                x - h,
                y - h,
                2.0 * h,
                2.0 * h
            );
        }
        Shape::Triangle => polygon(out, &[(0.0, -1.2), (1.1, 0.8), (-1.1, 0.8)]),
        Shape::TriangleDown => polygon(out, &[(0.0, 1.2), (1.1, -0.8), (-1.1, -0.8)]),
        Shape::Diamond => polygon(out, &[(0.0, -1.3), (1.1, 0.0), (0.0, 1.3), (-1.1, 0.0)]),
        Shape::Plus => polygon(out, &plus.map(|(dx, dy)| (dx * 1.1, dy * 1.1))),
        Shape::Cross => {
            let k = std::f64::consts::FRAC_1_SQRT_2 * 1.2;
            polygon(out, &plus.map(|(dx, dy)| ((dx - dy) * k, (dx + dy) * k)));
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use indexmap::IndexMap;

    /// One element's start tag: its name, attributes and (for text) content.
    #[derive(Debug)]
    struct El {
        name: String,
        attrs: Vec<(String, String)>,
        text: String,
    }

    impl El {
        fn get(&self, name: &str) -> Option<&str> {
            self.attrs
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_str())
        }
        fn num(&self, name: &str) -> f64 {
            self.get(name)
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("{name} of {self:?}"))
        }
    }

    /// Every start or empty tag, in order.
    fn elements(svg: &str) -> Vec<El> {
        let mut out = Vec::new();
        let mut rest = svg;
        while let Some(start) = rest.find('<') {
            let end = rest[start..].find('>').expect("unterminated tag") + start;
            let tag = &rest[start + 1..end];
            rest = &rest[end + 1..];
            if tag.starts_with(['/', '?', '!']) {
                continue;
            }
            let tag = tag.trim_end_matches('/');
            let name = tag.split_whitespace().next().unwrap_or_default();
            let text = rest[..rest.find('<').unwrap_or(rest.len())]
                .trim()
                .to_string();
            out.push(El {
                name: name.to_string(),
                attrs: attributes(&tag[name.len()..])
                    .into_iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
                text,
            });
        }
        out
    }

    /// Tags balance, the document is standalone SVG on white, every text
    /// names its font, every '&' starts an entity, and no number is NaN or
    /// infinite.
    fn assert_well_formed(svg: &str) {
        assert!(svg.starts_with("<svg"), "{}", &svg[..svg.len().min(80)]);
        let mut stack: Vec<&str> = Vec::new();
        let mut rest = svg;
        while let Some(start) = rest.find('<') {
            assert!(!rest[..start].contains('>'), "stray '>' in {svg}");
            let end = rest[start..].find('>').expect("unterminated tag") + start;
            let tag = &rest[start + 1..end];
            assert!(!tag.contains('<'), "'<' inside a tag: {tag}");
            rest = &rest[end + 1..];
            if let Some(name) = tag.strip_prefix('/') {
                assert_eq!(stack.pop(), Some(name.trim()), "in {svg}");
            } else if !tag.ends_with('/') {
                stack.push(tag.split_whitespace().next().unwrap_or_default());
            }
        }
        assert!(stack.is_empty(), "unclosed {stack:?}");
        assert!(rest.trim().is_empty(), "text after </svg>: {rest:?}");
        for (i, _) in svg.match_indices('&') {
            let entity = &svg[i..svg.len().min(i + 6)];
            assert!(
                ["&amp;", "&lt;", "&gt;", "&quot;", "&apos;", "&#"]
                    .iter()
                    .any(|e| entity.starts_with(e)),
                "bare '&' at {entity:?}"
            );
        }
        let els = elements(svg);
        let root = &els[0];
        assert_eq!(root.name, "svg");
        assert_eq!(root.get("xmlns"), Some("http://www.w3.org/2000/svg"));
        let (w, h) = (root.num("width"), root.num("height"));
        assert_eq!(root.get("viewBox"), Some(format!("0 0 {w} {h}").as_str()));
        let bg = &els[1];
        assert_eq!(bg.name, "rect", "the background first");
        assert_eq!((bg.num("width"), bg.num("height")), (w, h));
        assert_eq!(bg.get("fill"), Some("#FFFFFF"));
        for e in &els {
            if e.name == "text" {
                assert!(e.get("font-family").is_some(), "{e:?}");
            }
            for (k, v) in &e.attrs {
                let lower = v.to_ascii_lowercase();
                assert!(
                    !lower.contains("nan") && !lower.contains("inf"),
                    "{k}={v} in {e:?}"
                );
                if matches!(k.as_str(), "points" | "d") {
                    assert!(!v.trim().is_empty(), "empty {k} in {e:?}");
                }
            }
        }
    }

    /// The tick labels plotters drew: (x axis, y axis).
    fn ticks(svg: &str) -> (Vec<String>, Vec<String>) {
        let size = format!("{}", TICK_FONT / 1.24);
        let els = elements(svg);
        let of = |anchor: &str| {
            els.iter()
                .filter(|e| e.name == "text" && e.get("font-size") == Some(size.as_str()))
                .filter(|e| e.get("text-anchor") == Some(anchor))
                .map(|e| e.text.clone())
                .collect::<Vec<_>>()
        };
        (of("middle"), of("end"))
    }

    fn assert_unique(labels: &[String]) {
        let mut sorted = labels.to_vec();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted.len(), labels.len(), "repeated labels in {labels:?}");
    }

    fn line(label: &str, points: Vec<(f64, f64)>, predicted: bool) -> Line {
        Line {
            label: label.into(),
            points,
            predicted,
        }
    }

    fn scaling(
        dimension: &str,
        fixed: (&str, &str),
        points: &[(f64, f64, f64)],
        predicted: bool,
    ) -> ScalingSeries {
        let mut f = IndexMap::new();
        f.insert(fixed.0.to_string(), fixed.1.to_string());
        ScalingSeries {
            dimension: dimension.into(),
            fixed: f,
            points: points.to_vec(),
            predicted,
        }
    }

    /// Four lines of RPS against replicas, the last a prediction; p95
    /// against users for two replica counts, spanning 200 times.
    fn analysis() -> Analysis {
        let r = |users: f64, rps: [f64; 4]| -> Vec<(f64, f64, f64)> {
            (0..4)
                .map(|i| (i as f64 + 1.0, rps[i], users / (i as f64 + 1.0)))
                .collect()
        };
        Analysis {
            scaling: vec![
                // Listed first, drawn last.
                scaling(
                    "replicas",
                    ("users", "64"),
                    &r(64.0, [380.0, 760.0, 1140.0, 1520.0]),
                    true,
                ),
                scaling(
                    "replicas",
                    ("users", "4"),
                    &r(4.0, [366.0, 376.5, 380.0, 381.0]),
                    false,
                ),
                scaling(
                    "replicas",
                    ("users", "16"),
                    &r(16.0, [377.5, 757.5, 1100.0, 1240.0]),
                    false,
                ),
                scaling(
                    "replicas",
                    ("users", "64"),
                    &r(64.0, [378.0, 750.0, 1080.0, 1300.0]),
                    false,
                ),
                scaling(
                    "users",
                    ("replicas", "1"),
                    &[(4.0, 0.0, 2.3), (16.0, 0.0, 22.0), (64.0, 0.0, 480.0)],
                    false,
                ),
                scaling(
                    "users",
                    ("replicas", "2"),
                    &[(4.0, 0.0, 2.1), (16.0, 0.0, 9.0), (64.0, 0.0, 130.0)],
                    false,
                ),
            ],
            ..Default::default()
        }
    }

    fn axes() -> Vec<String> {
        vec!["replicas".into(), "users".into()]
    }

    #[test]
    fn whole_number_axes_get_whole_unique_tick_labels() {
        let cases: Vec<Vec<f64>> = vec![
            vec![1.0, 2.0],
            vec![3.0],
            vec![1.0, 2.0, 3.0, 4.0, 6.0, 8.0],
            vec![4.0, 16.0, 64.0],
            (0..9).map(|k| f64::from(1 << k)).collect(),
            (1..=40).map(f64::from).collect(),
            vec![100.0, 200.0, 400.0, 800.0, 1600.0, 3200.0, 12800.0],
        ];
        for xs in cases {
            for y_scale in [1.0, 37.0, 4100.0] {
                let pts: Vec<(f64, f64)> = xs
                    .iter()
                    .enumerate()
                    .map(|(i, &x)| (x, y_scale * (i as f64 + 1.0)))
                    .collect();
                let svg = svg_line_chart("t", "replicas", "RPS", &[("a".into(), pts)]);
                let (x, y) = ticks(&svg);
                assert!(!x.is_empty() && !y.is_empty(), "{svg}");
                for l in &x {
                    assert!(
                        l.parse::<i64>().is_ok() || l.trim_end_matches('k').parse::<i64>().is_ok(),
                        "x label {l:?} for {xs:?}"
                    );
                }
                for l in &y {
                    assert!(!l.contains('e'), "y label {l:?}");
                    assert!(
                        l.trim_end_matches(['k', 'M']).parse::<f64>().is_ok(),
                        "{l:?}"
                    );
                }
                assert_unique(&x);
                assert_unique(&y);
            }
        }
        // Few measured values are labelled themselves.
        let svg = svg_line_chart(
            "t",
            "replicas",
            "RPS",
            &[("a".into(), vec![(1.0, 377.5), (2.0, 757.5)])],
        );
        let (x, y) = ticks(&svg);
        assert_eq!(x, ["1", "2"]);
        assert_eq!(y, ["0", "200", "400", "600", "800"]);
        let svg = svg_line_chart(
            "t",
            "users",
            "RPS",
            &[(
                "a".into(),
                vec![(4.0, 9000.0), (16.0, 30000.0), (64.0, 41000.0)],
            )],
        );
        let (x, y) = ticks(&svg);
        assert_eq!(x, ["4", "16", "64"]);
        assert_eq!(y, ["0", "10k", "20k", "30k", "40k", "50k"]);
    }

    #[test]
    fn tick_labels_are_plain_numbers() {
        let l = |v: &[f64]| tick_labels(v);
        assert_eq!(
            l(&[0.0, 2500.0, 5000.0, 7500.0, 10000.0]),
            ["0", "2.5k", "5k", "7.5k", "10k"]
        );
        assert_eq!(
            l(&[0.0, 500.0, 1000.0, 1500.0]),
            ["0", "500", "1000", "1500"]
        );
        assert_eq!(l(&[0.1, 0.2, 0.1 * 3.0]), ["0.1", "0.2", "0.3"]);
        assert_eq!(l(&[2e6, 4e6, 12e6]), ["2M", "4M", "12M"]);
        assert_eq!(l(&[-0.0, 1.0]), ["0", "1"]);
    }

    #[test]
    fn every_line_has_its_own_colour_marker_and_past_the_palette_dashes() {
        let mut lines: Vec<Line> = (0..12)
            .map(|i| {
                let pts = (1..=3)
                    .map(|x| (f64::from(x), f64::from(x * (i + 1))))
                    .collect();
                line(&format!("users={i}"), pts, false)
            })
            .collect();
        lines.push(line("users=99", vec![(1.0, 5.0), (3.0, 50.0)], true));
        let svg = svg_chart("t", "replicas", "RPS", &lines, false);
        assert_well_formed(&svg);
        let els = elements(&svg);
        let polyline = |i: usize| {
            els.iter()
                .find(|e| e.get("class") == Some(format!("line-{i}").as_str()))
                .unwrap_or_else(|| panic!("no line-{i} in {svg}"))
        };
        // The markers of line i: the elements after its group's start, up to the next group.
        let markers = |i: usize| -> Vec<&El> {
            let start = els
                .iter()
                .position(|e| e.get("class") == Some(format!("markers-{i}").as_str()))
                .unwrap();
            els[start + 1..]
                .iter()
                .take_while(|e| e.name != "g")
                .collect()
        };
        let colours: Vec<&str> = (0..10)
            .map(|i| polyline(i).get("stroke").unwrap())
            .collect();
        assert_unique(&colours.iter().map(|c| c.to_string()).collect::<Vec<_>>());
        for i in 0..10 {
            assert_eq!(polyline(i).get("stroke-dasharray"), None, "line {i}");
        }
        // Past the ten colours, dashes.
        for i in 10..12 {
            assert!(polyline(i).get("stroke-dasharray").is_some(), "line {i}");
            assert_eq!(polyline(i).get("stroke"), Some(colours[i - 10]));
        }
        // A marker at every point, shapes cycling.
        let shape = |e: &El| match e.name.as_str() {
            "polygon" => format!("polygon/{}", e.get("points").unwrap().split(' ').count()),
            n => n.to_string(),
        };
        for i in 0..12 {
            let m = markers(i);
            assert_eq!(m.len(), 3, "markers of line {i}");
            assert!(
                m.iter().all(|e| e.get("fill") != Some("#FFFFFF")),
                "line {i} is filled"
            );
        }
        let shapes: Vec<String> = (0..7).map(|i| shape(markers(i)[0])).collect();
        assert_eq!(
            shapes,
            [
                "circle",
                "rect",
                "polygon/3",
                "polygon/4",
                "polygon/12",
                "polygon/3",
                "polygon/12"
            ]
        );
        assert_ne!(markers(2)[0].get("points"), markers(5)[0].get("points"));
        // The prediction: dashed, hollow markers, named so.
        let p = polyline(12);
        assert_eq!(p.get("stroke-dasharray"), Some(PREDICTED_DASH));
        let m = markers(12);
        assert_eq!(m.len(), 2);
        for e in m {
            assert_eq!(e.get("fill"), Some("#FFFFFF"));
            assert_eq!(e.get("stroke"), p.get("stroke"));
        }
        let legend: Vec<&El> = els.iter().filter(|e| e.name == "text").collect();
        assert_eq!(legend.last().unwrap().text, "users=99 (predicted)");
    }

    #[test]
    fn identical_lines_both_show() {
        let pts = vec![(1.0, 100.0), (2.0, 200.0), (4.0, 390.0)];
        let svg = svg_line_chart(
            "t",
            "replicas",
            "RPS",
            &[("a".into(), pts.clone()), ("b".into(), pts)],
        );
        assert_well_formed(&svg);
        let els = elements(&svg);
        let lines: Vec<&El> = els
            .iter()
            .filter(|e| e.name == "polyline" && e.get("class").is_some())
            .collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0].get("points"), lines[1].get("points"));
        assert_ne!(lines[0].get("stroke"), lines[1].get("stroke"));
        // The one underneath is wider, so its edges show.
        assert!(lines[0].num("stroke-width") >= lines[1].num("stroke-width") + 1.0);
        // Its circles are bigger than the squares on top of them.
        let circle = els.iter().find(|e| e.name == "circle").unwrap();
        let square = els
            .iter()
            .find(|e| e.name == "rect" && e.get("fill") == lines[1].get("stroke"))
            .unwrap();
        assert!(
            circle.num("r") > square.num("width") / 2.0 * std::f64::consts::SQRT_2,
            "{circle:?} {square:?}"
        );
        // Lines are all drawn before any marker.
        let last_line = els
            .iter()
            .rposition(|e| e.get("class").is_some_and(|c| c.starts_with("line-")))
            .unwrap();
        let first_marker = els
            .iter()
            .position(|e| e.get("class").is_some_and(|c| c.starts_with("markers-")))
            .unwrap();
        assert!(last_line < first_marker);
    }

    #[test]
    fn the_legend_sits_right_of_the_plot() {
        let long = "users=64, workers=4, region=eu-west-1, payload=<large & slow>";
        let mut series: Vec<(String, Vec<(f64, f64)>)> = (0..30)
            .map(|i| {
                (
                    format!("users={i}"),
                    vec![(1.0, f64::from(i)), (8.0, f64::from(i * 9))],
                )
            })
            .collect();
        series.push((long.to_string(), vec![(1.0, 300.0), (8.0, 2.0)]));
        let svg = svg_line_chart("t", "replicas", "RPS", &series);
        assert_well_formed(&svg);
        let els = elements(&svg);
        let legend_at = els
            .iter()
            .position(|e| e.get("class") == Some("legend"))
            .unwrap();
        let frame = &els[legend_at + 1];
        assert_eq!(frame.name, "rect");
        let (lx, ly, lw, lh) = (
            frame.num("x"),
            frame.num("y"),
            frame.num("width"),
            frame.num("height"),
        );
        // Everything drawn on the plot is left of the legend.
        let mut rightmost = 0.0_f64;
        for e in &els[..legend_at] {
            if let Some(points) = e.get("points") {
                for p in points.split_whitespace() {
                    rightmost = rightmost.max(p.split(',').next().unwrap().parse().unwrap());
                }
            }
            for k in ["x", "cx", "x2"] {
                if e.get(k).is_some() && e.get("transform").is_none() && e.name != "rect" {
                    rightmost = rightmost.max(e.num(k));
                }
            }
        }
        assert!(
            rightmost + 8.0 < lx,
            "plot reaches {rightmost}, legend starts at {lx}"
        );
        // The drawing holds the whole legend.
        let root = &els[0];
        assert!(
            lx + lw <= root.num("width"),
            "{lx}+{lw} > {}",
            root.num("width")
        );
        assert!(
            ly + lh <= root.num("height"),
            "{ly}+{lh} > {}",
            root.num("height")
        );
        let names: Vec<&str> = els[legend_at..]
            .iter()
            .filter(|e| e.name == "text")
            .map(|e| e.text.as_str())
            .collect();
        assert_eq!(names.len(), 31);
        let last = names[30];
        assert_eq!(last, "users=64, workers=4, region=eu-west-1, …");
        assert_eq!(last.chars().count(), LEGEND_CHARS);
        // The legend names keep a prediction's ending.
        let p = line(long, vec![], true);
        assert!(
            p.legend_name().ends_with("… (predicted)"),
            "{}",
            p.legend_name()
        );
        assert_eq!(p.legend_name().chars().count(), LEGEND_CHARS);
    }

    #[test]
    fn latency_spanning_more_than_twenty_times_gets_a_log_axis() {
        let cs = charts(&analysis(), &axes());
        let ids: Vec<&str> = cs.iter().map(|c| c.id.as_str()).collect();
        assert_eq!(ids, ["rps-vs-replicas", "p95-vs-users"]);
        let (rps, p95) = (&cs[0], &cs[1]);
        assert!(!rps.log);
        assert!(!rps.svg.contains("(log)"));
        assert!(p95.log);
        assert!(p95.svg.contains(">p95 (ms) (log)</text>"), "{}", p95.svg);
        let (_, y) = ticks(&p95.svg);
        assert_eq!(y, ["2", "5", "10", "20", "50", "100", "200", "500"]);
        // Mermaid has no log axis: its block stays linear, and says nothing of log.
        assert!(
            p95.mermaid.contains("y-axis \"p95 (ms)\" 0 --> "),
            "{}",
            p95.mermaid
        );
        let json = serde_json::to_value(p95).unwrap();
        assert_eq!(json["log"], true);

        // Within twenty times: linear.
        let mut a = analysis();
        for s in &mut a.scaling {
            for p in &mut s.points {
                p.2 = 10.0 + p.2.min(180.0);
            }
        }
        let p95 = &charts(&a, &axes())[1];
        assert!(!p95.log);
        assert!(p95.svg.contains(">p95 (ms)</text>"));
        let (_, y) = ticks(&p95.svg);
        assert_eq!(y.first().map(String::as_str), Some("0"));
        assert!(wants_log([1.0, 21.0].into_iter()));
        assert!(!wants_log([1.0, 20.0].into_iter()));
        assert!(!wants_log([0.0, -3.0, 5.0].into_iter()));
        assert!(wants_log([0.0, 0.5, 50.0].into_iter()));
    }

    #[test]
    fn log_axes_leave_out_values_at_or_below_zero() {
        let svg = svg_chart(
            "t",
            "users",
            "p95 (ms) (log)",
            &[line("a", vec![(1.0, 0.0), (2.0, 1.0), (3.0, 300.0)], false)],
            true,
        );
        assert_well_formed(&svg);
        let els = elements(&svg);
        let markers = els
            .iter()
            .take_while(|e| e.get("class") != Some("legend"))
            .filter(|e| e.name == "circle")
            .count();
        assert_eq!(markers, 2);
        let (_, y) = ticks(&svg);
        assert_eq!(y, ["1", "2", "5", "10", "20", "50", "100", "200", "500"]);
    }

    #[test]
    fn svg_is_well_formed_standalone_and_escaped() {
        let mut svgs: Vec<String> = charts(&analysis(), &axes())
            .into_iter()
            .map(|c| c.svg)
            .collect();
        svgs.push(svg_line_chart(
            "RPS <&> \"quoted\"",
            "x & y",
            "<y>",
            &[("users=100 <&>".into(), vec![(1.0, 100.0), (2.0, 190.0)])],
        ));
        for odd in [
            vec![],
            vec![("x".to_string(), vec![(1.0, f64::NAN)])],
            vec![("one".to_string(), vec![(3.0, 7.0)])],
            vec![("flat".to_string(), vec![(1.0, 0.0), (2.0, 0.0)])],
            vec![("inf".to_string(), vec![(1.0, f64::INFINITY), (2.0, 3.0)])],
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
            svgs.push(svg_line_chart("t", "x", "y", &odd));
        }
        for svg in &svgs {
            assert_well_formed(svg);
        }
        let escaped = &svgs[2];
        assert!(
            escaped.contains(">RPS &lt;&amp;&gt; &quot;quoted&quot;</text>"),
            "{escaped}"
        );
        assert!(escaped.contains(">users=100 &lt;&amp;&gt;</text>"));
        assert!(escaped.contains(">x &amp; y</text>"));
        assert!(escaped.contains(">&lt;y&gt;</text>"));
        // Text needs no dy and no rotate(a, cx, cy), which ImageMagick ignores.
        for svg in &svgs {
            assert!(!svg.contains(" dy="), "{svg}");
            assert!(!svg.contains("rotate(270,"), "{svg}");
        }
    }

    #[test]
    fn mermaid_lists_predictions_last() {
        let cs = charts(&analysis(), &axes());
        let rps = &cs[0];
        assert_eq!(
            rps.legend,
            ["users=4", "users=16", "users=64", "users=64 (predicted)"]
        );
        let m = &rps.mermaid;
        assert!(m.starts_with("```mermaid\nxychart-beta\n"), "{m}");
        assert!(m.ends_with("```\n"));
        let lines: Vec<&str> = m
            .lines()
            .filter(|l| l.trim_start().starts_with("line "))
            .collect();
        assert_eq!(lines.len(), 4);
        assert_eq!(
            lines[3].trim(),
            "line \"users=64 (predicted)\" [380.00, 760.00, 1140.00, 1520.00]"
        );
        assert!(
            m.contains("x-axis \"replicas\" [\"1\", \"2\", \"3\", \"4\"]"),
            "{m}"
        );
        // The SVG legend in the same order.
        let names: Vec<String> = elements(&rps.svg)
            .into_iter()
            .skip_while(|e| e.get("class") != Some("legend"))
            .filter(|e| e.name == "text")
            .map(|e| e.text)
            .collect();
        assert_eq!(names, rps.legend);
    }

    /// Renders each chart to PNG with ImageMagick when it is installed: a
    /// PNG as big as the SVG says, with more than one colour in it.
    #[test]
    fn svg_converts_to_png_with_imagemagick() {
        let convert = std::path::Path::new("/usr/bin/convert");
        if !convert.exists() {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI is set but ImageMagick is not installed (apt-get install imagemagick)"
            );
            println!("skipped: ImageMagick's /usr/bin/convert is not installed");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let mut svgs: Vec<(String, String)> = charts(&analysis(), &axes())
            .into_iter()
            .map(|c| (c.id, c.svg))
            .collect();
        svgs.push((
            "escaped".into(),
            svg_line_chart(
                "RPS <&>",
                "x & y",
                "y",
                &[("a <&> b".into(), vec![(1.0, 1.0), (2.0, 3.0)])],
            ),
        ));
        svgs.push(("no-data".into(), svg_line_chart("t", "x", "y", &[])));
        for (id, svg) in svgs {
            let (src, png) = (
                dir.path().join(format!("{id}.svg")),
                dir.path().join(format!("{id}.png")),
            );
            std::fs::write(&src, &svg).unwrap();
            let o = std::process::Command::new(convert)
                .arg(&src)
                .arg(&png)
                .output()
                .unwrap();
            assert!(
                o.status.success(),
                "{id}: {}",
                String::from_utf8_lossy(&o.stderr)
            );
            let bytes = std::fs::read(&png).unwrap();
            assert!(bytes.starts_with(b"\x89PNG\r\n\x1a\n"), "{id}: not a PNG");
            let o = std::process::Command::new(convert)
                .arg(&png)
                .args(["-format", "%w %h %k", "info:"])
                .output()
                .unwrap();
            let info = String::from_utf8_lossy(&o.stdout).to_string();
            let v: Vec<u64> = info
                .split_whitespace()
                .map(|n| n.parse().unwrap())
                .collect();
            let root = &elements(&svg)[0];
            assert_eq!(
                (v[0] as f64, v[1] as f64),
                (root.num("width"), root.num("height")),
                "{id}"
            );
            assert!(v[2] > 1, "{id}: one colour only");
        }
    }
}
