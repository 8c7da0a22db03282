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

/// One field of a configuration as the command line shows it (`--list-config`): its dotted
/// `config.json` path (the key of `--set`), its value, and its doc comment.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldDoc {
    /// The dotted path, e.g. `student.utae.gamma`.
    pub key: String,
    /// The current value.
    pub value: serde_json::Value,
    /// The field's doc comment.
    pub doc: String,
    /// For an enum, its alternatives as `name: doc` (empty otherwise).
    pub alternatives: Vec<String>,
}

/// Every field of `config`, by dotted key in alphabetical order, with the doc comment the
/// field has in the source (read from the type's JSON Schema): one list serves as `--help` for
/// `--set`. A field holding an enum (such as `reweighting.strategy`) is listed whole, with its
/// alternatives, and then by its own fields.
///
/// # Examples
/// ```
/// use ferd_distill::config::field_docs;
/// use ferd_distill::{Budget, FerdConfig, FerdMethod};
///
/// let config = FerdConfig::preset(Budget::FmnistQuick, FerdMethod::Ferd);
/// let fields = field_docs(&config);
/// let gamma = fields.iter().find(|f| f.key == "student.utae.gamma").unwrap();
/// assert!(gamma.doc.contains("gamma"));
/// ```
pub fn field_docs<T: Serialize + schemars::JsonSchema>(config: &T) -> Vec<FieldDoc> {
    let schema = schemars::schema_for!(T);
    let root = schema.as_value();
    let schema = Schema {
        defs: root.get("$defs"),
    };
    let value = serde_json::to_value(config).expect("a config serializes");
    let mut fields = Vec::new();
    schema.walk(&value, root, "", &mut fields);
    fields
}

/// The `$defs` of a JSON Schema that the walk resolves references against.
struct Schema<'a> {
    defs: Option<&'a serde_json::Value>,
}

impl<'a> Schema<'a> {
    /// `node`, or the definition it refers to.
    fn resolve(&self, node: &'a serde_json::Value) -> &'a serde_json::Value {
        node.get("$ref")
            .and_then(serde_json::Value::as_str)
            .and_then(|r| self.defs?.get(r.trim_start_matches("#/$defs/")))
            .unwrap_or(node)
    }

    /// The alternatives of an enum, as `name: doc` lines (empty for anything else).
    fn alternatives(&self, node: &'a serde_json::Value) -> Vec<String> {
        let Some(variants) = self.resolve(node).get("oneOf").and_then(|v| v.as_array()) else {
            return Vec::new();
        };
        variants
            .iter()
            .map(|v| {
                let v = self.resolve(v);
                let props = v.get("properties").and_then(|p| p.as_object());
                let name = v
                    .get("const")
                    .cloned()
                    .or_else(|| props?.values().find_map(|p| p.get("const").cloned()))
                    .map(|c| c.as_str().map_or(c.to_string(), str::to_string))
                    .or_else(|| props.filter(|p| p.len() == 1)?.keys().next().cloned())
                    .unwrap_or_default();
                format!("{name}: {}", description(v))
            })
            .collect()
    }

    /// The fields the schema `node` gives `value`: a struct's, or those of the enum variant
    /// that `value` is.
    fn properties(
        &self,
        value: &serde_json::Value,
        node: &'a serde_json::Value,
    ) -> Option<&'a serde_json::Map<String, serde_json::Value>> {
        let node = self.resolve(node);
        if let Some(props) = node.get("properties").and_then(|p| p.as_object()) {
            return Some(props);
        }
        let object = value.as_object()?;
        node.get("oneOf")?.as_array()?.iter().find_map(|v| {
            let props = self.resolve(v).get("properties")?.as_object()?;
            let fits = object.iter().all(|(k, x)| {
                props
                    .get(k)
                    .is_some_and(|p| p.get("const").is_none_or(|c| c == x))
            });
            fits.then_some(props)
        })
    }

