//! Robustness-guided class reweighting (FERD, method spec section 2, steps 5 and 6).
//!
//! After each synthesis round the teacher is attacked on the round's samples; a class whose
//! samples end with a small (or negative) margin is fragile. The next round draws its labels
//! from a distribution that favours fragile classes, so the sample bank carries more of them.

use rand::SeedableRng;
use rand::distr::{Distribution, weighted::WeightedIndex};
use rand::rngs::StdRng;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::error::{Result, param_error, shape_error};

/// How per-class fragility turns into the next round's class distribution.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "strategy", rename_all = "snake_case")]
pub enum ReweightStrategy {
    /// The paper's rule: `p = softmax(D / temperature)`.
    Softmax {
        /// Softmax temperature `tau` (default 1).
        temperature: f64,
    },
    /// The official code's rule: `q = p_min + (p_max - p_min) (D - min D) / (max D - min D +
    /// 1e-8)`, `p = q / sum q` (`p_min = 0.05`, `p_max = 0.2` for 10 classes).
    MinMax {
        /// Weight of the most robust class before normalization.
        p_min: f64,
        /// Weight of the most fragile class before normalization.
        p_max: f64,
    },
    /// No reweighting: `p = 1/C` (ablations and baselines).
    Uniform,
}

impl Default for ReweightStrategy {
    fn default() -> Self {
        Self::Softmax { temperature: 1.0 }
    }
}

impl ReweightStrategy {
    /// The official code's min-max rule with its constants for 10 classes.
    pub fn official_minmax() -> Self {
        Self::MinMax {
            p_min: 0.05,
            p_max: 0.2,
        }
    }

    /// The class distribution for per-class fragility scores `D` (one per class). Sums to 1.
    pub fn class_distribution(&self, fragility: &[f64]) -> Result<Vec<f64>> {
        if fragility.is_empty() {
            return Err(shape_error("class_distribution", "no classes"));
        }
        if let Some(bad) = fragility.iter().find(|d| !d.is_finite()) {
            return Err(param_error(
                "class_distribution",
                format!("fragility {bad} is not finite"),
            ));
        }
        match *self {
            Self::Softmax { temperature } => {
                if temperature.is_nan() || temperature <= 0.0 {
                    return Err(param_error(
                        "class_distribution",
                        format!("softmax temperature {temperature} must be > 0"),
                    ));
                }
                let max = fragility.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                let weights = fragility.iter().map(|d| ((d - max) / temperature).exp());
                Ok(normalized(weights.collect()))
            }
            Self::MinMax { p_min, p_max } => {
                if !(0.0 < p_min && p_min <= p_max) {
                    return Err(param_error(
                        "class_distribution",
                        format!("min-max needs 0 < p_min <= p_max, got {p_min}, {p_max}"),
                    ));
                }
                let min = fragility.iter().copied().fold(f64::INFINITY, f64::min);
                let max = fragility.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                let range = max - min + 1e-8;
                let weights = fragility
                    .iter()
                    .map(|d| p_min + (p_max - p_min) * (d - min) / range);
                Ok(normalized(weights.collect()))
            }
            Self::Uniform => Ok(vec![1.0 / fragility.len() as f64; fragility.len()]),
        }
    }
}

fn normalized(weights: Vec<f64>) -> Vec<f64> {
    let total: f64 = weights.iter().sum();
    weights.into_iter().map(|w| w / total).collect()
}

/// Per-class fragility `D_c = mean over samples of class c of (-margin_i)`, 0 for a class
/// without samples. `margins[i]` is the teacher's adversarial margin `t_adv[y_i] - max_{j != y_i}
/// t_adv[j]` on sample `i` (see [`crate::losses::margin`]).
pub fn class_fragility(margins: &[f32], labels: &[usize], classes: usize) -> Result<Vec<f64>> {
    if margins.len() != labels.len() {
        return Err(shape_error(
            "class_fragility",
            format!("{} margins for {} labels", margins.len(), labels.len()),
        ));
    }
    let mut sums = vec![0.0f64; classes];
    let mut counts = vec![0usize; classes];
    for (&m, &y) in margins.iter().zip(labels) {
        if y >= classes {
            return Err(param_error(
                "class_fragility",
                format!("label {y} >= {classes} classes"),
            ));
        }
        sums[y] -= f64::from(m);
        counts[y] += 1;
    }
    Ok(sums
        .iter()
        .zip(&counts)
        .map(|(&s, &n)| if n == 0 { 0.0 } else { s / n as f64 })
        .collect())
}

/// Draws `count` labels from `distribution` with replacement, sorted (method spec, section 2,
/// step 1). Deterministic for a given `seed`.
pub fn sample_labels(distribution: &[f64], count: usize, seed: u64) -> Result<Vec<usize>> {
    let index = WeightedIndex::new(distribution)
        .map_err(|err| param_error("sample_labels", format!("bad distribution: {err}")))?;
    let mut rng = StdRng::seed_from_u64(seed);
    let mut labels: Vec<usize> = (0..count).map(|_| index.sample(&mut rng)).collect();
    labels.sort_unstable();
    Ok(labels)
}

