//! The metric catalogue: every figure a cell reports, its unit, its place in
//! summary.csv, and the other names it answers to. Threshold validation,
//! summary rows, the CSV header and every formatted figure read this one list.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricKind {
    /// Milliseconds.
    Latency,
    Percent,
    /// Per second.
    Rate,
    Count,
    Plain,
}

#[derive(Debug)]
pub(crate) struct Metric {
    pub name: &'static str,
    pub kind: MetricKind,
    /// Another name for `same_as`'s figure.
    pub same_as: Option<&'static str>,
    /// Position among the summary.csv metric columns, when it has one.
    pub column: Option<usize>,
    /// A number thresholds and SLOs can compare (not a label).
    pub number: bool,
}

const fn m(name: &'static str, kind: MetricKind, column: Option<usize>) -> Metric {
    Metric {
        name,
        kind,
        same_as: None,
        column,
        number: true,
    }
}

const fn alias(name: &'static str, kind: MetricKind, same_as: &'static str) -> Metric {
    Metric {
        name,
        kind,
        same_as: Some(same_as),
        column: None,
        number: true,
    }
}

/// A text column of summary.csv (not a number to compare).
const fn label(name: &'static str, column: usize) -> Metric {
    Metric {
        name,
        kind: MetricKind::Plain,
        same_as: None,
        column: Some(column),
        number: false,
    }
}

use MetricKind::{Count, Latency, Percent, Plain, Rate};

/// In the order thresholds list them.
pub(crate) const METRICS: &[Metric] = &[
    m("mean", Latency, Some(7)),
    m("min", Latency, None),
    m("max", Latency, Some(12)),
    m("p50", Latency, Some(8)),
    m("p75", Latency, None),
    m("p90", Latency, Some(9)),
    m("p95", Latency, Some(10)),
    m("p99", Latency, Some(11)),
    m("p999", Latency, None),
    alias("fail_rate", Percent, "fail_pct"),
    m("fail_pct", Percent, Some(2)),
    m("client_cpu_pct", Percent, Some(13)),
    m("sut_cpu_pct", Percent, Some(14)),
    m("rps", Rate, Some(3)),
    m("ok_rps", Rate, Some(4)),
    m("offered_rps", Rate, Some(5)),
    label("bound", 6),
    m("requests", Count, Some(0)),
    m("failures", Count, Some(1)),
    m("dropped", Count, None),
    m("sut_mem_mb", Plain, Some(15)),
    m("baseline_ms", Latency, Some(16)),
    // Closed model with Locust: each user's think time, from what was
    // measured (Little's law).
    m("think_ms", Latency, None),
    m("rps_ci95", Rate, Some(17)),
    m("p95_ci95", Latency, Some(18)),
    m("rx_mbps", Plain, Some(19)),
    m("tx_mbps", Plain, Some(20)),
    m("sut_rx_mbps", Plain, Some(21)),
    m("sut_tx_mbps", Plain, Some(22)),
    // Streamed responses: time to first token, inter-token latency (each
    // gap between events), tokens (events) per second.
    m("ttft_p50", Latency, Some(23)),
    m("ttft_p95", Latency, Some(24)),
    m("ttft_p99", Latency, Some(25)),
    m("ttft_mean", Latency, None),
    m("itl_p50", Latency, Some(26)),
    m("itl_p95", Latency, Some(27)),
    m("itl_p99", Latency, Some(28)),
    m("itl_mean", Latency, None),
    alias("tpot", Latency, "itl_mean"),
    m("tokens_per_s", Rate, Some(29)),
    m("tokens", Count, None),
    // Requests meeting every per-request objective of `[analysis] slo`.
    m("goodput_pct", Percent, Some(30)),
    m("goodput_rps", Rate, Some(31)),
    // Connections the load generator opened and their setup times (k6's
    // http_req_connecting and http_req_tls_handshaking).
    m("connect_p95", Latency, Some(32)),
    m("tls_p95", Latency, Some(33)),
    m("connections", Count, Some(34)),
    // Tokens per request (means) and per second, from the responses'
    // OpenAI `usage` (input and output) or streamed events (output only).
    m("input_tokens", Plain, Some(35)),
    m("output_tokens", Plain, Some(36)),
    m("input_tokens_per_s", Rate, Some(37)),
    m("output_tokens_per_s", Rate, Some(38)),
    label("tokens_source", 39),
    // Output tokens per second of the requests meeting every per-request
    // objective of `[analysis] slo`.
    m("goodput_output_tokens_per_s", Rate, None),
    // Capacity search only: a capacity row's largest value that met the SLO,
    // and how many probes found it.
    m("capacity", Count, None),
    m("probes", Count, None),
];

