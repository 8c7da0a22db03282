//! The one configuration of a FERD run: every knob of the method (`shared/spec/ferd-method.md`)
//! with the paper's defaults, serializable as `config.json`. Methods (FERD, the official code's
//! variant, the uniform DFRD baseline, the ablations) are switches of the same config
//! ([`crate::presets`]).

use ferd_core::losses::IklWeights;
use ferd_core::reweighting::ReweightStrategy;
use ferd_data::Augment;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use std::path::Path;

use crate::error::{DistillError, Result, io_error};

mod check;
mod fields;

pub use fields::{FieldDoc, field_docs, with_field};

/// Everything that defines a FERD distillation run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct FerdConfig {
    /// Epochs; one synthesis round per epoch (paper: 220 on CIFAR-10).
    pub epochs: usize,
    /// Epochs of synthesis only before the student starts training (paper: 20).
    pub warmup: usize,
    /// Images synthesized per round, and the student's batch size (paper: 256).
    pub batch_size: usize,
    /// Images: channels and side (the generator's output; the teacher's and student's input).
    pub image: ImageShape,
    /// Number of classes (the teacher's).
    pub num_classes: usize,
    /// The threat model of fragility, UTAE and evaluation.
    pub threat: Threat,
    /// Crop-with-padding and flips, applied to synthesized images (in the synthesis loss and
    /// in student training).
    pub augment: Augment,
    /// The generator.
    pub generator: GeneratorShape,
    /// The synthesis round (method spec, section 2).
    pub synthesis: SynthesisConfig,
    /// Fairness-Aware Examples: the non-robust feature extraction behind `L_uni`.
    pub fairness: FairnessConfig,
    /// Robustness-guided class reweighting.
    pub reweighting: ReweightingConfig,
    /// Student training (method spec, section 3).
    pub student: StudentConfig,
    /// The per-epoch evaluation on a real test set (never used to select a model).
    pub evaluation: EvaluationConfig,
    /// The seed of every random draw.
    pub seed: u64,
}

/// Image shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ImageShape {
    /// Channels (1 for Fashion-MNIST, 3 for CIFAR).
    pub channels: usize,
    /// Side (28 or 32; a multiple of 4 for the generator).
    pub side: usize,
}

/// The Linf threat model.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Threat {
    /// Radius (8/255 on CIFAR-10; 0.1 on Fashion-MNIST).
    pub eps: f32,
    /// Step size of PGD and UTAE (2/255 on CIFAR-10; 0.01 on Fashion-MNIST).
    pub alpha: f32,
}

/// The generator's size (method spec, section 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct GeneratorShape {
    /// Latent size `nz` (100).
    pub latent: usize,
    /// Base width `ngf` (64).
    pub ngf: usize,
}

/// Weights of the generator loss `L_G = w_bn L_bn + w_adv L_adv + w_oh L_oh + w_uni L_uni`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct LossWeights {
    /// BatchNorm-statistics matching (DeepInversion), 5.
    pub bn: f32,
    /// Student-teacher disagreement `-IKL(s, t)`, 1.
    pub adv: f32,
    /// Cross-entropy of the teacher on the sampled labels, 1.
    pub oh: f32,
    /// Uniformity of the teacher's prediction from non-robust features, 5. Zero switches
    /// Fairness-Aware Examples off (and skips the feature split).
    pub uni: f32,
}

/// One synthesis round (method spec, section 2).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SynthesisConfig {
    /// Generator steps per round, `N_G` (200).
    pub steps: usize,
    /// Adam learning rate of the generator (2e-3).
    pub lr_generator: f64,
    /// Adam learning rate of the latent codes (0.015).
    pub lr_latent: f64,
    /// Adam betas of both (0.5, 0.999).
    pub betas: [f32; 2],
    /// Loss weights (5, 1, 1, 5).
    pub weights: LossWeights,
    /// Temperature of the generator's IKL weights `w_b = softmax(t_b / T)` (100, `losses.py`).
    pub adv_temperature: f32,
}

/// The information-bottleneck split of the teacher's features (spec section 2, after Kim et
/// al. 2021; official `models/IFP.py`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct FairnessConfig {
    /// Adam steps on the noise scale per generator step (50).
    pub inner_steps: usize,
    /// Adam learning rate of the noise scale (0.1).
    pub lr: f64,
    /// Weight `beta` of the bottleneck's KL term (0.3).
    pub beta: f32,
}

