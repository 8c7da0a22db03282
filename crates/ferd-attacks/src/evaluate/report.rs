//! The report of an evaluation: clean and robust accuracy overall and per class, for every attack
//! and for each component of a composite one. Reports serialize to JSON and read back checked.

use ferd_core::metrics::ClassWiseAccuracy;
use serde::{Deserialize, Serialize};

use crate::error::{AttackError, Result};

/// Robust accuracy after one stage of a composite attack.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StageReport {
    /// The component's name.
    pub name: String,
    /// Robust accuracy over all samples after this component.
    pub robust_accuracy: f64,
    /// Per class (`None` for an empty class).
    pub per_class: Vec<Option<f64>>,
    /// Wall-clock seconds spent in this component.
    pub seconds: f64,
}

/// The result of one attack. A point counts as robust when it is classified correctly both
/// clean and under the attack (the point-wise worst case, as in AutoAttack).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AttackReport {
    /// The attack's name.
    pub name: String,
    /// Its radius.
    pub eps: f32,
    /// Robust accuracy, class-wise.
    pub robust: ClassWiseAccuracy,
    /// For composite attacks, robust accuracy after each component.
    pub stages: Vec<StageReport>,
    /// Largest Linf perturbation found in its output (at most `eps`).
    pub max_perturbation: f32,
    /// Wall-clock seconds.
    pub seconds: f64,
}

/// Clean and robust accuracy of a model on a dataset.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvaluationReport {
    /// The evaluated model's architecture, when the caller names it (`ferd evaluate` and
    /// `ferd distill` do: `small-cnn-16`, `wrn-34-10`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub architecture: Option<String>,
    /// The dataset's name.
    pub dataset: String,
    /// Number of images evaluated.
    pub samples: usize,
    /// Class names (may be empty).
    pub class_names: Vec<String>,
    /// The evaluation's seed.
    pub seed: u64,
    /// Clean accuracy, class-wise.
    pub clean: ClassWiseAccuracy,
    /// One report per attack, in the order given.
    pub attacks: Vec<AttackReport>,
    /// What the checks found suspicious (probabilities instead of logits, randomness).
    pub warnings: Vec<String>,
}

impl EvaluationReport {
    /// Reads a report saved as JSON ([`to_json`](Self::to_json)). A file that cannot be read,
    /// does not parse, or whose class-wise figures do not fit together is an error naming it.
    pub fn read(path: impl AsRef<std::path::Path>) -> Result<Self> {
        let path = path.as_ref();
        let file_error = |reason: String| AttackError::File {
            path: path.to_path_buf(),
            reason,
        };
        let text = std::fs::read_to_string(path).map_err(|e| file_error(e.to_string()))?;
        let report: Self = serde_json::from_str(&text)
            .map_err(|e| file_error(format!("not an evaluation report: {e}")))?;
        report.check().map_err(file_error)?;
        Ok(report)
    }

    /// Whether every class-wise figure has one entry per class of the clean accuracy.
    fn check(&self) -> std::result::Result<(), String> {
        let classes = self.clean.per_class.len();
        if self.clean.class_counts.len() != classes {
            return Err(format!(
                "clean accuracy: {} class counts for {classes} classes",
                self.clean.class_counts.len()
            ));
        }
        if !self.class_names.is_empty() && self.class_names.len() != classes {
            return Err(format!(
                "{} class names for {classes} classes",
                self.class_names.len()
            ));
        }
        for attack in &self.attacks {
            let stages = attack.stages.iter().map(|s| (&s.name, s.per_class.len()));
            let robust = &attack.robust;
            let lengths = [robust.per_class.len(), robust.class_counts.len()];
            for (name, len) in lengths
                .into_iter()
                .map(|len| (&attack.name, len))
                .chain(stages)
            {
                if len != classes {
                    return Err(format!(
                        "{name}: {len} classes, the clean accuracy has {classes}"
                    ));
                }
            }
        }
        Ok(())
    }

    /// The report as pretty-printed JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a report serializes")
    }
}
