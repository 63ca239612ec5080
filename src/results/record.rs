//! What one cell produced while it ran, and the files of its folder.

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use super::manifest::CellStatus;
use super::summary::SummaryRow;
use crate::engine::CellStats;
use crate::plan::matrix::CellValues;
use crate::system::SystemSample;

/// One user sending the request mix with no think time against an otherwise
/// idle system: the latency a request takes when nothing queues.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Baseline {
    /// The cell whose system configuration it was measured in (cells that
    /// share the configuration reuse it).
    pub measured_in: String,
    pub duration_secs: f64,
    pub requests: u64,
    pub failures: u64,
    /// Unloaded latency of the request mix, in ms: each name's mean
    /// latency weighted by the mix's weights (a mean over one short random
    /// draw of the mix would move with the draw).
    pub mean_ms: f64,
    pub p50_ms: f64,
    pub p95_ms: f64,
    /// Mean latency per request name, in ms.
    #[serde(default)]
    pub by_name: indexmap::IndexMap<String, f64>,
}

impl Baseline {
    /// The baseline of a one-user measurement. `weights` is the mix (name
    /// -> weight); without it each name weighs what share of the requests
    /// it had. Names with no successful request are left out.
    pub fn of(
        measured_in: &str,
        stats: &CellStats,
        weights: Option<&indexmap::IndexMap<String, f64>>,
    ) -> Baseline {
        let by_name: indexmap::IndexMap<String, f64> = stats
            .by_name
            .iter()
            .filter(|(_, s)| s.requests > s.failures)
            .map(|(n, s)| (n.clone(), s.mean_ms))
            .collect();
        let weight = |n: &str| match weights {
            Some(w) => w.get(n).copied().unwrap_or(0.0),
            None => stats.by_name.get(n).map_or(0.0, |s| s.requests as f64),
        };
        let total: f64 = by_name.keys().map(|n| weight(n)).sum();
        let mean_ms = if total > 0.0 {
            by_name.iter().map(|(n, ms)| weight(n) * ms).sum::<f64>() / total
        } else {
            stats.total.mean_ms
        };
        Baseline {
            measured_in: measured_in.to_string(),
            duration_secs: stats.measured_secs,
            requests: stats.total.requests,
            failures: stats.total.failures,
            mean_ms,
            p50_ms: stats.total.p50_ms,
            p95_ms: stats.total.p95_ms,
            by_name,
        }
    }
}

pub use super::summary::Bound;

/// Share of the offered load a closed-model cell must serve to count as
/// load-bound (open model: of the arrival rate).
pub(crate) const LOAD_BOUND_SHARE: f64 = 0.9;
pub(crate) const OPEN_LOAD_BOUND_SHARE: f64 = 0.95;

/// What the cell's load could offer, to classify what bounded it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LoadShape {
    /// The most the cell's load could produce had the system never queued;
    /// none when no baseline was measured.
    pub offered_rps: Option<f64>,
    pub open_model: bool,
    /// Fail rate (percent) above which the cell is `failing`.
    pub fail_limit_pct: f64,
    /// Closed model with Locust: each user's mean think time in seconds,
    /// derived from the measurement.
    pub think_s: Option<f64>,
}

/// Everything one cell has produced so far. Owned by the dispatcher; steps
/// only hand it their outputs.
#[derive(Debug, Clone)]
pub struct CellRecord {
    pub status: CellStatus,
    /// Stamped event lines (not yet redacted: the writer does that).
    pub events: Vec<String>,
    /// One entry per repetition.
    pub runs: Vec<CellStats>,
    pub samples: Vec<SystemSample>,
    /// `[[scrape]]` samples, one list per repetition.
    pub scraped: Vec<Vec<crate::scrape::ScrapeSample>>,
    /// `[[scrape]]` columns, one map per repetition.
    pub server: Vec<indexmap::IndexMap<String, f64>>,
    /// Extra files for the cell folder.
    pub files: Vec<(String, Vec<u8>)>,
    /// The first step of the cell that failed, and why.
    pub failed: Option<String>,
    /// Measured, but something went wrong on the way.
    pub degraded: Option<String>,
    pub started: Option<String>,
    pub finished: Option<String>,
    /// Measured by an earlier invocation that is being resumed: not run again.
    pub prior: Option<SummaryRow>,
    pub baseline: Option<Baseline>,
    pub shape: Option<LoadShape>,
}

