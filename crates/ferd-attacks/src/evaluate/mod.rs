//! Class-wise robustness evaluation of a model on a dataset under a list of attacks: clean and
//! robust accuracy overall and per class, worst class, worst 10% and NSD for every attack, and
//! for AutoAttack the robust accuracy after each component (`report`). The loop is here; its
//! settings are `config`, its progress on disk for resuming `state`.

use std::time::Instant;

use burn::tensor::{Device, Int, Tensor};
use ferd_core::metrics::{ClassWiseAccuracy, to_indices};
use ferd_data::{ImageDataset, Order};

mod config;
mod report;
mod state;

pub use config::EvalConfig;
pub use report::{AttackReport, EvaluationReport, StageReport};
use state::{AttackProgress, EvalState, StateFile, StateKey, labels_checksum};

use crate::attack::Attack;
use crate::ball::linf_distance;
use crate::checks::{probability_warning, randomness_warning};
use crate::error::{Result, invalid};
use crate::events::{AttackEvent, EvalEvent, Observer};
use crate::model::{Model, finite_logits};

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
