//! One load worker: an OS thread with its own current-thread tokio runtime,
//! its own connections and its own statistics. Nothing is shared with other
//! workers in the hot path except a few owner-written atomics for progress.

use std::cell::{Cell, RefCell};
use std::net::SocketAddr;
use std::pin::{Pin, pin};
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::Sender;
use std::time::{Duration, Instant};

use rand::rngs::SmallRng;
use rand::{RngExt, SeedableRng};
use tokio::sync::Notify;
use tokio::task::{LocalSet, spawn_local, yield_now};
use tokio::time::{Sleep, sleep, sleep_until, timeout};

use super::conn::{Conn, ConnFigures, Outcome, Target, exchange};
use super::cpu;
use super::h2conn::{H2Slot, Link, exchange_h2};
use super::http1::BodySink;
use super::plan::Plan;
use super::spec::{LoadSpec, Model};
use super::stream::Events;
use super::usage::{Reader, Seen};
use crate::base::request::StreamSlo;
use hdrhistogram::Histogram;

use super::stats::{FailureKind, RequestStats, RowPart, latency_histogram, record_n};
use crate::cancel::CancelToken;

#[derive(Debug, Clone, Copy)]
pub(crate) struct Timing {
    /// Schedule origin: the first user / arrival starts here.
    pub t0: Instant,
    pub measure_start: Instant,
    /// No request is started at or after `end`.
    pub end: Instant,
    /// In-flight requests are abandoned here.
    pub hard_stop: Instant,
    pub last_row: usize,
}

/// Progress counters of one worker, written only by that worker (plain
/// stores), read by the coordinator. Padded so workers don't share a line.
#[derive(Debug, Default)]
#[repr(align(128))]
pub(crate) struct Live {
    completed: AtomicU64,
    failures: AtomicU64,
    active: AtomicU64,
    dropped: AtomicU64,
}