impl Default for CellRecord {
    fn default() -> Self {
        CellRecord {
            status: CellStatus::Pending,
            events: Vec::new(),
            runs: Vec::new(),
            samples: Vec::new(),
            scraped: Vec::new(),
            server: Vec::new(),
            files: Vec::new(),
            failed: None,
            degraded: None,
            started: None,
            finished: None,
            prior: None,
            baseline: None,
            shape: None,
        }
    }
}

/// Why a cell with figures is nonetheless `failed`.
pub(crate) const NO_SUCCESSFUL_REQUESTS: &str = "no successful requests";

impl CellRecord {
    /// The merged statistics of the repetitions (exact histogram merges).
    pub(crate) fn merged(&self) -> Option<CellStats> {
        CellStats::combine_sequential(self.runs.clone())
    }

    /// A load step recorded its measurement.
    pub fn measured(&self) -> bool {
        !self.runs.is_empty()
    }

    /// The status once every step of the cell has finished; `interrupted`
    /// when the run was stopped while the cell had not measured all it should.
    pub(crate) fn final_status(&self, interrupted: bool) -> CellStatus {
        if interrupted {
            return CellStatus::Interrupted;
        }
        if !self.measured() {
            // Every step succeeded but none measured: a cell without a load step.
            return if self.failed.is_some() {
                CellStatus::Failed
            } else {
                CellStatus::Complete
            };
        }
        if self.runs.iter().all(|r| r.successes() == 0) {
            return CellStatus::Failed;
        }
        if self.failed.is_some() || self.degraded.is_some() {
            CellStatus::Degraded
        } else {
            CellStatus::Complete
        }
    }

    /// The cell's row: merged repetitions (exact histogram merges) and the
    /// system samples of the measured window.
    pub(crate) fn summary_row(&self, id: &str, matrix: &CellValues) -> SummaryRow {
        if let Some(prior) = &self.prior {
            return prior.clone();
        }
        let mut row = SummaryRow::unmeasured(id, matrix, self.status);
        let Some(stats) = self.merged() else {
            return row;
        };
        row.metrics = super::summary::metrics_of(&stats, &self.runs, &self.samples);
        row.seconds = self
            .runs
            .iter()
            .map(|r| super::seconds::of_timeline(&r.timeline, r.measured_secs))
            .collect();
        if !stats.by_name.is_empty() {
            row.by_name = super::summary::metrics_by_name(&stats);
        }
        if let Some(b) = &self.baseline {
            row.metrics.insert("baseline_ms".into(), b.mean_ms);
            for (name, ms) in &b.by_name {
                if let Some(m) = row.by_name.get_mut(name) {
                    m.insert("baseline_ms".into(), *ms);
                }
            }
        }
        // A scraped column is the mean over the repetitions that have it.
        let mut server: indexmap::IndexMap<&str, Vec<f64>> = indexmap::IndexMap::new();
        for (k, v) in self.server.iter().flatten() {
            server.entry(k).or_default().push(*v);
        }
        for (k, vs) in server {
            row.metrics
                .insert(k.to_string(), vs.iter().sum::<f64>() / vs.len() as f64);
        }
        if let Some(shape) = &self.shape {
            if let Some(offered) = shape.offered_rps {
                row.metrics.insert("offered_rps".into(), offered);
            }
            if let Some(think) = shape.think_s {
                row.metrics.insert("think_ms".into(), think * 1000.0);
            }
            row.bound = bound_of(&row, &stats, shape);
        }
        row.client_bound = stats.client_bound;
        row.warnings = stats.warnings;
        row.repeat_rps = self.runs.iter().map(|r| r.total.rps).collect();
        row
    }

    /// The message run.json shows beside the status.
    pub fn message(&self) -> Option<String> {
        if self.measured() && self.runs.iter().all(|r| r.successes() == 0) {
            let kinds = self
                .merged()
                .map(|s| {
                    let k = s.total.failures_by_kind;
                    let parts: Vec<String> = [
                        ("status", k.status),
                        ("timeout", k.timeout),
                        ("connect", k.connect),
                        ("io", k.io),
                        ("tls", k.tls),
                        ("reset", k.reset),
                        ("abandoned", k.abandoned),
                    ]
                    .iter()
                    .filter(|(_, n)| *n > 0)
                    .map(|(name, n)| format!("{n} {name}"))
                    .collect();
                    parts.join(", ")
                })
                .unwrap_or_default();
            return Some(if kinds.is_empty() {
                NO_SUCCESSFUL_REQUESTS.to_string()
            } else {
                format!("{NO_SUCCESSFUL_REQUESTS} (failures: {kinds})")
            });
        }
        self.failed.clone().or_else(|| self.degraded.clone())
    }
}

