//! Analysis of a finished matrix: scaling efficiency, plateaus, capacity and
//! the optimal config under the SLO, client-bound cells, latency degradation,
//! failure onset and unstable repeats. The numbers come from a polars lazy
//! query over one DataFrame of the summary rows; this module turns the
//! collected results into typed findings with one plain sentence each.

pub mod ab;
pub mod bootstrap;
pub mod compare;
pub mod compare_ci;
mod findings;
mod frame;
pub mod knee;
mod linalg;
mod text;
pub mod thresholds;
pub mod usl;

use indexmap::IndexMap;
use serde::Serialize;

use crate::plan::Plan;
use crate::plan::model::Cost;
pub use crate::plan::{Role, Roles};
use crate::results::SummaryRow;
use crate::search;
pub use thresholds::ThresholdResult;

use frame::Table;

/// RPS gains below this fraction over the previous step are a plateau.
pub(crate) const PLATEAU_GAIN: f64 = 0.05;
/// Client CPU at or above this percent marks the load generator as the bottleneck.
pub use crate::engine::stats::CLIENT_BOUND_CPU_PCT as CLIENT_CPU_BOUND_PCT;
/// More workers giving more than this fraction of extra RPS marks a cell client-bound.
pub(crate) const MORE_WORKERS_GAIN: f64 = 0.10;
/// Failure percentage that starts "failure onset" when the SLO has no fail_rate.
pub(crate) const DEFAULT_FAIL_PCT: f64 = 1.0;
/// Coefficient of variation of RPS across repeats above which a cell is unstable.
pub(crate) const UNSTABLE_CV: f64 = 0.10;

pub struct AnalysisInput<'a> {
    pub axes: &'a [String],
    /// What each axis sets (load, replicas, workers), from the plan.
    pub roles: &'a Roles,
    pub rows: &'a [SummaryRow],
    /// Metric -> limit: ms for latencies, percent for fail_rate, a floor for rps.
    pub slo: &'a IndexMap<String, f64>,
    pub cost: Option<&'a Cost>,
    /// Per row: the replicas the cell ran with.
    pub replicas_of: Vec<u64>,
    /// Per row: the load-generator workers the cell ran with.
    pub workers_of: Vec<u64>,
    /// Per row: the RPS of each repetition (one entry without repeat).
    pub repeats: Vec<Vec<f64>>,
    /// Per row: the closed model's mean think time in seconds (none in the
    /// open model).
    pub think_s: Vec<Option<f64>>,
}

#[derive(Serialize, Clone, Debug, Default)]
pub struct Analysis {
    pub findings: Vec<Finding>,
    pub scaling: Vec<ScalingSeries>,
    pub recommendations: Vec<String>,
}

impl Analysis {
    pub fn of_kind(&self, kind: FindingKind) -> impl Iterator<Item = &Finding> {
        self.findings.iter().filter(move |f| f.kind == kind)
    }
}

#[derive(Serialize, Clone, Debug)]
pub struct Finding {
    pub kind: FindingKind,
    pub severity: Severity,
    pub cells: Vec<String>,
    /// The axis the finding is about, when it is about one.
    pub dimension: Option<String>,
    pub numbers: IndexMap<String, f64>,
    /// One plain English sentence with the numbers.
    pub message: String,
    /// Kind `ab`: the comparison's own fields, beside the common ones.
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub detail: Option<ab::Detail>,
}

#[derive(Serialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum FindingKind {
    /// A step along a resource axis between service-bound cells, or into a
    /// cell that was not saturated.
    Scaling,
    /// More of a resource stopped adding throughput (service-bound cells).
    Plateau,
    /// The most each value of the scaled axis served under the SLO.
    Capacity,
    /// The cheapest replica count meeting the SLO, per load level.
    Optimal,
    /// Whether the load generator limited any cell: one sentence.
    Client,
    /// How p95 grows with load.
    Latency,
    /// Where the load starts to push p95 up (piecewise-linear fit).
    Knee,
    FailureOnset,
    Unstable,
    /// Universal Scalability Law fit over the capacity frontier.
    Usl,
    SloExcluded,
    NoCellMeetsSlo,
    /// The service's own latency (a `[[scrape]]` histogram quantile) beside
    /// the client's: the gap is the network and the load generator.
    ServerLatency,
    /// `[analysis] ab`: a variant against the baseline, for one metric.
    Ab,
}

#[derive(Serialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Info,
    Warning,
    Critical,
}

