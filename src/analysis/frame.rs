//! The DataFrame of summary rows and the polars lazy queries over it.
//!
//! Columns: `row` (index into the input rows), `cell`, `measured`, `all`
//! (a constant partition key), `k{i}` (axis i as text, "" when the cell has
//! no value), `n{i}` (axis i as a number, null when not numeric), `m:{metric}`,
//! `slo{j}` (the value of SLO metric j), `replicas`, `workers`,
//! `client_flag`; then the derived `ok{j}` and `meets`.

use polars::prelude::{
    Column, DataFrame, DataType, Expr, IntoLazy, LazyFrame, PolarsResult, SortMultipleOptions, col,
    len, lit,
};

use super::{AnalysisInput, Role};

const METRICS: &[&str] = &["rps", "ok_rps", "p95", "fail_pct", "client_cpu_pct"];

pub(crate) struct Axis {
    pub name: String,
    pub role: Role,
    /// Every cell that has a value for it has a finite number.
    pub numeric: bool,
}

pub(crate) struct SloLimit {
    pub metric: String,
    pub limit: f64,
    /// A minimum (rps), not a maximum.
    pub floor: bool,
}

/// One point of a series along an axis, with the window values polars computed.
#[derive(Clone, Debug)]
pub(crate) struct Point {
    pub row: usize,
    pub x: f64,
    pub rps: f64,
    pub p95: Option<f64>,
    pub fail_pct: Option<f64>,
}

/// RPS across the repetitions of one cell.
pub(crate) struct RepeatStats {
    pub row: usize,
    pub mean: f64,
    pub std: f64,
    pub repeats: usize,
    /// Coefficient of variation: std / mean.
    pub cv: f64,
}

pub struct Table {
    pub df: DataFrame,
    pub axes: Vec<Axis>,
    /// Per row, per axis: the value as text, "" when absent.
    pub keys: Vec<Vec<String>>,
    pub slo: Vec<SloLimit>,
}

/// The SLO's fail rate in percent, or 1%.
pub(crate) fn fail_limit(slo: &indexmap::IndexMap<String, f64>) -> f64 {
    ["fail_rate", "fail_pct"]
        .iter()
        .find_map(|k| slo.get(*k).copied())
        .filter(|v| v.is_finite())
        .unwrap_or(super::DEFAULT_FAIL_PCT)
}

fn finite(v: Option<f64>) -> Option<f64> {
    v.filter(|x| x.is_finite())
}