impl Live {
    pub fn completed(&self) -> u64 {
        self.completed.load(Ordering::Relaxed)
    }
    pub fn failures(&self) -> u64 {
        self.failures.load(Ordering::Relaxed)
    }
    pub fn active(&self) -> u64 {
        self.active.load(Ordering::Relaxed)
    }
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

pub(crate) enum Msg {
    /// A finished timeline row of one worker.
    Row(RowPart),
    Done(usize, Result<Box<WorkerOutput>, String>),
}

pub(crate) struct WorkerOutput {
    /// Per `RequestSpec`, measured window only.
    pub specs: Vec<RequestStats>,
    /// The row still open when the worker stopped (sent here, not as `Msg::Row`).
    pub last_row: Option<RowPart>,
    pub dropped_measured: u64,
    /// Requests still in flight at the hard stop.
    pub abandoned: u64,
    /// Of those sent in the measured window, how many per timeline row
    /// (the second each was sent); they count as failures.
    pub abandoned_rows: Vec<u64>,
    /// Open model: how far behind schedule each measured arrival was sent (µs).
    pub lag: Histogram<u64>,
    /// Successful responses that completed inside the measured window,
    /// whenever they were sent.
    pub ok_in_window: u64,
    pub cancelled: bool,
    pub stopped_at: Option<Instant>,
    /// Thread CPU ticks and wall time over the measured window.
    pub cpu: Option<(u64, Duration)>,
    /// Bytes received and sent over the measured window.
    pub bytes: (u64, u64),
    /// Connections opened over the whole run, and TLS failures.
    pub conns: ConnFigures,
}

pub(crate) struct WorkerArgs {
    pub index: usize,
    pub workers: usize,
    pub spec: Arc<LoadSpec>,
    pub addrs: Arc<Vec<SocketAddr>>,
    pub targets: Arc<Vec<Target>>,
    pub timing: Timing,
    pub cancel: CancelToken,
    pub abort: Arc<AtomicBool>,
    pub live: Arc<[Live]>,
    pub tx: Sender<Msg>,
    pub seed: u64,
}

/// Thread entry point; always reports `Msg::Done`.
pub(crate) fn run(args: WorkerArgs) {
    let index = args.index;
    let tx = args.tx.clone();
    let result = run_inner(args).map(Box::new);
    let _ = tx.send(Msg::Done(index, result));
}

struct State {
    open: bool,
    specs: Vec<RequestStats>,
    row: Option<RowPart>,
    tx: Sender<Msg>,
    completed: u64,
    failures: u64,
    in_flight: u64,
    users: u64,
    dropped: u64,
    dropped_measured: u64,
    abandoned_rows: Vec<u64>,
    lag: Histogram<u64>,
    ok_in_window: u64,
    cpu_start: Option<(u64, Instant)>,
    cpu: Option<(u64, Duration)>,
    bytes_start: Option<(u64, u64)>,
    bytes: Option<(u64, u64)>,
}

struct Ctx {
    index: usize,
    workers: usize,
    plan: Plan,
    model: Model,
    timing: Timing,
    request_timeout: Duration,
    slo: StreamSlo,
    cancel: CancelToken,
    abort: Arc<AtomicBool>,
    live: Arc<[Live]>,
    state: RefCell<State>,
    rng: RefCell<SmallRng>,
    body_seq: Vec<Cell<usize>>,
    /// Open model: idle keep-alive connections per endpoint.
    pool: RefCell<Vec<Vec<Conn>>>,
    targets: Arc<Vec<Target>>,
    /// HTTP/2 connections shared by this worker's users (with
    /// `connections`) or arrivals (open model), per endpoint.
    h2_shared: Option<Vec<Vec<Rc<H2Slot>>>>,
    /// Which shared HTTP/2 connection the next arrival uses.
    h2_next: Cell<usize>,
    pool_cap: usize,
    /// Open model: signalled when the last in-flight request completes.
    idle: Notify,
    /// Set at the hard stop, before the requests still in flight are dropped.
    cut: Cell<bool>,
}

/// What a streamed response delivered: first and last event, events.
#[derive(Debug, Clone, Copy)]
struct Streamed {
    first: Option<Instant>,
    last: Option<Instant>,
    tokens: u64,
    seen: Seen,
}

impl<F: FnMut(Option<Instant>, Instant)> From<&Events<F>> for Streamed {
    fn from(e: &Events<F>) -> Self {
        Streamed {
            first: e.first,
            last: e.last,
            tokens: e.tokens,
            seen: e.seen(),
        }
    }
}

enum Finish {
    Completed,
    Cut,
    Cancelled,
}

fn run_inner(args: WorkerArgs) -> Result<WorkerOutput, String> {
    // I/O and timers only: the signal and process drivers would add work to
    // every park of a runtime that uses neither.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()
        .map_err(|e| format!("cannot build runtime: {e}"))?;
    let plan = Plan::build(&args.spec, &args.addrs).map_err(|e| e.to_string())?;
    let open = matches!(args.spec.model, Model::Open { .. });
    let specs = (0..plan.requests.len())
        .map(|_| RequestStats::new())
        .collect();
    let body_seq = (0..plan.requests.len()).map(|_| Cell::new(0)).collect();
    let pool_cap = match args.spec.model {
        Model::Open { max_in_flight, .. } => {
            usize::try_from(share(max_in_flight, args.workers, args.index)).unwrap_or(usize::MAX)
        }
        Model::Closed { .. } => 0,
    };
    let transport = &args.spec.transport;
    let h2_shared = (transport.http == super::spec::HttpVersion::Http2
        && (open || transport.connections.is_some()))
    .then(|| {
        let n = transport
            .connections
            .map_or(1, |n| share(n, args.workers, args.index))
            .max(1) as usize;
        (0..plan.addrs.len())
            .map(|_| (0..n).map(|_| Rc::new(H2Slot::default())).collect())
            .collect()
    });
    let ctx = Rc::new(Ctx {
        index: args.index,
        workers: args.workers,
        targets: args.targets.clone(),
        h2_shared,
        h2_next: Cell::new(0),
        pool: RefCell::new((0..plan.addrs.len()).map(|_| Vec::new()).collect()),
        plan,
        model: args.spec.model.clone(),
        timing: args.timing,
        request_timeout: args.spec.request_timeout,
        slo: args.spec.slo,
        cancel: args.cancel,
        abort: args.abort,
        live: args.live,
        state: RefCell::new(State {
            open,
            specs,
            row: Some(RowPart::new(0, 0)),
            tx: args.tx,
            completed: 0,
            failures: 0,
            in_flight: 0,
            users: 0,
            dropped: 0,
            dropped_measured: 0,
            abandoned_rows: Vec::new(),
            lag: latency_histogram(),
            ok_in_window: 0,
            cpu_start: None,
            cpu: None,
            bytes_start: None,
            bytes: None,
        }),
        rng: RefCell::new(SmallRng::seed_from_u64(args.seed)),
        body_seq,
        pool_cap,
        idle: Notify::new(),
        cut: Cell::new(false),
    });

    let local = LocalSet::new();
    let finish = rt.block_on(local.run_until({
        let ctx = ctx.clone();
        async move {
            spawn_local(ticker(ctx.clone()));
            let work = async {
                if let Some(rows) = ctx.plan.trace().filter(|_| open) {
                    trace::run_trace(ctx.clone(), rows).await;
                } else if open {
                    run_open(ctx.clone()).await;
                } else {
                    run_closed(ctx.clone()).await;
                }
            };
            tokio::select! {
                _ = work => Finish::Completed,
                _ = sleep_until(ctx.timing.hard_stop.into()) => Finish::Cut,
                _ = watch_cancel(&ctx) => Finish::Cancelled,
            }
        }
    }));
    let stopped_at = Instant::now();
    ctx.cut.set(matches!(finish, Finish::Cut));
    {
        // Drop in-flight tasks (and their connections) inside the runtime;
        // at the hard stop their guards count them as abandoned.
        let _guard = rt.enter();
        drop(local);
    }
    let mut st = ctx.state.borrow_mut();
    if st.cpu.is_none()
        && let Some((start, at)) = st.cpu_start
    {
        st.cpu = cpu::thread_ticks().map(|t| (t.saturating_sub(start), stopped_at - at));
    }
    if st.bytes.is_none() {
        st.bytes = st.bytes_start.map(bytes_since);
    }
    let conns = super::conn::take_conn_figures();
    Ok(WorkerOutput {
        specs: std::mem::take(&mut st.specs),
        last_row: st.row.take(),
        dropped_measured: st.dropped_measured,
        abandoned_rows: std::mem::take(&mut st.abandoned_rows),
        abandoned: if matches!(finish, Finish::Cut) {
            st.in_flight
        } else {
            0
        },
        lag: std::mem::replace(&mut st.lag, latency_histogram()),
        ok_in_window: st.ok_in_window,
        cancelled: matches!(finish, Finish::Cancelled),
        stopped_at: Some(stopped_at),
        cpu: st.cpu,
        bytes: st.bytes.unwrap_or_default(),
        conns,
    })
}

/// This worker's share of `total` when split over `workers`.
fn share(total: u64, workers: usize, index: usize) -> u64 {
    let w = workers.max(1) as u64;
    total / w + u64::from((index as u64) < total % w)
}

async fn watch_cancel(ctx: &Ctx) {
    while !ctx.cancel.is_cancelled() && !ctx.abort.load(Ordering::Relaxed) {
        sleep(Duration::from_millis(50)).await;
    }
}

/// Closes timeline rows at second boundaries (even when idle, so the
/// coordinator can merge them) and samples thread CPU over the window.
async fn ticker(ctx: Rc<Ctx>) {
    let t = ctx.timing;
    sleep_until(t.measure_start.into()).await;
    {
        let mut st = ctx.state.borrow_mut();
        let users = st.users_now();
        if let Some(row) = st.row.as_mut() {
            row.users = users;
        }
        st.cpu_start = cpu::thread_ticks().map(|c| (c, Instant::now()));
        st.bytes_start = Some(super::conn::bytes_moved());
    }
    for k in 1..=t.last_row {
        let Some(at) = t.measure_start.checked_add(Duration::from_secs(k as u64)) else {
            break;
        };
        sleep_until(at.into()).await;
        ctx.state.borrow_mut().advance(k);
    }
    sleep_until(t.end.into()).await;
    let mut st = ctx.state.borrow_mut();
    if let Some((start, at)) = st.cpu_start {
        st.cpu = cpu::thread_ticks().map(|c| (c.saturating_sub(start), Instant::now() - at));
    }
    st.bytes = st.bytes_start.map(bytes_since);
}

fn bytes_since(start: (u64, u64)) -> (u64, u64) {
    let now = super::conn::bytes_moved();
    (now.0.saturating_sub(start.0), now.1.saturating_sub(start.1))
}

impl State {
    /// Closed model: active virtual users; open model: requests in flight.
    fn users_now(&self) -> u64 {
        if self.open {
            self.in_flight
        } else {
            self.users
        }
    }

