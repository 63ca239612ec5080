//! The service-time distributions.

use std::time::Duration;

use crate::base::random::SplitMix64;

/// Service-time distribution.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Jitter {
    Fixed,
    /// Log-normal with this coefficient of variation; the mean is preserved.
    LogNormal {
        cv: f64,
    },
    Exponential,
}

impl Jitter {
    pub(crate) fn parse(name: &str, cv: f64) -> Option<Self> {
        match name.trim().to_ascii_lowercase().as_str() {
            "fixed" => Some(Self::Fixed),
            "lognormal" | "log-normal" => Some(Self::LogNormal { cv }),
            "exponential" | "exp" => Some(Self::Exponential),
            _ => None,
        }
    }
}

/// Draws per-request service times with a given mean.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ServiceTime {
    pub mean: Duration,
    pub jitter: Jitter,
}

impl ServiceTime {
    pub(crate) fn sample(&self, rng: &mut SplitMix64) -> Duration {
        let mean = self.mean.as_secs_f64();
        let secs = match self.jitter {
            Jitter::Fixed => return self.mean,
            _ if mean <= 0.0 => return Duration::ZERO,
            Jitter::LogNormal { cv } => {
                let sigma2 = (1.0 + cv * cv).ln();
                let mu = mean.ln() - sigma2 / 2.0;
                (mu + sigma2.sqrt() * rng.next_normal()).exp()
            }
            Jitter::Exponential => -mean * (1.0 - rng.next_f64()).ln(),
        };
        // Both draws are bounded (|z| < 9, -ln(1-u) < 37), but a huge mean
        // could still overflow a Duration; saturate instead of panicking.
        Duration::try_from_secs_f64(secs).unwrap_or(Duration::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample_mean(service: ServiceTime, n: usize) -> f64 {
        let mut rng = SplitMix64::new(42);
        let total: f64 = (0..n).map(|_| service.sample(&mut rng).as_secs_f64()).sum();
        total / n as f64
    }

    #[test]
    fn lognormal_keeps_the_mean() {
        for cv in [0.25, 1.0] {
            let service = ServiceTime {
                mean: Duration::from_millis(20),
                jitter: Jitter::LogNormal { cv },
            };
            let mean = sample_mean(service, 20_000);
            assert!((mean / 0.020 - 1.0).abs() < 0.03, "cv {cv}: mean {mean}");
        }
    }

    #[test]
    fn lognormal_has_the_requested_spread() {
        let service = ServiceTime {
            mean: Duration::from_millis(20),
            jitter: Jitter::LogNormal { cv: 0.5 },
        };
        let mut rng = SplitMix64::new(7);
        let xs: Vec<f64> = (0..20_000)
            .map(|_| service.sample(&mut rng).as_secs_f64())
            .collect();
        let mean = xs.iter().sum::<f64>() / xs.len() as f64;
        let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / xs.len() as f64;
        let cv = var.sqrt() / mean;
        assert!((cv - 0.5).abs() < 0.05, "cv {cv}");
    }

    #[test]
    fn exponential_keeps_the_mean() {
        let service = ServiceTime {
            mean: Duration::from_millis(20),
            jitter: Jitter::Exponential,
        };
        let mean = sample_mean(service, 20_000);
        assert!((mean / 0.020 - 1.0).abs() < 0.03, "mean {mean}");
    }

    #[test]
    fn fixed_is_fixed_and_zero_mean_is_zero() {
        let mut rng = SplitMix64::new(1);
        let fixed = ServiceTime {
            mean: Duration::from_millis(20),
            jitter: Jitter::Fixed,
        };
        assert_eq!(fixed.sample(&mut rng), Duration::from_millis(20));
        for jitter in [Jitter::LogNormal { cv: 0.25 }, Jitter::Exponential] {
            let zero = ServiceTime {
                mean: Duration::ZERO,
                jitter,
            };
            assert_eq!(zero.sample(&mut rng), Duration::ZERO);
        }
    }
}
