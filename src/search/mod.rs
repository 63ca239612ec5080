//! The capacity search, whole: its probes (cells of the plan with the
//! searched knob set), when a probe passes and which to take next, the
//! stability rule that measures an unsteady probe longer, the answer the
//! probes add up to (capacity.csv), and how a stopped search resumes.
//! Above the plan, the engine's figures and the results folder; below the
//! analysis, which reads the answer, and the run, which drives the probes.

pub mod capacity;
pub mod probes;
pub mod probing;
pub mod resume;
pub mod stability;
#[cfg(test)]
mod tests;

pub use capacity::{CapacityRow, capacity, capacity_csv};
pub use probing::{Probing, probe_passes};
pub use stability::MAX_EXTENSION;