    /// Sends finished rows up to (excluding) `idx` and opens row `idx`.
    fn advance(&mut self, idx: usize) {
        let users = self.users_now();
        while let Some(row) = self.row.take_if(|r| r.idx < idx) {
            self.row = Some(RowPart::new(row.idx + 1, users));
            let _ = self.tx.send(Msg::Row(row));
        }
    }
}

impl Ctx {
    fn live(&self) -> &Live {
        &self.live[self.index]
    }

    fn publish_users(&self, st: &State) {
        self.live().active.store(st.users_now(), Ordering::Relaxed);
    }

    fn record(
        &self,
        spec: usize,
        start: Instant,
        done: Instant,
        outcome: Outcome,
        streamed: Option<Streamed>,
        seen: Option<Seen>,
    ) {
        let mut st = self.state.borrow_mut();
        st.completed += 1;
        self.live().completed.store(st.completed, Ordering::Relaxed);
        if outcome.is_err() {
            st.failures += 1;
            self.live().failures.store(st.failures, Ordering::Relaxed);
        }
        let t = &self.timing;
        if outcome.is_ok() && done >= t.measure_start && done < t.end {
            st.ok_in_window += 1;
        }
        if start < t.measure_start || start >= t.end {
            return;
        }
        let latency_us =
            u64::try_from(done.saturating_duration_since(start).as_micros()).unwrap_or(u64::MAX);
        if let Some(s) = st.specs.get_mut(spec) {
            match outcome {
                Ok(()) => s.record_success(latency_us),
                Err(kind) => s.record_failure(kind),
            }
            let good = self
                .slo
                .is_set()
                .then(|| meets(&self.slo, start, done, outcome, streamed));
            if let Some(good) = good {
                s.record_judged(good);
            }
            if let (Ok(()), Some(seen)) = (outcome, seen) {
                s.tokens_io.get_or_insert_with(Default::default).record(
                    seen.usage,
                    seen.events,
                    good,
                );
            }
        }
        let idx =
            (done.saturating_duration_since(t.measure_start).as_secs() as usize).min(t.last_row);
        st.advance(idx);
        let several = st.specs.len() > 1;
        if let Some(row) = st.row.as_mut() {
            row.requests += 1;
            match outcome {
                Ok(()) => {
                    record_n(&mut row.hist, latency_us, 1);
                    if several {
                        if row.by_spec.len() <= spec {
                            row.by_spec.resize_with(spec + 1, latency_histogram);
                        }
                        record_n(&mut row.by_spec[spec], latency_us, 1);
                    }
                }
                Err(_) => row.failures += 1,
            }
        }
    }

