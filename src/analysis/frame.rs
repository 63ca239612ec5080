//! The DataFrame of summary rows and the polars lazy queries over it.
//!
//! Columns: `row` (index into the input rows), `cell`, `measured`, `all`
//! (a constant partition key), `k{i}` (axis i as text, "" when the cell has
//! no value), `n{i}` (axis i as a number, null when not numeric), `m:{metric}`,
//! `slo{j}` (the value of SLO metric j), `replicas`, `workers`,
//! `client_flag`; then the derived `ok{j}`, `meets`, `cost_h`, `rps_per_cost`.

use polars::prelude::{
    Column, DataFrame, DataType, Expr, IntoLazy, LazyFrame, PolarsResult, SortMultipleOptions, col,
    len, lit, when,
};

use super::{AnalysisInput, CLIENT_CPU_BOUND_PCT, Role};
use crate::plan::expr::{MetricKind, metric_kind};

const METRICS: &[&str] = &["rps", "p95", "fail_pct", "client_cpu_pct"];

pub struct Axis {
    pub name: String,
    pub role: Role,
    /// Every cell that has a value for it has a finite number.
    pub numeric: bool,
}

pub struct SloLimit {
    pub metric: String,
    pub limit: f64,
    /// A minimum (rps), not a maximum.
    pub floor: bool,
}

/// One point of a series along an axis, with the window values polars computed.
#[derive(Clone, Debug)]
pub struct Point {
    pub row: usize,
    pub x: f64,
    pub rps: f64,
    pub p95: Option<f64>,
    pub fail_pct: Option<f64>,
    /// rps(n) / (rps(n0) * n / n0); none for the first point.
    pub efficiency: Option<f64>,
    /// rps / previous rps - 1; none for the first point.
    pub gain: Option<f64>,
    pub x0: f64,
    pub rps0: f64,
}

