//! A block bootstrap of the difference between two cells' figures over the
//! per-second windows of their measured windows, and Holm's step-down
//! correction over many such differences.
//!
//! Consecutive seconds of a load test are not independent (a GC pause or a
//! noisy neighbour lasts longer than a second), so seconds are resampled in
//! blocks of consecutive seconds. Blocks never cross a repetition's edges;
//! the blocks of every repetition are pooled, so a resample mixes the
//! repetitions in random proportions and the spread between repetitions
//! widens the interval as it should.

use crate::base::random::SplitMix64;
use crate::results::seconds::Second;

/// Resamples per comparison: enough that the tails Holm's correction reads
/// (a few per mille with tens of comparisons) hold several resamples.
pub(crate) const RESAMPLES: usize = 10_000;

/// A figure computed from a set of seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stat {
    /// Requests per second.
    Rps,
    /// Successful requests per second.
    OkRps,
    /// A latency quantile: the request-weighted mean of the seconds' own
    /// quantiles (the per-second histograms are not kept, only their
    /// quantiles; weighting by requests makes a busy second count as much as
    /// its requests do in the window's quantile).
    P50,
    P95,
    P99,
    /// Failed requests, percent of all.
    FailPct,
}

impl Stat {
    /// The stat behind a metric name, for the ones a second records.
    pub fn of(metric: &str) -> Option<Stat> {
        Some(match crate::metrics::canonical(metric) {
            "rps" => Stat::Rps,
            "ok_rps" => Stat::OkRps,
            "p50" => Stat::P50,
            "p95" => Stat::P95,
            "p99" => Stat::P99,
            "fail_pct" => Stat::FailPct,
            _ => return None,
        })
    }

    fn quantile(self, s: &Second) -> f64 {
        match self {
            Stat::P50 => s.p50,
            Stat::P95 => s.p95,
            _ => s.p99,
        }
    }
}

/// Running sums from which every stat follows.
#[derive(Default, Clone, Copy)]
struct Sums {
    seconds: f64,
    requests: f64,
    failures: f64,
    /// Requests x quantile, over seconds with requests.
    weighted: f64,
}

impl Sums {
    fn add(&mut self, s: &Second, stat: Stat) {
        self.seconds += 1.0;
        self.requests += s.requests;
        self.failures += s.failures;
        if s.requests > 0.0 {
            self.weighted += s.requests * stat.quantile(s);
        }
    }

    fn value(&self, stat: Stat) -> Option<f64> {
        let v = match stat {
            Stat::Rps => self.requests / self.seconds,
            Stat::OkRps => (self.requests - self.failures) / self.seconds,
            Stat::FailPct => self.failures / self.requests * 100.0,
            _ => self.weighted / self.requests,
        };
        v.is_finite().then_some(v)
    }
}

/// The stat over every second of every repetition.
pub(crate) fn stat(reps: &[Vec<Second>], stat: Stat) -> Option<f64> {
    let mut sums = Sums::default();
    for s in reps.iter().flatten() {
        sums.add(s, stat);
    }
    sums.value(stat)
}

/// Block length for `n` seconds: about n^(1/3), the usual rate for a block
/// bootstrap of a mean, at least 1 and no longer than the shortest
/// repetition.
pub(crate) fn block_len(reps: &[Vec<Second>]) -> usize {
    let n: usize = reps.iter().map(Vec::len).sum();
    let shortest = reps
        .iter()
        .map(Vec::len)
        .filter(|l| *l > 0)
        .min()
        .unwrap_or(1);
    ((n as f64).cbrt().round() as usize).clamp(1, shortest)
}

/// The moving blocks of every repetition: (repetition, first second).
fn blocks(reps: &[Vec<Second>], len: usize) -> Vec<(usize, usize)> {
    reps.iter()
        .enumerate()
        .flat_map(|(r, secs)| (0..=secs.len().saturating_sub(len)).map(move |s| (r, s)))
        .filter(|(r, s)| s + len <= reps[*r].len())
        .collect()
}

/// One resample's stat: as many blocks as fill the original seconds.
fn resample(
    reps: &[Vec<Second>],
    blocks: &[(usize, usize)],
    len: usize,
    stat: Stat,
    rng: &mut SplitMix64,
) -> Option<f64> {
    let n: usize = reps.iter().map(Vec::len).sum();
    let mut sums = Sums::default();
    let mut drawn = 0;
    while drawn < n {
        let (r, s) = blocks[(rng.next_u64() % blocks.len() as u64) as usize];
        for sec in &reps[r][s..s + len] {
            sums.add(sec, stat);
        }
        drawn += len;
    }
    sums.value(stat)
}