/// Robustness-guided class reweighting (spec section 2, steps 5 and 6).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ReweightingConfig {
    /// How fragility becomes the next round's class distribution: `softmax` (paper), `min_max`
    /// (official code) or `uniform`.
    pub strategy: ReweightStrategy,
    /// PGD steps of the fragility attack on the teacher (20).
    pub pgd_steps: usize,
}

/// The per-sample class weights of the student's IKL (spec section 4).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum StudentIkl {
    /// `w_b = softmax(t_b / temperature)`: the paper's IKL, with the generator's weighting.
    TeacherSoftmax {
        /// The softening temperature (100).
        temperature: f32,
    },
    /// `w_b = e_{y_b}` (official `test.py`): the pairwise term vanishes and the loss is
    /// soft-label cross-entropy at temperature 1.
    ClassPrior,
}

impl StudentIkl {
    /// The weights for a batch with `labels`.
    pub fn weights(
        &self,
        labels: burn::tensor::Tensor<1, burn::tensor::Int>,
        classes: usize,
    ) -> IklWeights {
        match *self {
            Self::TeacherSoftmax { temperature } => IklWeights::TeacherSoftmax { temperature },
            Self::ClassPrior => IklWeights::class_prior(labels, classes),
        }
    }
}

/// Uniform-Target Adversarial Examples (spec section 3).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct UtaeConfig {
    /// Signed-gradient steps `K` (10).
    pub steps: usize,
    /// Weight `gamma` of the uniformity term (paper sweep: 0.1 to 0.5 best; ferd 0.3; the
    /// released code runs 0).
    pub gamma: f32,
    /// Standard deviation of the Gaussian start around the clean image (0.001).
    pub start_std: f32,
}

/// Student training (spec section 3).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct StudentConfig {
    /// Student steps per epoch after warm-up, `N_S` (400).
    pub steps: usize,
    /// SGD learning rate at epoch 0 (0.1), cosine-annealed per epoch over all epochs.
    pub lr: f64,
    /// SGD momentum, no dampening (0.9).
    pub momentum: f64,
    /// L2 weight decay (5e-4).
    pub weight_decay: f64,
    /// Weight of the clean term (5/6).
    pub clean_weight: f32,
    /// Weight of the adversarial term (1/6).
    pub adv_weight: f32,
    /// The IKL weights.
    pub ikl: StudentIkl,
    /// The adversarial examples.
    pub utae: UtaeConfig,
}

/// The per-epoch evaluation of the student on a real test set: clean and PGD accuracy per
/// class. It is reported and never feeds back into training (data-free: the kept model is the
/// last one).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct EvaluationConfig {
    /// Evaluate after every this many epochs (and after the last); 0 = only after the last.
    pub every: usize,
    /// Images per class of the test set used per epoch (balanced subset); `None` = all.
    pub per_class: Option<usize>,
    /// PGD steps (20), step `alpha`, random start.
    pub pgd_steps: usize,
    /// Images per evaluation batch.
    pub batch_size: usize,
}

impl FerdConfig {
    /// Reads a config saved as JSON (a run's `config.json`, or a file of one's own) and checks
    /// it. A file that does not parse, or whose settings make no sense, is an error naming the
    /// file.
    ///
    /// # Examples
    /// ```
    /// use ferd_distill::{Budget, FerdConfig, FerdMethod};
    ///
    /// let path = std::env::temp_dir().join("ferd-doc-config.json");
    /// let config = FerdConfig::preset(Budget::Fmnist, FerdMethod::Ferd);
    /// config.write(&path).unwrap();
    /// assert_eq!(FerdConfig::read(&path).unwrap(), config);
    /// ```
    pub fn read(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let file_error = |reason: String| DistillError::File {
            path: path.to_path_buf(),
            reason,
        };
        let text = std::fs::read_to_string(path).map_err(io_error(path))?;
        let config: Self = serde_json::from_str(&text)
            .map_err(|e| file_error(format!("not a FERD configuration: {e}")))?;
        config.check().map_err(|e| file_error(e.to_string()))?;
        Ok(config)
    }

    /// Writes the config as pretty-printed JSON.
    pub fn write(&self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        let json = serde_json::to_string_pretty(self).expect("a config serializes");
        std::fs::write(path, json + "\n").map_err(io_error(path))
    }

    /// Whether Fairness-Aware Examples are on (`w_uni > 0`).
    pub fn fairness_aware(&self) -> bool {
        self.synthesis.weights.uni > 0.0
    }
}