    /// A request sent at `sent` (intended at `intended`) that the hard stop
    /// cut: a failure of kind `abandoned` in the second it was sent.
    fn abandon(&self, spec: usize, intended: Instant, sent: Instant) {
        let t = &self.timing;
        if !self.cut.get() || intended < t.measure_start || intended >= t.end {
            return;
        }
        let Ok(mut st) = self.state.try_borrow_mut() else {
            return;
        };
        if let Some(s) = st.specs.get_mut(spec) {
            s.record_failure(FailureKind::Abandoned);
        }
        let idx =
            (sent.saturating_duration_since(t.measure_start).as_secs() as usize).min(t.last_row);
        if st.abandoned_rows.len() <= idx {
            st.abandoned_rows.resize(idx + 1, 0);
        }
        st.abandoned_rows[idx] += 1;
    }

    /// One event of a streamed response to request `spec` started at `start`.
    fn on_event(&self, spec: usize, start: Instant, prev: Option<Instant>, at: Instant) {
        let t = &self.timing;
        if start < t.measure_start || start >= t.end {
            return;
        }
        let gap = at.saturating_duration_since(prev.unwrap_or(start));
        let gap_us = u64::try_from(gap.as_micros()).unwrap_or(u64::MAX);
        let mut st = self.state.borrow_mut();
        if let Some(s) = st.specs.get_mut(spec) {
            s.events
                .get_or_insert_with(Default::default)
                .record(prev.is_none(), gap_us);
        }
        let idx =
            (at.saturating_duration_since(t.measure_start).as_secs() as usize).min(t.last_row);
        st.advance(idx);
        if let Some(row) = st.row.as_mut() {
            row.events
                .get_or_insert_with(Default::default)
                .record(prev.is_none(), gap_us);
        }
    }

