//! Latency statistics: HDR histograms recorded per worker and merged exactly.
//!
//! Every histogram is created by [`latency_histogram`] (microseconds, 3
//! significant digits, auto-resizing), so bucket boundaries line up and
//! `Histogram::add` merges are exact: percentiles of a merge equal those of one
//! histogram fed every sample.

use hdrhistogram::Histogram;
use indexmap::IndexMap;
use serde::{Deserialize, Serialize};

use super::figures::{RowStream, SecondFigures, WindowSoFar};

/// Generator CPU (percent of its workers' cores) at and above which a cell's
/// figures may describe the load generator rather than the system under test.
pub const CLIENT_BOUND_CPU_PCT: f64 = 90.0;

/// Open model: arrivals sent later than this behind schedule at p99 mean the
/// load generator could not keep the schedule.
pub(crate) const SCHEDULE_LAG_BOUND_MS: f64 = 10.0;

/// Significant decimal digits of every latency histogram.
pub(crate) const LATENCY_SIGFIG: u8 = 3;

/// An empty latency histogram: values in microseconds, 3 significant digits,
/// auto-resizing (no upper bound to configure or overflow).
pub(crate) fn latency_histogram() -> Histogram<u64> {
    // `Histogram::new` fails only for more than 5 significant digits.
    Histogram::new(LATENCY_SIGFIG).expect("3 significant digits is a valid HDR configuration")
}

/// Adds `src` into `dst` exactly.
pub(crate) fn add_histogram(dst: &mut Histogram<u64>, src: &Histogram<u64>) {
    if dst.add(src).is_err() {
        // Only reachable if `dst` was built without auto-resize; re-recording
        // every bucket keeps the merge exact anyway.
        for v in src.iter_recorded() {
            record_n(dst, v.value_iterated_to(), v.count_at_value());
        }
    }
}

/// Records `value` `n` times, growing the histogram as needed; values beyond
/// the largest resizable range (about 146 years in µs) are clamped.
pub(crate) fn record_n(h: &mut Histogram<u64>, value: u64, n: u64) {
    // `saturating_record*` clamps to the current range instead of growing it.
    if h.record_n(value, n).is_err() {
        h.saturating_record_n(value, n);
    }
}

/// Why a request failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FailureKind {
    /// A response arrived but its status was not the expected one (or, with
    /// no expectation, not 2xx/3xx).
    Status,
    /// No full response within `request_timeout`.
    Timeout,
    /// TCP connect (or HTTP handshake) failed.
    Connect,
    /// The connection broke while sending or receiving.
    Io,
    /// The TLS handshake failed (untrusted or expired certificate, name
    /// mismatch, handshake timeout, ...); the reasons are in the warnings.
    Tls,
    /// The server reset the HTTP/2 stream (RST_STREAM).
    Reset,
    /// Still in flight when the cell's drain time ran out after the window.
    Abandoned,
}

/// Failure counts by [`FailureKind`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct FailureCounts {
    pub status: u64,
    pub timeout: u64,
    pub connect: u64,
    pub io: u64,
    pub tls: u64,
    pub reset: u64,
    pub abandoned: u64,
}

impl FailureCounts {
    pub fn add(&mut self, kind: FailureKind) {
        let slot = match kind {
            FailureKind::Status => &mut self.status,
            FailureKind::Timeout => &mut self.timeout,
            FailureKind::Connect => &mut self.connect,
            FailureKind::Io => &mut self.io,
            FailureKind::Tls => &mut self.tls,
            FailureKind::Reset => &mut self.reset,
            FailureKind::Abandoned => &mut self.abandoned,
        };
        *slot += 1;
    }

    pub(crate) fn merge(&mut self, other: &FailureCounts) {
        self.status += other.status;
        self.timeout += other.timeout;
        self.connect += other.connect;
        self.io += other.io;
        self.tls += other.tls;
        self.reset += other.reset;
        self.abandoned += other.abandoned;
    }

    pub fn total(&self) -> u64 {
        self.status + self.timeout + self.connect + self.io + self.tls + self.reset + self.abandoned
    }
}

