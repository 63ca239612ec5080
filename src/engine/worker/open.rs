//! The open model: arrivals on a fixed schedule, each on a pooled
//! keep-alive connection (HTTP/1.1) or a shared HTTP/2 connection.

use super::*;

/// Open model: worker `w` of `W` owns arrivals `w, w+W, w+2W, ...` of the
/// global schedule `t0 + n / rate`, so the union over workers is exact.
pub(super) async fn run_open(ctx: Rc<Ctx>) {
    let Model::Open { rate, .. } = ctx.model else {
        return;
    };
    let t = ctx.timing;
    let w = ctx.index as f64;
    let ws = ctx.workers as f64;
    let limit = ctx.pool_cap as u64;
    let at = |k: u64| -> Option<Instant> {
        let secs = (w + k as f64 * ws) / rate;
        t.t0.checked_add(Duration::try_from_secs_f64(secs).ok()?)
    };
    // Arrivals with t_k <= offset (seconds from t0): count of k.
    let due_count = |offset: Duration| -> u64 {
        let x = (offset.as_secs_f64() * rate - w) / ws;
        if x < 0.0 { 0 } else { x.floor() as u64 + 1 }
    };
    let first_measured = due_count(
        t.measure_start
            .saturating_duration_since(t.t0)
            .saturating_sub(Duration::from_nanos(1)),
    );
    let end_count = due_count(
        t.end
            .saturating_duration_since(t.t0)
            .saturating_sub(Duration::from_nanos(1)),
    );
    let mut k: u64 = 0;
    let mut next_ep = ctx.index;
    while let Some(first) = at(k) {
        if first >= t.end {
            break;
        }
        sleep_until(first.into()).await;
        let now = Instant::now();
        let mut spawned = 0u32;
        while let Some(intended) = at(k) {
            if intended >= t.end || intended > now {
                break;
            }
            let full = {
                let mut st = ctx.state.borrow_mut();
                if intended >= t.measure_start {
                    let lag = now.saturating_duration_since(intended).as_micros();
                    record_n(&mut st.lag, u64::try_from(lag).unwrap_or(u64::MAX), 1);
                }
                if st.in_flight >= limit {
                    // Drop everything due now in one step: at absurd rates a
                    // per-arrival loop could never catch up.
                    let due = due_count(now.min(t.end).saturating_duration_since(t.t0));
                    let upto = due.min(end_count).max(k + 1);
                    st.dropped += upto - k;
                    st.dropped_measured += upto.saturating_sub(k.max(first_measured));
                    ctx.live().dropped.store(st.dropped, Ordering::Relaxed);
                    k = upto;
                }
                st.in_flight >= limit
            };
            if full {
                break;
            }
            let i = ctx.pick();
            let ep = next_ep % ctx.plan.addrs.len();
            next_ep = next_ep.wrapping_add(1);
            ctx.change_in_flight(true);
            spawn_local(arrival(ctx.clone(), intended, i, ep, None));
            k += 1;
            spawned += 1;
            if spawned.is_multiple_of(256) {
                yield_now().await;
            }
        }
    }
    drained(&ctx).await;
}

/// Waits until no request of this worker is in flight.
pub(super) async fn drained(ctx: &Ctx) {
    loop {
        if ctx.state.borrow().in_flight == 0 {
            break;
        }
        ctx.idle.notified().await;
    }
}

/// One arrival, intended at `intended`, with row `row` when given.
pub(super) async fn arrival(
    ctx: Rc<Ctx>,
    intended: Instant,
    i: usize,
    ep: usize,
    row: Option<usize>,
) {
    let mut conn = match ctx.next_h2(ep) {
        Some(slot) => Link::H2(slot),
        None => Link::H1(take_pooled(&ctx, ep)),
    };
    let mut guard = InFlight::new(&ctx, i, intended);
    let mut streamed = None;
    let mut reader = Reader::new(ctx.plan.reads_usage(i));
    let finished = match ctx.plan.stream(i) {
        Some(mode) => {
            let mut events = Events::new(mode, |prev, at| ctx.on_event(i, intended, prev, at));
            let finished = timeout(
                ctx.request_timeout,
                ctx.exchange(&mut conn, i, ep, row, &mut events),
            )
            .await;
            streamed = Some(Streamed::from(&events));
            finished
        }
        None => {
            let exchange = ctx.exchange(&mut conn, i, ep, row, &mut reader);
            timeout(ctx.request_timeout, exchange).await
        }
    };
    let outcome = match finished {
        Ok(outcome) => outcome,
        Err(_) => {
            conn.abandon_exchange();
            Err(FailureKind::Timeout)
        }
    };
    guard.finished = true;
    drop(guard);
    let done = Instant::now();
    if let Link::H1(Some(mut c)) = conn
        && !c.is_closed()
    {
        let mut pool = ctx.pool.borrow_mut();
        if let Some(p) = pool.get_mut(ep)
            && p.len() < ctx.pool_cap
        {
            p.push(c);
        }
    }
    ctx.change_in_flight(false);
    let seen = streamed.map(|s| s.seen).or_else(|| reader.seen());
    ctx.record(i, intended, done, outcome, streamed, seen);
}

fn take_pooled(ctx: &Ctx, ep: usize) -> Option<Conn> {
    let mut pool = ctx.pool.borrow_mut();
    let p = pool.get_mut(ep)?;
    while let Some(mut c) = p.pop() {
        if !c.is_closed() {
            return Some(c);
        }
    }
    None
}