    fn next_body(&self, i: usize) -> usize {
        if let Some(row) = self.plan.next_row(i, &mut self.rng.borrow_mut()) {
            return row;
        }
        match self.body_seq.get(i) {
            Some(c) if self.plan.body_variants(i) > 1 => {
                let n = c.get();
                c.set(n.wrapping_add(1));
                n
            }
            _ => 0,
        }
    }

    fn pick(&self) -> usize {
        self.plan.pick(&mut self.rng.borrow_mut())
    }

    fn change_in_flight(&self, up: bool) {
        let mut st = self.state.borrow_mut();
        if up {
            st.in_flight += 1;
        } else {
            st.in_flight = st.in_flight.saturating_sub(1);
            if st.in_flight == 0 {
                self.idle.notify_one();
            }
        }
        self.publish_users(&st);
    }

    /// One request on the caller's connection; callers bound it in time.
    async fn exchange<S: BodySink>(
        &self,
        link: &mut Link,
        i: usize,
        ep: usize,
        row: Option<usize>,
        sink: S,
    ) -> Outcome {
        let seq = row.unwrap_or_else(|| self.next_body(i));
        let target = &self.targets[ep];
        let mut scratch = Vec::new();
        match link {
            Link::H1(slot) => {
                let request = self.plan.request(i, ep, seq, &mut scratch);
                exchange(slot, target, request, sink).await
            }
            Link::H2(slot) => {
                exchange_h2(slot, target, || self.plan.h2_request(i, ep, seq), sink).await
            }
        }
    }

    /// A virtual user's connection: its own, or one of the shared HTTP/2 ones.
    fn user_link(&self, user: u64, ep: usize) -> Link {
        if self.plan.is_h2() {
            let slot = match &self.h2_shared {
                Some(shared) => {
                    let list = &shared[ep];
                    let local = (user / self.workers as u64) as usize;
                    list[local % list.len()].clone()
                }
                None => Rc::new(H2Slot::default()),
            };
            Link::H2(slot)
        } else {
            Link::H1(None)
        }
    }