/// RPS across the repetitions of one cell.
pub struct RepeatStats {
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
    pub has_cost: bool,
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
                role: Role::of(name),
                numeric,
            });
        }

        for m in METRICS {
            let v: Vec<Option<f64>> = rows
                .iter()
                .map(|r| finite(r.metrics.get(*m).copied()))
                .collect();
            cols.push(Column::new(format!("m:{m}").into(), v));
        }
        let mut slo = Vec::new();
        for (metric, &limit) in input.slo {
            if !limit.is_finite() {
                continue;
            }
            let v: Vec<Option<f64>> = rows.iter().map(|r| finite(r.metric(metric))).collect();
            cols.push(Column::new(format!("slo{}", slo.len()).into(), v));
            slo.push(SloLimit {
                metric: metric.clone(),
                limit,
                floor: matches!(metric_kind(metric), Some(MetricKind::Rate)),
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
        let has_cost;
        if let Some(c) = input
            .cost
            .filter(|c| c.per_replica_hour.is_finite() && c.per_worker_hour.is_finite())
        {
            has_cost = true;
            derived.push(
                (col("replicas") * lit(c.per_replica_hour)
                    + col("workers") * lit(c.per_worker_hour))
                .alias("cost_h"),
            );
        } else {
            has_cost = false;
            derived.push(lit(f64::NAN).alias("cost_h"));
        }
        let df = df
            .lazy()
            .with_columns(derived)
            .with_column(
                when(col("cost_h").gt(lit(0.0)))
                    .then(col("m:rps") / col("cost_h"))
                    .otherwise(lit(f64::NAN))
                    .alias("rps_per_cost"),
            )
            .collect()?;
        Ok(Table {
            df,
            axes,
            keys,
            slo,
            has_cost,
        })
    }

    fn lazy(&self) -> LazyFrame {
        self.df.clone().lazy()
    }

    fn measured() -> Expr {
        col("measured").and(col("m:rps").is_not_null())
    }

    /// Rows of measured cells that have an RPS.
    pub fn measured_rows(&self) -> PolarsResult<Vec<usize>> {
        let df = self.lazy().filter(Self::measured()).collect()?;
        rows(&df)
    }

    /// The measured cell with the highest RPS among those meeting the SLO.
    pub fn capacity(&self) -> PolarsResult<Option<usize>> {
        let df = self
            .lazy()
            .filter(Self::measured().and(col("meets")))
            .sort_by_exprs(
                [col("m:rps"), col("row")],
                SortMultipleOptions::default()
                    .with_order_descending_multi([true, false])
                    .with_nulls_last(true),
            )
            .limit(1)
            .collect()?;
        Ok(rows(&df)?.first().copied())
    }

    /// The measured cell meeting the SLO with the best RPS per dollar-hour,
    /// with its cost per hour; none without a usable cost model.
    pub fn cheapest(&self) -> PolarsResult<Option<(usize, f64, f64)>> {
        if !self.has_cost {
            return Ok(None);
        }
        let df = self
            .lazy()
            .filter(
                Self::measured()
                    .and(col("meets"))
                    .and(col("rps_per_cost").is_not_nan()),
            )
            .sort_by_exprs(
                [col("rps_per_cost"), col("m:rps"), col("row")],
                SortMultipleOptions::default()
                    .with_order_descending_multi([true, true, false])
                    .with_nulls_last(true),
            )
            .limit(1)
            .collect()?;
        let r = rows(&df)?;
        let cost = f64s(&df, "cost_h")?;
        let rpc = f64s(&df, "rps_per_cost")?;
        Ok(match (r.first(), cost.first(), rpc.first()) {
            (Some(&r), Some(Some(c)), Some(Some(p))) => Some((r, *c, *p)),
            _ => None,
        })
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

    /// Measured cells whose generator CPU reached the bound or that the engine
    /// flagged, with the client CPU.
    pub fn client_hot(&self) -> PolarsResult<Vec<(usize, Option<f64>, bool)>> {
        let df = self
            .lazy()
            .filter(
                col("measured").and(
                    col("m:client_cpu_pct")
                        .gt_eq(lit(CLIENT_CPU_BOUND_PCT))
                        .fill_null(lit(false))
                        .or(col("client_flag")),
                ),
            )
            .collect()?;
        let r = rows(&df)?;
        let cpu = f64s(&df, "m:client_cpu_pct")?;
        let flag: Vec<bool> = df
            .column("client_flag")?
            .bool()?
            .iter()
            .map(|v| v.unwrap_or(false))
            .collect();
        Ok(r.into_iter()
            .zip(cpu)
            .zip(flag)
            .map(|((r, c), f)| (r, c, f))
            .collect())
    }

    /// Series along numeric axis `i`: measured cells grouped by the other
    /// axes' values, each sorted by axis value, with the first point, the
    /// previous point, the efficiency and the gain computed by polars.
    pub fn series(&self, i: usize) -> PolarsResult<Vec<Vec<Point>>> {
        let d = col(format!("n{i}"));
        let rps = col("m:rps");
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
            .with_columns([
                d.clone().first().over(&by)?.alias("x0"),
                rps.clone().first().over(&by)?.alias("rps0"),
                d.clone().shift(lit(1)).over(&by)?.alias("prev_x"),
                rps.clone().shift(lit(1)).over(&by)?.alias("prev_rps"),
            ])
            .with_columns([
                when(
                    col("x0")
                        .gt(lit(0.0))
                        .and(col("rps0").gt(lit(0.0)))
                        .and(col("prev_x").is_not_null()),
                )
                .then(rps.clone() / (col("rps0") * d.clone() / col("x0")))
                .otherwise(lit(f64::NAN))
                .alias("efficiency"),
                when(col("prev_rps").gt(lit(0.0)))
                    .then(rps.clone() / col("prev_rps") - lit(1.0))
                    .otherwise(lit(f64::NAN))
                    .alias("gain"),
            ])
            .collect()?;

        let r = rows(&df)?;
        let get = |name: &str| f64s(&df, name);
        let (x, rps, p95, fail) = (
            get(&format!("n{i}"))?,
            get("m:rps")?,
            get("m:p95")?,
            get("m:fail_pct")?,
        );
        let (eff, gain, x0, rps0) = (get("efficiency")?, get("gain")?, get("x0")?, get("rps0")?);
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
                efficiency: eff[k],
                gain: gain[k],
                x0: x0[k].unwrap_or(x),
                rps0: rps0[k].unwrap_or(rps),
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
    pub fn repeat_stats(&self, repeats: &[Vec<f64>]) -> PolarsResult<Vec<RepeatStats>> {
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
