//! A cooperative stop signal shared by the run, its steps and the engines.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

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

/// SIGINT and SIGTERM received so far, counted from a signal handler so the
/// count advances even while every thread is busy (a report template
/// rendering, a runtime that is not polling).
static STOP_SIGNALS: AtomicUsize = AtomicUsize::new(0);

/// Counts SIGINT and SIGTERM from now on, beside any other handler of them
/// (the run's own watcher keeps working). Idempotent.
pub(crate) fn count_stop_signals() {
    static INSTALLED: std::sync::Once = std::sync::Once::new();
    INSTALLED.call_once(|| {
        for sig in [libc::SIGINT, libc::SIGTERM] {
            // SAFETY: the action only increments an atomic, which is
            // async-signal-safe.
            let _ = unsafe {
                signal_hook_registry::register(sig, || {
                    STOP_SIGNALS.fetch_add(1, Ordering::SeqCst);
                })
            };
        }
    });
}

/// How many stop signals arrived: a caller notes it before a long piece of
/// work and gives up when it changes.
pub(crate) fn stop_signals() -> usize {
    STOP_SIGNALS.load(Ordering::SeqCst)
}
