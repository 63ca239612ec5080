//! How lines look: sizes, colours, marker shapes and dashes.

use std::fmt::Write as _;

use plotters::prelude::RGBColor;

/// Width of the part left of the legend: axes and plot.
pub(super) const PLOT_WIDTH: u32 = 800;
/// The least height; a long legend makes the drawing taller.
pub(super) const HEIGHT: u32 = 480;
/// Legend labels longer than this many characters end in "…".
pub(super) const LEGEND_CHARS: usize = 40;
pub(super) const PREDICTED: &str = " (predicted)";

pub(super) const FONT: &str = "sans-serif";
/// plotters writes font sizes divided by 1.24: 15 is a 12.1px tick label.
pub(super) const TICK_FONT: f64 = 15.0;
pub(super) const LEGEND_FONT: f64 = 13.0;
/// A generous average advance of a sans-serif character, in ems.
pub(super) const CHAR_EM: f64 = 0.62;
pub(super) const LEGEND_ROW: f64 = 22.0;
pub(super) const LEGEND_PAD: f64 = 10.0;
pub(super) const LEGEND_SAMPLE: f64 = 32.0;
/// Between the plot's right edge and the legend box.
pub(super) const LEGEND_GAP: f64 = 20.0;
pub(super) const MARGIN: u32 = 16;
/// Grid lines: a solid light grey, since not every renderer knows opacity.
pub(super) const GRID: RGBColor = RGBColor(0xE4, 0xE4, 0xE4);

/// Tableau 10: distinguishable on white, unlike plotters' default yellow.
pub(super) const COLORS: [RGBColor; 10] = [
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
pub(super) enum Shape {
    Circle,
    Square,
    Triangle,
    Diamond,
    Cross,
    TriangleDown,
    Plus,
}

pub(super) const SHAPES: [Shape; 7] = [
    Shape::Circle,
    Shape::Square,
    Shape::Triangle,
    Shape::Diamond,
    Shape::Cross,
    Shape::TriangleDown,
    Shape::Plus,
];

/// A prediction's dashes.
pub(super) const PREDICTED_DASH: &str = "8 5";
/// Measured lines past the first ten (one colour each), by round: dotted,
/// dash-dot, long dashes.
pub(super) const ROUND_DASHES: [&str; 3] = ["2 4", "12 4 2 4", "16 6"];

/// One line of a chart: measured, or a model's prediction.
#[derive(Clone, Debug)]
pub(super) struct Line {
    pub(super) label: String,
    pub(super) points: Vec<(f64, f64)>,
    pub(super) predicted: bool,
}

impl Line {
    /// The name in the Mermaid block and the legend list.
    pub(super) fn name(&self) -> String {
        if self.predicted {
            format!("{}{PREDICTED}", self.label)
        } else {
            self.label.clone()
        }
    }

    /// The name in the SVG legend: at most [`LEGEND_CHARS`] characters,
    /// keeping the " (predicted)" ending.
    pub(super) fn legend_name(&self) -> String {
        let suffix = if self.predicted { PREDICTED } else { "" };
        let room = LEGEND_CHARS - suffix.chars().count();
        format!("{}{suffix}", truncate(&self.label, room))
    }
}

pub(super) fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut t: String = s.chars().take(max.saturating_sub(1)).collect();
    t.push('…');
    t
}

/// How line `i` of `n` is drawn.
#[derive(Clone, Debug, PartialEq)]
pub(super) struct Style {
    pub(super) color: String,
    pub(super) shape: Shape,
    pub(super) dash: Option<&'static str>,
    pub(super) hollow: bool,
    pub(super) width: f64,
    pub(super) radius: f64,
}

pub(super) fn style(i: usize, n: usize, predicted: bool) -> Style {
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

pub(super) fn round1(v: f64) -> f64 {
    (v * 10.0).round() / 10.0
}

pub(super) fn dash_attr(s: &Style) -> String {
    s.dash
        .map(|d| format!(" stroke-dasharray=\"{d}\""))
        .unwrap_or_default()
}

/// A marker of radius about `r` at (x, y): filled with a white rim, or
/// hollow (white inside, coloured rim) for a prediction.
pub(super) fn marker(out: &mut String, s: &Style, x: f64, y: f64, r: f64) {
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