/// RPS and p95 along one numeric axis with every other axis fixed.
#[derive(Serialize, serde::Deserialize, Clone, Debug)]
pub struct ScalingSeries {
    pub dimension: String,
    /// The other axes' values, as they appear in the plan.
    pub fixed: IndexMap<String, String>,
    /// (axis value, rps, p95 ms); p95 is NaN (null in JSON) when not measured.
    pub points: Vec<(f64, f64, f64)>,
    /// A model's prediction (drawn dashed, labelled so), not a measurement.
    #[serde(default)]
    pub predicted: bool,
}

impl ScalingSeries {
    /// "users=400, workers=4", or "all" without other axes.
    pub fn label(&self) -> String {
        text::fixed_label(&self.fixed).unwrap_or_else(|| "all".into())
    }
}

/// Runs every analysis over the rows. Never panics; a part that cannot be
/// computed is left out and said so in `recommendations`.
pub fn analyze(input: &AnalysisInput) -> Analysis {
    let table = match Table::build(input) {
        Ok(t) => t,
        Err(e) => {
            return Analysis {
                recommendations: vec![format!("The analysis could not be computed: {e}")],
                ..Analysis::default()
            };
        }
    };
    findings::all(input, &table)
}

/// What the analysis of a run produced: the rows it saw, the threshold
/// results and the findings.
#[derive(Debug, Clone, Default, Serialize)]
pub struct AnalysisResult {
    pub rows: Vec<SummaryRow>,
    pub thresholds: Vec<ThresholdResult>,
    pub analysis: Analysis,
    /// Capacity search: one row per outer cell (the frontier).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub capacity: Vec<search::CapacityRow>,
    /// `[analysis] ab`: every variant against its baseline.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ab: Vec<ab::Comparison>,
}

impl AnalysisResult {
    pub(crate) fn failed_thresholds(&self) -> usize {
        self.thresholds.iter().filter(|t| !t.passed).count()
    }
}

/// Thresholds and findings over the summary rows under the plan's SLO and cost.
///
/// In search mode the probes break the SLO by design: thresholds are
/// evaluated on the capacity rows instead.
///
/// In search mode the answers come from the frontier only: one row per
/// outer cell (its capacity probe's figures), in the matrix order of the
/// outer axes. The probes around it break the SLO by design and answer
/// nothing on their own.
pub(crate) fn analyze_run(plan: &Plan, mut rows: Vec<SummaryRow>) -> AnalysisResult {
    let comparisons = ab::compare(plan, &rows);
    ab::annotate(&mut rows, &comparisons);
    let (capacity, thresholds, mut analysis) = if plan.search.is_some() {
        let (capacity, threshold_rows): (Vec<_>, Vec<_>) =
            search::capacity(plan, &rows).into_iter().unzip();
        let thresholds = thresholds::evaluate(plan, &threshold_rows);
        let frontier: Vec<SummaryRow> = capacity
            .iter()
            .zip(threshold_rows)
            .filter(|(c, _)| c.max_value.is_some())
            .map(|(c, mut row)| {
                // The search's verdict is what bounded the frontier: found,
                // the next probe broke the SLO (the service was the limit);
                // above range, the largest load it could offer still met it.
                use crate::results::summary::Bound;
                match (c.status.as_str(), row.bound) {
                    ("found", Some(Bound::Load)) => row.bound = Some(Bound::Service),
                    ("above_range", Some(Bound::Service)) => row.bound = Some(Bound::Load),
                    _ => {}
                }
                row
            })
            .collect();
        let analysis = findings_of(plan, &frontier, &plan.axes);
        (capacity, thresholds, analysis)
    } else {
        let thresholds = thresholds::evaluate(plan, &rows);
        let analysis = findings_of(plan, &rows, &plan.row_axes());
        (Vec::new(), thresholds, analysis)
    };
    analysis.findings.extend(server_latency(plan, &rows));
    if let Some(ab) = &plan.analysis.ab {
        analysis
            .findings
            .extend(ab::findings(&ab.axis, &comparisons));
    }
    AnalysisResult {
        rows,
        thresholds,
        analysis,
        capacity,
        ab: comparisons,
    }
}

