//! Cells whose repeats disagree.

use super::ctx::{Ctx, numbers};
use crate::analysis::text;
use crate::analysis::{FindingKind, Severity, UNSTABLE_CV};

pub(super) fn unstable(cx: &mut Ctx) {
    let stats = match cx.t.repeat_stats(&cx.input.repeats) {
        Ok(s) => s,
        Err(e) => {
            cx.problems.push(format!("repeat variation: {e}"));
            return;
        }
    };
    for crate::analysis::frame::RepeatStats {
        row: r,
        mean,
        std,
        repeats: n,
        cv,
    } in stats
    {
        if cv <= UNSTABLE_CV {
            continue;
        }
        let message = format!(
            "{} is unstable: RPS varied by {:.1}% (coefficient of variation) across {n} repeats (mean {}, std {})",
            cx.cell(r),
            cv * 100.0,
            text::rps(mean),
            text::rps(std)
        );
        let cells = vec![cx.cell(r)];
        cx.push(
            FindingKind::Unstable,
            Severity::Warning,
            cells,
            None,
            numbers(&[
                ("cv_pct", cv * 100.0),
                ("mean_rps", mean),
                ("std_rps", std),
                ("repeats", n as f64),
            ]),
            message,
        );
    }
}
