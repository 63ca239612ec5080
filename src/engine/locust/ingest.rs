//! Reading what the probe (probe.py) writes: the per-second progress lines and
//! the final result, turned into [`CellStats`], checked against Locust's own
//! statistics (its `--json-file` output).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::Path;

use indexmap::IndexMap;
use serde::Deserialize;

use crate::engine::stats::{
    CellStats, FailureCounts, RequestStats, TimelineRow, quantile_ms, record_n,
};

/// Failure counts by kind as the probe classified them.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(default)]
pub(super) struct Kinds {
    pub status: u64,
    pub timeout: u64,
    pub connect: u64,
    pub io: u64,
}

/// Counts and bucketed response times (ms, as Locust buckets them) of
/// successful requests.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(default)]
pub(super) struct Entry {
    pub n: u64,
    pub f: u64,
    /// Response body bytes (Locust's `response_length`).
    pub b: u64,
    pub k: Kinds,
    pub rt: BTreeMap<String, u64>,
}

/// Method -> request name -> entry.
pub(super) type Names = BTreeMap<String, BTreeMap<String, Entry>>;

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct LocustTotal {
    pub requests: u64,
    pub failures: u64,
}

#[derive(Debug, Deserialize)]
pub(super) struct ProbeOutput {
    pub locust_version: String,
    pub measure_started: bool,
    pub measured_secs: f64,
    #[serde(default)]
    pub warmup: Names,
    #[serde(default)]
    pub measure: Names,
    /// Second of the measured window -> all names merged.
    #[serde(default)]
    pub secs: BTreeMap<String, Entry>,
    /// `runner.user_count` at the end of each whole measured second.
    #[serde(default)]
    pub users: Vec<u64>,
    /// Per worker: [CPU seconds, wall seconds] of the measured window.
    #[serde(default)]
    pub cpu: Vec<(f64, f64)>,
    /// Workers whose reports carried no probe data.
    #[serde(default)]
    pub unprobed: Vec<String>,
    #[serde(default)]
    pub locust_total: LocustTotal,
}

/// One line of the progress file.
#[derive(Debug, Deserialize)]
#[serde(tag = "event", rename_all = "lowercase")]
pub(super) enum ProgressLine {
    Waiting {
        connected: u64,
    },
    Started {
        connected: u64,
    },
    /// The locustfile defines a `LoadTestShape`; the probe kept it from
    /// starting.
    Shape {
        class: String,
    },
    Tick {
        phase: String,
        elapsed: f64,
        requests: u64,
        failures: u64,
        users: u64,
        rps: f64,
        p50: Option<f64>,
        p95: Option<f64>,
        /// The measured seconds every worker has reported.
        #[serde(default)]
        window: Option<ProbeWindow>,
    },
}

#[derive(Debug, Deserialize)]
pub(super) struct ProbeWindow {
    pub secs: u64,
    pub requests: u64,
    pub failures: u64,
    pub last: Option<crate::engine::SecondFigures>,
}

fn stats_of(e: &Entry) -> RequestStats {
    let mut s = RequestStats::new();
    add_entry(&mut s, e);
    s
}

fn add_entry(s: &mut RequestStats, e: &Entry) {
    s.requests += e.n;
    s.failures += e.f;
    s.failures_by_kind.merge(&FailureCounts {
        status: e.k.status,
        timeout: e.k.timeout,
        connect: e.k.connect,
        io: e.k.io,
        ..FailureCounts::default()
    });
    for (ms, count) in &e.rt {
        // Locust's buckets are whole milliseconds unless a locustfile
        // replaced `bucket_response_time`.
        if let Ok(ms) = ms.parse::<f64>()
            && ms.is_finite()
            && ms >= 0.0
        {
            record_n(&mut s.hist, (ms * 1000.0).round() as u64, *count);
        }
    }
}

/// Request names as keys of `CellStats::by_name`: the plain name, or
/// `"METHOD name"` for a name Locust saw with more than one method.
fn by_name(measure: &Names, measured_secs: f64) -> IndexMap<String, RequestStats> {
    let mut methods_of: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for (method, names) in measure {
        for name in names.keys() {
            methods_of.entry(name).or_default().insert(method);
        }
    }
    let mut out = IndexMap::new();
    for (name, methods) in &methods_of {
        for method in methods {
            let Some(e) = measure.get(*method).and_then(|m| m.get(*name)) else {
                continue;
            };
            let key = if methods.len() > 1 {
                format!("{method} {name}")
            } else {
                (*name).to_string()
            };
            let mut s = stats_of(e);
            s.finalize(measured_secs);
            out.insert(key, s);
        }
    }
    out
}

