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
    /// Mean latency of the successful requests, in ms.
    pub mean_ms: f64,
    pub p50_ms: f64,
    pub p95_ms: f64,
    /// Mean latency per request name, in ms.
    #[serde(default)]
    pub by_name: indexmap::IndexMap<String, f64>,
}

pub use super::summary::Bound;

/// Share of the offered load a closed-model cell must serve to count as
/// load-bound (open model: of the arrival rate).
pub const LOAD_BOUND_SHARE: f64 = 0.9;
pub const OPEN_LOAD_BOUND_SHARE: f64 = 0.95;

/// What the cell's load could offer, to classify what bounded it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LoadShape {
    /// The most the cell's load could produce had the system never queued;
    /// none when no baseline was measured.
    pub offered_rps: Option<f64>,
    pub open_model: bool,
    /// Fail rate (percent) above which the cell is `failing`.
    pub fail_limit_pct: f64,
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
pub const NO_SUCCESSFUL_REQUESTS: &str = "no successful requests";

impl CellRecord {
    /// The merged statistics of the repetitions (exact histogram merges).
    pub fn merged(&self) -> Option<CellStats> {
        CellStats::combine_sequential(self.runs.clone())
    }

    /// A load step recorded its measurement.
    pub fn measured(&self) -> bool {
        !self.runs.is_empty()
    }

    /// The status once every step of the cell has finished; `interrupted`
    /// when the run was stopped while the cell had not measured all it should.
    pub fn final_status(&self, interrupted: bool) -> CellStatus {
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
    pub fn summary_row(&self, id: &str, matrix: &CellValues) -> SummaryRow {
        if let Some(prior) = &self.prior {
            return prior.clone();
        }
        let mut row = SummaryRow::unmeasured(id, matrix, self.status);
        let Some(stats) = self.merged() else {
            return row;
        };
        row.metrics = super::summary::metrics_of(&stats, &self.runs, &self.samples);
        if let Some(b) = &self.baseline {
            row.metrics.insert("baseline_ms".into(), b.mean_ms);
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
pub fn bound_of(row: &SummaryRow, stats: &CellStats, shape: &LoadShape) -> Option<Bound> {
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
    } else if ok_rps >= share * offered {
        Bound::Load
    } else {
        Bound::Service
    })
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

pub const HISTOGRAM_NOTE: &str = "HDR, microsecond resolution, 3 significant digits; per-worker histograms merged exactly; failures carry no latency";

/// The files of a finished cell's folder.
pub fn cell_files(
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
            "timeline.csv".to_string(),
            timeline_csv(&rec.runs).into_bytes(),
        ),
        (
            "system.csv".to_string(),
            system_csv(&rec.samples).into_bytes(),
        ),
        ("events.log".to_string(), lines(&rec.events).into_bytes()),
    ];
    if rec.scraped.iter().any(|r| !r.is_empty()) {
        files.push((
            "metrics.csv".to_string(),
            crate::scrape::metrics_csv(&rec.scraped).into_bytes(),
        ));
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

fn timeline_csv(runs: &[CellStats]) -> String {
    let mut out = String::new();
    let repeated = runs.len() > 1;
    // Streamed responses add their columns; other cells keep the plain layout.
    let streamed = runs
        .iter()
        .any(|r| r.timeline.iter().any(|row| row.stream.is_some()));
    if repeated {
        out.push_str("repeat,");
    }
    out.push_str("t,users,rps,requests,failures,p50,p95,p99");
    out.push_str(if streamed {
        ",ttft_p95,itl_p95,tokens_per_s\n"
    } else {
        "\n"
    });
    for (i, r) in runs.iter().enumerate() {
        for row in &r.timeline {
            if repeated {
                let _ = write!(out, "{},", i + 1);
            }
            let _ = write!(
                out,
                "{},{},{:.3},{},{},{:.3},{:.3},{:.3}",
                row.t,
                row.users,
                row.rps,
                row.requests,
                row.failures,
                row.p50_ms,
                row.p95_ms,
                row.p99_ms
            );
            if streamed {
                match &row.stream {
                    Some(s) => {
                        let _ = write!(
                            out,
                            ",{:.3},{:.3},{:.3}",
                            s.ttft_p95_ms, s.itl_p95_ms, s.tokens_per_s
                        );
                    }
                    None => out.push_str(",,,0.000"),
                }
            }
            out.push('\n');
        }
    }
    out
}

fn system_csv(samples: &[SystemSample]) -> String {
    let net = samples.iter().any(|s| s.net_bytes.is_some());
    let mut out = String::from(if net {
        "t,replica,cpu_pct,mem_bytes,rx_bytes,tx_bytes\n"
    } else {
        "t,replica,cpu_pct,mem_bytes\n"
    });
    for s in samples {
        let _ = write!(
            out,
            "{:.3},{},{:.2},{}",
            s.t, s.replica, s.cpu_pct, s.mem_bytes
        );
        match s.net_bytes {
            Some((rx, tx)) => {
                let _ = writeln!(out, ",{rx},{tx}");
            }
            None if net => out.push_str(",,\n"),
            None => out.push('\n'),
        }
    }
    out
}