/// Metrics only capacity rows (`[search]`) have.
pub(crate) const SEARCH_ONLY: &[&str] = &["capacity", "probes"];

/// `[analysis] slo` objectives judged on every request as it completes
/// (behind `goodput_pct`), not on a cell's figures: time to first token,
/// mean inter-token gap, end-to-end latency.
pub(crate) const PER_REQUEST_OBJECTIVES: [&str; 3] = ["ttft", "itl", "e2e"];

pub(crate) fn is_per_request(name: &str) -> bool {
    PER_REQUEST_OBJECTIVES.contains(&name)
}

/// A higher value is better (a floor in an SLO), though not a rate.
pub(crate) fn higher_is_better(name: &str) -> bool {
    matches!(canonical(name), "goodput_pct") || kind(name) == Some(Rate)
}

/// The metric `name` names (itself or an alias).
pub(crate) fn lookup(name: &str) -> Option<&'static Metric> {
    METRICS.iter().find(|m| m.name == name)
}

/// A metric thresholds can compare (`p95{name:predict}`: p95's).
fn number(name: &str) -> Option<&'static Metric> {
    let base = selector(name).map_or(name, |(m, _)| m);
    lookup(base).filter(|m| m.number)
}

/// `p95{name:predict}` -> (`p95`, `predict`): one request name's figure,
/// as k6 selects `http_req_duration{name:predict}`.
pub fn selector(name: &str) -> Option<(&str, &str)> {
    let (metric, rest) = name.split_once('{')?;
    let inner = rest.strip_suffix('}')?;
    let (key, value) = inner.split_once(':')?;
    (key.trim() == "name").then(|| (metric.trim(), value.trim()))
}

pub fn kind(name: &str) -> Option<MetricKind> {
    number(name).map(|m| m.kind)
}

/// The name a figure is stored under: aliases resolve to their metric.
pub fn canonical(name: &str) -> &str {
    match lookup(name).and_then(|m| m.same_as) {
        Some(target) => target,
        None => name,
    }
}

/// Every name thresholds accept, in catalogue order.
pub fn names() -> impl Iterator<Item = &'static str> + Clone {
    METRICS.iter().filter(|m| m.number).map(|m| m.name)
}

/// The metric columns of summary.csv, in order.
pub fn columns() -> Vec<&'static str> {
    let mut cols: Vec<&Metric> = METRICS.iter().filter(|m| m.column.is_some()).collect();
    cols.sort_by_key(|m| m.column);
    cols.into_iter().map(|m| m.name).collect()
}

/// A figure as people read it: `612.3ms`, `0.50%`, `953.1/s`, `1200`.
pub fn format(name: &str, v: f64) -> String {
    match kind(name) {
        Some(Latency) => format!("{v:.1}ms"),
        Some(Percent) => format!("{v:.2}%"),
        Some(Rate) => format!("{v:.1}/s"),
        _ => format!("{v}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_are_the_summary_header_and_aliases_resolve() {
        assert_eq!(
            columns(),
            [
                "requests",
                "failures",
                "fail_pct",
                "rps",
                "ok_rps",
                "offered_rps",
                "bound",
                "mean",
                "p50",
                "p90",
                "p95",
                "p99",
                "max",
                "client_cpu_pct",
                "sut_cpu_pct",
                "sut_mem_mb",
                "baseline_ms",
                "rps_ci95",
                "p95_ci95",
                "rx_mbps",
                "tx_mbps",
                "sut_rx_mbps",
                "sut_tx_mbps",
                "ttft_p50",
                "ttft_p95",
                "ttft_p99",
                "itl_p50",
                "itl_p95",
                "itl_p99",
                "tokens_per_s",
                "goodput_pct",
                "goodput_rps",
                "connect_p95",
                "tls_p95",
                "connections",
                "input_tokens",
                "output_tokens",
                "input_tokens_per_s",
                "output_tokens_per_s",
                "tokens_source"
            ]
        );
        assert_eq!(canonical("fail_rate"), "fail_pct");
        assert_eq!(canonical("p95"), "p95");
        assert_eq!(canonical("tpot"), "itl_mean");
        assert!(higher_is_better("goodput_pct") && higher_is_better("tokens_per_s"));
        assert!(!higher_is_better("ttft_p95") && !higher_is_better("fail_pct"));
        assert_eq!(kind("fail_rate"), Some(MetricKind::Percent));
        assert_eq!(format("p95", 612.34), "612.3ms");
        assert_eq!(format("rps", 953.06), "953.1/s");
        assert_eq!(kind("bound"), None, "a label is no threshold metric");
        for m in METRICS {
            if let Some(t) = m.same_as {
                assert_eq!(lookup(t).unwrap().kind, m.kind, "{}", m.name);
            }
        }
    }
}