/// The change from `base` to `new` in percent, and its bootstrap
/// distribution (sorted).
#[derive(Debug, Clone)]
pub struct Difference {
    pub base: f64,
    pub new: f64,
    pub delta_pct: f64,
    /// Resampled deltas, ascending.
    pub resampled: Vec<f64>,
}

impl Difference {
    /// The percentile interval at confidence `1 - alpha`, in percent. The
    /// same index on both sides, so it excludes 0 exactly when
    /// [`p_value`](Self::p_value) is at most `alpha`.
    pub fn interval(&self, alpha: f64) -> (f64, f64) {
        let b = self.resampled.len();
        let i = tail_index(alpha, b);
        (self.resampled[i], self.resampled[b - 1 - i])
    }

    /// Twice the smaller share of resampled deltas on either side of 0.
    pub(crate) fn p_value(&self) -> f64 {
        let b = self.resampled.len() as f64;
        (2.0 * self.tail() as f64 / b).min(1.0)
    }

    fn tail(&self) -> usize {
        let below = self.resampled.partition_point(|d| *d <= 0.0);
        let above = self.resampled.len() - self.resampled.partition_point(|d| *d < 0.0);
        below.min(above)
    }
}

/// Index of an interval's lower end at `alpha`: the sorted resample
/// `floor(alpha / 2 * B)` (a tail count at most that index excludes 0).
fn tail_index(alpha: f64, b: usize) -> usize {
    ((alpha / 2.0 * b as f64).floor() as usize).min((b - 1) / 2)
}

/// Bootstraps `new` against `base` for one stat; none when either side has
/// no seconds, or no more than one block of them (no spread to measure), or
/// the base figure is 0 (no relative change).
pub fn difference(
    base: &[Vec<Second>],
    new: &[Vec<Second>],
    which: Stat,
    seed: u64,
    resamples: usize,
) -> Option<Difference> {
    let (b, n) = (stat(base, which)?, stat(new, which)?);
    if b == 0.0 {
        return None;
    }
    let (lb, ln) = (block_len(base), block_len(new));
    let (bb, nb) = (blocks(base, lb), blocks(new, ln));
    if bb.is_empty() || nb.is_empty() {
        return None;
    }
    let mut rng = SplitMix64::new(seed);
    let mut resampled = Vec::with_capacity(resamples);
    for _ in 0..resamples.max(1) {
        let rb = resample(base, &bb, lb, which, &mut rng);
        let rn = resample(new, &nb, ln, which, &mut rng);
        if let (Some(rb), Some(rn)) = (rb, rn)
            && rb != 0.0
        {
            resampled.push((rn / rb - 1.0) * 100.0);
        }
    }
    if resampled.is_empty() {
        return None;
    }
    let delta_pct = (n / b - 1.0) * 100.0;
    // A bootstrap over k independent pieces underestimates the variance by
    // (k - 1) / k, which matters for a few seconds of a short cell: the
    // spread around the change is widened by the fewer side's factor (the
    // t-interval's reason for being wider than the normal one).
    let pieces = |reps: &[Vec<Second>], len: usize| {
        reps.iter().map(Vec::len).sum::<usize>() as f64 / len as f64
    };
    let k = pieces(base, lb).min(pieces(new, ln));
    if k <= 1.0 {
        return None;
    }
    let widen = (k / (k - 1.0)).sqrt();
    for d in &mut resampled {
        *d = delta_pct + (*d - delta_pct) * widen;
    }
    resampled.sort_by(f64::total_cmp);
    Some(Difference {
        base: b,
        new: n,
        delta_pct,
        resampled,
    })
}

/// Holm's step-down verdict on one of a family of tests.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Holm {
    pub reject: bool,
    /// The level this test is judged at: `alpha / (m - k)` at rank `k`
    /// (0-based, by p-value) up to the first test kept, and that test's
    /// level for every test after it. An interval at this level excludes 0
    /// exactly when the test is rejected.
    pub level: f64,
    /// Holm's adjusted p-value: `max over j <= k of min(1, (m - j) p_(j))`.
    pub adjusted: f64,
}

