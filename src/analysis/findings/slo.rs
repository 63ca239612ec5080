//! Cells the SLO leaves out, and the case where none meets it.

use super::ctx::{Ctx, numbers};
use crate::analysis::text;
use crate::analysis::{FindingKind, Severity};

pub(super) fn slo_excluded(cx: &mut Ctx) {
    let rows = cx.input.rows;
    match cx.t.excluded() {
        Ok(excluded) => {
            for (r, oks) in excluded {
                let mut why = Vec::new();
                let mut nums = Vec::new();
                for (s, ok) in cx.t.slo.iter().zip(oks) {
                    if ok {
                        continue;
                    }
                    match rows[r].metric(&s.metric).filter(|v| v.is_finite()) {
                        Some(v) => {
                            let failed = if s.metric == "goodput_pct" {
                                cx.failed_objectives(r)
                            } else {
                                Vec::new()
                            };
                            let failed = if failed.is_empty() {
                                String::new()
                            } else {
                                format!(": {}", failed.join(", "))
                            };
                            why.push(format!(
                                "{} = {} (limit {}){failed}",
                                s.metric,
                                text::metric(&s.metric, v),
                                cx.limit_text(s)
                            ));
                            nums.push((s.metric.clone(), v));
                        }
                        None => why.push(format!("{} was not measured", s.metric)),
                    }
                    nums.push((format!("{}_limit", s.metric), s.limit));
                }
                let message = format!("{} misses the SLO: {}", cx.cell(r), why.join("; "));
                let nums: Vec<(&str, f64)> = nums.iter().map(|(k, v)| (k.as_str(), *v)).collect();
                let cells = vec![cx.cell(r)];
                cx.push(
                    FindingKind::SloExcluded,
                    Severity::Info,
                    cells,
                    None,
                    numbers(&nums),
                    message,
                );
            }
        }
        Err(e) => cx.problems.push(format!("SLO check: {e}")),
    }
}

pub(super) fn no_cell_meets(cx: &mut Ctx, measured: &[usize]) {
    let mut nums = vec![("measured_cells".to_string(), measured.len() as f64)];
    let mut closest = Vec::new();
    for s in &cx.t.slo {
        let values = measured
            .iter()
            .filter_map(|&r| cx.input.rows[r].metric(&s.metric))
            .filter(|v| v.is_finite());
        let best = if s.floor {
            values.reduce(f64::max)
        } else {
            values.reduce(f64::min)
        };
        if let Some(b) = best {
            closest.push(format!("best {} {}", s.metric, text::metric(&s.metric, b)));
            nums.push((format!("best_{}", s.metric), b));
        }
        nums.push((format!("{}_limit", s.metric), s.limit));
    }
    let closest = if closest.is_empty() {
        String::new()
    } else {
        format!("; {}", closest.join(", "))
    };
    let message = format!(
        "None of the {} measured cells meets the SLO ({}){closest}",
        measured.len(),
        cx.slo_text()
    );
    let nums: Vec<(&str, f64)> = nums.iter().map(|(k, v)| (k.as_str(), *v)).collect();
    cx.push(
        FindingKind::NoCellMeetsSlo,
        Severity::Critical,
        Vec::new(),
        None,
        numbers(&nums),
        message,
    );
}
