//! Where latency starts to climb with load: a two-segment piecewise-linear
//! (hinge) fit `y = a + b·x + c·max(0, x − k)`, the breakpoint `k` chosen
//! by least squares over a fine grid between the tested load levels.

#[derive(Debug, Clone, PartialEq)]
pub struct Knee {
    /// The load (users or rate) where the slope changes.
    pub at: f64,
    /// Latency added per unit of load before and after it.
    pub slope_before: f64,
    pub slope_after: f64,
}

/// A knee must at least double the slope and explain the curve clearly
/// better than one straight line.
const MIN_SLOPE_RATIO: f64 = 2.0;
const MAX_SSE_SHARE: f64 = 0.5;
/// Grid steps between neighbouring load levels.
const STEPS: usize = 50;

/// (a, b, c, sse) of the hinge fit at breakpoint `k`.
fn hinge(points: &[(f64, f64)], k: f64) -> Option<(f64, f64, f64, f64)> {
    let rows: Vec<([f64; 3], f64)> = points
        .iter()
        .map(|&(x, y)| ([1.0, x, (x - k).max(0.0)], y))
        .collect();
    let cols: Vec<Vec<f64>> = (0..3)
        .map(|i| rows.iter().map(|(v, _)| v[i]).collect())
        .collect();
    let ys: Vec<f64> = rows.iter().map(|(_, y)| *y).collect();
    let c3 = super::linalg::least_squares(&cols, &ys)?;
    let (a, b, c) = (c3[0], c3[1], c3[2]);
    let sse = rows
        .iter()
        .map(|(v, y)| (y - (a * v[0] + b * v[1] + c * v[2])).powi(2))
        .sum();
    Some((a, b, c, sse))
}

fn line_sse(points: &[(f64, f64)]) -> f64 {
    let n = points.len() as f64;
    let mx = points.iter().map(|p| p.0).sum::<f64>() / n;
    let my = points.iter().map(|p| p.1).sum::<f64>() / n;
    let sxx: f64 = points.iter().map(|p| (p.0 - mx).powi(2)).sum();
    let sxy: f64 = points.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
    let b = if sxx > 0.0 { sxy / sxx } else { 0.0 };
    points
        .iter()
        .map(|p| (p.1 - (my + b * (p.0 - mx))).powi(2))
        .sum()
}

/// The knee of latency `y` against load `x`; none with fewer than four load
/// levels, or when the curve does not bend upwards clearly.
pub(crate) fn knee(points: &[(f64, f64)]) -> Option<Knee> {
    let mut pts: Vec<(f64, f64)> = points
        .iter()
        .copied()
        .filter(|(x, y)| x.is_finite() && y.is_finite())
        .collect();
    pts.sort_by(|a, b| a.0.total_cmp(&b.0));
    let xs: Vec<f64> = {
        let mut v: Vec<f64> = pts.iter().map(|p| p.0).collect();
        v.dedup();
        v
    };
    if xs.len() < 4 {
        return None;
    }
    // The breakpoint leaves at least two load levels on each side.
    let mut best: Option<(f64, f64, f64, f64)> = None;
    for w in xs[1..xs.len() - 1].windows(2) {
        for s in 0..=STEPS {
            let k = w[0] + (w[1] - w[0]) * s as f64 / STEPS as f64;
            if let Some((_, b, c, sse)) = hinge(&pts, k)
                && best.is_none_or(|(_, _, _, e)| sse < e)
            {
                best = Some((k, b, c, sse));
            }
        }
    }
    let (k, b, c, sse) = best?;
    let after = b + c;
    let bends = after > 0.0 && after >= MIN_SLOPE_RATIO * b.max(0.0) && c > 0.0;
    let line = line_sse(&pts);
    let clearer = line <= 0.0 || sse <= MAX_SSE_SHARE * line;
    (bends && clearer).then_some(Knee {
        at: k,
        slope_before: b,
        slope_after: after,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_a_known_break() {
        // Flat 50 ms up to 24 users, then +4 ms per user.
        let pts: Vec<(f64, f64)> = (1..=16)
            .map(|i| {
                let x = 4.0 * i as f64;
                (x, 50.0 + 4.0 * (x - 24.0).max(0.0))
            })
            .collect();
        let k = knee(&pts).unwrap();
        assert!((k.at - 24.0).abs() <= 0.5, "{k:?}");
        assert!(k.slope_before.abs() < 0.01, "{k:?}");
        assert!((k.slope_after - 4.0).abs() < 0.01, "{k:?}");
        // A break between tested levels is placed between them.
        let pts: Vec<(f64, f64)> = [8.0, 16.0, 32.0, 64.0, 128.0]
            .iter()
            .map(|&x| (x, 20.0 + 0.01 * x + 2.0 * (x - 40.0f64).max(0.0)))
            .collect();
        let k = knee(&pts).unwrap();
        assert!((k.at - 40.0).abs() < 4.0, "{k:?}");
    }

    #[test]
    fn no_knee_in_a_line_or_with_few_points() {
        let line: Vec<(f64, f64)> = (1..=8).map(|i| (i as f64, 10.0 + 2.0 * i as f64)).collect();
        assert_eq!(knee(&line), None);
        assert_eq!(knee(&[(1.0, 1.0), (2.0, 1.0), (3.0, 9.0)]), None);
        let flat: Vec<(f64, f64)> = (1..=8).map(|i| (i as f64, 5.0)).collect();
        assert_eq!(knee(&flat), None);
    }
}
