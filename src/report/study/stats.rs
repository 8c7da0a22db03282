//! The statistics of a study: mean and sample standard deviation over seeds ([`Spread`]), and
//! per-class bootstrap intervals over the test images ([`class_intervals`]; for right/wrong
//! outcomes the bootstrap distribution is a binomial per seed, computed exactly).

use ferd_core::metrics::ClassWiseAccuracy;

/// Mean and sample standard deviation of a figure over seeds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Spread {
    /// The mean.
    pub mean: f64,
    /// The sample standard deviation (`n - 1`); `None` for a single seed.
    pub std: Option<f64>,
}

impl Spread {
    /// The spread of `values` (at least one).
    pub fn of(values: &[f64]) -> Self {
        let n = values.len() as f64;
        let mean = values.iter().sum::<f64>() / n;
        let std = (values.len() > 1)
            .then(|| (values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt());
        Self { mean, std }
    }

    /// `mean ± std` scaled by `scale` with `decimals` decimals (`mean` alone for one seed).
    pub(super) fn show(&self, scale: f64, decimals: usize) -> String {
        match self.std {
            Some(std) => format!(
                "{:.decimals$} ± {:.decimals$}",
                scale * self.mean,
                scale * std
            ),
            None => format!("{:.decimals$}", scale * self.mean),
        }
    }
}

/// A bootstrap interval of a per-class accuracy.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Interval {
    /// The accuracy (mean over seeds).
    pub estimate: f64,
    /// The lower bound.
    pub low: f64,
    /// The upper bound.
    pub high: f64,
}

/// Per class, the mean over seeds of `accuracies` with its bootstrap interval at `level`
/// (e.g. 0.95): resampling each seed's test images within the class with replacement. For
/// right/wrong outcomes that bootstrap has an exact distribution, a binomial per seed (the
/// class's images, its accuracy), so the interval is computed, not sampled: the percentiles of
/// the mean of independent binomials.
pub fn class_intervals(accuracies: &[&ClassWiseAccuracy], level: f64) -> Vec<Option<Interval>> {
    let classes = accuracies.first().map_or(0, |a| a.per_class.len());
    (0..classes)
        .map(|c| {
            let seeds: Vec<(u64, f64)> = accuracies
                .iter()
                .map(|a| Some((a.class_counts[c], a.per_class[c]?)))
                .collect::<Option<_>>()?;
            let mut pmf = vec![1.0];
            for &(n, p) in &seeds {
                pmf = convolve(&pmf, &binomial(n as usize, p));
            }
            let total = seeds.iter().map(|s| s.0).sum::<u64>() as f64;
            let tail = (1.0 - level) / 2.0;
            let quantile = |q: f64| {
                let mut cdf = 0.0;
                let k = pmf
                    .iter()
                    .position(|p| {
                        cdf += p;
                        cdf >= q - 1e-12
                    })
                    .unwrap_or(pmf.len() - 1);
                k as f64 / total
            };
            let estimate = seeds.iter().map(|s| s.1).sum::<f64>() / seeds.len() as f64;
            Some(Interval {
                estimate,
                low: quantile(tail),
                high: quantile(1.0 - tail),
            })
        })
        .collect()
}

/// The probabilities of 0..=n successes in `n` trials of probability `p`, computed outward
/// from the mode by the ratio of neighbours (no factorials, no underflow at the mode).
fn binomial(n: usize, p: f64) -> Vec<f64> {
    let mut pmf = vec![0.0; n + 1];
    if p <= 0.0 || p >= 1.0 {
        pmf[if p <= 0.0 { 0 } else { n }] = 1.0;
        return pmf;
    }
    let mode = (((n + 1) as f64) * p).floor().min(n as f64) as usize;
    let odds = p / (1.0 - p);
    pmf[mode] = 1.0;
    for k in mode..n {
        pmf[k + 1] = pmf[k] * (n - k) as f64 / (k + 1) as f64 * odds;
    }
    for k in (0..mode).rev() {
        pmf[k] = pmf[k + 1] * (k + 1) as f64 / ((n - k) as f64 * odds);
    }
    let sum: f64 = pmf.iter().sum();
    pmf.iter_mut().for_each(|p| *p /= sum);
    pmf
}

/// The distribution of the sum of two independent counts.
fn convolve(a: &[f64], b: &[f64]) -> Vec<f64> {
    let mut out = vec![0.0; a.len() + b.len() - 1];
    for (i, x) in a.iter().enumerate() {
        for (j, y) in b.iter().enumerate() {
            out[i + j] += x * y;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accuracy(predictions: &[usize], labels: &[usize]) -> ClassWiseAccuracy {
        ClassWiseAccuracy::from_predictions(predictions, labels, 2).unwrap()
    }

    #[test]
    fn spread_is_the_mean_and_sample_deviation() {
        let s = Spread::of(&[0.5, 0.7]);
        assert!((s.mean - 0.6).abs() < 1e-12);
        // sqrt(((0.1)^2 + (0.1)^2) / 1)
        assert!((s.std.unwrap() - 0.02f64.sqrt()).abs() < 1e-12);
        assert_eq!(s.show(100.0, 1), "60.0 ± 14.1");
        assert_eq!(Spread::of(&[0.25]).show(100.0, 1), "25.0");
    }

    #[test]
    fn binomial_matches_pascals_triangle() {
        let pmf = binomial(4, 0.5);
        for (p, expected) in pmf.iter().zip([1.0, 4.0, 6.0, 4.0, 1.0]) {
            assert!((p - expected / 16.0).abs() < 1e-12);
        }
        // n = 1000 at p = 0.9: (0.1)^1000 underflows, the mode does not; the mean is n p.
        let pmf = binomial(1000, 0.9);
        let mean: f64 = pmf.iter().enumerate().map(|(k, p)| k as f64 * p).sum();
        assert!((mean - 900.0).abs() < 1e-6, "{mean}");
    }

    #[test]
    fn intervals_are_the_percentiles_of_the_bootstrap_distribution() {
        // Class 0: 4 images, 2 right. Bootstrap counts ~ Bin(4, 1/2); CDF 1/16, 5/16, 11/16,
        // 15/16, 1: at 80%, the 10th percentile is 1 of 4 and the 90th 3 of 4.
        let labels = [0, 0, 0, 0, 1, 1];
        let one = accuracy(&[0, 0, 1, 1, 1, 1], &labels);
        let intervals = class_intervals(&[&one], 0.8);
        assert_eq!(
            intervals[0],
            Some(Interval {
                estimate: 0.5,
                low: 0.25,
                high: 0.75
            })
        );
        // Class 1 always right: no spread.
        let i = intervals[1].unwrap();
        assert_eq!((i.estimate, i.low, i.high), (1.0, 1.0, 1.0));
        // Two seeds, class 0 at 0% and 100%: the mean is 1/2 whatever the resampling.
        let other = accuracy(&[1, 1, 1, 1, 1, 1], &labels);
        let all = accuracy(&[0, 0, 0, 0, 1, 1], &labels);
        let i = class_intervals(&[&other, &all], 0.95)[0].unwrap();
        assert_eq!((i.estimate, i.low, i.high), (0.5, 0.5, 0.5));
    }
}
