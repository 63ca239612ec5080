//! The Universal Scalability Law, `X(N) = λN / (1 + σ(N−1) + κN(N−1))`,
//! fitted to measured capacity at several replica counts.
//!
//! `N / X(N) = (1 + σ(N−1) + κN(N−1)) / λ` is linear in `(N−1)` and
//! `N(N−1)`, so ordinary least squares on `y = N/X` gives `1/λ`, `σ/λ` and
//! `κ/λ` without guessing `λ` (N = 1 need not have been measured). σ and κ
//! cannot be negative: a negative estimate is refitted with that term fixed
//! at zero.

/// Below this R² the data do not follow the law's shape well enough to
/// predict from it.
pub(crate) const MIN_R2: f64 = 0.9;

/// Per-replica throughput this much higher at the largest count than at the
/// smallest is superlinear: no contention model describes it.
const SUPERLINEAR: f64 = 1.1;

#[derive(Debug, Clone, PartialEq)]
pub struct UslFit {
    /// Throughput of one replica (RPS).
    pub lambda: f64,
    /// Contention: the serial share of the work.
    pub sigma: f64,
    /// Coherency: the cost of keeping replicas consistent.
    pub kappa: f64,
    /// Of the fitted throughput against the measured one.
    pub r2: f64,
    /// Where throughput peaks, `sqrt((1−σ)/κ)`; none when κ is zero.
    pub peak_n: Option<f64>,
}

impl UslFit {
    pub fn predict(&self, n: f64) -> f64 {
        self.lambda * n / (1.0 + self.sigma * (n - 1.0) + self.kappa * n * (n - 1.0))
    }
}

/// Why no fit is given.
#[derive(Debug, Clone, PartialEq)]
pub enum Refusal {
    TooFewPoints(usize),
    /// Throughput grows faster than linearly (or λ came out non-positive).
    NotPhysical,
    PoorFit(f64),
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::TooFewPoints(n) => write!(
                f,
                "it needs 3 or more replica counts where the service was the limit, and has {n}"
            ),
            Refusal::NotPhysical => write!(
                f,
                "the measurements grow faster than linearly, which the law cannot describe"
            ),
            Refusal::PoorFit(r2) => write!(
                f,
                "the measurements do not follow the law's shape (R² {r2:.2} < {MIN_R2})"
            ),
        }
    }
}

/// Fits the law to (replicas, RPS) points, one per replica count.
pub fn fit(points: &[(f64, f64)]) -> Result<UslFit, Refusal> {
    let pts: Vec<(f64, f64)> = points
        .iter()
        .copied()
        .filter(|(n, x)| n.is_finite() && x.is_finite() && *n >= 1.0 && *x > 0.0)
        .collect();
    let mut distinct: Vec<f64> = pts.iter().map(|p| p.0).collect();
    distinct.sort_by(f64::total_cmp);
    distinct.dedup();
    if distinct.len() < 3 {
        return Err(Refusal::TooFewPoints(distinct.len()));
    }
    // Per-replica throughput cannot grow with N under the law.
    let per = |n: f64| {
        pts.iter()
            .filter(|p| p.0 == n)
            .map(|p| p.1 / p.0)
            .fold(0.0, f64::max)
    };
    if per(distinct[distinct.len() - 1]) > SUPERLINEAR * per(distinct[0]) {
        return Err(Refusal::NotPhysical);
    }
    let y: Vec<f64> = pts.iter().map(|(n, x)| n / x).collect();
    let one: Vec<f64> = pts.iter().map(|_| 1.0).collect();
    let lin: Vec<f64> = pts.iter().map(|(n, _)| n - 1.0).collect();
    let quad: Vec<f64> = pts.iter().map(|(n, _)| n * (n - 1.0)).collect();
    // Try the full model, then with a negative term dropped.
    let mut coef = None;
    for terms in [
        &[true, true][..],
        &[true, false],
        &[false, true],
        &[false, false],
    ] {
        let mut cols = vec![one.clone()];
        if terms[0] {
            cols.push(lin.clone());
        }
        if terms[1] {
            cols.push(quad.clone());
        }
        let Some(c) = super::linalg::least_squares(&cols, &y) else {
            continue;
        };
        let a = c[0];
        let b = if terms[0] { c[1] } else { 0.0 };
        let q = if terms[1] { c[c.len() - 1] } else { 0.0 };
        if a > 0.0 && b >= 0.0 && q >= 0.0 {
            coef = Some((a, b, q));
            break;
        }
    }
    let (a, b, q) = coef.ok_or(Refusal::NotPhysical)?;
    let (lambda, sigma, kappa) = (1.0 / a, b / a, q / a);
    if sigma >= 1.0 {
        return Err(Refusal::NotPhysical);
    }
    let mut out = UslFit {
        lambda,
        sigma,
        kappa,
        r2: 0.0,
        peak_n: (kappa > 0.0).then(|| ((1.0 - sigma) / kappa).sqrt()),
    };
    let mean = pts.iter().map(|p| p.1).sum::<f64>() / pts.len() as f64;
    let ss_tot: f64 = pts.iter().map(|p| (p.1 - mean).powi(2)).sum();
    let ss_res: f64 = pts.iter().map(|p| (p.1 - out.predict(p.0)).powi(2)).sum();
    out.r2 = if ss_tot > 0.0 {
        1.0 - ss_res / ss_tot
    } else {
        1.0
    };
    if out.r2 < MIN_R2 {
        return Err(Refusal::PoorFit(out.r2));
    }
    Ok(out)
}