/// Outcome counts and latency distribution of one request name, or of all
/// names merged.
///
/// Latency of failures: only successful requests are recorded in `hist` and
/// therefore in the percentiles. Failures are counted in `failures` /
/// `failures_by_kind` but carry no latency, so a stream of instantly refused
/// connections or fast 500s cannot make the service look faster (k6 records
/// both). `requests` and `rps` count successes and failures alike.
///
/// The derived fields (`rps`, `*_ms`) are filled by [`RequestStats::finalize`];
/// `requests`, `failures*` and `hist` are the source of truth and are what
/// [`RequestStats::merge`] combines.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RequestStats {
    pub requests: u64,
    pub failures: u64,
    pub failures_by_kind: FailureCounts,
    /// Requests (successes and failures) per measured second.
    pub rps: f64,
    pub mean_ms: f64,
    pub min_ms: f64,
    pub p50_ms: f64,
    pub p75_ms: f64,
    pub p90_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
    /// Latencies of successful requests in microseconds (not in stats.json:
    /// a file read back has the derived figures only).
    #[serde(skip, default = "latency_histogram")]
    pub hist: Histogram<u64>,
    /// Streamed responses: time to first token, gaps between tokens, tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream: Option<StreamFigures>,
    /// Requests that met every per-request objective of the SLO.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub goodput: Option<Goodput>,
    /// The source of `stream`; none until a streamed response sends an event.
    #[serde(skip)]
    pub events: Option<Box<EventStats>>,
    /// The source of `goodput`; none unless the SLO has per-request objectives.
    #[serde(skip)]
    pub good: Option<u64>,
    /// Tokens of responses read for them (completions, streams, rows).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokens_io: Option<super::tokens::TokenCounts>,
}

/// Events of streamed responses, recorded as they arrive: every event of a
/// request whose start lies in the measured window, including the events of
/// a stream that was later cut or timed out.
#[derive(Debug, Clone)]
pub struct EventStats {
    /// Request start (intended start in the open model) to first event, µs.
    pub ttft: Histogram<u64>,
    /// Gap between consecutive events of one response, µs.
    pub itl: Histogram<u64>,
    pub tokens: u64,
}

impl EventStats {
    pub fn new() -> Self {
        EventStats {
            ttft: latency_histogram(),
            itl: latency_histogram(),
            tokens: 0,
        }
    }

    /// One event, `gap_us` after the request start (first) or the previous event.
    pub fn record(&mut self, first: bool, gap_us: u64) {
        self.tokens += 1;
        let h = if first { &mut self.ttft } else { &mut self.itl };
        record_n(h, gap_us, 1);
    }

    pub(crate) fn merge(&mut self, other: &EventStats) {
        add_histogram(&mut self.ttft, &other.ttft);
        add_histogram(&mut self.itl, &other.itl);
        self.tokens += other.tokens;
    }
}

impl Default for EventStats {
    fn default() -> Self {
        Self::new()
    }
}

fn merge_events(dst: &mut Option<Box<EventStats>>, src: &Option<Box<EventStats>>) {
    if let Some(src) = src {
        dst.get_or_insert_with(Default::default).merge(src);
    }
}

/// The derived figures of streamed responses (ms, tokens per measured second).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StreamFigures {
    pub tokens: u64,
    pub tokens_per_s: f64,
    pub ttft_mean_ms: f64,
    pub ttft_p50_ms: f64,
    pub ttft_p95_ms: f64,
    pub ttft_p99_ms: f64,
    pub itl_mean_ms: f64,
    pub itl_p50_ms: f64,
    pub itl_p95_ms: f64,
    pub itl_p99_ms: f64,
}

impl StreamFigures {
    fn of(e: &EventStats, measured_secs: f64) -> Self {
        let mean = |h: &Histogram<u64>| if h.is_empty() { 0.0 } else { h.mean() / 1000.0 };
        StreamFigures {
            tokens: e.tokens,
            tokens_per_s: per_sec(e.tokens, measured_secs),
            ttft_mean_ms: mean(&e.ttft),
            ttft_p50_ms: quantile_ms(&e.ttft, 0.50),
            ttft_p95_ms: quantile_ms(&e.ttft, 0.95),
            ttft_p99_ms: quantile_ms(&e.ttft, 0.99),
            itl_mean_ms: mean(&e.itl),
            itl_p50_ms: quantile_ms(&e.itl, 0.50),
            itl_p95_ms: quantile_ms(&e.itl, 0.95),
            itl_p99_ms: quantile_ms(&e.itl, 0.99),
        }
    }
}