#[cfg(test)]
mod tests {
    use super::*;

    const FRAGILITY: [f64; 5] = [0.3, -1.2, 2.5, 0.0, 0.9];

    fn assert_distribution(p: &[f64]) {
        assert!((p.iter().sum::<f64>() - 1.0).abs() < 1e-12, "{p:?}");
        assert!(p.iter().all(|&x| x > 0.0), "{p:?}");
    }

    #[test]
    fn every_strategy_gives_a_distribution() {
        for strategy in [
            ReweightStrategy::default(),
            ReweightStrategy::Softmax { temperature: 0.1 },
            ReweightStrategy::official_minmax(),
            ReweightStrategy::Uniform,
        ] {
            assert_distribution(&strategy.class_distribution(&FRAGILITY).unwrap());
        }
    }

    #[test]
    fn more_fragile_classes_get_more_weight() {
        for strategy in [
            ReweightStrategy::default(),
            ReweightStrategy::official_minmax(),
        ] {
            let p = strategy.class_distribution(&FRAGILITY).unwrap();
            let mut by_fragility: Vec<usize> = (0..FRAGILITY.len()).collect();
            by_fragility.sort_by(|&a, &b| FRAGILITY[a].total_cmp(&FRAGILITY[b]));
            for pair in by_fragility.windows(2) {
                assert!(p[pair[0]] < p[pair[1]], "{strategy:?}: {p:?}");
            }
        }
    }

    #[test]
    fn minmax_hand_checked() {
        // D = [0, 1, 2]: q = [0.05, 0.125, 0.2] (up to the 1e-8 guard), sum 0.375.
        let p = ReweightStrategy::official_minmax()
            .class_distribution(&[0.0, 1.0, 2.0])
            .unwrap();
        let expected = [0.05 / 0.375, 0.125 / 0.375, 0.2 / 0.375];
        for (a, b) in p.iter().zip(expected) {
            assert!((a - b).abs() < 1e-7, "{p:?}");
        }
        // Equal fragility: every class gets p_min, i.e. uniform.
        let flat = ReweightStrategy::official_minmax()
            .class_distribution(&[0.4; 4])
            .unwrap();
        assert!(flat.iter().all(|&x| (x - 0.25).abs() < 1e-12));
    }

    #[test]
    fn softmax_is_shift_invariant_and_tempered() {
        let s = ReweightStrategy::default();
        let p = s.class_distribution(&FRAGILITY).unwrap();
        let shifted: Vec<f64> = FRAGILITY.iter().map(|d| d + 100.0).collect();
        let q = s.class_distribution(&shifted).unwrap();
        for (a, b) in p.iter().zip(&q) {
            assert!((a - b).abs() < 1e-12);
        }
        let hot = ReweightStrategy::Softmax { temperature: 1e3 }.class_distribution(&FRAGILITY);
        assert!(hot.unwrap().iter().all(|&x| (x - 0.2).abs() < 1e-3));
    }

    #[test]
    fn rejects_bad_parameters() {
        assert!(
            ReweightStrategy::Softmax { temperature: 0.0 }
                .class_distribution(&FRAGILITY)
                .is_err()
        );
        assert!(
            ReweightStrategy::MinMax {
                p_min: 0.3,
                p_max: 0.2
            }
            .class_distribution(&FRAGILITY)
            .is_err()
        );
        assert!(ReweightStrategy::default().class_distribution(&[]).is_err());
        assert!(
            ReweightStrategy::default()
                .class_distribution(&[f64::NAN, 1.0])
                .is_err()
        );
    }

    #[test]
    fn fragility_is_mean_negative_margin_per_class() {
        let d = class_fragility(&[1.0, -3.0, 0.5, 2.0], &[0, 0, 2, 2], 4).unwrap();
        assert_eq!(d, vec![1.0, 0.0, -1.25, 0.0]);
        assert!(class_fragility(&[1.0], &[4], 4).is_err());
        assert!(class_fragility(&[1.0, 2.0], &[0], 4).is_err());
    }

    #[test]
    fn sampled_labels_are_sorted_seeded_and_follow_p() {
        let p = [0.7, 0.0, 0.3];
        let a = sample_labels(&p, 2000, 7).unwrap();
        assert_eq!(a, sample_labels(&p, 2000, 7).unwrap());
        assert_ne!(a, sample_labels(&p, 2000, 8).unwrap());
        assert!(a.windows(2).all(|w| w[0] <= w[1]));
        assert!(!a.contains(&1));
        let share = a.iter().filter(|&&y| y == 0).count() as f64 / 2000.0;
        assert!((share - 0.7).abs() < 0.05, "{share}");
    }
}