impl Table {
    pub fn build(input: &AnalysisInput) -> PolarsResult<Table> {
        let rows = input.rows;
        let n = rows.len();
        let mut cols = vec![
            Column::new("row".into(), (0..n as u32).collect::<Vec<u32>>()),
            Column::new(
                "cell".into(),
                rows.iter().map(|r| r.cell.as_str()).collect::<Vec<_>>(),
            ),
            Column::new(
                "measured".into(),
                rows.iter()
                    .map(|r| r.status.is_measured())
                    .collect::<Vec<bool>>(),
            ),
            Column::new("all".into(), vec![""; n]),
            Column::new(
                "client_flag".into(),
                rows.iter().map(|r| r.client_bound).collect::<Vec<bool>>(),
            ),
        ];

        let mut axes = Vec::new();
        let mut keys = vec![Vec::with_capacity(input.axes.len()); n];
        for (i, name) in input.axes.iter().enumerate() {
            let values: Vec<_> = rows.iter().map(|r| r.matrix.get(name)).collect();
            let nums: Vec<Option<f64>> = values
                .iter()
                .map(|v| finite(v.and_then(|v| v.as_f64())))
                .collect();
            let present = values.iter().filter(|v| v.is_some()).count();
            let numeric = present > 0 && nums.iter().filter(|v| v.is_some()).count() == present;
            for (r, v) in values.iter().enumerate() {
                keys[r].push(v.map(|v| v.to_string()).unwrap_or_default());
            }
            cols.push(Column::new(
                format!("k{i}").into(),
                keys.iter().map(|k| k[i].as_str()).collect::<Vec<_>>(),
            ));
            let nums: Vec<Option<f64>> = if numeric { nums } else { vec![None; n] };
            cols.push(Column::new(format!("n{i}").into(), nums));
            axes.push(Axis {
                name: name.clone(),
                role: input.roles.of(name),
                numeric,
            });
        }

        for m in METRICS {
            let v: Vec<Option<f64>> = rows
                .iter()
                .map(|r| match *m {
                    // Runs recorded before ok_rps existed: derive it.
                    "ok_rps" => finite(r.metric("ok_rps")).or_else(|| {
                        let rps = finite(r.metric("rps"))?;
                        Some(rps * (1.0 - r.metric("fail_pct").unwrap_or(0.0) / 100.0))
                    }),
                    m => finite(r.metrics.get(m).copied()),
                })
                .collect();
            cols.push(Column::new(format!("m:{m}").into(), v));
        }
        let mut slo = Vec::new();
        let mut limits: Vec<(String, f64)> = input
            .slo
            .iter()
            .filter(|(m, _)| !crate::metrics::is_per_request(m))
            .map(|(m, &l)| (m.clone(), l))
            .collect();
        if input.slo.keys().any(|m| crate::metrics::is_per_request(m)) {
            // Per-request objectives are judged by the engine on every
            // request; a cell meets them when no more requests miss them
            // than the SLO lets fail.
            limits.push(("goodput_pct".into(), 100.0 - fail_limit(input.slo)));
        }
        for (metric, limit) in limits {
            if !limit.is_finite() {
                continue;
            }
            let v: Vec<Option<f64>> = rows.iter().map(|r| finite(r.metric(&metric))).collect();
            cols.push(Column::new(format!("slo{}", slo.len()).into(), v));
            slo.push(SloLimit {
                floor: crate::metrics::higher_is_better(&metric),
                metric,
                limit,
            });
        }
        let per_row = |v: &[u64]| -> Vec<Option<f64>> {
            (0..n).map(|r| v.get(r).map(|&x| x as f64)).collect()
        };
        cols.push(Column::new("replicas".into(), per_row(&input.replicas_of)));
        cols.push(Column::new("workers".into(), per_row(&input.workers_of)));

        let df = DataFrame::new(n, cols)?;

        let mut ok = Vec::new();
        let mut meets = lit(true);
        for (k, s) in slo.iter().enumerate() {
            let v = col(format!("slo{k}"));
            let pass = if s.floor {
                v.gt_eq(lit(s.limit))
            } else {
                v.lt_eq(lit(s.limit))
            };
            // A metric that was not measured cannot show the SLO was met.
            let pass = pass.fill_null(lit(false));
            ok.push(pass.clone().alias(format!("ok{k}")));
            meets = meets.and(pass);
        }
        let mut derived = ok;
        derived.push(meets.alias("meets"));
        let df = df.lazy().with_columns(derived).collect()?;
        Ok(Table {
            df,
            axes,
            keys,
            slo,
        })
    }

    fn lazy(&self) -> LazyFrame {
        self.df.clone().lazy()
    }

    fn measured() -> Expr {
        col("measured").and(col("m:ok_rps").is_not_null())
    }

    /// Rows of measured cells that have an RPS.
    pub(crate) fn measured_rows(&self) -> PolarsResult<Vec<usize>> {
        let df = self.lazy().filter(Self::measured()).collect()?;
        rows(&df)
    }

    /// Per row: whether it meets every SLO limit (true without an SLO).
    pub fn meets(&self) -> PolarsResult<Vec<bool>> {
        Ok(self
            .df
            .column("meets")?
            .bool()?
            .iter()
            .map(|v| v.unwrap_or(false))
            .collect())
    }

    /// Measured cells that miss the SLO, each with pass/fail per SLO limit.
    pub fn excluded(&self) -> PolarsResult<Vec<(usize, Vec<bool>)>> {
        if self.slo.is_empty() {
            return Ok(Vec::new());
        }
        let df = self
            .lazy()
            .filter(Self::measured().and(col("meets").not()))
            .collect()?;
        let rows = rows(&df)?;
        let mut flags = vec![Vec::with_capacity(self.slo.len()); rows.len()];
        for k in 0..self.slo.len() {
            let c = df.column(&format!("ok{k}"))?.bool()?.clone();
            for (i, v) in c.iter().enumerate() {
                if let Some(f) = flags.get_mut(i) {
                    f.push(v.unwrap_or(false));
                }
            }
        }
        Ok(rows.into_iter().zip(flags).collect())
    }