/// One row of Locust's `--json-file` output: its own count of one request
/// name and method over the whole run.
#[derive(Debug, Clone, Deserialize)]
pub(super) struct LocustEntry {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub method: Option<String>,
    #[serde(default)]
    pub num_requests: u64,
    #[serde(default)]
    pub num_failures: u64,
}

/// Locust's `--json-file` output; None when it is missing or unreadable (a
/// user's `args` may have sent it elsewhere).
pub(super) fn read_locust_json(path: &Path) -> Option<Vec<LocustEntry>> {
    serde_json::from_slice(&std::fs::read(path).ok()?).ok()
}

/// Requests and failures per (method, name).
type Counts = BTreeMap<(String, String), (u64, u64)>;

fn probe_counts(out: &ProbeOutput) -> Counts {
    let mut c = Counts::new();
    for names in [&out.warmup, &out.measure] {
        for (method, by_name) in names {
            for (name, e) in by_name {
                let slot = c.entry((method.clone(), name.clone())).or_default();
                slot.0 += e.n;
                slot.1 += e.f;
            }
        }
    }
    c
}

fn locust_counts(entries: &[LocustEntry]) -> Counts {
    let mut c = Counts::new();
    for e in entries {
        let key = (e.method.clone().unwrap_or_default(), e.name.clone());
        let slot = c.entry(key).or_default();
        slot.0 += e.num_requests;
        slot.1 += e.num_failures;
    }
    c
}

fn sum(c: &Counts) -> (u64, u64) {
    c.values().fold((0, 0), |(n, f), (a, b)| (n + a, f + b))
}

/// Per-name differences listed in a message; the rest are counted.
const LISTED_NAMES: usize = 8;

/// Where the probe's counts (warm-up and measurement together) differ from
/// Locust's own over the whole run, in total or for any request name: why
/// the cell is degraded, with Locust's figures. None when they agree.
pub(super) fn disagreement(out: &ProbeOutput, locust: Option<&[LocustEntry]>) -> Option<String> {
    let ours = probe_counts(out);
    let (n, f) = sum(&ours);
    let theirs = locust.map(locust_counts);
    let (ln, lf) = match &theirs {
        Some(t) => sum(t),
        None => (out.locust_total.requests, out.locust_total.failures),
    };
    let mut names = Vec::new();
    if let Some(theirs) = &theirs {
        let keys: BTreeSet<&(String, String)> = ours.keys().chain(theirs.keys()).collect();
        for key in keys {
            let a = ours.get(key).copied().unwrap_or_default();
            let b = theirs.get(key).copied().unwrap_or_default();
            if a != b {
                names.push((key, a, b));
            }
        }
    }
    if (n, f) == (ln, lf) && names.is_empty() {
        return None;
    }
    let mut msg = format!(
        "Locust's own statistics count {ln} requests and {lf} failures, loadmatrix's probe \
         {n} requests and {f} failures (whole run, warm-up included)"
    );
    if !names.is_empty() {
        msg.push_str("; by request (Locust / probe):");
        for ((method, name), (a, af), (b, bf)) in names.iter().take(LISTED_NAMES) {
            let label = format!("{method} {name}");
            let _ = write!(
                msg,
                " `{}` {b} requests, {bf} failures / {a}, {af};",
                label.trim()
            );
        }
        if names.len() > LISTED_NAMES {
            let _ = write!(msg, " and {} more;", names.len() - LISTED_NAMES);
        }
        msg.pop();
    }
    if n > ln || f > lf {
        msg.push_str(
            ". Locust's statistics missed requests that were made: a request listener that \
             raises (RescheduleTask, StopUser) and was added before Locust's own, e.g. at \
             import time instead of in an init listener, stops the event before Locust \
             counts it (and --reset-stats drops what came before it); the cell's figures \
             count every request",
        );
    } else {
        msg.push_str(
            ". Locust counted requests the probe never saw (statistics logged without a \
             request event?): the cell's figures are lower than Locust's",
        );
    }
    Some(msg)
}

