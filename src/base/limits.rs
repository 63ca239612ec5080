//! Bounds every plan is checked against before anything runs: what the
//! engines accept, how large a matrix may grow and how much work one template
//! may do. Both the plan checks and the engines read them from here.

use std::time::Duration;

/// Bytes of a plan file.
pub(crate) const MAX_PLAN_BYTES: u64 = 10 * 1024 * 1024;

/// Cells in one plan, counted before the matrix is expanded.
pub(crate) const MAX_CELLS: u128 = 10_000;

/// Load-generator threads of the native engine.
pub(crate) const MAX_NATIVE_WORKERS: usize = 1024;
/// Concurrent users of the native engine.
pub(crate) const MAX_NATIVE_USERS: u64 = 1_000_000;
/// Locust worker processes.
pub(crate) const MAX_LOCUST_WORKERS: usize = 1024;
/// Concurrent Locust users.
pub(crate) const MAX_LOCUST_USERS: u64 = 10_000_000;
/// Open-model arrivals per second.
pub(crate) const MAX_RATE: f64 = 1_000_000.0;

/// The longest duration a plan may write (warm-up, cell, timeout, ...).
pub(crate) const MAX_DURATION: Duration = Duration::from_secs(30 * 24 * 3600);
/// Measurements of one cell.
pub(crate) const MAX_REPEAT: u64 = 1000;

/// Work one rendered template value may do (minijinja fuel: about one unit
/// per instruction and per 64 bytes of data).
pub(crate) const TEMPLATE_FUEL: u64 = 1_000_000;
/// Bytes one rendered template value may produce.
pub(crate) const TEMPLATE_OUTPUT: usize = 1024 * 1024;

/// Work one report document may do: far beyond what the embedded templates
/// need for the largest matrix, and a few seconds of rendering at most, so a
/// template that loops for ever fails instead of hanging the run.
pub(crate) const REPORT_FUEL: u64 = 500_000_000;
/// Bytes one report document may produce.
pub(crate) const REPORT_OUTPUT: usize = 256 * 1024 * 1024;

/// `n` with thousands separators: 2560000 -> "2,560,000".
pub(crate) fn thousands(n: u128) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thousands_groups_digits_by_three() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(10_000), "10,000");
        assert_eq!(thousands(2_560_000), "2,560,000");
    }
}
