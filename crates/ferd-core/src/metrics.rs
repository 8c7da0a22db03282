//! Class-wise robustness metrics: per-class accuracy, average, worst-class, worst-k%, NSD and
//! the confusion matrix (method spec, section 6).
//!
//! Predictions are accumulated into a [`ConfusionMatrix`] batch by batch; a
//! [`ClassWiseAccuracy`] is derived from it. A class without samples has no accuracy (`None`):
//! it is reported as empty and left out of the worst-class, worst-k% and NSD figures, never
//! counted as 0.

use std::fmt::Write as _;

use burn::tensor::{Int, Tensor};
use serde::{Deserialize, Serialize};

use crate::error::{Result, param_error, shape_error};

/// Counts `[true class][predicted class]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfusionMatrix {
    counts: Vec<Vec<u64>>,
}

impl ConfusionMatrix {
    /// An empty matrix over `classes` classes.
    pub fn new(classes: usize) -> Self {
        Self {
            counts: vec![vec![0; classes]; classes],
        }
    }

    /// Number of classes.
    pub fn classes(&self) -> usize {
        self.counts.len()
    }

    /// The counts, rows are true classes, columns predictions.
    pub fn counts(&self) -> &[Vec<u64>] {
        &self.counts
    }

    /// Adds predictions for samples with the given true labels.
    pub fn add(&mut self, predictions: &[usize], labels: &[usize]) -> Result<()> {
        if predictions.len() != labels.len() {
            return Err(shape_error(
                "confusion_matrix",
                format!(
                    "{} predictions for {} labels",
                    predictions.len(),
                    labels.len()
                ),
            ));
        }
        let classes = self.classes();
        if let Some(bad) = predictions.iter().chain(labels).find(|&&c| c >= classes) {
            return Err(param_error(
                "confusion_matrix",
                format!("class {bad} >= {classes}"),
            ));
        }
        for (&p, &y) in predictions.iter().zip(labels) {
            self.counts[y][p] += 1;
        }
        Ok(())
    }

    /// Adds a batch of logits `[B, C]` (arg-max predictions) and labels `[B]` from the device.
    pub fn add_logits(&mut self, logits: Tensor<2>, labels: Tensor<1, Int>) -> Result<()> {
        let [batch, classes] = logits.dims();
        if classes != self.classes() {
            return Err(shape_error(
                "confusion_matrix",
                format!(
                    "logits over {classes} classes for a {}-class matrix",
                    self.classes()
                ),
            ));
        }
        let predictions = logits.argmax(1).reshape([batch]);
        self.add(&to_indices(predictions), &to_indices(labels))
    }

    /// Per-class totals (row sums).
    pub fn class_counts(&self) -> Vec<u64> {
        self.counts.iter().map(|row| row.iter().sum()).collect()
    }

    /// The class-wise accuracy report.
    pub fn accuracy(&self) -> ClassWiseAccuracy {
        ClassWiseAccuracy::from_confusion(self.clone())
    }
}

/// Reads an `Int` tensor back to the host as indices.
pub fn to_indices(tensor: Tensor<1, Int>) -> Vec<usize> {
    tensor
        .try_to_vec_as::<i64>()
        .expect("an Int tensor reads back as i64")
        .into_iter()
        .map(|v| v as usize)
        .collect()
}

/// Class-wise accuracy figures, all in `[0, 1]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassWiseAccuracy {
    /// Accuracy over all samples.
    pub overall: f64,
    /// Accuracy of each class; `None` for a class without samples.
    pub per_class: Vec<Option<f64>>,
    /// Samples per class.
    pub class_counts: Vec<u64>,
    /// Mean of the per-class accuracies over non-empty classes.
    pub mean_class: Option<f64>,
    /// The least accurate non-empty class and its accuracy.
    pub worst_class: Option<(usize, f64)>,
    /// Mean accuracy of the worst 10% of the non-empty classes (at least one class).
    pub worst_10_percent: Option<f64>,
    /// Normalized standard deviation: sample std / mean of the per-class accuracies.
    /// `None` with fewer than two non-empty classes or a zero mean.
    pub nsd: Option<f64>,
    /// The confusion matrix the figures come from.
    pub confusion: ConfusionMatrix,
}

impl ClassWiseAccuracy {
    /// Computes every figure from predictions and labels over `classes` classes.
    pub fn from_predictions(
        predictions: &[usize],
        labels: &[usize],
        classes: usize,
    ) -> Result<Self> {
        let mut confusion = ConfusionMatrix::new(classes);
        confusion.add(predictions, labels)?;
        Ok(Self::from_confusion(confusion))
    }

    fn from_confusion(confusion: ConfusionMatrix) -> Self {
        let class_counts = confusion.class_counts();
        let correct: Vec<u64> = (0..confusion.classes())
            .map(|c| confusion.counts[c][c])
            .collect();
        let total: u64 = class_counts.iter().sum();
        let overall = if total == 0 {
            0.0
        } else {
            correct.iter().sum::<u64>() as f64 / total as f64
        };
        let per_class: Vec<Option<f64>> = correct
            .iter()
            .zip(&class_counts)
            .map(|(&c, &n)| (n > 0).then(|| c as f64 / n as f64))
            .collect();
        let present: Vec<f64> = per_class.iter().flatten().copied().collect();
        Self {
            overall,
            mean_class: mean(&present),
            worst_class: per_class
                .iter()
                .enumerate()
                .filter_map(|(c, a)| a.map(|a| (c, a)))
                .min_by(|a, b| a.1.total_cmp(&b.1)),
            worst_10_percent: worst_fraction(&present, 0.1),
            nsd: normalized_std(&present),
            per_class,
            class_counts,
            confusion,
        }
    }

