//! Diagnostics of FERD's components from a run's `metrics.jsonl`, for the robust-fairness
//! study (`docs/results.md`): does reweighting move the synthesized classes towards the classes
//! the teacher is fragile on, how large is the uniformity loss on non-robust features, and do
//! Uniform-Target Adversarial Examples spread the classes the attack drives the student to;
//! and, for the second protocol, the shape of each round: how much of the teacher's features
//! the information bottleneck calls robust, how many classes the labels still cover, and how
//! often the teacher agrees with the labels it was asked to synthesize.

use ferd_distill::DistillEpoch;

/// How many of the teacher's weakest classes the reweighting diagnostic looks at.
pub const WEAKEST: usize = 3;

/// A class *holds* a round's labels when it has at least this share of them (the second
/// protocol's collapse diagnostic; a uniform round over 10 classes gives each 10%).
pub const HELD_SHARE: f64 = 0.02;

/// The diagnostics of one run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RunDiagnostics {
    /// Mean share of the synthesized labels (rounds after the first, which is uniform) that
    /// went to the [`WEAKEST`] classes with the teacher's lowest robust accuracy (uniform:
    /// `WEAKEST / C`).
    pub weakest_mass: f64,
    /// Spearman's rank correlation between the mean class distribution and the teacher's
    /// per-class robust error (positive: more samples for the classes the teacher is fragile
    /// on). `None` when either is constant.
    pub rank_correlation: Option<f64>,
    /// Mean `L_uni` over rounds; `None` when Fairness-Aware Examples are off.
    pub uniformity_loss: Option<f64>,
    /// Mean over epochs of the entropy of the classes the student gave its UTAE examples,
    /// divided by `ln C` (1: evenly spread over the classes, 0: all in one class).
    pub utae_spread: Option<f64>,
    /// Mean over rounds of the share of the teacher's channels the information bottleneck
    /// kept as robust (`robust_fraction`); `None` when Fairness-Aware Examples are off.
    pub robust_share: Option<f64>,
    /// Mean over rounds of the number of classes holding at least [`HELD_SHARE`] of the labels.
    pub classes_held: f64,
    /// The fewest classes holding [`HELD_SHARE`] of the labels in any round.
    pub fewest_held: usize,
    /// Mean over rounds of the teacher's agreement with the synthesized labels.
    pub teacher_agreement: f64,
}

/// The number of classes with at least [`HELD_SHARE`] of `label_counts`.
pub fn classes_held(label_counts: &[usize]) -> usize {
    let total: usize = label_counts.iter().sum();
    label_counts
        .iter()
        .filter(|&&c| total > 0 && c as f64 >= HELD_SHARE * total as f64)
        .count()
}

/// The diagnostics of a run's `records` against the teacher's per-class robust accuracy.
pub fn diagnose(records: &[DistillEpoch], teacher_robust: &[f64]) -> Option<RunDiagnostics> {
    let classes = teacher_robust.len();
    let reweighted: Vec<&DistillEpoch> = records.iter().filter(|r| r.epoch > 0).collect();
    if reweighted.is_empty() || classes == 0 {
        return None;
    }
    let mut mass = vec![0.0; classes];
    for r in &reweighted {
        for (m, p) in mass.iter_mut().zip(&r.class_distribution) {
            *m += p / reweighted.len() as f64;
        }
    }
    let error: Vec<f64> = teacher_robust.iter().map(|a| 1.0 - a).collect();
    let mut by_error: Vec<usize> = (0..classes).collect();
    by_error.sort_by(|&a, &b| error[b].total_cmp(&error[a]));
    let weakest_mass = by_error.iter().take(WEAKEST).map(|&c| mass[c]).sum();
    let uni: Vec<f64> = records.iter().map(|r| r.synthesis_mean.uni).collect();
    let uniformity_loss = uni
        .iter()
        .any(|&u| u != 0.0)
        .then(|| uni.iter().sum::<f64>() / uni.len() as f64);
    let spreads: Vec<f64> = records
        .iter()
        .filter_map(|r| normalized_entropy(&r.student.as_ref()?.utae_predictions))
        .collect();
    let rounds = records.len() as f64;
    let mean = |value: fn(&DistillEpoch) -> f64| records.iter().map(value).sum::<f64>() / rounds;
    let held: Vec<usize> = records
        .iter()
        .map(|r| classes_held(&r.label_counts))
        .collect();
    Some(RunDiagnostics {
        weakest_mass,
        rank_correlation: spearman(&mass, &error),
        uniformity_loss,
        utae_spread: (!spreads.is_empty())
            .then(|| spreads.iter().sum::<f64>() / spreads.len() as f64),
        robust_share: uniformity_loss.map(|_| mean(|r| r.synthesis_mean.robust_fraction)),
        classes_held: held.iter().sum::<usize>() as f64 / rounds,
        fewest_held: held.iter().copied().min().unwrap_or(0),
        teacher_agreement: mean(|r| r.teacher_agreement),
    })
}

/// The entropy of `counts` (as a distribution) over `ln(len)`; `None` for no counts.
pub fn normalized_entropy(counts: &[u64]) -> Option<f64> {
    let total: u64 = counts.iter().sum();
    if total == 0 || counts.len() < 2 {
        return None;
    }
    let h: f64 = counts
        .iter()
        .filter(|&&c| c > 0)
        .map(|&c| {
            let p = c as f64 / total as f64;
            -p * p.ln()
        })
        .sum();
    Some(h / (counts.len() as f64).ln())
}

