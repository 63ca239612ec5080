//! The service's own metrics: Prometheus text scraped from every replica
//! during a cell's measured window, kept as raw samples and aggregated into
//! summary columns.

pub mod aggregate;
pub mod expo;
pub mod limit;
pub mod scraper;

/// One scraped value.
#[derive(Debug, Clone, PartialEq)]
pub struct ScrapeSample {
    /// Seconds since the measured window began.
    pub t: f64,
    /// The replica (host:port) it came from.
    pub replica: String,
    /// Exposed name, with `_bucket`, `_sum` or `_count` for histograms.
    pub metric: String,
    /// Sorted label pairs (`le` included for buckets).
    pub labels: Vec<(String, String)>,
    pub value: f64,
}

impl ScrapeSample {
    /// `{a="1",b="2"}`, or empty without labels.
    pub(crate) fn labels_text(&self) -> String {
        if self.labels.is_empty() {
            return String::new();
        }
        let inner: Vec<String> = self
            .labels
            .iter()
            .map(|(k, v)| format!("{k}=\"{}\"", v.replace('\\', "\\\\").replace('"', "\\\"")))
            .collect();
        format!("{{{}}}", inner.join(","))
    }
}