/// Requests meeting every per-request objective of the SLO.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Goodput {
    pub good: u64,
    /// Percent of all requests (failures included).
    pub pct: f64,
    /// Good requests per measured second.
    pub rps: f64,
}

impl Default for RequestStats {
    fn default() -> Self {
        RequestStats {
            requests: 0,
            failures: 0,
            failures_by_kind: FailureCounts::default(),
            rps: 0.0,
            mean_ms: 0.0,
            min_ms: 0.0,
            p50_ms: 0.0,
            p75_ms: 0.0,
            p90_ms: 0.0,
            p95_ms: 0.0,
            p99_ms: 0.0,
            p999_ms: 0.0,
            max_ms: 0.0,
            hist: latency_histogram(),
            stream: None,
            goodput: None,
            events: None,
            good: None,
            tokens_io: None,
        }
    }
}

impl RequestStats {
    pub fn new() -> Self {
        Self::default()
    }

    pub(crate) fn record_success(&mut self, latency_us: u64) {
        self.requests += 1;
        record_n(&mut self.hist, latency_us, 1);
    }

    pub(crate) fn record_failure(&mut self, kind: FailureKind) {
        self.requests += 1;
        self.failures += 1;
        self.failures_by_kind.add(kind);
    }

    /// Exact merge of counts and histogram; call [`RequestStats::finalize`]
    /// afterwards to refresh the derived fields.
    pub(crate) fn merge(&mut self, other: &RequestStats) {
        self.requests += other.requests;
        self.failures += other.failures;
        self.failures_by_kind.merge(&other.failures_by_kind);
        add_histogram(&mut self.hist, &other.hist);
        merge_events(&mut self.events, &other.events);
        if let Some(g) = other.good {
            *self.good.get_or_insert(0) += g;
        }
        if let Some(t) = &other.tokens_io {
            self.tokens_io.get_or_insert_with(Default::default).merge(t);
        }
    }

    /// One finished request judged against the per-request objectives.
    pub(crate) fn record_judged(&mut self, good: bool) {
        *self.good.get_or_insert(0) += u64::from(good);
    }

    /// Recomputes `rps` and the latency fields from the counts and histogram.
    pub(crate) fn finalize(&mut self, measured_secs: f64) {
        self.rps = per_sec(self.requests, measured_secs);
        if let Some(e) = &self.events {
            self.stream = Some(StreamFigures::of(e, measured_secs));
        }
        if let Some(good) = self.good {
            self.goodput = Some(Goodput {
                good,
                pct: if self.requests > 0 {
                    good as f64 / self.requests as f64 * 100.0
                } else {
                    0.0
                },
                rps: per_sec(good, measured_secs),
            });
        }
        let h = &self.hist;
        if h.is_empty() {
            self.mean_ms = 0.0;
            self.min_ms = 0.0;
            self.p50_ms = 0.0;
            self.p75_ms = 0.0;
            self.p90_ms = 0.0;
            self.p95_ms = 0.0;
            self.p99_ms = 0.0;
            self.p999_ms = 0.0;
            self.max_ms = 0.0;
            return;
        }
        self.mean_ms = h.mean() / 1000.0;
        self.min_ms = us_to_ms(h.min());
        self.p50_ms = quantile_ms(h, 0.50);
        self.p75_ms = quantile_ms(h, 0.75);
        self.p90_ms = quantile_ms(h, 0.90);
        self.p95_ms = quantile_ms(h, 0.95);
        self.p99_ms = quantile_ms(h, 0.99);
        self.p999_ms = quantile_ms(h, 0.999);
        self.max_ms = us_to_ms(h.max());
    }
}

/// Exact merge of several [`RequestStats`], finalized for `measured_secs`.
pub fn merge<'a>(
    parts: impl IntoIterator<Item = &'a RequestStats>,
    measured_secs: f64,
) -> RequestStats {
    let mut out = RequestStats::new();
    for p in parts {
        out.merge(p);
    }
    out.finalize(measured_secs);
    out
}

