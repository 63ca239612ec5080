//! The ground floor: imports nothing of ours, and every other layer may import it.

pub mod limits;
pub mod process;
pub(crate) mod random;
pub mod redact;
pub mod request;
pub(crate) mod units;
