//! What every finding reads: the rows, the query results and the SLO,
//! and what the findings so far have gathered.

use indexmap::IndexMap;

use crate::analysis::frame::{SloLimit, Table};
use crate::analysis::text;
use crate::analysis::{AnalysisInput, DEFAULT_FAIL_PCT, Finding, FindingKind, Role, Severity};
use crate::results::record::Bound;

pub(super) struct Ctx<'a> {
    pub(super) input: &'a AnalysisInput<'a>,
    pub(super) t: &'a Table,
    pub(super) findings: Vec<Finding>,
    /// Parts that polars could not compute.
    pub(super) problems: Vec<String>,
    /// Axis -> "4 (users=400)" where a resource stopped paying off.
    pub(super) plateaus: IndexMap<String, Vec<String>>,
    /// "Keep users below ..." per failure onset.
    pub(super) keep_below: Vec<String>,
    /// Per row: meets every SLO limit.
    pub(super) meets: Vec<bool>,
    /// Recommendations the findings give, in reading order.
    pub(super) advice: Vec<String>,
}

pub(super) fn numbers(pairs: &[(&str, f64)]) -> IndexMap<String, f64> {
    pairs
        .iter()
        .filter(|(_, v)| v.is_finite())
        .map(|(k, v)| (k.to_string(), *v))
        .collect()
}

