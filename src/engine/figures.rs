//! The figures a run shows while it goes: the measured window so far, its
//! last closed second, and the streaming figures of a second.

use serde::{Deserialize, Serialize};

/// The measured window so far, as the cell's statistics will count it.
#[derive(Debug, Clone, Default, Serialize)]
pub struct WindowSoFar {
    /// Whole seconds of the window closed by every worker.
    pub secs: u64,
    pub requests: u64,
    pub failures: u64,
    /// The last closed second.
    pub last: Option<SecondFigures>,
    /// Successful requests' percentiles per request name, when the mix has
    /// more than one request.
    pub by_name: Vec<NameLatency>,
}

/// One closed second of the measured window.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SecondFigures {
    /// Seconds since the start of the measured window.
    pub t: u64,
    pub requests: u64,
    pub failures: u64,
    pub p50_ms: f64,
    pub p95_ms: f64,
    /// Streamed responses' figures of that second, when the mix streams.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream: Option<RowStream>,
}

impl WindowSoFar {
    /// Requests per second over the closed seconds of the window.
    pub fn rps(&self) -> Option<f64> {
        (self.secs > 0).then(|| self.requests as f64 / self.secs as f64)
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct NameLatency {
    pub name: String,
    pub p50_ms: f64,
    pub p95_ms: f64,
}

/// Streamed responses' figures over one second.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RowStream {
    pub ttft_p95_ms: f64,
    pub itl_p95_ms: f64,
    pub tokens_per_s: f64,
}
