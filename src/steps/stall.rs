//! Stalls of the closed model: users waiting on a stalled system send
//! nothing, so the stall shows as missing completions, not as latency.

use crate::engine::CellStats;

/// In the closed model a stalled system silences the users waiting on it, so
/// the stall shows as missing completions, not as latency. Each second in
/// which every user was active (ramp seconds are left out: fewer users send
/// less) is compared with the typical completions per user (the upper
/// quartile: a stall every few seconds can touch half the seconds, which
/// would drag a median down with it): a second that lost half its work, or
/// two adjacent seconds that lost most of one second's work between them (a
/// stall straddling a second boundary), is a stall.
pub(crate) fn closed_model_stall_warning(stats: &CellStats) -> Option<String> {
    let rows = &stats.timeline;
    let full = rows.iter().map(|r| r.users).max().filter(|u| *u > 0)?;
    // The window's edges hold only requests that straddle them: the first
    // seconds (as long as a typical request) complete only requests started
    // inside the window, the last one also the drained ones.
    let lead = ((stats.total.p50_ms / 1000.0).ceil() as usize).max(1);
    let last = rows.len().saturating_sub(1);
    let per_user: Vec<Option<f64>> = rows
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let whole = (r.t + 1) as f64 <= stats.measured_secs + 1e-6;
            let next_full = rows.get(i + 1).is_none_or(|n| n.users == full);
            let inside = i >= lead && i < last;
            (whole && inside && r.users == full && next_full).then(|| r.rps / full as f64)
        })
        .collect();
    let mut rates: Vec<f64> = per_user.iter().flatten().copied().collect();
    if rates.len() < 3 {
        return None;
    }
    rates.sort_by(f64::total_cmp);
    let typical = rates[rates.len() * 3 / 4];
    if typical <= 0.0 {
        return None;
    }
    let lost: Vec<Option<f64>> = per_user
        .iter()
        .map(|r| r.map(|r| (1.0 - r / typical).max(0.0)))
        .collect();
    let stalled = (0..lost.len()).find_map(|i| {
        let here = lost[i]?;
        let next = lost.get(i + 1).copied().flatten().unwrap_or(0.0);
        if here >= STALL_PART_LOSS && next >= STALL_PART_LOSS && here + next >= STALL_PAIR_LOSS {
            Some((i, i + 1))
        } else {
            (here >= STALL_SECOND_LOSS).then_some((i, i))
        }
    })?;
    let (a, b) = stalled;
    let seconds = if a == b {
        format!("second {}", rows[a].t)
    } else {
        format!("seconds {}-{}", rows[a].t, rows[b].t)
    };
    let low = rows[a..=b]
        .iter()
        .map(|r| r.rps)
        .fold(f64::INFINITY, f64::min);
    Some(format!(
        "closed model: throughput fell to {low:.0}/s in {seconds} with all {full} users active (typically {:.0}/s); users waiting on a stalled system send nothing, so latency percentiles may under-report (coordinated omission). Measure latency with the open model (`rate`).",
        typical * full as f64
    ))
}

/// Share of one second's completions lost in one second that marks a stall.
const STALL_SECOND_LOSS: f64 = 0.5;
/// The same over two adjacent seconds (a stall across a second boundary).
const STALL_PAIR_LOSS: f64 = 0.7;
/// What each of those two seconds must have lost to be part of one stall.
const STALL_PART_LOSS: f64 = 0.1;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{RequestStats, TimelineRow};

    /// A closed-model cell whose seconds completed `rps[t]` with `users[t]`.
    fn cell(users: &[u64], rps: &[f64]) -> CellStats {
        CellStats {
            total: RequestStats::new(),
            by_name: Default::default(),
            timeline: users
                .iter()
                .zip(rps)
                .enumerate()
                .map(|(t, (&users, &rps))| TimelineRow {
                    t: t as u64,
                    users,
                    rps,
                    requests: rps as u64,
                    failures: 0,
                    p50_ms: 20.0,
                    p95_ms: 20.0,
                    p99_ms: 20.0,
                    stream: None,
                })
                .collect(),
            measured_secs: rps.len() as f64,
            dropped: 0,
            client_cpu_pct: 0.0,
            client_bound: false,
            schedule_lag_p99_ms: 0.0,
            cancelled: false,
            warnings: Vec::new(),
            degraded: None,
            rx_bytes: None,
            tx_bytes: None,
            completed_ok: None,
            connections: None,
        }
    }

    #[test]
    fn a_stall_across_a_second_boundary_is_found() {
        // A 1 s stall every 5 s that starts mid-second: two seconds at half
        // the rate each, twice.
        let rps = [
            400.0, 400.0, 200.0, 200.0, 400.0, 400.0, 400.0, 200.0, 200.0, 400.0,
        ];
        let w = closed_model_stall_warning(&cell(&[8; 10], &rps)).unwrap();
        assert!(w.contains("fell to 200/s in seconds 2-3"), "{w}");
        // The same throughput without the dips is steady.
        assert_eq!(
            closed_model_stall_warning(&cell(&[8; 10], &[400.0; 10])),
            None
        );
    }

    #[test]
    fn the_window_edges_are_no_stall() {
        // Two-second streamed responses: the first two seconds complete
        // nothing started inside the window, the last holds the drain.
        let mut c = cell(&[8; 8], &[0.0, 0.0, 4.0, 4.0, 4.0, 4.0, 4.0, 1.0]);
        c.total.record_success(2_000_000);
        c.total.finalize(8.0);
        assert_eq!(closed_model_stall_warning(&c), None);
        // A stall in the middle is still one.
        let mut c = cell(&[8; 8], &[0.0, 0.0, 4.0, 4.0, 0.0, 4.0, 4.0, 1.0]);
        c.total.record_success(2_000_000);
        c.total.finalize(8.0);
        let w = closed_model_stall_warning(&c).unwrap();
        assert!(w.contains("in second 4"), "{w}");
    }

    #[test]
    fn a_ramp_is_not_a_stall_but_a_stall_after_it_is() {
        let users = [0, 2, 4, 6, 8, 8, 8, 8, 8, 8];
        let rps = [
            50.0, 100.0, 200.0, 300.0, 400.0, 400.0, 400.0, 400.0, 400.0, 400.0,
        ];
        assert_eq!(closed_model_stall_warning(&cell(&users, &rps)), None);
        let mut stalled = rps;
        stalled[7] = 100.0;
        let w = closed_model_stall_warning(&cell(&users, &stalled)).unwrap();
        assert!(w.contains("in second 7 with all 8 users active"), "{w}");
    }
}
