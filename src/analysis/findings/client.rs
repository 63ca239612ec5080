//! Whether the load generator limited any cell.

use indexmap::IndexMap;

use super::ctx::{Ctx, numbers};
use super::recommend::list;
use crate::analysis::frame::Point;
use crate::analysis::text::num;
use crate::analysis::{CLIENT_CPU_BOUND_PCT, FindingKind, MORE_WORKERS_GAIN, Severity};
use crate::results::record::Bound;

/// Whether the load generator limited anything, in one sentence.
pub(super) fn client(
    cx: &mut Ctx,
    measured: &[usize],
    workers: &[(String, IndexMap<String, String>, Vec<Point>)],
) {
    let hot: Vec<usize> = measured
        .iter()
        .copied()
        .filter(|&r| {
            cx.bound(r) == Some(Bound::Client)
                || cx.input.rows[r].client_bound
                || cx
                    .metric(r, "client_cpu_pct")
                    .is_some_and(|c| c >= CLIENT_CPU_BOUND_PCT)
        })
        .collect();
    // More workers giving clearly more throughput: the fewer were too few.
    let mut short: Vec<(usize, usize, f64)> = Vec::new();
    let mut enough: Option<(f64, f64, f64, f64)> = None;
    for (_, _, s) in workers {
        let (Some(lo), Some(hi)) = (s.first(), s.iter().max_by(|a, b| a.x.total_cmp(&b.x))) else {
            continue;
        };
        if hi.x <= lo.x {
            continue;
        }
        let (rl, rh) = (cx.ok_rps(lo.row), cx.ok_rps(hi.row));
        let gain = if rl > 0.0 { rh / rl - 1.0 } else { f64::NAN };
        if gain > MORE_WORKERS_GAIN {
            short.push((lo.row, hi.row, gain));
        } else {
            let cpu = cx.metric(lo.row, "client_cpu_pct").unwrap_or(f64::NAN);
            if enough.is_none_or(|(_, _, g, _)| gain > g) {
                enough = Some((lo.x, hi.x, gain, cpu));
            }
        }
    }
    let workers_axis = workers.first().map(|(a, _, _)| a.clone());
    let (severity, cells, message, nums) = if !hot.is_empty() || !short.is_empty() {
        let mut parts: Vec<String> = hot
            .iter()
            .map(|&r| {
                format!(
                    "{} ({}% generator CPU)",
                    cx.cell(r),
                    num(cx.metric(r, "client_cpu_pct").unwrap_or(f64::NAN).round())
                )
            })
            .collect();
        for &(lo, hi, gain) in &short {
            parts.push(format!(
                "{} (more workers gave {:+.1}% in {})",
                cx.cell(lo),
                gain * 100.0,
                cx.cell(hi)
            ));
        }
        let mut cells: Vec<String> = hot.iter().map(|&r| cx.cell(r)).collect();
        cells.extend(short.iter().map(|&(lo, _, _)| cx.cell(lo)));
        cells.dedup();
        (
            Severity::Warning,
            cells,
            format!(
                "The load generator was the bottleneck in these cells, so their figures describe the client, not the service: {}",
                list(&parts)
            ),
            numbers(&[("cells", (hot.len() + short.len()) as f64)]),
        )
    } else if let (Some((lo, hi, gain, cpu)), Some(axis)) = (enough, workers_axis) {
        (
            Severity::Info,
            Vec::new(),
            format!(
                "{} load-generator {axis} are enough: {} gave {:+.1}% at {}% generator CPU",
                num(lo),
                num(hi),
                gain * 100.0,
                num(cpu.round())
            ),
            numbers(&[
                ("workers", lo),
                ("more_workers", hi),
                ("gain_pct", gain * 100.0),
                ("client_cpu_pct", cpu),
            ]),
        )
    } else {
        let max_cpu = measured
            .iter()
            .filter_map(|&r| cx.metric(r, "client_cpu_pct"))
            .reduce(f64::max);
        let Some(max_cpu) = max_cpu else { return };
        (
            Severity::Info,
            Vec::new(),
            format!(
                "The load generator was not the bottleneck: at most {}% generator CPU (the limit is {}%)",
                num(max_cpu.round()),
                num(CLIENT_CPU_BOUND_PCT)
            ),
            numbers(&[("max_client_cpu_pct", max_cpu)]),
        )
    };
    cx.push(FindingKind::Client, severity, cells, None, nums, message);
}