/// Holm's step-down procedure at family-wise level `alpha`.
pub(crate) fn holm(p: &[f64], alpha: f64) -> Vec<Holm> {
    let m = p.len();
    let mut order: Vec<usize> = (0..m).collect();
    order.sort_by(|a, b| p[*a].total_cmp(&p[*b]));
    let mut out = vec![
        Holm {
            reject: false,
            level: alpha,
            adjusted: 1.0,
        };
        m
    ];
    // The level of the first test kept: every later one is judged at it.
    let mut stopped: Option<f64> = None;
    let mut running = 0.0_f64;
    for (k, &i) in order.iter().enumerate() {
        let level = alpha / (m - k) as f64;
        running = running.max(((m - k) as f64 * p[i]).min(1.0));
        let (reject, at) = match stopped {
            Some(at) => (false, at),
            None if p[i] <= level => (true, level),
            None => {
                stopped = Some(level);
                (false, level)
            }
        };
        out[i] = Holm {
            reject,
            level: at,
            adjusted: running,
        };
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_plan_compares_exactly_the_metrics_a_second_records() {
        for name in crate::metrics::names() {
            let per_second = crate::plan::ab::PER_SECOND.contains(&crate::metrics::canonical(name));
            assert_eq!(Stat::of(name).is_some(), per_second, "{name}");
        }
    }

    #[test]
    fn holm_matches_a_hand_computation() {
        // Sorted: 0.005 <= 0.05/4 rejected; 0.01 <= 0.05/3 rejected;
        // 0.03 > 0.05/2 kept, and so is everything after it (0.04, though
        // 0.04 <= 0.05/1). Adjusted: 4 x 0.005 = 0.02, 3 x 0.01 = 0.03,
        // 2 x 0.03 = 0.06, max(0.06, 1 x 0.04) = 0.06.
        let h = holm(&[0.01, 0.04, 0.03, 0.005], 0.05);
        let reject: Vec<bool> = h.iter().map(|h| h.reject).collect();
        assert_eq!(reject, [true, false, false, true]);
        let adjusted: Vec<f64> = h.iter().map(|h| (h.adjusted * 1e6).round() / 1e6).collect();
        assert_eq!(adjusted, [0.03, 0.06, 0.06, 0.02]);
        let level: Vec<f64> = h.iter().map(|h| (h.level * 1e6).round() / 1e6).collect();
        assert_eq!(
            level,
            [0.05 / 3.0, 0.025, 0.025, 0.0125].map(|l| (l * 1e6_f64).round() / 1e6)
        );
        // Without correction a lone test is judged at alpha.
        assert!(holm(&[0.049], 0.05)[0].reject);
        assert!(!holm(&[0.051], 0.05)[0].reject);
    }

    fn steady(n: usize, rps: f64, p95: f64, wobble: u64) -> Vec<Second> {
        let mut rng = SplitMix64::new(wobble);
        (0..n)
            .map(|_| {
                let w = 1.0 + 0.02 * rng.next_normal();
                Second {
                    requests: (rps * w).round(),
                    failures: 0.0,
                    p50: p95 * 0.9 * w,
                    p95: p95 * w,
                    p99: p95 * 1.1 * w,
                }
            })
            .collect()
    }

    #[test]
    fn an_interval_excludes_zero_exactly_when_its_p_value_is_below_the_level() {
        let base = vec![steady(10, 200.0, 20.0, 1), steady(10, 200.0, 20.0, 2)];
        let new = vec![steady(10, 200.0, 20.3, 3), steady(10, 200.0, 20.3, 4)];
        let d = difference(&base, &new, Stat::P95, 7, 4000).unwrap();
        for alpha in [0.5, 0.2, 0.1, 0.05, 0.01, 0.001] {
            let (lo, hi) = d.interval(alpha);
            assert_eq!(
                lo > 0.0 || hi < 0.0,
                d.p_value() <= alpha,
                "alpha {alpha}: {d:?}"
            );
        }
    }

    #[test]
    fn the_same_seed_gives_the_same_interval() {
        let base = vec![steady(12, 100.0, 20.0, 1)];
        let new = vec![steady(12, 100.0, 24.0, 2)];
        let a = difference(&base, &new, Stat::P95, 42, 2000).unwrap();
        let b = difference(&base, &new, Stat::P95, 42, 2000).unwrap();
        assert_eq!(a.interval(0.05), b.interval(0.05));
        let (lo, hi) = a.interval(0.05);
        assert!(lo < 20.0 && 20.0 < hi, "{lo}..{hi}");
    }

    #[test]
    fn blocks_stay_inside_their_repetition() {
        let reps = vec![steady(5, 1.0, 1.0, 1), steady(3, 1.0, 1.0, 2)];
        assert_eq!(block_len(&reps), 2);
        let b = blocks(&reps, 2);
        assert_eq!(b, [(0, 0), (0, 1), (0, 2), (0, 3), (1, 0), (1, 1)]);
    }
}