    fn walk(
        &self,
        value: &serde_json::Value,
        node: &'a serde_json::Value,
        prefix: &str,
        out: &mut Vec<FieldDoc>,
    ) {
        let (Some(object), Some(props)) = (value.as_object(), self.properties(value, node)) else {
            return;
        };
        for (name, field) in object {
            let key = if prefix.is_empty() {
                name.clone()
            } else {
                format!("{prefix}.{name}")
            };
            let sub = props.get(name);
            if sub.is_some_and(|s| s.get("const").is_some()) {
                continue; // an enum's tag: listed with the enum
            }
            let doc = sub.map_or_else(String::new, |s| {
                let own = description(s);
                if own.is_empty() {
                    description(self.resolve(s))
                } else {
                    own
                }
            });
            let alternatives = sub.map(|s| self.alternatives(s)).unwrap_or_default();
            let nested = sub.and_then(|s| self.properties(field, s)).is_some();
            if !nested || !alternatives.is_empty() {
                out.push(FieldDoc {
                    key: key.clone(),
                    value: field.clone(),
                    doc,
                    alternatives: alternatives.clone(),
                });
            }
            if let Some(sub) = sub.filter(|_| nested) {
                self.walk(field, sub, &key, out);
            }
        }
    }
}

/// A schema node's description on one line.
fn description(node: &serde_json::Value) -> String {
    node.get("description")
        .and_then(serde_json::Value::as_str)
        .map(|d| d.split_whitespace().collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use std::fmt::Debug;

    use super::*;
    use crate::{Budget, FerdMethod, TeacherPreset};

    /// Every path from the root of `value` to a non-object value, found without the schema.
    fn leaf_paths(value: &serde_json::Value, prefix: &str, out: &mut Vec<String>) {
        match value.as_object() {
            Some(object) => {
                for (k, v) in object {
                    let key = if prefix.is_empty() {
                        k.clone()
                    } else {
                        format!("{prefix}.{k}")
                    };
                    leaf_paths(v, &key, out);
                }
            }
            None => out.push(prefix.to_string()),
        }
    }

    /// Every field is listed with a doc, and `--set` with its own value changes nothing.
    fn check_listing<T>(config: &T, tags: &[&str])
    where
        T: Serialize + serde::de::DeserializeOwned + schemars::JsonSchema + PartialEq + Debug,
    {
        let fields = field_docs(config);
        let mut leaves = Vec::new();
        leaf_paths(&serde_json::to_value(config).unwrap(), "", &mut leaves);
        for leaf in leaves.iter().filter(|l| !tags.contains(&l.as_str())) {
            assert!(
                fields.iter().any(|f| &f.key == leaf),
                "{leaf} is not listed"
            );
        }
        for field in &fields {
            assert!(!field.doc.is_empty(), "{} has no doc", field.key);
            let same = with_field(config, &field.key, &field.value.to_string()).unwrap();
            assert_eq!(&same, config, "{}", field.key);
        }
    }

    #[test]
    fn every_field_of_every_preset_is_listed_with_its_doc() {
        for method in [FerdMethod::Ferd, FerdMethod::FerdOfficialCode] {
            let config = FerdConfig::preset(Budget::Fmnist, method);
            check_listing(
                &config,
                &["reweighting.strategy.strategy", "student.ikl.kind"],
            );
        }
        for preset in TeacherPreset::ALL {
            check_listing(&preset.recipe().config, &[]);
        }
    }

    #[test]
    fn docs_are_the_doc_comments_and_enums_list_their_alternatives() {
        let config = FerdConfig::preset(Budget::Fmnist, FerdMethod::FerdOfficialCode);
        let fields = field_docs(&config);
        let doc = |key: &str| &fields.iter().find(|f| f.key == key).unwrap().doc;
        // The doc comment of `UtaeConfig::gamma`, its two lines joined.
        assert_eq!(
            doc("student.utae.gamma"),
            "Weight `gamma` of the uniformity term (paper sweep: 0.1 to 0.5 best; ferd 0.3; the \
             released code runs 0)."
        );
        let strategy = fields
            .iter()
            .find(|f| f.key == "reweighting.strategy")
            .unwrap();
        let starts: Vec<&str> = strategy
            .alternatives
            .iter()
            .map(|a| &a[..a.find(" rule").or(a.find(": No")).unwrap_or(a.len())])
            .collect();
        assert_eq!(
            starts,
            [
                "softmax: The paper's",
                "min_max: The official code's",
                "uniform"
            ],
            "{:?}",
            strategy.alternatives
        );
        // The fields of the variant in use are listed too, with their own docs.
        assert_eq!(
            doc("reweighting.strategy.p_max"),
            "Weight of the most fragile class before normalization."
        );
    }
}