/// What bounded a measured cell; none without an offered load (no baseline).
pub(crate) fn bound_of(row: &SummaryRow, stats: &CellStats, shape: &LoadShape) -> Option<Bound> {
    let offered = shape.offered_rps?;
    let client = stats.client_cpu_pct >= crate::engine::CLIENT_BOUND_CPU_PCT
        || stats.schedule_lag_p99_ms > crate::engine::stats::SCHEDULE_LAG_BOUND_MS;
    let fail_pct = row.metric("fail_pct").unwrap_or(0.0);
    let ok_rps = row.metric("ok_rps").unwrap_or(0.0);
    let share = if shape.open_model {
        OPEN_LOAD_BOUND_SHARE
    } else {
        LOAD_BOUND_SHARE
    };
    Some(if client {
        Bound::Client
    } else if fail_pct > shape.fail_limit_pct || row.successes() <= 0.0 {
        Bound::Failing
    } else if ok_rps >= share * offered && !(shape.open_model && queue_grew(stats, offered)) {
        Bound::Load
    } else {
        Bound::Service
    })
}

/// Open model: the requests in flight, or the latency from the intended
/// start, grew through the measured window (last third against first
/// third of its whole seconds): the service fell behind its arrivals even
/// when the window's completions still look close to the rate.
pub(crate) fn queue_grew(stats: &CellStats, offered_rps: f64) -> bool {
    // The last row also holds the responses drained after the window.
    let full = (stats.measured_secs + 1e-6).floor() as usize;
    let rows = &stats.timeline[..stats.timeline.len().min(full).saturating_sub(1)];
    if rows.len() < 3 {
        return false;
    }
    let k = (rows.len() / 3).max(1);
    let mean = |rs: &[crate::engine::TimelineRow], f: fn(&crate::engine::TimelineRow) -> f64| {
        rs.iter().map(f).sum::<f64>() / rs.len() as f64
    };
    let (first, last) = (&rows[..k], &rows[rows.len() - k..]);
    let in_flight = |r: &crate::engine::TimelineRow| r.users as f64;
    let p50 = |r: &crate::engine::TimelineRow| r.p50_ms;
    // Floors keep the noise of a busy but steady service (a few requests,
    // a millisecond or two) from reading as growth.
    let grew = |a: f64, b: f64, floor: f64| b > QUEUE_GROWTH * a + floor;
    grew(
        mean(first, in_flight),
        mean(last, in_flight),
        (offered_rps * 0.05).max(5.0),
    ) || grew(mean(first, p50), mean(last, p50), 2.0)
}

/// Last third of the window against its first: this factor (plus a floor)
/// is growth, not noise.
const QUEUE_GROWTH: f64 = 1.5;

/// Mean think time of a closed-model user, in seconds, from what was
/// measured (Little's law: users = throughput x (latency + think)); none
/// without users or throughput. A locustfile's `wait_time` needs no parsing.
pub(crate) fn measured_think_s(users: Option<u64>, stats: &CellStats) -> Option<f64> {
    let users = users.filter(|u| *u > 0)? as f64;
    let throughput = stats.total.rps;
    (throughput > 0.0).then(|| (users / throughput - stats.total.mean_ms / 1000.0).max(0.0))
}

/// Figures of one repetition, in stats.json.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Repetition {
    pub requests: u64,
    pub failures: u64,
    pub rps: f64,
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    pub measured_secs: f64,
    pub client_cpu_pct: f64,
}

/// `cells/<id>/stats.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StatsFile {
    pub cell: String,
    pub matrix: CellValues,
    pub status: CellStatus,
    pub engine: String,
    pub latency_unit: String,
    pub histogram: String,
    pub summary: SummaryRow,
    pub stats: Option<CellStats>,
    #[serde(default)]
    pub repetitions: Vec<Repetition>,
}

pub(crate) const HISTOGRAM_NOTE: &str = "HDR, microsecond resolution, 3 significant digits; per-worker histograms merged exactly; failures carry no latency";