impl Ctx<'_> {
    pub(super) fn cell(&self, row: usize) -> String {
        self.input
            .rows
            .get(row)
            .map(|r| r.cell.clone())
            .unwrap_or_default()
    }

    pub(super) fn bound(&self, row: usize) -> Option<Bound> {
        self.input.rows.get(row).and_then(|r| r.bound)
    }

    pub(super) fn metric(&self, row: usize, name: &str) -> Option<f64> {
        self.input
            .rows
            .get(row)
            .and_then(|r| r.metric(name))
            .filter(|v| v.is_finite())
    }

    /// Successful requests per second: ok_rps, or rps less failures for
    /// runs recorded before ok_rps existed.
    /// What a cell served that counts for capacity: good requests per
    /// second when the SLO has per-request objectives, else successful ones.
    pub(super) fn served(&self, row: usize) -> f64 {
        if self.goodput() {
            self.metric(row, "goodput_rps").unwrap_or(0.0)
        } else {
            self.ok_rps(row)
        }
    }

    /// The SLO has per-request objectives (ttft, itl, e2e).
    pub(super) fn goodput(&self) -> bool {
        self.input
            .slo
            .keys()
            .any(|k| crate::metrics::is_per_request(k))
    }

    pub(super) fn ok_rps(&self, row: usize) -> f64 {
        self.metric(row, "ok_rps")
            .or_else(|| {
                let rps = self.metric(row, "rps")?;
                Some(rps * (1.0 - self.metric(row, "fail_pct").unwrap_or(0.0) / 100.0))
            })
            .unwrap_or(0.0)
    }

    pub(super) fn replicas(&self, row: usize) -> f64 {
        self.input
            .replicas_of
            .get(row)
            .map_or(f64::NAN, |&v| v as f64)
    }

    /// A cell that may be recommended: it ran, served successful requests,
    /// did not fail beyond the SLO and was not limited by the client.
    pub(super) fn usable(&self, row: usize) -> bool {
        let Some(r) = self.input.rows.get(row) else {
            return false;
        };
        r.status.is_measured()
            && r.successes() > 0.0
            && !matches!(r.bound, Some(Bound::Failing) | Some(Bound::Client))
            && self.metric(row, "fail_pct").unwrap_or(0.0) <= self.fail_limit()
            && !r.client_bound
    }

    /// The other axes' values of a row, for a series along axis `i`.
    pub(super) fn fixed(&self, row: usize, i: usize) -> IndexMap<String, String> {
        self.t
            .axes
            .iter()
            .enumerate()
            .filter(|&(a, _)| a != i)
            .filter_map(|(a, axis)| {
                let v = self.t.keys.get(row)?.get(a)?;
                (!v.is_empty()).then(|| (axis.name.clone(), v.clone()))
            })
            .collect()
    }

    pub(super) fn push(
        &mut self,
        kind: FindingKind,
        severity: Severity,
        cells: Vec<String>,
        dimension: Option<&str>,
        numbers: IndexMap<String, f64>,
        message: String,
    ) {
        self.findings.push(Finding {
            kind,
            severity,
            cells,
            dimension: dimension.map(str::to_string),
            numbers,
            message,
            detail: None,
        });
    }

    pub(super) fn fail_limit(&self) -> f64 {
        ["fail_rate", "fail_pct"]
            .iter()
            .find_map(|k| self.input.slo.get(*k).copied())
            .filter(|v| v.is_finite())
            .unwrap_or(DEFAULT_FAIL_PCT)
    }

    pub(super) fn slo_text(&self) -> String {
        self.t
            .slo
            .iter()
            .map(|s| self.limit_text(s))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// One SLO limit in words; goodput names the per-request objectives.
    pub(super) fn limit_text(&self, s: &SloLimit) -> String {
        let limit = text::limit(&s.metric, s.limit, s.floor);
        if s.metric != "goodput_pct" || !self.goodput() {
            return limit;
        }
        let objectives: Vec<String> = self
            .input
            .slo
            .iter()
            .filter(|(k, _)| crate::metrics::is_per_request(k))
            .map(|(k, v)| format!("{k} <= {}", text::ms(*v)))
            .collect();
        format!("{limit} of requests meeting {}", objectives.join(" and "))
    }

    pub(super) fn under(&self) -> &'static str {
        if self.t.slo.is_empty() {
            "(no SLO set)"
        } else {
            "under the SLO"
        }
    }

    /// The axis whose values set the offered load (users or rate).
    pub(super) fn load_axis(&self) -> Option<usize> {
        self.t
            .axes
            .iter()
            .position(|a| a.numeric && a.role.is_load())
    }

    pub(super) fn replicas_axis(&self) -> Option<usize> {
        self.t
            .axes
            .iter()
            .position(|a| a.numeric && a.role == Role::Replicas)
    }

    /// The best successful RPS per replica any service-bound cell reached:
    /// what one replica can serve, as far as this run has seen.
    pub(super) fn per_replica(&self) -> Option<f64> {
        (0..self.input.rows.len())
            .filter(|&r| self.bound(r) == Some(Bound::Service) && self.usable(r))
            .map(|r| self.ok_rps(r) / self.replicas(r))
            .filter(|v| v.is_finite() && *v > 0.0)
            .reduce(f64::max)
    }

    /// "users=512" or "rate=640/s": the load that would saturate `replicas`
    /// replicas, from the best per-replica throughput seen and this row's
    /// think time and baseline; none when the run gives no basis for it.
    pub(super) fn load_needed(&self, row: usize, replicas: f64) -> Option<(String, f64)> {
        let per = self.per_replica().or_else(|| {
            // Never saturated anywhere: what the busiest cell served is a floor.
            (0..self.input.rows.len())
                .filter(|&r| self.usable(r))
                .map(|r| self.ok_rps(r) / self.replicas(r))
                .filter(|v| v.is_finite() && *v > 0.0)
                .reduce(f64::max)
        })?;
        let target = per * replicas;
        // The cell's own load was not enough: ask for clearly more than it.
        let offered = self.metric(row, "offered_rps").unwrap_or(0.0);
        let target = target.max(offered * 1.25);
        match self.input.think_s.get(row).copied().flatten() {
            Some(think) => {
                let cycle = think + self.metric(row, "baseline_ms").unwrap_or(0.0) / 1000.0;
                (cycle > 0.0).then(|| ("users".to_string(), (target * cycle).ceil()))
            }
            None => Some(("rate".to_string(), target.ceil())),
        }
    }

    pub(super) fn ci(&self, row: usize) -> Option<f64> {
        self.metric(row, "rps_ci95")
    }
}
