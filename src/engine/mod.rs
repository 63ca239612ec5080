//! Native load generator: a minimal HTTP/1.1 client over tokio's TCP, one
//! current-thread runtime per worker thread, exact HDR-histogram merges and
//! coordinated-omission-free open-model latency.

mod conn;
mod cpu;
mod http1;
pub mod locust;
pub mod native;
mod plan;
pub mod spec;
pub mod stats;
mod stream;
mod worker;

#[cfg(test)]
mod stream_tests;
#[cfg(test)]
mod tests;

pub use native::{
    CancelToken, Endpoint, EngineError, LoadSpec, Model, NameLatency, Phase, ProgressTick,
    RequestSpec, SecondFigures, WindowSoFar, run_load,
};
pub use stats::{
    CLIENT_BOUND_CPU_PCT, CellStats, FailureCounts, FailureKind, RequestStats, TimelineRow,
};
