//! A cooperative stop signal shared by the run, its steps and the engines.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// Cooperative stop signal; the engines return within about a second after
/// [`CancelToken::cancel`], without waiting for in-flight requests.
#[derive(Debug, Clone, Default)]
pub struct CancelToken(Arc<AtomicBool>);

impl CancelToken {
    pub fn new() -> Self {
        Self::default()
    }

    /// Shares an existing flag, e.g. one set by a Ctrl-C handler.
    pub fn from_flag(flag: Arc<AtomicBool>) -> Self {
        CancelToken(flag)
    }

    pub fn cancel(&self) {
        self.0.store(true, Ordering::Relaxed);
    }

    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}
