//! Standalone SVG charts: plotters draws the frame, ticks and labels; the
//! lines, markers and legend are written here.

use std::fmt::Write as _;

use plotters::prelude::*;

use super::axis::{linear_y_axis, log_y_axis, text_width, x_axis};
use super::mermaid::clean;
use super::style::{
    FONT, GRID, HEIGHT, LEGEND_FONT, LEGEND_GAP, LEGEND_PAD, LEGEND_ROW, LEGEND_SAMPLE, Line,
    MARGIN, PLOT_WIDTH, Style, TICK_FONT, dash_attr, marker, round1, style,
};

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
pub(super) fn svg_chart(
    title: &str,
    x_label: &str,
    y_label: &str,
    lines: &[Line],
    log: bool,
) -> String {
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

pub(super) fn fallback_svg(title: &str, note: &str) -> String {
    let (w, h) = (PLOT_WIDTH, HEIGHT);
    format!(
        "<svg width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\" xmlns=\"http://www.w3.org/2000/svg\">\n\
         <rect x=\"0\" y=\"0\" width=\"{w}\" height=\"{h}\" fill=\"#FFFFFF\"/>\n\
         <text x=\"{}\" y=\"40\" text-anchor=\"middle\" font-family=\"{FONT}\" font-size=\"20\">{}</text>\n\
         <text x=\"{}\" y=\"{}\" text-anchor=\"middle\" font-family=\"{FONT}\" font-size=\"14\">{}</text>\n\
         </svg>\n",
        w / 2,
        crate::report::xml::escape(title),
        w / 2,
        h / 2,
        crate::report::xml::escape(note)
    )
}

/// plotters draws the frame, ticks and labels; the lines, markers and
/// legend are written here, since its SVG backend knows no dashes.
pub(super) fn draw(
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
            crate::report::xml::escape(name)
        );
    }
    buf.push_str("</g>\n</svg>\n");
    Ok(buf)
}

/// The `name="value"` pairs of a tag, in order.
pub(super) fn attributes(tag: &str) -> Vec<(&str, &str)> {
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
pub(super) fn font_length(v: &str, font_size: f64) -> f64 {
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
pub(super) fn plain_text(svg: &str) -> String {
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
