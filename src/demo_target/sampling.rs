//! A small seeded RNG and the service-time distributions.

use std::time::Duration;

/// SplitMix64: tiny, fast and good enough for simulated latencies.
#[derive(Debug, Clone)]
pub struct SplitMix64 {
    state: u64,
}

const GOLDEN_GAMMA: u64 = 0x9E37_79B9_7F4A_7C15;

fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl SplitMix64 {
    pub fn new(seed: u64) -> Self {
        Self { state: seed }
    }

    /// Independent stream for the `index`-th request of a server seeded with
    /// `seed`. Hashing (rather than offsetting the state) keeps the streams of
    /// consecutive requests from being shifted copies of each other.
    pub fn for_request(seed: u64, index: u64) -> Self {
        Self::new(mix64(seed ^ mix64(index.wrapping_add(GOLDEN_GAMMA))))
    }

    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(GOLDEN_GAMMA);
        mix64(self.state)
    }

    /// Uniform in [0, 1).
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Standard normal via Box-Muller.
    pub fn next_normal(&mut self) -> f64 {
        // 1 - u is in (0, 1], so the logarithm is finite.
        let u1 = 1.0 - self.next_f64();
        let u2 = self.next_f64();
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }
}

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
    pub fn parse(name: &str, cv: f64) -> Option<Self> {
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
    pub fn sample(&self, rng: &mut SplitMix64) -> Duration {
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

    #[test]
    fn request_streams_are_deterministic_and_distinct() {
        let a = SplitMix64::for_request(1, 0).next_u64();
        assert_eq!(a, SplitMix64::for_request(1, 0).next_u64());
        assert_ne!(a, SplitMix64::for_request(1, 1).next_u64());
        assert_ne!(a, SplitMix64::for_request(2, 0).next_u64());
    }

    #[test]
    fn uniform_is_in_range() {
        let mut rng = SplitMix64::new(3);
        for _ in 0..10_000 {
            let u = rng.next_f64();
            assert!((0.0..1.0).contains(&u));
        }
    }
}
