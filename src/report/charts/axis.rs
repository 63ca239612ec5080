//! Axis ranges, ticks and their labels: whole, linear and log scales.

use plotters::coord::ranged1d::{DefaultFormatting, KeyPointHint};
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;

use super::style::{CHAR_EM, TICK_FONT};

/// Latency charts get a log y axis when max/min of the values exceeds this.
pub const LOG_SPAN: f64 = 20.0;

/// One axis: its range and ticks in drawing coordinates (log10 of the value
/// on a log axis) and the tick labels.
#[derive(Clone, Debug)]
pub(super) struct Axis {
    pub(super) lo: f64,
    pub(super) hi: f64,
    pub(super) ticks: Vec<f64>,
    pub(super) labels: Vec<String>,
}

impl Axis {
    /// Drops ticks whose label repeats an earlier one.
    pub(super) fn new(lo: f64, hi: f64, ticks: Vec<f64>, values: &[f64]) -> Axis {
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

    pub(super) fn label(&self, t: f64) -> String {
        self.ticks
            .iter()
            .position(|&k| k == t)
            .map(|i| self.labels[i].clone())
            .unwrap_or_default()
    }

    pub(super) fn widest_label(&self) -> usize {
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
pub(super) fn exact(v: f64) -> String {
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
pub(super) fn tick_labels(values: &[f64]) -> Vec<String> {
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
pub(super) fn nice_step(span: f64, target: f64) -> f64 {
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
pub(super) fn multiples(lo: f64, hi: f64, step: f64) -> Option<Vec<f64>> {
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

pub(super) fn min_max(values: &[f64]) -> (f64, f64) {
    values
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &v| {
            (lo.min(v), hi.max(v))
        })
}

/// Roughly how wide `chars` characters of text at `size` px are.
pub(super) fn text_width(chars: usize, size: f64) -> f64 {
    chars as f64 * size * CHAR_EM
}

/// The x axis. When every x is a whole number the ticks are whole numbers:
/// the measured values themselves when their labels fit side by side in
/// `plot_px`, else whole steps of 1, 2 or 5 times a power of ten.
pub(super) fn x_axis(xs: &[f64], plot_px: f64) -> Axis {
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
pub(super) fn linear_y_axis(ys: &[f64]) -> Axis {
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
pub(super) fn wants_log(ys: impl Iterator<Item = f64>) -> bool {
    let pos: Vec<f64> = ys.filter(|y| y.is_finite() && *y > 0.0).collect();
    let (lo, hi) = min_max(&pos);
    pos.len() >= 2 && lo > 1e-200 && hi < 1e200 && hi / lo > LOG_SPAN
}

/// A log y axis over positive values, in log10 coordinates: ticks at 1, 2
/// and 5 times powers of ten (only the powers when those are too many),
/// from the tick at or below the least value to the one at or above the
/// largest.
pub(super) fn log_y_axis(ys: &[f64]) -> Axis {
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
