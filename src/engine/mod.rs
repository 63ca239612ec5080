//! Native load generator: a minimal HTTP/1.1 client (and HTTP/2 through the
//! `h2` crate) over tokio's TCP, optionally TLS, one
//! current-thread runtime per worker thread, exact HDR-histogram merges and
//! coordinated-omission-free open-model latency.

mod conn;
mod cpu;
pub mod data;
mod figures;
mod h2conn;
mod http1;
pub mod locust;
pub mod native;
mod plan;
pub mod spec;
pub mod stats;
mod stream;
pub mod tokens;
mod usage;
mod worker;

/// Said on the console and in the report whenever `[tls] insecure` is on.
pub(crate) const INSECURE_TLS: &str = "TLS certificates were NOT verified ([tls] insecure = true): \
     the figures may come from any server";

#[cfg(test)]
mod stream_tests;
#[cfg(test)]
mod tests;

pub use figures::{NameLatency, RowStream, SecondFigures, WindowSoFar};
pub use native::{
    CancelToken, Endpoint, EngineError, HttpVersion, LoadSpec, Model, Phase, ProgressTick,
    RequestSpec, Transport, run_load,
};
pub use stats::{
    CLIENT_BOUND_CPU_PCT, CellStats, ConnStats, FailureCounts, FailureKind, RequestStats,
    TimelineRow,
};
