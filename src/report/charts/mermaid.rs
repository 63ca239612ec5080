//! Mermaid `xychart-beta` blocks: GitHub renders them inline.

use std::fmt::Write as _;

/// Series points with NaN and infinities dropped, sorted by x.
pub(super) fn clean(points: &[(f64, f64)]) -> Vec<(f64, f64)> {
    let mut p: Vec<(f64, f64)> = points
        .iter()
        .copied()
        .filter(|(x, y)| x.is_finite() && y.is_finite())
        .collect();
    p.sort_by(|a, b| a.0.total_cmp(&b.0));
    p
}

/// Text that is safe inside a Mermaid quoted string and a Markdown fence.
pub(super) fn mermaid_text(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '"' => '\'',
            '`' => '\'',
            '\n' | '\r' => ' ',
            c => c,
        })
        .collect()
}

pub(super) fn short(x: f64) -> String {
    if (x - x.round()).abs() < 1e-9 && x.abs() < 1e15 {
        return format!("{}", x.round() as i64);
    }
    let s = format!("{x:.2}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// The values of one series at each category. Categories a series lacks are
/// filled so the line stays continuous: linear between its neighbours,
/// its first value before it starts; after its last point the line ends.
pub(super) fn at_categories(cats: &[f64], pts: &[(f64, f64)]) -> Vec<f64> {
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