/// Spearman's rank correlation (ties get their mean rank); `None` when a side is constant.
pub fn spearman(a: &[f64], b: &[f64]) -> Option<f64> {
    let (ra, rb) = (ranks(a), ranks(b));
    let n = ra.len() as f64;
    let (ma, mb) = (ra.iter().sum::<f64>() / n, rb.iter().sum::<f64>() / n);
    let cov: f64 = ra.iter().zip(&rb).map(|(x, y)| (x - ma) * (y - mb)).sum();
    let va: f64 = ra.iter().map(|x| (x - ma).powi(2)).sum();
    let vb: f64 = rb.iter().map(|y| (y - mb).powi(2)).sum();
    (va > 0.0 && vb > 0.0).then(|| cov / (va * vb).sqrt())
}

/// 1-based ranks, ties sharing the mean of their ranks.
fn ranks(v: &[f64]) -> Vec<f64> {
    let mut order: Vec<usize> = (0..v.len()).collect();
    order.sort_by(|&i, &j| v[i].total_cmp(&v[j]));
    let mut ranks = vec![0.0; v.len()];
    let mut start = 0;
    while start < order.len() {
        let mut end = start + 1;
        while end < order.len() && v[order[end]] == v[order[start]] {
            end += 1;
        }
        let mean = (start + end + 1) as f64 / 2.0; // mean of the ranks start+1 ..= end
        for &i in &order[start..end] {
            ranks[i] = mean;
        }
        start = end;
    }
    ranks
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spearman_by_hand() {
        assert_eq!(spearman(&[1.0, 2.0, 3.0], &[30.0, 20.0, 10.0]), Some(-1.0));
        // Ranks [1.5, 1.5, 3] against [1, 2, 3]: covariance 1.5, variances 1.5 and 2.
        let r = spearman(&[5.0, 5.0, 7.0], &[1.0, 2.0, 3.0]).unwrap();
        assert!((r - 1.5 / 3.0f64.sqrt()).abs() < 1e-12, "{r}");
        assert_eq!(spearman(&[1.0, 1.0], &[1.0, 2.0]), None);
    }

    #[test]
    fn entropy_by_hand() {
        // Two equal classes out of four: ln 2 / ln 4.
        assert!((normalized_entropy(&[3, 3, 0, 0]).unwrap() - 0.5).abs() < 1e-12);
        assert_eq!(normalized_entropy(&[5, 0, 0]), Some(0.0));
        assert_eq!(normalized_entropy(&[0, 0]), None);
    }

    #[test]
    fn weakest_mass_and_correlation_from_records() {
        let record = |epoch: usize, p: [f64; 4], uni: f64, utae: Vec<u64>, counts: [usize; 4]| {
            serde_json::from_value::<DistillEpoch>(serde_json::json!({
                "epoch": epoch, "lr": 0.1, "class_distribution": p, "label_counts": counts,
                "synthesis_mean": {"bn": 0.0, "adv": 0.0, "oh": 0.0, "uni": uni, "total": 0.0,
                    "robust_fraction": uni / 10.0},
                "synthesis_best": {"bn": 0.0, "adv": 0.0, "oh": 0.0, "uni": 0.0, "total": 0.0,
                    "robust_fraction": 0.0},
                "teacher_agreement": 0.25 * epoch as f64, "fragility": [0.0, 0.0, 0.0, 0.0], "bank_size": 8,
                "student": {"loss": 1.0, "clean": 1.0, "adv": 1.0, "utae_predictions": utae},
                "evaluation": null,
                "seconds": {"synthesis": 1.0, "fragility": 1.0, "student": 1.0, "evaluation": 0.0}
            }))
            .unwrap()
        };
        // Robust errors 0.1, 0.5, 0.3, 0.8: the teacher is weakest on classes 3, 1, 2.
        let teacher = [0.9, 0.5, 0.7, 0.2];
        let records = [
            record(0, [0.25; 4], 2.0, vec![4, 0, 0, 0], [25, 25, 25, 25]),
            // 2 of 100 labels is exactly the held share; 1 of 100 is not.
            record(
                1,
                [0.1, 0.2, 0.3, 0.4],
                4.0,
                vec![1, 1, 1, 1],
                [2, 1, 47, 50],
            ),
            record(
                2,
                [0.1, 0.4, 0.1, 0.4],
                0.0,
                vec![2, 2, 0, 0],
                [0, 0, 0, 100],
            ),
        ];
        let d = diagnose(&records, &teacher).unwrap();
        // Rounds 1 and 2: mean distribution [0.1, 0.3, 0.2, 0.4]; weakest classes 3, 1, 2.
        assert!((d.weakest_mass - 0.9).abs() < 1e-12);
        // Mass ranks [1, 3, 2, 4] against error ranks [1, 3, 2, 4]: perfectly aligned.
        assert!((d.rank_correlation.unwrap() - 1.0).abs() < 1e-12);
        assert!((d.uniformity_loss.unwrap() - 2.0).abs() < 1e-12);
        // UTAE spreads: 0, 1 and 0.5: mean 0.5.
        assert!((d.utae_spread.unwrap() - 0.5).abs() < 1e-12);
        // Robust fractions 0.2, 0.4, 0; classes held 4, 3, 1; agreement 0, 0.25, 0.5.
        assert!((d.robust_share.unwrap() - 0.2).abs() < 1e-12);
        assert!((d.classes_held - 8.0 / 3.0).abs() < 1e-12);
        assert_eq!(d.fewest_held, 1);
        assert!((d.teacher_agreement - 0.25).abs() < 1e-12);
    }
}
