//! Robustness-guided class reweighting (FERD, method spec section 2, steps 5 and 6).
//!
//! After each synthesis round the teacher is attacked on the round's samples; a class whose
//! samples end with a small (or negative) margin is fragile. The next round draws its labels
//! from a distribution that favours fragile classes, so the sample bank carries more of them.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::error::{Result, param_error, shape_error};
use crate::random::{Noise, rng};

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
/// step 1). Deterministic for a given `seed`: [`sample_labels_from`] on a seeded [`rng`].
pub fn sample_labels(distribution: &[f64], count: usize, seed: u64) -> Result<Vec<usize>> {
    sample_labels_from(distribution, count, &mut rng(seed))
}

/// [`sample_labels`] from any source of draws: one uniform `u` per label, mapped by the inverse
/// CDF (the first class `c` with `u < p_0 + ... + p_c`), then sorted. A recorded tape of
/// uniforms replays another implementation's labels: the midpoint of a class's CDF interval
/// maps back to that class.
pub fn sample_labels_from(
    distribution: &[f64],
    count: usize,
    noise: &mut dyn Noise,
) -> Result<Vec<usize>> {
    let bad = |why: String| param_error("sample_labels", format!("bad distribution: {why}"));
    if distribution.is_empty() {
        return Err(bad("no class".into()));
    }
    if let Some(p) = distribution.iter().find(|p| !(p.is_finite() && **p >= 0.0)) {
        return Err(bad(format!("weight {p}")));
    }
    let total: f64 = distribution.iter().sum();
    if total <= 0.0 {
        return Err(bad("all weights are zero".into()));
    }
    let cdf: Vec<f64> = distribution
        .iter()
        .scan(0.0, |acc, p| {
            *acc += p / total;
            Some(*acc)
        })
        .collect();
    let last = distribution
        .iter()
        .rposition(|&p| p > 0.0)
        .expect("a positive weight");
    let mut labels: Vec<usize> = noise
        .unit_uniform(count)
        .into_iter()
        .map(|u| {
            let u = f64::from(u);
            cdf.iter()
                .position(|&c| u < c)
                .map_or(last, |c| c.min(last))
        })
        .collect();
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

    /// A class with no sample in a round has fragility 0, as in the official code; what it gets
    /// next depends on the rule (docs/method.md). Margins -2 and -1 for classes 0 and 1 (D = 2,
    /// 1), class 2 empty (D = 0).
    #[test]
    fn an_empty_class_gets_zero_fragility() {
        let d = class_fragility(&[-2.0, -1.0], &[0, 1], 3).unwrap();
        assert_eq!(d, vec![2.0, 1.0, 0.0]);
        // Softmax: exp(0) / (e^2 + e + 1), the least likely class: it can stay empty.
        let p = ReweightStrategy::default().class_distribution(&d).unwrap();
        let z = 2f64.exp() + 1f64.exp() + 1.0;
        assert!((p[2] - 1.0 / z).abs() < 1e-12, "{p:?}");
        // Min-max: the most robust class's floor p_min = 0.05 before normalization, with
        // class 1 at 0.125 and class 0 at (about) 0.2.
        let p = ReweightStrategy::official_minmax()
            .class_distribution(&d)
            .unwrap();
        let q = [
            0.05 + 0.15 * 2.0 / (2.0 + 1e-8),
            0.05 + 0.15 / (2.0 + 1e-8),
            0.05,
        ];
        let total: f64 = q.iter().sum();
        for (got, want) in p.iter().zip(q) {
            assert!((got - want / total).abs() < 1e-12, "{p:?}");
        }
    }

    #[test]
    fn labels_follow_the_inverse_cdf_of_the_draws() {
        use crate::random::Replay;
        // p = (0.2, 0, 0.5, 0.3): CDF 0.2, 0.2, 0.7, 1.0; a zero-weight class is never drawn.
        // The draws are f32: 0.2 is just above 0.2 (class 2), none sits on a boundary.
        let p = [0.2, 0.0, 0.5, 0.3];
        let mut tape = Replay::new(vec![0.95, 0.1, 0.2, 0.69, 0.71, 0.0]);
        let labels = sample_labels_from(&p, 6, &mut tape).unwrap();
        assert_eq!(labels, vec![0, 0, 2, 2, 3, 3]);
        assert!(sample_labels_from(&[0.0, 0.0], 1, &mut rng(1)).is_err());
        assert!(sample_labels_from(&[f64::NAN, 1.0], 1, &mut rng(1)).is_err());
    }
}
