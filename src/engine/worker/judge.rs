//! Judging one finished request: the per-request objectives behind goodput.

use super::*;

/// Whether one finished request met every per-request objective.
pub(super) fn meets(
    slo: &StreamSlo,
    start: Instant,
    done: Instant,
    outcome: Outcome,
    streamed: Option<Streamed>,
) -> bool {
    if outcome.is_err() {
        return false;
    }
    if slo
        .e2e
        .is_some_and(|l| done.saturating_duration_since(start) > l)
    {
        return false;
    }
    let Some(s) = streamed else {
        return true;
    };
    if let Some(limit) = slo.ttft {
        match s.first {
            Some(first) if first.saturating_duration_since(start) <= limit => {}
            _ => return false,
        }
    }
    if let (Some(limit), Some(first), Some(last)) = (slo.itl, s.first, s.last)
        && s.tokens > 1
    {
        let gaps = u32::try_from(s.tokens - 1).unwrap_or(u32::MAX);
        let mean = last.saturating_duration_since(first) / gaps;
        if mean > limit {
            return false;
        }
    }
    true
}