    /// Series along numeric axis `i`: measured cells grouped by the other
    /// axes' values, each sorted by axis value.
    pub fn series(&self, i: usize) -> PolarsResult<Vec<Vec<Point>>> {
        let d = col(format!("n{i}"));
        let mut by: Vec<Expr> = (0..self.axes.len())
            .filter(|&k| k != i)
            .map(|k| col(format!("k{k}")))
            .collect();
        by.push(col("all"));
        let mut sort = by.clone();
        sort.push(d.clone());
        let df = self
            .lazy()
            .filter(Self::measured().and(d.clone().is_not_null()))
            .sort_by_exprs(
                sort,
                SortMultipleOptions::default().with_maintain_order(true),
            )
            .collect()?;

        let r = rows(&df)?;
        let get = |name: &str| f64s(&df, name);
        let (x, rps, p95, fail) = (
            get(&format!("n{i}"))?,
            get("m:ok_rps")?,
            get("m:p95")?,
            get("m:fail_pct")?,
        );
        let mut out: Vec<Vec<Point>> = Vec::new();
        let mut last_key: Option<Vec<&str>> = None;
        for (k, &row) in r.iter().enumerate() {
            let (Some(x), Some(rps)) = (x[k], rps[k]) else {
                continue;
            };
            let key: Vec<&str> = self.keys[row]
                .iter()
                .enumerate()
                .filter(|&(a, _)| a != i)
                .map(|(_, v)| v.as_str())
                .collect();
            let point = Point {
                row,
                x,
                rps,
                p95: p95[k],
                fail_pct: fail[k],
            };
            match out.last_mut() {
                Some(series) if last_key.as_ref() == Some(&key) => series.push(point),
                _ => {
                    out.push(vec![point]);
                    last_key = Some(key);
                }
            }
        }
        Ok(out)
    }

    /// Mean, standard deviation, count and coefficient of variation of the
    /// RPS of each measured row's repetitions (rows with two or more).
    pub(crate) fn repeat_stats(&self, repeats: &[Vec<f64>]) -> PolarsResult<Vec<RepeatStats>> {
        let measured = self.measured_rows()?;
        let mut row = Vec::new();
        let mut rps = Vec::new();
        for &r in &measured {
            for &v in repeats.get(r).map(Vec::as_slice).unwrap_or(&[]) {
                if v.is_finite() {
                    row.push(r as u32);
                    rps.push(v);
                }
            }
        }
        let n = row.len();
        let df = DataFrame::new(
            n,
            vec![
                Column::new("row".into(), row),
                Column::new("rps".into(), rps),
            ],
        )?;
        let df = df
            .lazy()
            .group_by([col("row")])
            .agg([
                col("rps").mean().alias("mean"),
                col("rps").std(1).alias("std"),
                len().cast(DataType::Float64).alias("n"),
            ])
            .filter(col("n").gt_eq(lit(2.0)).and(col("mean").gt(lit(0.0))))
            .with_column((col("std") / col("mean")).alias("cv"))
            .sort(["row"], SortMultipleOptions::default())
            .collect()?;
        let r = rows(&df)?;
        let (mean, std, n, cv) = (
            f64s(&df, "mean")?,
            f64s(&df, "std")?,
            f64s(&df, "n")?,
            f64s(&df, "cv")?,
        );
        Ok((0..r.len())
            .filter_map(|k| {
                Some(RepeatStats {
                    row: r[k],
                    mean: mean[k]?,
                    std: std[k]?,
                    repeats: n[k]? as usize,
                    cv: cv[k]?,
                })
            })
            .collect())
    }
}

fn rows(df: &DataFrame) -> PolarsResult<Vec<usize>> {
    Ok(df
        .column("row")?
        .u32()?
        .iter()
        .flatten()
        .map(|r| r as usize)
        .collect())
}

/// A float column with NaN and infinities as none.
fn f64s(df: &DataFrame, name: &str) -> PolarsResult<Vec<Option<f64>>> {
    Ok(df
        .column(name)?
        .cast(&DataType::Float64)?
        .f64()?
        .iter()
        .map(finite)
        .collect())
}