/// The files of a finished cell's folder.
pub(crate) fn cell_files(
    id: &str,
    matrix: &CellValues,
    engine: &str,
    rec: &CellRecord,
) -> Vec<(String, Vec<u8>)> {
    let stats = StatsFile {
        cell: id.to_string(),
        matrix: matrix.clone(),
        status: rec.status,
        engine: engine.to_string(),
        latency_unit: "ms".into(),
        histogram: HISTOGRAM_NOTE.into(),
        summary: rec.summary_row(id, matrix),
        stats: rec.merged(),
        repetitions: rec
            .runs
            .iter()
            .map(|r| Repetition {
                requests: r.total.requests,
                failures: r.total.failures,
                rps: r.total.rps,
                p50_ms: r.total.p50_ms,
                p95_ms: r.total.p95_ms,
                p99_ms: r.total.p99_ms,
                measured_secs: r.measured_secs,
                client_cpu_pct: r.client_cpu_pct,
            })
            .collect(),
    };
    let mut json = serde_json::to_vec_pretty(&stats).unwrap_or_default();
    json.push(b'\n');
    let mut files = vec![
        ("stats.json".to_string(), json),
        (
            super::files::TIMELINE.to_string(),
            super::files::timeline_csv(&rec.runs).into_bytes(),
        ),
        (
            super::files::SYSTEM.to_string(),
            super::files::system_csv(&rec.samples).into_bytes(),
        ),
        ("events.log".to_string(), lines(&rec.events).into_bytes()),
    ];
    if rec.scraped.iter().any(|r| !r.is_empty()) {
        files.push((
            super::files::METRICS.to_string(),
            super::files::metrics_csv(&rec.scraped).into_bytes(),
        ));
    }
    if !stats.summary.by_name.is_empty() {
        let axes: Vec<String> = matrix.keys().cloned().collect();
        let csv = super::summary::summary_by_name_csv(&axes, std::slice::from_ref(&stats.summary));
        files.push(("summary_by_name.csv".to_string(), csv.into_bytes()));
    }
    if let Some(b) = &rec.baseline {
        let mut json = serde_json::to_vec_pretty(b).unwrap_or_default();
        json.push(b'\n');
        files.push(("baseline.json".to_string(), json));
    }
    files.extend(rec.files.iter().cloned());
    files
}

pub fn lines(events: &[String]) -> String {
    let mut out = String::new();
    for e in events {
        let _ = writeln!(out, "{e}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{RequestStats, TimelineRow};

    /// An open-model cell whose seconds had `in_flight[t]` requests in
    /// flight and a median latency of `p50[t]`.
    fn open(in_flight: &[u64], p50: &[f64]) -> CellStats {
        CellStats {
            total: RequestStats::new(),
            by_name: Default::default(),
            timeline: in_flight
                .iter()
                .zip(p50)
                .enumerate()
                .map(|(t, (&users, &p50_ms))| TimelineRow {
                    t: t as u64,
                    users,
                    rps: 400.0,
                    requests: 400,
                    failures: 0,
                    p50_ms,
                    p95_ms: p50_ms,
                    p99_ms: p50_ms,
                    stream: None,
                })
                .collect(),
            measured_secs: in_flight.len() as f64,
            dropped: 0,
            client_cpu_pct: 0.0,
            client_bound: false,
            schedule_lag_p99_ms: 0.0,
            cancelled: false,
            warnings: Vec::new(),
            degraded: None,
            rx_bytes: None,
            tx_bytes: None,
            completed_ok: Some(1600),
            connections: None,
        }
    }

    #[test]
    fn a_queue_growing_through_the_window_is_found() {
        // 500/s against 400/s: 100 more in flight every second.
        let grows = open(
            &[110, 210, 310, 410, 510],
            &[250.0, 500.0, 750.0, 1000.0, 1250.0],
        );
        assert!(queue_grew(&grows, 500.0));
        // Latency alone (in-flight sampled too coarsely to see it) is enough.
        let slower = open(&[8, 8, 9, 8, 9], &[20.0, 40.0, 80.0, 120.0, 20.0]);
        assert!(queue_grew(&slower, 200.0));
        // A busy, steady service: noise of a few requests and milliseconds.
        let steady = open(&[4, 7, 3, 6, 30], &[21.0, 22.5, 20.5, 23.0, 60.0]);
        assert!(!queue_grew(&steady, 200.0));
    }
}