    /// Open model: the next shared HTTP/2 connection to `ep`, round-robin.
    fn next_h2(&self, ep: usize) -> Option<Rc<H2Slot>> {
        let list = self.h2_shared.as_ref()?.get(ep)?;
        let k = self.h2_next.get();
        self.h2_next.set(k.wrapping_add(1));
        list.get(k % list.len().max(1)).cloned()
    }
}

mod judge;
mod open;
#[cfg(test)]
mod tests;
mod trace;

use judge::meets;
use open::run_open;

async fn run_closed(ctx: Rc<Ctx>) {
    let Model::Closed { users, .. } = ctx.model else {
        return;
    };
    let mut handles = Vec::new();
    let mut u = ctx.index as u64;
    while u < users {
        handles.push(spawn_local(user_loop(ctx.clone(), u)));
        u += ctx.workers as u64;
    }
    for h in handles {
        let _ = h.await;
    }
}

async fn user_loop(ctx: Rc<Ctx>, user: u64) {
    let Model::Closed {
        spawn_rate,
        think_min,
        think_max,
        ..
    } = ctx.model
    else {
        return;
    };
    let t = ctx.timing;
    let offset = if spawn_rate > 0.0 {
        Duration::try_from_secs_f64(user as f64 / spawn_rate).ok()
    } else {
        Some(Duration::ZERO)
    };
    let Some(begin) = offset.and_then(|o| t.t0.checked_add(o)) else {
        return;
    };
    if begin >= t.end {
        return;
    }
    sleep_until(begin.into()).await;
    {
        let mut st = ctx.state.borrow_mut();
        st.users += 1;
        ctx.publish_users(&st);
    }
    let ep = (user % ctx.plan.addrs.len() as u64) as usize;
    let think_lo = u64::try_from(think_min.as_nanos()).unwrap_or(u64::MAX);
    let think_hi = u64::try_from(think_max.as_nanos()).unwrap_or(u64::MAX);
    let mut conn = ctx.user_link(user, ep);
    // One timer per user, armed at `armed` (never after the current
    // request's limit) and re-armed only when it fires early: a request
    // then costs no timer update at all.
    let mut armed = Instant::now()
        .checked_add(ctx.request_timeout)
        .unwrap_or(t.hard_stop);
    let mut deadline = pin!(sleep_until(armed.into()));
    let mut backoff = Duration::ZERO;
    loop {
        let i = ctx.pick();
        let start = Instant::now();
        if start >= t.end {
            break;
        }
        let limit = start
            .checked_add(ctx.request_timeout)
            .unwrap_or(t.hard_stop);
        if armed > limit {
            deadline.as_mut().reset(limit.into());
            armed = limit;
        }
        ctx.change_in_flight(true);
        let mut guard = InFlight::new(&ctx, i, start);
        let mut streamed = None;
        let mut reader = Reader::new(ctx.plan.reads_usage(i));
        let finished = if let Some(mode) = ctx.plan.stream(i) {
            let mut events = Events::new(mode, |prev, at| ctx.on_event(i, start, prev, at));
            let finished = tokio::select! {
                biased;
                outcome = ctx.exchange(&mut conn, i, ep, None, &mut events) => Some(outcome),
                _ = wait_until(deadline.as_mut(), &mut armed, limit) => None,
            };
            streamed = Some(Streamed::from(&events));
            finished
        } else {
            tokio::select! {
                biased;
                outcome = ctx.exchange(&mut conn, i, ep, None, &mut reader) => Some(outcome),
                _ = wait_until(deadline.as_mut(), &mut armed, limit) => None,
            }
        };
        guard.finished = true;
        let outcome = finished.unwrap_or_else(|| {
            conn.abandon_exchange();
            Err(FailureKind::Timeout)
        });
        let done = Instant::now();
        ctx.change_in_flight(false);
        let seen = streamed.map(|s| s.seen).or_else(|| reader.seen());
        ctx.record(i, start, done, outcome, streamed, seen);
        if matches!(outcome, Err(FailureKind::Connect | FailureKind::Tls)) {
            // A refused connect or handshake completes at once: without a pause each user
            // would hammer a dead endpoint as fast as the CPU allows.
            backoff = (backoff * 2).clamp(CONNECT_BACKOFF_MIN, CONNECT_BACKOFF_MAX);
            sleep_until(
                done.checked_add(backoff)
                    .map_or(t.end, |w| w.min(t.end))
                    .into(),
            )
            .await;
        } else {
            backoff = Duration::ZERO;
            if outcome.is_err() {
                // Other failures can also complete without ever yielding;
                // let the ticker and cancel watcher run.
                yield_now().await;
            }
        }
        if think_hi > 0 {
            let ns = if think_hi > think_lo {
                ctx.rng.borrow_mut().random_range(think_lo..=think_hi)
            } else {
                think_lo
            };
            let wake = done
                .checked_add(Duration::from_nanos(ns))
                .map_or(t.end, |w| w.min(t.end));
            sleep_until(wake.into()).await;
        }
    }
    let mut st = ctx.state.borrow_mut();
    st.users = st.users.saturating_sub(1);
    ctx.publish_users(&st);
}

/// A user's pause after a failed connect: doubling from the first to the
/// second, reset by a connect that works.
const CONNECT_BACKOFF_MIN: Duration = Duration::from_millis(10);
const CONNECT_BACKOFF_MAX: Duration = Duration::from_secs(1);

/// Held while a request is in flight; dropped unfinished (its task dropped
/// at the hard stop), it counts the request as abandoned.
struct InFlight<'a> {
    ctx: &'a Ctx,
    spec: usize,
    intended: Instant,
    sent: Instant,
    finished: bool,
}

impl<'a> InFlight<'a> {
    fn new(ctx: &'a Ctx, spec: usize, intended: Instant) -> Self {
        InFlight {
            ctx,
            spec,
            intended,
            sent: Instant::now(),
            finished: false,
        }
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        if !self.finished {
            self.ctx.abandon(self.spec, self.intended, self.sent);
        }
    }
}

/// Waits until `limit` on `deadline`, which is armed at `armed <= limit`;
/// when it fires before `limit` it is re-armed there.
async fn wait_until(mut deadline: Pin<&mut Sleep>, armed: &mut Instant, limit: Instant) {
    loop {
        deadline.as_mut().await;
        if *armed >= limit {
            return;
        }
        deadline.as_mut().reset(limit.into());
        *armed = limit;
    }
}
