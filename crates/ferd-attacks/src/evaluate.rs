//! Class-wise robustness evaluation of a model on a dataset under a list of attacks: clean and
//! robust accuracy overall and per class, worst class, worst 10% and NSD for every attack, and
//! for AutoAttack the robust accuracy after each component. Reports serialize to JSON and print
//! as tables with class names.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::tensor::{Device, Int, Tensor};
use ferd_core::metrics::{ClassWiseAccuracy, to_indices};
use ferd_data::{ImageDataset, Order};
use serde::{Deserialize, Serialize};

use crate::attack::Attack;
use crate::ball::linf_distance;
use crate::checks::{probability_warning, randomness_warning};
use crate::error::{AttackError, Result, invalid};
use crate::events::{AttackEvent, EvalEvent, Observer};
use crate::model::{Model, finite_logits};

/// Settings of an evaluation.
#[derive(Debug, Clone)]
pub struct EvalConfig {
    /// Images per attack call.
    pub batch_size: usize,
    /// Seed of every attack; batch `i` gets a seed derived from it and `i`.
    pub seed: u64,
    /// A file in which the evaluation records its progress after every batch of every attack
    /// (written atomically). When it exists and belongs to the same evaluation (dataset, number
    /// of images, attacks, batch size, seed), the evaluation continues from it, and the report
    /// is the one an uninterrupted run gives (timings aside). `None`: nothing is recorded.
    pub state: Option<PathBuf>,
}

impl Default for EvalConfig {
    fn default() -> Self {
        Self {
            batch_size: 256,
            seed: 0,
            state: None,
        }
    }
}

/// What identifies an evaluation: a state file of another one is refused.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct StateKey {
    dataset: String,
    samples: usize,
    labels_checksum: u64,
    batch_size: usize,
    seed: u64,
    attacks: Vec<(String, f32)>,
}

/// The batches of one attack done so far.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct AttackProgress {
    batches_done: usize,
    robust_pred: Vec<usize>,
    /// Per stage of a composite attack: name, robust flags so far, seconds.
    stages: Vec<(String, Vec<bool>, f64)>,
    max_perturbation: f32,
    seconds: f64,
}

/// The progress of an evaluation, as recorded in [`EvalConfig::state`].
#[derive(Debug, Clone, Serialize, Deserialize)]
struct EvalState {
    key: StateKey,
    clean_pred: Vec<usize>,
    attacks: Vec<AttackProgress>,
}

/// Where the state is kept, if anywhere.
struct StateFile<'a> {
    path: Option<&'a Path>,
}

impl StateFile<'_> {
    fn error(path: &Path, reason: String) -> AttackError {
        AttackError::File {
            path: path.to_path_buf(),
            reason,
        }
    }

    /// The recorded state, when there is one for this evaluation. `batch_lengths` are the
    /// images per batch: every attack's record must cover exactly its first batches.
    fn load(&self, key: &StateKey, batch_lengths: &[usize]) -> Result<Option<EvalState>> {
        let Some(path) = self.path.filter(|p| p.exists()) else {
            return Ok(None);
        };
        let text = std::fs::read_to_string(path).map_err(|e| Self::error(path, e.to_string()))?;
        let state: EvalState = serde_json::from_str(&text)
            .map_err(|e| Self::error(path, format!("not an evaluation state: {e}")))?;
        if state.key != *key {
            return Err(Self::error(
                path,
                "the state of another evaluation (dataset, images, attacks, batch size or seed \
                 differ): remove it or choose another file"
                    .into(),
            ));
        }
        let covered = |done: usize| batch_lengths.iter().take(done).sum::<usize>();
        let consistent = state.attacks.len() == key.attacks.len()
            && state.clean_pred.len() == key.samples
            && state.attacks.iter().all(|a| {
                a.batches_done <= batch_lengths.len()
                    && a.robust_pred.len() == covered(a.batches_done)
            });
        if !consistent {
            return Err(Self::error(path, "inconsistent evaluation state".into()));
        }
        Ok(Some(state))
    }

    /// Records `state`: written beside the file, then renamed over it (a reader sees the old or
    /// the new state, never a mix).
    fn save(&self, state: &EvalState) -> Result<()> {
        let Some(path) = self.path else {
            return Ok(());
        };
        let tmp = path.with_extension("tmp");
        let json = serde_json::to_string(state).expect("an evaluation state serializes");
        std::fs::write(&tmp, json)
            .and_then(|()| std::fs::rename(&tmp, path))
            .map_err(|e| Self::error(path, format!("cannot record progress: {e}")))
    }
}