/// One second of the measured window. Requests are attributed to the second
/// in which their response completed; responses that complete after the
/// window (during the drain) are attributed to the last row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TimelineRow {
    /// Seconds since the start of the measured window.
    pub t: u64,
    /// Closed model: active virtual users; open model: requests in flight.
    /// Sampled at the start of the second, summed over workers.
    pub users: u64,
    pub rps: f64,
    pub requests: u64,
    pub failures: u64,
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    /// Streamed responses: events of the second (attributed to the second
    /// in which they arrived) and their time to first token and gaps.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream: Option<RowStream>,
}

/// Result of one load run (one cell of the matrix).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CellStats {
    /// All request names merged.
    pub total: RequestStats,
    /// Per request name, in `RequestSpec` order; specs sharing a name are merged.
    pub by_name: IndexMap<String, RequestStats>,
    pub timeline: Vec<TimelineRow>,
    /// Length of the measured window (shorter than `duration` if cancelled).
    pub measured_secs: f64,
    /// Open model: arrivals in the measured window not sent because
    /// `max_in_flight` requests were outstanding.
    pub dropped: u64,
    /// CPU time of the worker threads over the measured window, as a
    /// percentage of `min(workers, cores) * wall`.
    pub client_cpu_pct: f64,
    /// `client_cpu_pct >= CLIENT_BOUND_CPU_PCT`: the figures may describe the client, not the server.
    pub client_bound: bool,
    /// Open model: p99 of how far behind schedule arrivals were sent (0 in
    /// the closed model).
    #[serde(default)]
    pub schedule_lag_p99_ms: f64,
    /// The run was stopped by the cancel token.
    pub cancelled: bool,
    pub warnings: Vec<String>,
    /// The figures are not to be trusted as they stand, and why: the cell is
    /// `degraded` (e.g. Locust's own counts disagree with what was ingested).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub degraded: Option<String>,
    /// Bytes the load generator received and sent over the measured window
    /// (none when the engine cannot count them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rx_bytes: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tx_bytes: Option<u64>,
    /// Open model: successful responses that completed inside the measured
    /// window, whenever they were sent (requests are counted by intended
    /// start, and an overloaded service completes most of them after it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completed_ok: Option<u64>,
    /// Connections the load generator opened over the cell's run (warm-up
    /// included) and how long their setup took (none when the engine cannot
    /// see its connections).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connections: Option<ConnStats>,
}

/// Connections opened and their setup times: what k6 calls
/// `http_req_connecting` and `http_req_tls_handshaking`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ConnStats {
    pub opened: u64,
    /// 95th percentile of TCP connect times, ms; none without a connection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connect_p95_ms: Option<f64>,
    /// 95th percentile of TLS handshake times, ms; none without TLS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_p95_ms: Option<f64>,
    #[serde(skip, default = "latency_histogram")]
    pub connect: Histogram<u64>,
    #[serde(skip, default = "latency_histogram")]
    pub tls: Histogram<u64>,
}

impl ConnStats {
    pub fn new(opened: u64, connect: Histogram<u64>, tls: Histogram<u64>) -> ConnStats {
        let mut c = ConnStats {
            opened,
            connect_p95_ms: None,
            tls_p95_ms: None,
            connect,
            tls,
        };
        c.finalize();
        c
    }

    fn finalize(&mut self) {
        let p95 = |h: &Histogram<u64>| (!h.is_empty()).then(|| quantile_ms(h, 0.95));
        self.connect_p95_ms = p95(&self.connect);
        self.tls_p95_ms = p95(&self.tls);
    }

    pub(crate) fn merge(&mut self, other: &ConnStats) {
        self.opened += other.opened;
        add_histogram(&mut self.connect, &other.connect);
        add_histogram(&mut self.tls, &other.tls);
        self.finalize();
    }
}

