//! The one configuration of a FERD run: every knob of the method (`shared/spec/ferd-method.md`)
//! with the paper's defaults, serializable as `config.json`. Methods (FERD, the official code's
//! variant, the uniform DFRD baseline, the ablations) are switches of the same config
//! ([`crate::presets`]).

use ferd_core::losses::IklWeights;
use ferd_core::reweighting::ReweightStrategy;
use ferd_data::Augment;
use serde::{Deserialize, Serialize};

use std::path::Path;

use crate::error::{DistillError, Result, io_error};

/// Everything that defines a FERD distillation run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageShape {
    /// Channels (1 for Fashion-MNIST, 3 for CIFAR).
    pub channels: usize,
    /// Side (28 or 32; a multiple of 4 for the generator).
    pub side: usize,
}

/// The Linf threat model.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Threat {
    /// Radius (8/255 on CIFAR-10; 0.1 on Fashion-MNIST).
    pub eps: f32,
    /// Step size of PGD and UTAE (2/255 on CIFAR-10; 0.01 on Fashion-MNIST).
    pub alpha: f32,
}

/// The generator's size (method spec, section 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct GeneratorShape {
    /// Latent size `nz` (100).
    pub latent: usize,
    /// Base width `ngf` (64).
    pub ngf: usize,
}

/// Weights of the generator loss `L_G = w_bn L_bn + w_adv L_adv + w_oh L_oh + w_uni L_uni`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FairnessConfig {
    /// Adam steps on the noise scale per generator step (50).
    pub inner_steps: usize,
    /// Adam learning rate of the noise scale (0.1).
    pub lr: f64,
    /// Weight `beta` of the bottleneck's KL term (0.3).
    pub beta: f32,
}

/// Robustness-guided class reweighting (spec section 2, steps 5 and 6).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReweightingConfig {
    /// How fragility becomes the next round's class distribution: `softmax` (paper), `min_max`
    /// (official code) or `uniform`.
    pub strategy: ReweightStrategy,
    /// PGD steps of the fragility attack on the teacher (20).
    pub pgd_steps: usize,
}