/// A checksum of the labels (FNV-1a), so that a state file is not resumed on other data.
fn labels_checksum(labels: &[usize]) -> u64 {
    labels.iter().fold(0xcbf2_9ce4_8422_2325, |h, &y| {
        (h ^ y as u64).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

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

fn batch_seed(seed: u64, batch: usize) -> u64 {
    seed ^ (batch as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

/// The predicted classes of `x`; an error when a logit is NaN or infinite.
fn predictions(model: &dyn Model, x: Tensor<4>) -> Result<Vec<usize>> {
    let out = finite_logits("evaluate", model, x)?;
    let [batch, _] = out.dims();
    Ok(to_indices(out.argmax(1).reshape([batch])))
}

fn per_class(flags: &[bool], labels: &[usize], classes: usize) -> Vec<Option<f64>> {
    let mut hits = vec![0u64; classes];
    let mut counts = vec![0u64; classes];
    for (&f, &y) in flags.iter().zip(labels) {
        counts[y] += 1;
        hits[y] += u64::from(f);
    }
    hits.iter()
        .zip(&counts)
        .map(|(&h, &n)| (n > 0).then(|| h as f64 / n as f64))
        .collect()
}

/// Evaluates `model` on every image of `dataset` under each of `attacks`, batch by batch on
/// `device`. Attacks only see `[0, 1]` images; the model should be frozen (see [`Model`]).
/// Attacks are passed by reference, of any mix of types: `&[&pgd, &AutoAttack::standard(eps)]`.
///
/// # Examples
///
/// ```
/// use ferd_attacks::{EvalConfig, Pgd, evaluate};
/// use ferd_core::DeviceSpec;
/// use ferd_data::ImageDataset;
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let device = DeviceSpec::Flex.device()?;
/// // Two 1x2x2 images of classes 0 and 1; the "model" reads the class off the first pixel.
/// let data = ImageDataset::new(
///     "toy",
///     vec![0, 0, 0, 0, 255, 255, 255, 255],
///     vec![0, 1],
///     [1, 2, 2],
///     vec!["dark".into(), "bright".into()],
/// )?;
/// let model = |x: burn::tensor::Tensor<4>| {
///     let first = x.slice([0..2, 0..1, 0..1, 0..1]).reshape([2, 1]);
///     burn::tensor::Tensor::cat(vec![first.clone().neg() + 0.5, first - 0.5], 1)
/// };
/// let pgd = Pgd::new(0.1, 0.02, 10);
/// let report = evaluate(&model, &data, &[&pgd, &Pgd::fgsm(0.1)], &device,
///     &EvalConfig::default())?;
/// assert_eq!(report.clean.overall, 1.0);
/// assert_eq!(report.attacks[0].robust.overall, 1.0); // 0.1 cannot cross the 0.5 boundary
/// # Ok(())
/// # }
/// ```
pub fn evaluate(
    model: &dyn Model,
    dataset: &ImageDataset,
    attacks: &[&dyn Attack],
    device: &Device,
    config: &EvalConfig,
) -> Result<EvaluationReport> {
    evaluate_observed(model, dataset, attacks, device, config, &mut ())
}

/// [`evaluate`], telling `observer` how far it is: every batch of the clean pass and of each
/// attack, and every component of a composite attack as it starts on a batch.
pub fn evaluate_observed(
    model: &dyn Model,
    dataset: &ImageDataset,
    attacks: &[&dyn Attack],
    device: &Device,
    config: &EvalConfig,
    observer: &mut dyn Observer<EvalEvent>,
) -> Result<EvaluationReport> {
    if dataset.is_empty() {
        return Err(invalid("evaluate", "the dataset is empty"));
    }
    let classes = dataset.num_classes();
    let batches = dataset.batch_indices(config.batch_size, Order::Sequential)?;
    let load = |i: usize| dataset.batch(&batches[i], device);
    let labels: Vec<usize> = batches
        .iter()
        .flatten()
        .map(|&i| dataset.labels()[i])
        .collect();

    let first = load(0)?;
    let mut warnings: Vec<String> = [
        probability_warning(model, &first.images),
        randomness_warning(model, &first.images),
    ]
    .into_iter()
    .flatten()
    .collect();

    let key = StateKey {
        dataset: dataset.name().to_string(),
        samples: labels.len(),
        labels_checksum: labels_checksum(&labels),
        batch_size: config.batch_size,
        seed: config.seed,
        attacks: attacks.iter().map(|a| (a.name(), a.eps())).collect(),
    };
    observer.event(&EvalEvent::Started {
        images: labels.len(),
        batches: batches.len(),
        attacks: attacks.iter().map(|a| a.name()).collect(),
    });
    let file = StateFile {
        path: config.state.as_deref(),
    };
    let batch_lengths: Vec<usize> = batches.iter().map(Vec::len).collect();
    let mut state = match file.load(&key, &batch_lengths)? {
        Some(state) => state,
        None => {
            let mut clean_pred = Vec::with_capacity(labels.len());
            for i in 0..batches.len() {
                clean_pred.extend(predictions(model, load(i)?.images)?);
                observer.event(&EvalEvent::CleanBatch {
                    done: clean_pred.len(),
                    images: labels.len(),
                });
            }
            let state = EvalState {
                key,
                clean_pred,
                attacks: vec![AttackProgress::default(); attacks.len()],
            };
            file.save(&state)?;
            state
        }
    };
    let clean = ClassWiseAccuracy::from_predictions(&state.clean_pred, &labels, classes)?;

    let pass = Pass {
        model,
        batches: &batches,
        load: &load,
        labels: &labels,
        classes,
        config,
        file: &file,
    };
    let mut reports = Vec::with_capacity(attacks.len());
    for (a, attack) in attacks.iter().enumerate() {
        let report = pass.attack(a, *attack, &mut state, observer)?;
        if report.max_perturbation > report.eps + 1e-5 {
            warnings.push(format!(
                "{} returned a perturbation of {} > eps {}",
                report.name, report.max_perturbation, report.eps
            ));
        }
        observer.event(&EvalEvent::AttackEnded {
            attack: a,
            name: report.name.clone(),
            robust_accuracy: report.robust.overall,
            seconds: report.seconds,
        });
        reports.push(report);
    }
    Ok(EvaluationReport {
        architecture: None,
        dataset: dataset.name().to_string(),
        samples: labels.len(),
        class_names: dataset.class_names().to_vec(),
        seed: config.seed,
        clean,
        attacks: reports,
        warnings,
    })
}

/// What every attack of one evaluation shares: the model, the batches and their labels, the
/// settings and the state file.
struct Pass<'a> {
    model: &'a dyn Model,
    batches: &'a [Vec<usize>],
    load: &'a dyn Fn(usize) -> std::result::Result<ferd_data::Batch, ferd_data::DataError>,
    labels: &'a [usize],
    classes: usize,
    config: &'a EvalConfig,
    file: &'a StateFile<'a>,
}

impl Pass<'_> {
    /// Runs attack number `a` over the batches it has not done yet, recording each in `state`.
    fn attack(
        &self,
        a: usize,
        attack: &dyn Attack,
        state: &mut EvalState,
        observer: &mut dyn Observer<EvalEvent>,
    ) -> Result<AttackReport> {
        let Self {
            model,
            batches,
            load,
            labels,
            classes,
            config,
            file,
        } = *self;
        let clean_pred = state.clean_pred.clone();
        let done = state.attacks[a].batches_done;
        observer.event(&EvalEvent::AttackStarted {
            attack: a,
            name: attack.name(),
            done: state.attacks[a].robust_pred.len(),
            images: labels.len(),
        });
        for i in done..batches.len() {
            let start = Instant::now();
            let record = &mut state.attacks[a];
            let (robust_pred, stage_flags) = (&mut record.robust_pred, &mut record.stages);
            let batch = load(i)?;
            let y: Tensor<1, Int> = batch.labels;
            let mut on_stage = |event: &AttackEvent| {
                let (attack, batch, batches) = (a, i, batches.len());
                observer.event(&match event.clone() {
                    AttackEvent::Stage(started) => EvalEvent::Stage {
                        attack,
                        batch,
                        batches,
                        started,
                    },
                    AttackEvent::Pass(started) => EvalEvent::Pass {
                        attack,
                        batch,
                        batches,
                        started,
                    },
                })
            };
            let staged = attack.perturb_staged(
                model,
                batch.images.clone(),
                y,
                batch_seed(config.seed, i),
                &mut on_stage,
            )?;
            let distances = linf_distance(&staged.adv, &batch.images);
            record.max_perturbation = distances
                .into_iter()
                .fold(record.max_perturbation, f32::max);
            let offset = robust_pred.len();
            for (j, p) in predictions(model, staged.adv)?.into_iter().enumerate() {
                let k = offset + j;
                // A point misclassified clean stays misclassified (point-wise worst case).
                robust_pred.push(if clean_pred[k] == labels[k] {
                    p
                } else {
                    clean_pred[k]
                });
            }
            for (s, stage) in staged.stages.into_iter().enumerate() {
                if stage_flags.len() <= s {
                    stage_flags.push((stage.name, Vec::new(), 0.0));
                }
                stage_flags[s].1.extend(stage.robust);
                stage_flags[s].2 += stage.seconds;
            }
            let done = robust_pred.len();
            let correct = (0..done).filter(|&k| robust_pred[k] == labels[k]).count();
            record.batches_done = i + 1;
            record.seconds += start.elapsed().as_secs_f64();
            file.save(state)?;
            observer.event(&EvalEvent::Batch {
                attack: a,
                done,
                images: labels.len(),
                robust_accuracy: correct as f64 / done as f64,
            });
        }
        let record = &state.attacks[a];
        let stages = record
            .stages
            .iter()
            .map(|(name, flags, seconds)| StageReport {
                name: name.clone(),
                robust_accuracy: flags.iter().filter(|&&f| f).count() as f64 / flags.len() as f64,
                per_class: per_class(flags, labels, classes),
                seconds: *seconds,
            })
            .collect();
        Ok(AttackReport {
            name: attack.name(),
            eps: attack.eps(),
            robust: ClassWiseAccuracy::from_predictions(&record.robust_pred, labels, classes)?,
            stages,
            max_perturbation: record.max_perturbation,
            seconds: record.seconds,
        })
    }
}

fn pct(v: Option<f64>) -> String {
    v.map_or("n/a".to_string(), |v| format!("{:.2}", 100.0 * v))
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

    fn class_name(&self, c: usize) -> String {
        self.class_names
            .get(c)
            .cloned()
            .unwrap_or_else(|| format!("class {c}"))
    }

    /// Plain-text tables: a summary per attack (accuracies in %), accuracy per class under each
    /// attack, and the stages of composite attacks.
    pub fn table(&self) -> String {
        let mut out = format!(
            "{}: {} images, seed {}\n\n",
            self.dataset, self.samples, self.seed
        );
        let rows: Vec<(String, &ClassWiseAccuracy)> =
            std::iter::once(("clean".to_string(), &self.clean))
                .chain(
                    self.attacks
                        .iter()
                        .map(|a| (format!("{} (eps {})", a.name, a.eps), &a.robust)),
                )
                .collect();
        let width = rows.iter().map(|(n, _)| n.len()).max().unwrap_or(5).max(6);
        let _ = writeln!(
            out,
            "{:<width$}  {:>8}  {:>10}  {:>11}  {:>9}  {:>6}",
            "attack", "accuracy", "mean-class", "worst-class", "worst-10%", "NSD"
        );
        for (name, acc) in &rows {
            let _ = writeln!(
                out,
                "{:<width$}  {:>8}  {:>10}  {:>11}  {:>9}  {:>6}",
                name,
                pct(Some(acc.overall)),
                pct(acc.mean_class),
                pct(acc.worst_class.map(|(_, a)| a)),
                pct(acc.worst_10_percent),
                acc.nsd.map_or("n/a".to_string(), |v| format!("{v:.3}")),
            );
        }
        let classes = self.clean.per_class.len();
        let names: Vec<String> = (0..classes).map(|c| self.class_name(c)).collect();
        let cw = names.iter().map(String::len).max().unwrap_or(5).max(5);
        let _ = write!(out, "\n{:<cw$}", "class");
        for (name, _) in &rows {
            let short = name.split(' ').next().unwrap_or(name);
            let _ = write!(out, "  {short:>12}");
        }
        out.push('\n');
        for (c, name) in names.iter().enumerate() {
            let _ = write!(out, "{name:<cw$}");
            for (_, acc) in &rows {
                let _ = write!(out, "  {:>12}", pct(acc.per_class[c]));
            }
            out.push('\n');
        }
        for attack in self.attacks.iter().filter(|a| !a.stages.is_empty()) {
            let _ = writeln!(out, "\n{} after each component:", attack.name);
            let _ = writeln!(
                out,
                "  {:<10}  {:>8}",
                "clean",
                pct(Some(self.clean.overall))
            );
            for stage in &attack.stages {
                let _ = writeln!(
                    out,
                    "  {:<10}  {:>8}",
                    stage.name,
                    pct(Some(stage.robust_accuracy))
                );
            }
        }
        for w in &self.warnings {
            let _ = writeln!(out, "\nwarning: {w}");
        }
        out
    }
}