    /// A plain-text table: one row per class with its name, count and accuracy, then the
    /// summary figures. `class_names` may be empty (classes are then numbered).
    pub fn table(&self, class_names: &[String]) -> String {
        let name = |c: usize| {
            class_names
                .get(c)
                .cloned()
                .unwrap_or_else(|| format!("class {c}"))
        };
        let width = (0..self.per_class.len())
            .map(|c| name(c).len())
            .max()
            .unwrap_or(5)
            .max(7);
        let mut out = format!("{:<width$}  {:>7}  {:>8}\n", "class", "samples", "accuracy");
        for (c, accuracy) in self.per_class.iter().enumerate() {
            let shown = accuracy.map_or("empty".to_string(), |a| format!("{:.2}%", 100.0 * a));
            let _ = writeln!(
                out,
                "{:<width$}  {:>7}  {:>8}",
                name(c),
                self.class_counts[c],
                shown
            );
        }
        let pct = |v: Option<f64>| v.map_or("n/a".to_string(), |v| format!("{:.2}%", 100.0 * v));
        let _ = writeln!(
            out,
            "overall {:.2}%  worst-class {}  worst-10% {}  NSD {}",
            100.0 * self.overall,
            self.worst_class.map_or("n/a".to_string(), |(c, a)| format!(
                "{:.2}% ({})",
                100.0 * a,
                name(c)
            )),
            pct(self.worst_10_percent),
            self.nsd.map_or("n/a".to_string(), |v| format!("{v:.4}")),
        );
        out
    }
}

fn mean(values: &[f64]) -> Option<f64> {
    (!values.is_empty()).then(|| values.iter().sum::<f64>() / values.len() as f64)
}

/// Mean of the lowest `ceil(fraction * n)` values (at least one).
pub fn worst_fraction(values: &[f64], fraction: f64) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let k = ((fraction * values.len() as f64 - 1e-9).ceil() as usize).clamp(1, values.len());
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    mean(&sorted[..k])
}

/// Sample standard deviation (n - 1) over the mean, as `torch.std(x) / x.mean()`.
pub fn normalized_std(values: &[f64]) -> Option<f64> {
    let n = values.len();
    let m = mean(values)?;
    if n < 2 || m == 0.0 {
        return None;
    }
    let var = values.iter().map(|v| (v - m).powi(2)).sum::<f64>() / (n - 1) as f64;
    Some(var.sqrt() / m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hand_checked_three_classes() {
        // class 0: 2 of 2 right; class 1: 1 of 4; class 2: 0 of 2.
        let labels = [0, 0, 1, 1, 1, 1, 2, 2];
        let preds = [0, 0, 1, 0, 2, 2, 1, 0];
        let r = ClassWiseAccuracy::from_predictions(&preds, &labels, 3).unwrap();
        assert_eq!(r.overall, 3.0 / 8.0);
        assert_eq!(r.per_class, vec![Some(1.0), Some(0.25), Some(0.0)]);
        assert_eq!(r.worst_class, Some((2, 0.0)));
        assert_eq!(r.worst_10_percent, Some(0.0));
        assert!((r.mean_class.unwrap() - 1.25 / 3.0).abs() < 1e-12);
        // mean 5/12; deviations 7/12, -2/12, -5/12; var = (49 + 4 + 25) / 144 / 2 = 78/288.
        let expected_nsd = (78.0f64 / 288.0).sqrt() / (5.0 / 12.0);
        assert!((r.nsd.unwrap() - expected_nsd).abs() < 1e-12);
        assert_eq!(r.confusion.counts()[1], vec![1, 1, 2]);
    }

    #[test]
    fn empty_class_is_reported_as_empty_not_zero() {
        let r = ClassWiseAccuracy::from_predictions(&[0, 1, 1], &[0, 1, 0], 3).unwrap();
        assert_eq!(r.per_class, vec![Some(0.5), Some(1.0), None]);
        assert_eq!(r.worst_class, Some((0, 0.5)));
        assert!(r.table(&[]).contains("empty"));
    }

    #[test]
    fn worst_fraction_rounds_up_to_whole_classes() {
        let values: Vec<f64> = (0..100).map(|i| i as f64).collect();
        assert_eq!(worst_fraction(&values, 0.1), Some(4.5)); // mean of 0..10
        assert_eq!(worst_fraction(&values[..10], 0.1), Some(0.0)); // one class of ten
        assert_eq!(worst_fraction(&values[..15], 0.1), Some(0.5)); // two of fifteen
    }

    #[test]
    fn rejects_out_of_range_and_mismatched_input() {
        assert!(ClassWiseAccuracy::from_predictions(&[3], &[0], 3).is_err());
        assert!(ClassWiseAccuracy::from_predictions(&[0], &[0, 1], 3).is_err());
    }

    #[test]
    fn nsd_undefined_cases() {
        assert_eq!(normalized_std(&[0.5]), None);
        assert_eq!(normalized_std(&[0.0, 0.0]), None);
        assert_eq!(normalized_std(&[0.5, 0.5]), Some(0.0));
    }
}
