//! The capacity frontier of a search: capacity (users or rate, and RPS)
//! against the scaled axis, as a table row list, an SVG chart and a
//! Universal Scalability Law fit over its points.

use serde::Serialize;

use crate::analysis::{Role, Roles, usl};
use crate::plan::matrix::MatrixValue;
use crate::search::CapacityRow;

/// The chart's file stem.
pub(crate) const CHART: &str = "capacity-frontier";

#[derive(Debug, Clone, Serialize)]
pub struct Frontier {
    /// The matrix axis capacity is plotted against (`replicas` when there is one).
    pub axis: Option<String>,
    /// (axis value, capacity, RPS) of every outer cell whose search found one.
    pub points: Vec<(f64, f64, f64)>,
    /// `capacity-frontier.svg`, beside the report; none without points.
    pub chart: Option<String>,
    #[serde(skip)]
    pub svg: Option<String>,
    pub usl: Option<Usl>,
    /// Why no fit is given, when 3 or more points exist.
    pub usl_refused: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Usl {
    pub lambda: f64,
    pub sigma: f64,
    pub kappa: f64,
    pub r2: f64,
    pub peak_n: Option<f64>,
    /// Predicted RPS at untested values of the axis: predictions, not measurements.
    pub predicted: Vec<(f64, f64)>,
}

fn number(v: &MatrixValue) -> Option<f64> {
    match v {
        MatrixValue::Int(i) => Some(*i as f64),
        MatrixValue::Float(f) => Some(*f),
        _ => None,
    }
}

/// The frontier over the capacity rows; none without a search.
pub fn frontier(rows: &[CapacityRow], axes: &[String], roles: &Roles) -> Option<Frontier> {
    let first = rows.first()?;
    let axis = roles
        .find(axes, Role::Replicas)
        .or_else(|| {
            axes.iter()
                .find(|a| first.matrix.get(*a).and_then(number).is_some())
        })
        .cloned();
    let over = first.over.clone();
    let mut points: Vec<(f64, f64, f64)> = rows
        .iter()
        .filter(|r| r.status != "incomplete")
        .filter_map(|r| {
            let x = match &axis {
                Some(a) => number(r.matrix.get(a)?)?,
                None => 1.0,
            };
            Some((x, r.max_value? as f64, r.rps?))
        })
        .collect();
    points.sort_by(|a, b| a.0.total_cmp(&b.0));
    let (chart, svg) = if points.is_empty() {
        (None, None)
    } else {
        let x_label = axis.clone().unwrap_or_else(|| "cell".into());
        let series = vec![
            (
                format!("capacity ({over})"),
                points.iter().map(|p| (p.0, p.1)).collect(),
            ),
            (
                "RPS at capacity".to_string(),
                points.iter().map(|p| (p.0, p.2)).collect(),
            ),
        ];
        let svg = super::charts::svg_line_chart(
            &format!("Capacity under the SLO vs {x_label}"),
            &x_label,
            &format!("{over} / RPS"),
            &series,
        );
        (Some(format!("{CHART}.svg")), Some(svg))
    };
    let (usl, usl_refused) = if points.len() >= 3 && axis.is_some() {
        let xy: Vec<(f64, f64)> = points.iter().map(|p| (p.0, p.2)).collect();
        match usl::fit(&xy) {
            Ok(fit) => {
                let tested: Vec<f64> = points.iter().map(|p| p.0).collect();
                let predicted = usl::prediction_points(&tested, &fit)
                    .into_iter()
                    .map(|n| (n, fit.predict(n)))
                    .collect();
                (
                    Some(Usl {
                        lambda: fit.lambda,
                        sigma: fit.sigma,
                        kappa: fit.kappa,
                        r2: fit.r2,
                        peak_n: fit.peak_n,
                        predicted,
                    }),
                    None,
                )
            }
            Err(why) => (None, Some(why.to_string())),
        }
    } else {
        (None, None)
    };
    Some(Frontier {
        axis,
        points,
        chart,
        svg,
        usl,
        usl_refused,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(replicas: i64, users: Option<u64>, rps: f64) -> CapacityRow {
        CapacityRow {
            cell: format!("replicas{replicas}"),
            matrix: [("replicas".to_string(), MatrixValue::Int(replicas))]
                .into_iter()
                .collect(),
            over: "users".into(),
            max_value: users,
            rps: users.map(|_| rps),
            p95: users.map(|_| 150.0),
            probes: 6,
            status: if users.is_some() {
                "found"
            } else {
                "below_range"
            }
            .into(),
            note: None,
        }
    }

    #[test]
    fn three_points_get_a_usl_fit_and_a_chart_of_users_and_rps() {
        let axes = vec!["replicas".to_string()];
        // Contention: each added replica gives a little less.
        let rows = vec![
            row(1, Some(12), 80.0),
            row(2, Some(23), 152.0),
            row(4, Some(43), 276.0),
            row(8, None, 0.0),
        ];
        let roles = Roles::default().with("replicas", Role::Replicas);
        let f = frontier(&rows, &axes, &roles).unwrap();
        assert_eq!(f.axis.as_deref(), Some("replicas"));
        assert_eq!(f.points.len(), 3, "a search below range has no point");
        let usl = f.usl.expect("a fit over three points");
        assert!((usl.lambda - 80.0).abs() < 8.0, "{usl:?}");
        assert!(usl.sigma > 0.0 && usl.r2 > 0.9, "{usl:?}");
        assert!(!usl.predicted.is_empty());
        let svg = f.svg.unwrap();
        assert!(svg.contains("capacity (users)") && svg.contains("RPS at capacity"));

        let two = frontier(&rows[..2], &axes, &roles).unwrap();
        assert!(two.usl.is_none() && two.usl_refused.is_none());
    }
}
