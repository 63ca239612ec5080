//! `[cell]`: how long each cell runs, warms up and cools down, and how often.

use minijinja::Value;

use super::resolver::Resolver;
use crate::base::limits::MAX_REPEAT;
use crate::plan::model::*;
use crate::plan::raw::RawPlan;
use crate::plan::spanned::Count;

pub(super) fn resolve(r: &mut Resolver<'_>, raw: &RawPlan, ctx: &Value) -> Option<Timing> {
    let c = &raw.cell;
    // Each field on its own so one bad value does not hide the next.
    let duration = r.positive_duration(&c.duration, "cell.duration", ctx);
    let warmup = r.typed(&c.warmup, "cell.warmup", ctx);
    let cooldown = r.typed(&c.cooldown, "cell.cooldown", ctx);
    let repeat = r
        .at_least(&c.repeat, "cell.repeat", ctx, Count(1), "at least 1")
        .and_then(|n| r.at_most(&c.repeat, "cell.repeat", n, Count(MAX_REPEAT)));
    Some(Timing {
        duration: duration?,
        warmup: warmup?,
        cooldown: cooldown?,
        repeat: repeat?.0,
    })
}
