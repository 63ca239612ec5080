//! One row per cell: the figures of summary.csv and summary.json, computed
//! from what the cell measured.

use std::fmt::Write as _;

use indexmap::IndexMap;
use serde::{Deserialize, Serialize};

use super::manifest::CellStatus;
use crate::engine::{CellStats, RequestStats};
use crate::plan::matrix::CellValues;
use crate::system::SystemSample;

/// What bounded a cell.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Bound {
    /// The load generator itself (its CPU, or the open model's schedule).
    Client,
    /// Failures above the SLO's fail rate.
    Failing,
    /// The system kept up with all the load the cell could offer.
    Load,
    /// The system under test was the limit: requests queued.
    Service,
}

impl Bound {
    pub fn as_str(self) -> &'static str {
        match self {
            Bound::Client => "client",
            Bound::Failing => "failing",
            Bound::Load => "load",
            Bound::Service => "service",
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SummaryRow {
    pub cell: String,
    pub matrix: CellValues,
    pub status: CellStatus,
    /// Metric name -> value; latencies in ms, percentages in percent.
    pub metrics: IndexMap<String, f64>,
    pub client_bound: bool,
    /// What limited the cell: client, failing, load or service; none
    /// without a baseline.
    #[serde(default)]
    pub bound: Option<Bound>,
    /// Engine warnings of the cell, e.g. a closed-model stall.
    #[serde(default)]
    pub warnings: Vec<String>,
    /// RPS of each repetition (one entry without `repeat`).
    #[serde(default)]
    pub repeat_rps: Vec<f64>,
    /// Per request name: its figures (the metric names of `metrics`).
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub by_name: IndexMap<String, IndexMap<String, f64>>,
    /// The measured window's whole seconds, per repetition (A/B
    /// comparisons resample them); not written to stats.json, read back
    /// from timeline.csv.
    #[serde(skip)]
    pub seconds: Vec<Vec<super::seconds::Second>>,
}

impl SummaryRow {
    /// A figure by metric name; `p95{name:predict}` reads request name
    /// `predict`'s.
    pub fn metric(&self, name: &str) -> Option<f64> {
        match crate::metrics::selector(name) {
            Some((metric, request)) => self
                .by_name
                .get(request)?
                .get(crate::metrics::canonical(metric))
                .copied(),
            None => self.metrics.get(crate::metrics::canonical(name)).copied(),
        }
    }

    /// A row with a status and no figures (not measured, or measured by a
    /// run whose files are gone).
    pub fn unmeasured(cell: &str, matrix: &CellValues, status: CellStatus) -> SummaryRow {
        SummaryRow {
            cell: cell.to_string(),
            matrix: matrix.clone(),
            status,
            metrics: IndexMap::new(),
            client_bound: false,
            bound: None,
            warnings: Vec::new(),
            repeat_rps: Vec::new(),
            by_name: IndexMap::new(),
            seconds: Vec::new(),
        }
    }

    /// Requests that succeeded in the measured window.
    pub fn successes(&self) -> f64 {
        self.metric("requests").unwrap_or(0.0) - self.metric("failures").unwrap_or(0.0)
    }
}

pub(crate) fn metrics_of(
    s: &CellStats,
    runs: &[CellStats],
    samples: &[SystemSample],
) -> IndexMap<String, f64> {
    // Open model: what the service completed in the window, not what was
    // sent in it (an overloaded service finishes most of those after it).
    let ok = s.completed_ok.unwrap_or_else(|| s.successes());
    let mut metrics = request_metrics(&s.total, s.measured_secs, ok as f64);
    for (k, v) in [
        ("dropped", s.dropped as f64),
        ("client_cpu_pct", s.client_cpu_pct),
    ] {
        metrics.insert(k.to_string(), v);
    }
    let mbps = |bytes: Option<u64>| {
        bytes
            .filter(|_| s.measured_secs > 0.0)
            .map(|b| b as f64 * 8.0 / 1e6 / s.measured_secs)
    };
    if let Some(v) = mbps(s.rx_bytes) {
        metrics.insert("rx_mbps".into(), v);
    }
    if let Some(v) = mbps(s.tx_bytes) {
        metrics.insert("tx_mbps".into(), v);
    }
    stream_metrics(&s.total, &mut metrics);
    token_metrics(&s.total, s.measured_secs, &mut metrics);
    if let Some(c) = &s.connections {
        metrics.insert("connections".into(), c.opened as f64);
        if let Some(v) = c.connect_p95_ms {
            metrics.insert("connect_p95".into(), v);
        }
        if let Some(v) = c.tls_p95_ms {
            metrics.insert("tls_p95".into(), v);
        }
    }
    if runs.len() > 1 {
        // Spread of repeated measurements: min, max and coefficient of variation of RPS.
        let rates: Vec<f64> = runs.iter().map(|r| r.total.rps).collect();
        let n = rates.len() as f64;
        let mean = rates.iter().sum::<f64>() / n;
        let var = rates.iter().map(|r| (r - mean).powi(2)).sum::<f64>() / (n - 1.0);
        metrics.insert(
            "rps_min".into(),
            rates.iter().copied().fold(f64::INFINITY, f64::min),
        );
        metrics.insert(
            "rps_max".into(),
            rates.iter().copied().fold(f64::NEG_INFINITY, f64::max),
        );
        metrics.insert(
            "rps_cv_pct".into(),
            if mean > 0.0 {
                var.sqrt() / mean * 100.0
            } else {
                0.0
            },
        );
        let p95s: Vec<f64> = runs.iter().map(|r| r.total.p95_ms).collect();
        metrics.insert("rps_ci95".into(), ci95(&rates));
        metrics.insert("p95_ci95".into(), ci95(&p95s));
    }
    let (cpu, mem) = sut_usage(samples);
    metrics.insert("sut_cpu_pct".into(), cpu);
    metrics.insert("sut_mem_mb".into(), mem);
    if let Some((rx, tx)) = sut_network(samples) {
        metrics.insert("sut_rx_mbps".into(), rx);
        metrics.insert("sut_tx_mbps".into(), tx);
    }
    metrics
}

/// The figures of one request name, or of all names merged: counts,
/// rates, latencies, streaming and goodput. `ok` is the successful
/// completions the window counts.
fn request_metrics(t: &RequestStats, measured_secs: f64, ok: f64) -> IndexMap<String, f64> {
    let fail_pct = if t.requests > 0 {
        t.failures as f64 / t.requests as f64 * 100.0
    } else {
        0.0
    };
    [
        ("requests", t.requests as f64),
        ("failures", t.failures as f64),
        ("fail_pct", fail_pct),
        ("rps", t.rps),
        (
            "ok_rps",
            if measured_secs > 0.0 {
                ok / measured_secs
            } else {
                0.0
            },
        ),
        ("mean", t.mean_ms),
        ("min", t.min_ms),
        ("p50", t.p50_ms),
        ("p75", t.p75_ms),
        ("p90", t.p90_ms),
        ("p95", t.p95_ms),
        ("p99", t.p99_ms),
        ("p999", t.p999_ms),
        ("max", t.max_ms),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

/// Streamed responses' and goodput figures, when the requests had them.
fn stream_metrics(t: &RequestStats, metrics: &mut IndexMap<String, f64>) {
    if let Some(f) = &t.stream {
        for (k, v) in [
            ("ttft_p50", f.ttft_p50_ms),
            ("ttft_p95", f.ttft_p95_ms),
            ("ttft_p99", f.ttft_p99_ms),
            ("ttft_mean", f.ttft_mean_ms),
            ("itl_p50", f.itl_p50_ms),
            ("itl_p95", f.itl_p95_ms),
            ("itl_p99", f.itl_p99_ms),
            ("itl_mean", f.itl_mean_ms),
            ("tokens_per_s", f.tokens_per_s),
            ("tokens", f.tokens as f64),
        ] {
            metrics.insert(k.to_string(), v);
        }
    }
    if let Some(g) = &t.goodput {
        metrics.insert("goodput_pct".into(), g.pct);
        metrics.insert("goodput_rps".into(), g.rps);
    }
}

/// Input and output tokens, when responses were read for them.
fn token_metrics(t: &RequestStats, measured_secs: f64, metrics: &mut IndexMap<String, f64>) {
    if let Some(tokens) = &t.tokens_io {
        for (k, v) in tokens.figures(measured_secs) {
            metrics.insert(k.to_string(), v);
        }
    }
}

/// summary.csv's `tokens_source`: `usage` when the responses reported
/// their tokens (then input tokens are known), `events` when output tokens
/// were counted from streamed events.
fn tokens_source(metrics: &IndexMap<String, f64>) -> &'static str {
    match (metrics.get("output_tokens"), metrics.get("input_tokens")) {
        (Some(_), Some(_)) => "usage",
        (Some(_), None) => "events",
        _ => "",
    }
}

/// Per request name: its figures, when the cell sent more than one name.
/// In the open model each name's completions in the window are its share
/// of the cell's.
pub(crate) fn metrics_by_name(s: &CellStats) -> IndexMap<String, IndexMap<String, f64>> {
    let successes = s.successes() as f64;
    let scale = match s.completed_ok {
        Some(ok) if successes > 0.0 => ok as f64 / successes,
        _ => 1.0,
    };
    s.by_name
        .iter()
        .map(|(name, t)| {
            let ok = (t.requests - t.failures) as f64 * scale;
            let mut m = request_metrics(t, s.measured_secs, ok);
            stream_metrics(t, &mut m);
            token_metrics(t, s.measured_secs, &mut m);
            (name.clone(), m)
        })
        .collect()
}

/// Two-sided 97.5% quantiles of Student's t for 1 to 30 degrees of freedom.
const T975: [f64; 30] = [
    12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160,
    2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056,
    2.052, 2.048, 2.045, 2.042,
];

/// The t quantile for a 95% interval with `df` degrees of freedom.
pub(crate) fn t975(df: usize) -> f64 {
    match df {
        0 => f64::NAN,
        1..=30 => T975[df - 1],
        // Beyond the table the expansion in 1/df is within 0.001.
        _ => {
            let d = df as f64;
            1.959_964 + 2.372 / d + 2.82 / (d * d)
        }
    }
}

/// Half-width of the 95% confidence interval of the mean of `xs` (Student t).
pub fn ci95(xs: &[f64]) -> f64 {
    let n = xs.len();
    if n < 2 {
        return f64::NAN;
    }
    let mean = xs.iter().sum::<f64>() / n as f64;
    let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
    t975(n - 1) * var.sqrt() / (n as f64).sqrt()
}

/// Mean over the measured seconds of the CPU % and memory (MiB) summed over replicas.
fn sut_usage(samples: &[SystemSample]) -> (f64, f64) {
    let mut by_t: IndexMap<i64, (f64, u64)> = IndexMap::new();
    for s in samples.iter().filter(|s| s.t >= 0.0) {
        let e = by_t.entry(s.t.round() as i64).or_default();
        e.0 += s.cpu_pct;
        e.1 += s.mem_bytes;
    }
    if by_t.is_empty() {
        return (0.0, 0.0);
    }
    let n = by_t.len() as f64;
    let cpu = by_t.values().map(|v| v.0).sum::<f64>() / n;
    let mem = by_t.values().map(|v| v.1 as f64).sum::<f64>() / n / (1024.0 * 1024.0);
    (cpu, mem)
}

/// Containers' network throughput over the measured window in Mbit/s,
/// received and sent, summed over replicas; none without counters.
fn sut_network(samples: &[SystemSample]) -> Option<(f64, f64)> {
    type Counters<'a> = IndexMap<&'a str, Vec<(f64, (u64, u64))>>;
    let mut by_replica: Counters = IndexMap::new();
    for s in samples.iter().filter(|s| s.t >= 0.0) {
        if let Some(n) = s.net_bytes {
            by_replica.entry(&s.replica).or_default().push((s.t, n));
        }
    }
    let mut total = None;
    for points in by_replica.values() {
        let (Some(first), Some(last)) = (points.first(), points.last()) else {
            continue;
        };
        let span = last.0 - first.0;
        if span <= 0.0 {
            continue;
        }
        let rate = |a: u64, b: u64| b.saturating_sub(a) as f64 * 8.0 / 1e6 / span;
        let t = total.get_or_insert((0.0, 0.0));
        t.0 += rate(first.1.0, last.1.0);
        t.1 += rate(first.1.1, last.1.1);
    }
    total
}

/// summary.csv: the matrix keys, the metric columns, the plan's own
/// columns (`[[scrape]]`), the status. A cell without a successful request
/// has no latency: its latency columns are empty, not 0.
pub(crate) fn summary_csv(axes: &[String], extra: &[String], rows: &[SummaryRow]) -> String {
    let mut out = String::new();
    let mut columns = crate::metrics::columns();
    columns.extend(extra.iter().map(String::as_str));
    let mut header: Vec<&str> = axes.iter().map(String::as_str).collect();
    header.extend(&columns);
    header.push("status");
    let _ = writeln!(out, "{}", header.join(","));
    for r in rows {
        let no_success = r.metric("requests").is_some() && r.successes() <= 0.0;
        let mut fields: Vec<String> = axes
            .iter()
            .map(|a| {
                r.matrix
                    .get(a)
                    .map(|v| csv_field(&v.to_string()))
                    .unwrap_or_default()
            })
            .collect();
        for m in &columns {
            if *m == "bound" {
                fields.push(r.bound.map(|b| b.as_str().to_string()).unwrap_or_default());
                continue;
            }
            if *m == "tokens_source" {
                fields.push(tokens_source(&r.metrics).to_string());
                continue;
            }
            let latency = crate::metrics::kind(m) == Some(crate::metrics::MetricKind::Latency);
            fields.push(match r.metrics.get(*m) {
                Some(_) if no_success && latency && *m != "baseline_ms" => String::new(),
                Some(v) if matches!(*m, "requests" | "failures") => format!("{v:.0}"),
                Some(v) => format!("{v:.3}"),
                None => String::new(),
            });
        }
        fields.push(r.status.as_str().to_string());
        let _ = writeln!(out, "{}", fields.join(","));
    }
    out
}

/// summary_by_name.csv: one line per cell and request name: the matrix
/// keys, `name`, then summary.csv's metric columns (those a request name
/// has; the cell's own, such as `bound`, stay empty).
pub(crate) fn summary_by_name_csv(axes: &[String], rows: &[SummaryRow]) -> String {
    let mut out = String::new();
    let columns = crate::metrics::columns();
    let mut header: Vec<&str> = axes.iter().map(String::as_str).collect();
    header.push("name");
    header.extend(&columns);
    let _ = writeln!(out, "{}", header.join(","));
    for r in rows {
        for (name, metrics) in &r.by_name {
            let mut fields: Vec<String> = axes
                .iter()
                .map(|a| {
                    r.matrix
                        .get(a)
                        .map(|v| csv_field(&v.to_string()))
                        .unwrap_or_default()
                })
                .collect();
            fields.push(csv_field(name));
            for m in &columns {
                if *m == "tokens_source" {
                    fields.push(tokens_source(metrics).to_string());
                    continue;
                }
                fields.push(match metrics.get(*m) {
                    Some(v) if matches!(*m, "requests" | "failures") => format!("{v:.0}"),
                    Some(v) => format!("{v:.3}"),
                    None => String::new(),
                });
            }
            let _ = writeln!(out, "{}", fields.join(","));
        }
    }
    out
}

pub(crate) fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn confidence_intervals_match_a_hand_computation() {
        // mean 105, s = 5, t(0.975; 2) = 4.303: 4.303 * 5 / sqrt(3) = 12.42
        let ci = ci95(&[100.0, 110.0, 105.0]);
        assert!((ci - 12.4217).abs() < 1e-3, "{ci}");
        // Two values: t(1) = 12.706, s = 7.071: 12.706 * 7.071 / sqrt(2) = 63.53
        assert!((ci95(&[10.0, 20.0]) - 63.53).abs() < 0.01);
        assert!(ci95(&[5.0]).is_nan());
        assert!((t975(60) - 2.000).abs() < 0.002);
        assert!((t975(120) - 1.980).abs() < 0.002);
    }
}
