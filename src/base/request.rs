//! How one request is taken, in the words the plan and the engine share:
//! how a streamed response is cut into events, the objectives each request
//! is judged by, and the order requests take their data rows in.

use std::time::Duration;

use serde::Serialize;

/// Per-request objectives behind goodput. A request meets them when it
/// succeeded, its latency is within `e2e`, and, if streamed, its first event
/// came within `ttft` and its mean gap between events (what vLLM calls
/// TPOT) is within `itl`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StreamSlo {
    pub ttft: Option<Duration>,
    pub itl: Option<Duration>,
    pub e2e: Option<Duration>,
}

impl StreamSlo {
    pub(crate) fn is_set(&self) -> bool {
        self.ttft.is_some() || self.itl.is_some() || self.e2e.is_some()
    }
}

/// How a streamed response is cut into events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StreamMode {
    /// Server-Sent Events: every `data:` line is an event; `data: [DONE]`
    /// ends the stream and is not one.
    Sse,
    /// Every chunk of a chunked body (every read of body bytes otherwise).
    Chunks,
}

impl StreamMode {
    pub fn parse(s: &str) -> Option<StreamMode> {
        match s {
            "sse" => Some(StreamMode::Sse),
            "chunks" => Some(StreamMode::Chunks),
            _ => None,
        }
    }
}

/// The order requests take rows in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum RowOrder {
    /// A seeded permutation per pass over the rows.
    Shuffle,
    Sequential,
    /// Each request an independent uniform pick.
    Random,
}

impl RowOrder {
    pub fn parse(s: &str) -> Option<RowOrder> {
        match s {
            "shuffle" => Some(RowOrder::Shuffle),
            "sequential" => Some(RowOrder::Sequential),
            "random" => Some(RowOrder::Random),
            _ => None,
        }
    }
}
