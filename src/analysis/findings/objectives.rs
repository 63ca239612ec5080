//! Which figure an answer quotes for a cell: the SLO's own metrics, and
//! when a cell misses the SLO, the objective that failed (a streaming SLO
//! of ttft and itl has no p95 to quote).

use super::Ctx;
use crate::analysis::text;

/// Percentiles of a per-request objective's figure, lowest first: the
/// first beyond the objective's limit is quoted.
fn figures(objective: &str) -> &'static [(&'static str, &'static str)] {
    match objective {
        "ttft" => &[
            ("ttft_p50", "p50"),
            ("ttft_p95", "p95"),
            ("ttft_p99", "p99"),
        ],
        "itl" => &[("itl_p50", "p50"), ("itl_p95", "p95"), ("itl_p99", "p99")],
        "e2e" => &[("p50", "p50"), ("p95", "p95"), ("p99", "p99")],
        _ => &[],
    }
}

impl Ctx<'_> {
    /// "p95 612.3 ms", or for an SLO of per-request objectives "ttft p95
    /// 412.0 ms, itl p95 31.0 ms": what a cell's latency is said to be.
    pub(super) fn latency_quote(&self, row: usize) -> String {
        let mut parts: Vec<String> = Vec::new();
        for (k, _) in self.input.slo.iter() {
            if crate::metrics::is_per_request(k) {
                if let Some((m, p)) = figures(k).get(1)
                    && let Some(v) = self.metric(row, m)
                {
                    parts.push(format!("{k} {p} {}", text::ms(v)));
                }
            } else if crate::metrics::kind(k) == Some(crate::metrics::MetricKind::Latency)
                && let Some(v) = self.metric(row, k)
            {
                parts.push(format!("{k} {}", text::ms(v)));
            }
        }
        if parts.is_empty() {
            return format!(
                "p95 {}",
                text::ms(self.metric(row, "p95").unwrap_or(f64::NAN))
            );
        }
        parts.join(", ")
    }

    /// The SLO limits `row` breaks, naming per-request objectives that
    /// failed: "goodput 0.0% < 99%: ttft p50 718.0 ms > 500.0 ms". Falls
    /// back to the latency quote when no limit can be named.
    pub(super) fn miss_text(&self, row: usize) -> String {
        let mut parts: Vec<String> = Vec::new();
        for s in &self.t.slo {
            let Some(v) = self.metric(row, &s.metric) else {
                continue;
            };
            let missed = if s.floor { v < s.limit } else { v > s.limit };
            if !missed {
                continue;
            }
            let op = if s.floor { "<" } else { ">" };
            let mut part = format!(
                "{} {} {op} {}",
                s.metric.trim_end_matches("_pct"),
                text::metric(&s.metric, v),
                text::metric(&s.metric, s.limit)
            );
            if s.metric == "goodput_pct" {
                let failed = self.failed_objectives(row);
                if !failed.is_empty() {
                    part = format!("{part}: {}", failed.join(", "));
                }
            }
            parts.push(part);
        }
        if parts.is_empty() {
            return self.latency_quote(row);
        }
        parts.join("; ")
    }

    /// Per-request objectives whose figure at some percentile the request
    /// goodput needs was beyond the limit.
    pub(super) fn failed_objectives(&self, row: usize) -> Vec<String> {
        self.input
            .slo
            .iter()
            .filter(|(k, _)| crate::metrics::is_per_request(k))
            .filter_map(|(k, limit)| {
                figures(k).iter().find_map(|(m, p)| {
                    let v = self.metric(row, m)?;
                    (v > *limit).then(|| format!("{k} {p} {} > {}", text::ms(v), text::ms(*limit)))
                })
            })
            .collect()
    }
}