/// The per-sample class weights of the student's IKL (spec section 4).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
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
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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

    /// Checks every setting; a config that makes no sense is an error before any work starts.
    pub fn check(&self) -> Result<()> {
        let bad = |m: String| Err(DistillError::Config(m));
        let counts = [
            ("epochs", self.epochs),
            ("batch_size", self.batch_size),
            ("synthesis.steps", self.synthesis.steps),
            ("reweighting.pgd_steps", self.reweighting.pgd_steps),
            ("student.steps", self.student.steps),
            ("student.utae.steps", self.student.utae.steps),
            ("evaluation.pgd_steps", self.evaluation.pgd_steps),
            ("evaluation.batch_size", self.evaluation.batch_size),
            ("generator.latent", self.generator.latent),
            ("generator.ngf", self.generator.ngf),
            ("image.channels", self.image.channels),
        ];
        for (name, value) in counts {
            if value == 0 {
                return bad(format!("{name} must be at least 1"));
            }
        }
        if self.fairness_aware() && self.fairness.inner_steps == 0 {
            return bad("fairness.inner_steps must be at least 1 when weights.uni > 0".into());
        }
        if self.warmup >= self.epochs {
            return bad(format!(
                "warmup {} leaves no epoch of student training out of {}",
                self.warmup, self.epochs
            ));
        }
        if self.num_classes < 2 {
            return bad(format!("{} classes: need at least 2", self.num_classes));
        }
        if self.image.side == 0 || !self.image.side.is_multiple_of(4) {
            return bad(format!(
                "image side {} must be a positive multiple of 4 (the generator upsamples twice)",
                self.image.side
            ));
        }
        let Threat { eps, alpha } = self.threat;
        if !(eps.is_finite() && eps > 0.0 && eps <= 1.0) {
            return bad(format!(
                "eps {eps} is outside (0, 1] (images are in [0, 1])"
            ));
        }
        if !(alpha.is_finite() && alpha > 0.0 && alpha <= eps) {
            return bad(format!("alpha {alpha} must be in (0, eps = {eps}]"));
        }
        let rates = [
            ("synthesis.lr_generator", self.synthesis.lr_generator),
            ("synthesis.lr_latent", self.synthesis.lr_latent),
            ("fairness.lr", self.fairness.lr),
            ("student.lr", self.student.lr),
        ];
        for (name, lr) in rates {
            if !(lr.is_finite() && lr > 0.0) {
                return bad(format!("{name} {lr} must be positive"));
            }
        }
        let w = self.synthesis.weights;
        let weights = [
            ("weights.bn", w.bn),
            ("weights.adv", w.adv),
            ("weights.oh", w.oh),
            ("weights.uni", w.uni),
            ("fairness.beta", self.fairness.beta),
            ("student.clean_weight", self.student.clean_weight),
            ("student.adv_weight", self.student.adv_weight),
            ("student.utae.gamma", self.student.utae.gamma),
            ("student.utae.start_std", self.student.utae.start_std),
        ];
        for (name, value) in weights {
            if !(value.is_finite() && value >= 0.0) {
                return bad(format!("{name} {value} must be finite and >= 0"));
            }
        }
        if self.synthesis.betas.iter().any(|b| !(0.0..1.0).contains(b)) {
            return bad(format!(
                "Adam betas {:?} must be in [0, 1)",
                self.synthesis.betas
            ));
        }
        if self.synthesis.adv_temperature.is_nan() || self.synthesis.adv_temperature <= 0.0 {
            return bad("synthesis.adv_temperature must be > 0".into());
        }
        if let StudentIkl::TeacherSoftmax { temperature } = self.student.ikl
            && (temperature.is_nan() || temperature <= 0.0)
        {
            return bad("student.ikl.temperature must be > 0".into());
        }
        crate::optim::Sgd {
            momentum: self.student.momentum,
            nesterov: false,
            weight_decay: self.student.weight_decay,
        }
        .check()
        .map_err(DistillError::Config)?;
        // The strategy's own parameters are checked on a flat fragility vector.
        self.reweighting
            .strategy
            .class_distribution(&vec![0.0; self.num_classes])?;
        Ok(())
    }
}

/// `config` with the field at the dotted path `key` (`student.lr`, `synthesis.weights.uni`,
/// `student.ikl`) set to `value`, for `--set KEY=VALUE` on the command line. `value` is read as
/// JSON (`0.05`, `true`, `[0.5, 0.999]`, `{"kind": "class_prior"}`), or else as a plain string.
/// An unknown key or a value of the wrong type is an error naming the key; the caller checks
/// the result as a whole.
///
/// # Examples
/// ```
/// use ferd_distill::config::with_field;
/// use ferd_distill::{Budget, FerdConfig, FerdMethod};
///
/// let config = FerdConfig::preset(Budget::FmnistQuick, FerdMethod::Ferd);
/// let changed = with_field(&config, "student.utae.gamma", "0.5").unwrap();
/// assert_eq!(changed.student.utae.gamma, 0.5);
/// assert!(with_field(&config, "student.gama", "0.5").is_err());
/// ```
pub fn with_field<T: Serialize + serde::de::DeserializeOwned>(
    config: &T,
    key: &str,
    value: &str,
) -> Result<T> {
    let bad = |m: String| DistillError::Config(m);
    let mut tree = serde_json::to_value(config).expect("a config serializes");
    let mut slot = &mut tree;
    for part in key.split('.') {
        let known = match &*slot {
            serde_json::Value::Object(map) => map.keys().cloned().collect::<Vec<_>>().join(", "),
            _ => String::new(),
        };
        slot = match slot {
            serde_json::Value::Object(map) => map.get_mut(part),
            _ => None,
        }
        .ok_or_else(|| {
            bad(if known.is_empty() {
                format!("`{key}`: `{part}` is not a field")
            } else {
                format!("`{key}`: no field `{part}` (known here: {known})")
            })
        })?;
    }
    *slot = serde_json::from_str(value)
        .unwrap_or_else(|_| serde_json::Value::String(value.to_string()));
    serde_json::from_value(tree).map_err(|e| bad(format!("`{key}` = `{value}`: {e}")))
}