/// Replica counts to predict for: powers of two up to twice the largest
/// tested (and the peak, rounded), the tested ones left out.
pub(crate) fn prediction_points(tested: &[f64], fit: &UslFit) -> Vec<f64> {
    let max = tested.iter().copied().fold(1.0, f64::max);
    let mut out: Vec<f64> = (0..)
        .map(|k| 2f64.powi(k))
        .take_while(|n| *n <= (2.0 * max).min(1024.0))
        .collect();
    if let Some(peak) = fit.peak_n.filter(|p| *p <= 1024.0) {
        out.push(peak.round().max(1.0));
    }
    out.sort_by(f64::total_cmp);
    out.dedup();
    out.retain(|n| !tested.iter().any(|t| (t - n).abs() < 1e-9));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn synthetic(
        lambda: f64,
        sigma: f64,
        kappa: f64,
        ns: &[f64],
        noise: &[f64],
    ) -> Vec<(f64, f64)> {
        ns.iter()
            .zip(noise.iter().chain(std::iter::repeat(&0.0)))
            .map(|(&n, e)| {
                let x = lambda * n / (1.0 + sigma * (n - 1.0) + kappa * n * (n - 1.0));
                (n, x * (1.0 + e))
            })
            .collect()
    }

    #[test]
    fn recovers_known_sigma_and_kappa() {
        let pts = synthetic(100.0, 0.05, 0.002, &[1.0, 2.0, 4.0, 8.0, 16.0], &[]);
        let f = fit(&pts).unwrap();
        assert!((f.sigma - 0.05).abs() / 0.05 < 0.05, "{f:?}");
        assert!((f.kappa - 0.002).abs() / 0.002 < 0.05, "{f:?}");
        assert!((f.lambda - 100.0).abs() < 1.0, "{f:?}");
        let peak = ((1.0 - 0.05) / 0.002f64).sqrt();
        assert!((f.peak_n.unwrap() - peak).abs() / peak < 0.05);
        assert!(f.r2 > 0.999);
        // Without N = 1, and with 1% noise, still within 5%.
        let pts = synthetic(
            100.0,
            0.05,
            0.002,
            &[2.0, 4.0, 8.0, 12.0, 16.0, 24.0],
            &[0.004, -0.003, 0.002, -0.004, 0.003, -0.002],
        );
        let f = fit(&pts).unwrap();
        assert!((f.sigma - 0.05).abs() / 0.05 < 0.05, "{f:?}");
        assert!((f.kappa - 0.002).abs() / 0.002 < 0.05, "{f:?}");
    }

    #[test]
    fn linear_scaling_has_no_peak() {
        let pts = synthetic(80.0, 0.0, 0.0, &[1.0, 2.0, 4.0], &[]);
        let f = fit(&pts).unwrap();
        assert!(f.sigma.abs() < 1e-9 && f.kappa.abs() < 1e-9, "{f:?}");
        assert_eq!(f.peak_n, None);
        assert!((f.predict(8.0) - 640.0).abs() < 1e-6);
    }

    #[test]
    fn refuses_what_the_data_cannot_support() {
        assert_eq!(
            fit(&[(1.0, 10.0), (2.0, 19.0)]),
            Err(Refusal::TooFewPoints(2))
        );
        // Superlinear: 1 -> 100, 2 -> 400, 4 -> 1600.
        assert_eq!(
            fit(&[(1.0, 100.0), (2.0, 400.0), (4.0, 1600.0)]),
            Err(Refusal::NotPhysical)
        );
        // Up and down at random: no USL shape.
        let r = fit(&[
            (1.0, 100.0),
            (2.0, 30.0),
            (3.0, 180.0),
            (4.0, 20.0),
            (5.0, 200.0),
        ]);
        assert!(
            matches!(r, Err(Refusal::PoorFit(_)) | Err(Refusal::NotPhysical)),
            "{r:?}"
        );
    }

    #[test]
    fn predictions_skip_tested_counts() {
        let f = fit(&synthetic(100.0, 0.05, 0.002, &[1.0, 2.0, 4.0], &[])).unwrap();
        let p = prediction_points(&[1.0, 2.0, 4.0], &f);
        assert_eq!(&p[..1], &[8.0]);
        assert!(!p.contains(&4.0));
        assert!(p.contains(&f.peak_n.unwrap().round()));
    }
}
