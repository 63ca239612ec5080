//! Trace replay (open model): each line of the trace is one arrival at its
//! own time; worker `w` of `W` owns lines `w, w+W, w+2W, ...`, so the union
//! over workers is the trace. Lag behind the schedule and drops beyond
//! `max_in_flight` are counted as in the open model.

use super::open::{arrival, drained};
use super::*;
use crate::engine::data::RowSet;

pub(super) async fn run_trace(ctx: Rc<Ctx>, rows: Arc<RowSet>) {
    let t = ctx.timing;
    let limit = ctx.pool_cap as u64;
    let mut k = ctx.index;
    let mut next_ep = ctx.index;
    let mut spawned = 0u32;
    while let Some(due) = rows.due(k) {
        let Some(intended) = t.t0.checked_add(due) else {
            break;
        };
        if intended >= t.end {
            break;
        }
        if intended > Instant::now() {
            sleep_until(intended.into()).await;
        }
        let now = Instant::now();
        let full = {
            let mut st = ctx.state.borrow_mut();
            if intended >= t.measure_start {
                let lag = now.saturating_duration_since(intended).as_micros();
                record_n(&mut st.lag, u64::try_from(lag).unwrap_or(u64::MAX), 1);
            }
            let full = st.in_flight >= limit;
            if full {
                st.dropped += 1;
                st.dropped_measured += u64::from(intended >= t.measure_start);
                ctx.live().dropped.store(st.dropped, Ordering::Relaxed);
            }
            full
        };
        if !full {
            let i = ctx.pick();
            let ep = next_ep % ctx.plan.addrs.len();
            next_ep = next_ep.wrapping_add(1);
            ctx.change_in_flight(true);
            spawn_local(arrival(ctx.clone(), intended, i, ep, Some(k)));
        }
        k += ctx.workers;
        spawned += 1;
        if spawned.is_multiple_of(256) {
            yield_now().await;
        }
    }
    drained(&ctx).await;
}