/// What the driver knows besides the probe output.
pub(super) struct Context {
    /// Rows of the timeline: whole or partial seconds of the measured window.
    pub rows: usize,
    pub cancelled: bool,
    /// A Locust process logged its CPU warning.
    pub client_bound: bool,
    pub warnings: Vec<String>,
    /// Locust's own statistics (`--json-file`), when it wrote them.
    pub locust_stats: Option<Vec<LocustEntry>>,
}

pub(super) fn cell_stats(out: &ProbeOutput, ctx: Context) -> CellStats {
    let measured_secs = out.measured_secs.max(0.0);
    let by_name = by_name(&out.measure, measured_secs);
    let mut total = RequestStats::new();
    for s in by_name.values() {
        total.merge(s);
    }
    total.finalize(measured_secs);

    let mut rows: Vec<Entry> = vec![Entry::default(); ctx.rows];
    for (s, e) in &out.secs {
        let Ok(s) = s.parse::<usize>() else { continue };
        // Responses after the window (Locust stops users a moment after the
        // run time) belong to the last second, as in the native engine.
        let i = s.min(ctx.rows.saturating_sub(1));
        if let Some(row) = rows.get_mut(i) {
            row.n += e.n;
            row.f += e.f;
            for (b, c) in &e.rt {
                *row.rt.entry(b.clone()).or_default() += c;
            }
        }
    }
    let timeline = rows
        .iter()
        .enumerate()
        .map(|(t, e)| {
            let s = stats_of(e);
            let len = (measured_secs - t as f64).clamp(1e-9, 1.0);
            TimelineRow {
                t: t as u64,
                users: out.users.get(t).or(out.users.last()).copied().unwrap_or(0),
                rps: e.n as f64 / len,
                requests: e.n,
                failures: e.f,
                p50_ms: quantile_ms(&s.hist, 0.50),
                p95_ms: quantile_ms(&s.hist, 0.95),
                p99_ms: quantile_ms(&s.hist, 0.99),
                stream: None,
            }
        })
        .collect();

    let (cpu, wall) = out
        .cpu
        .iter()
        .fold((0.0, 0.0), |(c, w), (ci, wi)| (c + ci, w + wi));
    let client_cpu_pct = if wall > 0.0 { cpu / wall * 100.0 } else { 0.0 };

    let mut warnings = vec![format!(
        "Locust {} rounds response times to 2 significant digits above 100 ms \
         (whole ms below, 10 ms steps to 1 s, 100 ms steps to 10 s, whole seconds above); \
         the percentiles carry that rounding",
        out.locust_version
    )];
    warnings.extend(ctx.warnings);
    let degraded = disagreement(out, ctx.locust_stats.as_deref());
    if let Some(d) = &degraded {
        warnings.push(d.clone());
    }
    if !out.measure_started {
        warnings.push("the measured window never started".into());
    }
    let client_bound =
        ctx.client_bound || client_cpu_pct >= crate::engine::stats::CLIENT_BOUND_CPU_PCT;
    if ctx.client_bound {
        warnings.push(
            "a Locust process logged CPU usage above 90%: the load generator may be the bottleneck"
                .into(),
        );
    } else if client_bound {
        warnings.push(format!(
            "Locust workers at {client_cpu_pct:.0}% CPU: the load generator may be the bottleneck"
        ));
    }
    if ctx.cancelled {
        warnings.push(format!(
            "cancelled after {measured_secs:.1} s of measurement"
        ));
    }
    if total.requests == 0 && measured_secs > 0.0 {
        warnings.push("no request completed in the measured window".into());
    }

    CellStats {
        total,
        by_name,
        timeline,
        measured_secs,
        dropped: 0,
        client_cpu_pct,
        client_bound,
        schedule_lag_p99_ms: 0.0,
        cancelled: ctx.cancelled,
        warnings,
        degraded,
        // Locust reports response bodies only: headers and what was sent
        // are not counted.
        rx_bytes: Some(
            out.measure
                .values()
                .flat_map(|m| m.values())
                .map(|e| e.b)
                .sum(),
        ),
        tx_bytes: None,
        completed_ok: None,
        connections: None,
    }
}
