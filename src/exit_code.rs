//! The documented, stable exit codes of the `loadmatrix` binary.

/// Every threshold held (or the command had nothing to gate).
pub const OK: u8 = 0;
/// At least one threshold failed, or `compare` found a regression.
pub(crate) const THRESHOLD_FAILED: u8 = 1;
/// The plan or the command line is invalid.
pub const INVALID: u8 = 2;
/// A preflight check failed; no load was sent.
pub(crate) const PREFLIGHT_FAILED: u8 = 3;
/// The run could not be carried out (engine, backend, I/O).
pub(crate) const RUN_FAILED: u8 = 4;
/// Interrupted: partial results were saved and the run is resumable.
pub(crate) const INTERRUPTED: u8 = 130;