/// Per `[[scrape]]` latency quantile: the largest gap between the client's
/// quantile and the service's own, over the measured cells.
fn server_latency(plan: &Plan, rows: &[SummaryRow]) -> Vec<Finding> {
    use crate::plan::model::Agg;
    let mut out = Vec::new();
    for series in plan.scrapes.iter().flat_map(|s| &s.series) {
        let Agg::Quantile(q) = series.agg else {
            continue;
        };
        if series.kind() != crate::metrics::MetricKind::Latency {
            continue;
        }
        let client = match (q * 100.0).round() as u32 {
            50 => "p50",
            90 => "p90",
            95 => "p95",
            99 => "p99",
            _ => continue,
        };
        // Like with like: a metric of some request names against the
        // client's figure for those names (one name: its own quantile).
        let (client_metric, covers) = match series.names.as_slice() {
            [] => (client.to_string(), String::new()),
            [one] => (
                format!("{client}{{name:{one}}}"),
                format!(" (it covers `{one}` only; compared with the client's `{one}`)"),
            ),
            many => {
                out.push(Finding {
                    kind: FindingKind::ServerLatency,
                    severity: Severity::Info,
                    cells: Vec::new(),
                    dimension: None,
                    numbers: IndexMap::new(),
                    message: format!(
                        "`{}` covers {}: the client has no single {client} for those names together, so the two are not compared",
                        series.column,
                        many.join(", ")
                    ),
                    detail: None,
                });
                continue;
            }
        };
        let pairs: Vec<(&SummaryRow, f64, f64)> = rows
            .iter()
            .filter_map(|r| Some((r, r.metric(&client_metric)?, r.metric(&series.column)?)))
            .filter(|(r, c, _)| r.successes() > 0.0 && c.is_finite())
            .collect();
        let mixed = series.names.is_empty() && rows.iter().any(|r| r.by_name.len() > 1);
        let Some(&(row, c, s)) = pairs
            .iter()
            .max_by(|a, b| (a.1 - a.2).total_cmp(&(b.1 - b.2)))
        else {
            continue;
        };
        let gap = c - s;
        // Beyond a quarter of the client's figure (and a few ms of timer
        // noise), the time went somewhere other than the service.
        let outside = gap > 5.0 && gap > 0.25 * c;
        let mut message = if outside {
            format!(
                "in `{}` the client's {client} is {c:.1} ms but the service's own (`{}`) only {s:.1} ms{covers}: {gap:.1} ms went to the network or the load generator, not the service",
                row.cell, series.column
            )
        } else {
            format!(
                "the service's own {client} (`{}`) accounts for the client's in every cell{covers} (largest gap {gap:.1} ms, in `{}`: {c:.1} ms at the client, {s:.1} ms in the service): the latency is the service's",
                series.column, row.cell
            )
        };
        if mixed {
            message.push_str(&format!(
                "; the client's figure mixes every request name: if `{}` covers only some, say which with `names` on the series",
                series.column
            ));
        }
        out.push(Finding {
            kind: FindingKind::ServerLatency,
            severity: if outside {
                Severity::Warning
            } else {
                Severity::Info
            },
            cells: vec![row.cell.clone()],
            dimension: None,
            numbers: [
                ("client_ms".to_string(), c),
                ("server_ms".to_string(), s),
                ("gap_ms".to_string(), gap),
                ("cells".to_string(), pairs.len() as f64),
            ]
            .into_iter()
            .collect(),
            message,
            detail: None,
        });
    }
    out
}

fn findings_of(plan: &Plan, rows: &[SummaryRow], axes: &[String]) -> Analysis {
    let cell_of = |row: &SummaryRow| plan.cell_of_row(&row.cell);
    // A search's SLO judges its probes when `[analysis]` names none.
    let slo = match &plan.search {
        Some(s) if plan.analysis.slo.is_empty() => &s.slo,
        _ => &plan.analysis.slo,
    };
    let input = AnalysisInput {
        axes,
        roles: plan.roles(),
        rows,
        slo,
        cost: plan.analysis.cost.as_ref(),
        replicas_of: rows
            .iter()
            .map(|r| cell_of(r).map_or(0, |c| c.system.replicas))
            .collect(),
        workers_of: rows
            .iter()
            .map(|r| cell_of(r).map_or(0, |c| c.load.workers))
            .collect(),
        repeats: rows
            .iter()
            .map(|r| {
                if r.repeat_rps.is_empty() {
                    r.metric("rps").into_iter().collect()
                } else {
                    r.repeat_rps.clone()
                }
            })
            .collect(),
        think_s: rows
            .iter()
            .map(|r| match r.metric("think_ms") {
                Some(ms) => Some(ms / 1000.0),
                None => cell_of(r).and_then(|c| c.think_mean_s()),
            })
            .collect(),
    };
    // polars must not run inside an async runtime (it blocks in place), and
    // a failure in it must not take the run down: its own thread.
    std::thread::scope(|scope| {
        scope
            .spawn(|| analyze(&input))
            .join()
            .unwrap_or_else(|_| Analysis {
                recommendations: vec!["The analysis failed unexpectedly; the summary table and thresholds are complete.".into()],
                ..Default::default()
            })
    })
}