impl CellStats {
    /// Parts measured back to back (stages, repetitions) as one measured
    /// window: counts and histograms merged exactly, timelines laid end to end.
    pub(crate) fn combine_sequential(mut parts: Vec<CellStats>) -> Option<CellStats> {
        if parts.len() <= 1 {
            return parts.pop();
        }
        let measured: f64 = parts.iter().map(|p| p.measured_secs).sum();
        let mut out = parts.remove(0);
        let mut offset = out.timeline.len() as u64;
        let mut cpu_weighted = out.client_cpu_pct * out.measured_secs;
        for p in parts {
            out.total.merge(&p.total);
            for (name, s) in &p.by_name {
                out.by_name.entry(name.clone()).or_default().merge(s);
            }
            for mut row in p.timeline {
                row.t += offset;
                out.timeline.push(row);
            }
            offset = out.timeline.len() as u64;
            out.dropped += p.dropped;
            out.schedule_lag_p99_ms = out.schedule_lag_p99_ms.max(p.schedule_lag_p99_ms);
            cpu_weighted += p.client_cpu_pct * p.measured_secs;
            out.cancelled |= p.cancelled;
            out.warnings.extend(p.warnings);
            if out.degraded.is_none() {
                out.degraded = p.degraded;
            }
            out.rx_bytes = out.rx_bytes.zip(p.rx_bytes).map(|(a, b)| a + b);
            out.tx_bytes = out.tx_bytes.zip(p.tx_bytes).map(|(a, b)| a + b);
            out.completed_ok = out.completed_ok.zip(p.completed_ok).map(|(a, b)| a + b);
            out.connections = match (out.connections.take(), p.connections) {
                (Some(mut a), Some(b)) => {
                    a.merge(&b);
                    Some(a)
                }
                (a, b) => a.or(b),
            };
        }
        out.measured_secs = measured;
        out.total.finalize(measured);
        for s in out.by_name.values_mut() {
            s.finalize(measured);
        }
        out.client_cpu_pct = if measured > 0.0 {
            cpu_weighted / measured
        } else {
            0.0
        };
        out.client_bound = out.client_cpu_pct >= CLIENT_BOUND_CPU_PCT;
        Some(out)
    }

    /// Requests that succeeded.
    pub fn successes(&self) -> u64 {
        self.total.requests - self.total.failures
    }
}

pub(crate) fn us_to_ms(us: u64) -> f64 {
    us as f64 / 1000.0
}

pub(crate) fn quantile_ms(h: &Histogram<u64>, q: f64) -> f64 {
    if h.is_empty() {
        0.0
    } else {
        us_to_ms(h.value_at_quantile(q))
    }
}

pub(crate) fn per_sec(n: u64, secs: f64) -> f64 {
    if secs > 0.0 { n as f64 / secs } else { 0.0 }
}

/// One worker's share of one timeline row.
#[derive(Debug)]
pub(crate) struct RowPart {
    pub idx: usize,
    pub users: u64,
    pub requests: u64,
    pub failures: u64,
    pub hist: Histogram<u64>,
    /// Per request spec, only when the mix has several (for the live view).
    pub by_spec: Vec<Histogram<u64>>,
    pub events: Option<Box<EventStats>>,
}

impl RowPart {
    pub fn new(idx: usize, users: u64) -> Self {
        RowPart {
            idx,
            users,
            requests: 0,
            failures: 0,
            hist: latency_histogram(),
            by_spec: Vec::new(),
            events: None,
        }
    }
}

struct PendingRow {
    parts: usize,
    users: u64,
    requests: u64,
    failures: u64,
    hist: Option<Histogram<u64>>,
    /// p50, p95, p99 once all workers reported and the histogram was dropped.
    done: Option<[f64; 3]>,
    events: Option<Box<EventStats>>,
    /// ttft p95, itl p95, tokens once all workers reported.
    events_done: Option<(f64, f64, u64)>,
}

/// Merges per-worker row parts exactly. A row's histogram is dropped as soon
/// as every worker has reported it, so memory stays flat on long runs.
pub(crate) struct TimelineBuilder {
    workers: usize,
    rows: Vec<PendingRow>,
}

impl TimelineBuilder {
    pub fn new(workers: usize) -> Self {
        TimelineBuilder {
            workers,
            rows: Vec::new(),
        }
    }

    fn row(&mut self, idx: usize) -> &mut PendingRow {
        while self.rows.len() <= idx {
            self.rows.push(PendingRow {
                parts: 0,
                users: 0,
                requests: 0,
                failures: 0,
                hist: None,
                done: None,
                events: None,
                events_done: None,
            });
        }
        &mut self.rows[idx]
    }

