//! Native load generator: HTTP/1.1 over hyper's low-level client, one
//! current-thread runtime per worker thread, exact HDR-histogram merges and
//! coordinated-omission-free open-model latency.

mod conn;
mod cpu;
pub mod locust;
pub mod native;
mod plan;
pub mod stats;
mod worker;

#[cfg(test)]
mod tests;

pub use native::{
    CancelToken, Endpoint, EngineError, LoadSpec, Model, Phase, ProgressTick, RequestSpec, run_load,
};
pub use stats::{CellStats, FailureCounts, FailureKind, RequestStats, TimelineRow};