    pub fn add(&mut self, part: RowPart) {
        let workers = self.workers;
        let row = self.row(part.idx);
        row.parts += 1;
        row.users += part.users;
        row.requests += part.requests;
        row.failures += part.failures;
        match &mut row.hist {
            Some(h) => add_histogram(h, &part.hist),
            None => row.hist = Some(part.hist),
        }
        merge_events(&mut row.events, &part.events);
        if row.parts >= workers {
            row.done = Some(row_quantiles(row.hist.take()));
            row.events_done = row.events.take().map(|e| event_quantiles(&e));
        }
    }

    /// `n` requests sent in second `idx` that failed without completing.
    pub(crate) fn add_failures(&mut self, idx: usize, n: u64) {
        let row = self.row(idx);
        row.requests += n;
        row.failures += n;
    }

    /// The leading rows every worker has closed: the measured window so far.
    pub(crate) fn closed_so_far(&self) -> WindowSoFar {
        let mut w = WindowSoFar::default();
        for (t, row) in self.rows.iter().enumerate() {
            let Some(q) = row.done else { break };
            w.secs += 1;
            w.requests += row.requests;
            w.failures += row.failures;
            w.last = Some(SecondFigures {
                t: t as u64,
                requests: row.requests,
                failures: row.failures,
                p50_ms: q[0],
                p95_ms: q[1],
                stream: row.events_done.map(|e| row_stream(e, 1.0)),
            });
        }
        w
    }

    /// Rows `0..ceil(measured_secs)`; rows missing a worker's part (cancelled
    /// runs) are merged from the parts that arrived.
    pub(crate) fn finish(mut self, measured_secs: f64) -> Vec<TimelineRow> {
        let n = if measured_secs > 0.0 {
            (measured_secs - 1e-9).ceil().max(1.0) as usize
        } else {
            0
        };
        self.rows.truncate(n);
        let mut out = Vec::with_capacity(n);
        for (t, row) in self.rows.into_iter().enumerate() {
            let q = match row.done {
                Some(q) => q,
                None => row_quantiles(row.hist),
            };
            let len = (measured_secs - t as f64).clamp(1e-9, 1.0);
            let events = row
                .events_done
                .or_else(|| row.events.as_deref().map(event_quantiles));
            out.push(TimelineRow {
                t: t as u64,
                users: row.users,
                rps: row.requests as f64 / len,
                requests: row.requests,
                failures: row.failures,
                p50_ms: q[0],
                p95_ms: q[1],
                p99_ms: q[2],
                stream: events.map(|e| row_stream(e, len)),
            });
        }
        out
    }
}

/// A second's streaming figures from its event quantiles, over `secs` of it.
fn row_stream((ttft, itl, tokens): (f64, f64, u64), secs: f64) -> RowStream {
    RowStream {
        ttft_p95_ms: ttft,
        itl_p95_ms: itl,
        tokens_per_s: tokens as f64 / secs,
    }
}

fn event_quantiles(e: &EventStats) -> (f64, f64, u64) {
    (
        quantile_ms(&e.ttft, 0.95),
        quantile_ms(&e.itl, 0.95),
        e.tokens,
    )
}

fn row_quantiles(h: Option<Histogram<u64>>) -> [f64; 3] {
    match h {
        Some(h) => [
            quantile_ms(&h, 0.50),
            quantile_ms(&h, 0.95),
            quantile_ms(&h, 0.99),
        ],
        None => [0.0; 3],
    }
}

/// Merges per-worker, per-spec stats into the total and the by-name map.
pub(crate) fn assemble(
    names: &[String],
    per_worker: &[Vec<RequestStats>],
    measured_secs: f64,
) -> (RequestStats, IndexMap<String, RequestStats>) {
    let mut by_name: IndexMap<String, RequestStats> = IndexMap::new();
    for (i, name) in names.iter().enumerate() {
        let entry = by_name.entry(name.clone()).or_default();
        for worker in per_worker {
            if let Some(s) = worker.get(i) {
                entry.merge(s);
            }
        }
    }
    let mut total = RequestStats::new();
    for s in by_name.values_mut() {
        total.merge(s);
        s.finalize(measured_secs);
    }
    total.finalize(measured_secs);
    (total, by_name)
}
