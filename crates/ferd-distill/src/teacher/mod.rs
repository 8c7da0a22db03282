//! Training robust teachers: standard training, PGD-AT (Madry et al. 2018), TRADES (Zhang et
//! al. 2019) and fast adversarial training (FGSM with a random start, Wong et al. 2020).
//!
//! SGD with momentum (PyTorch's convention: no dampening), weight decay and optional Nesterov;
//! multistep or cosine schedules; crop-and-flip augmentation. After every epoch the model is
//! evaluated clean and under PGD-20, per class, on a held-out part of the training set; the
//! best epoch by robust accuracy is kept (robust overfitting, Rice et al. 2020). Metrics go to
//! `metrics.jsonl`, one JSON object per epoch. A checkpoint is written atomically after every
//! epoch; resuming continues where it stopped and reaches the same weights as an uninterrupted
//! run (every random draw is derived from the seed, the epoch and the batch).
//!
//! Adversarial examples are generated on a frozen copy of the model (BatchNorm in inference
//! mode, as TRADES' code does; Madry's and Rice's code attack the model in training mode).

use std::path::Path;

use burn::module::Module;
use burn::optim::{GradientsParams, ModuleOptimizer};
use burn::store::ModuleSnapshot;
use burn::tensor::Device;
use ferd_attacks::{EvalConfig, Frozen, Pgd, evaluate};
use ferd_core::metrics::{ClassWiseAccuracy, to_indices};
use ferd_core::random::mix;
use ferd_data::{Augment, ImageDataset, Order};
use ferd_models::Classifier;
use ferd_models::weights::save_weights;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::checkpoint::{restore_trainable, save_trainable};
use crate::error::{DistillError, Result, io_error};
use crate::events::{Event, Observer};
use crate::optim::Sgd;
use crate::run::{Job, RunOptions, run};
use crate::schedule::LrSchedule;

mod method;
pub mod presets;

pub use method::{TeacherMethod, batch_loss};

/// Everything that defines a teacher training run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct TeacherConfig {
    /// The objective.
    pub method: TeacherMethod,
    /// Epochs.
    pub epochs: usize,
    /// Images per step.
    pub batch_size: usize,
    /// Base learning rate.
    pub lr: f64,
    /// SGD momentum (no dampening, as PyTorch).
    pub momentum: f64,
    /// Nesterov momentum.
    pub nesterov: bool,
    /// L2 weight decay, added to the gradient as PyTorch's SGD does.
    pub weight_decay: f64,
    /// The schedule of the learning rate.
    pub schedule: LrSchedule,
    /// Zero padding before random crops (0 = no crop).
    pub crop_padding: usize,
    /// Random horizontal flips (off for digit-like data).
    pub flip: bool,
    /// The seed of every random draw.
    pub seed: u64,
    /// Images per class held out of training for the per-epoch evaluation.
    pub held_out_per_class: usize,
    /// Radius of the per-epoch PGD evaluation.
    pub eval_eps: f32,
    /// Steps of the per-epoch PGD evaluation (step `eval_eps / 4`, random start).
    pub eval_steps: usize,
}

impl TeacherConfig {
    fn sgd(&self) -> Sgd {
        Sgd {
            momentum: self.momentum,
            nesterov: self.nesterov,
            weight_decay: self.weight_decay,
        }
    }

    /// Checks every setting; a config that makes no sense is an error before any work starts.
    pub fn check(&self) -> Result<()> {
        let bad = |m: String| Err(DistillError::Config(m));
        if self.epochs == 0 || self.batch_size == 0 || self.eval_steps == 0 {
            return bad("epochs, batch size and evaluation steps must be at least 1".into());
        }
        if !(self.lr > 0.0 && self.lr.is_finite()) {
            return bad(format!("learning rate {} must be positive", self.lr));
        }
        self.sgd().check().map_err(DistillError::Config)?;
        let eps = self.method.eps();
        if self.method != TeacherMethod::Standard && !(eps > 0.0 && eps <= 1.0) {
            return bad(format!("training epsilon {eps} is outside (0, 1]"));
        }
        Ok(())
    }
}

/// What one epoch did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TeacherEpoch {
    /// The epoch (0-based).
    pub epoch: usize,
    /// Learning rate at the epoch's first step.
    pub lr: f64,
    /// Mean training loss.
    pub train_loss: f64,
    /// Accuracy on the inputs trained on (adversarial ones for adversarial training).
    pub train_accuracy: f64,
    /// Clean accuracy on the held-out images, class-wise.
    pub clean: ClassWiseAccuracy,
    /// PGD accuracy on the held-out images, class-wise.
    pub robust: ClassWiseAccuracy,
    /// Seconds the epoch took (training and evaluation).
    pub seconds: f64,
}

/// The result of a run.
#[derive(Debug)]
pub struct Trained<M> {
    /// The model after the last epoch (training module).
    pub model: M,
    /// Metrics of every epoch, the resumed ones included.
    pub history: Vec<TeacherEpoch>,
    /// The epoch with the best PGD accuracy (its weights are `best.bpk`).
    pub best_epoch: usize,
}

/// Splits a dataset into training images and `per_class` held-out images per class (the last
/// ones of each class, so the split does not depend on a seed).
pub fn hold_out(data: &ImageDataset, per_class: usize) -> Result<(ImageDataset, ImageDataset)> {
    let mut held = vec![false; data.len()];
    for class in 0..data.num_classes() {
        let members: Vec<usize> = (0..data.len())
            .filter(|&i| data.labels()[i] == class)
            .collect();
        if members.len() <= per_class {
            return Err(DistillError::Config(format!(
                "class {class} has {} images, cannot hold out {per_class}",
                members.len()
            )));
        }
        for &i in &members[members.len() - per_class..] {
            held[i] = true;
        }
    }
    let (train, test): (Vec<usize>, Vec<usize>) = (0..data.len()).partition(|&i| !held[i]);
    Ok((data.subset(&train)?, data.subset(&test)?))
}

/// Purposes of the random draws of an epoch (the last coordinate given to [`mix`]).
mod draw {
    pub const SHUFFLE: u64 = 0;
    pub const AUGMENT: u64 = 1;
    pub const ATTACK: u64 = 2;
    pub const EVALUATION: u64 = 3;
}

/// Trains `model` (built on `options.device`'s autodiff twin) on `data` minus the held-out
/// images, writing the run's files to `options.dir`: `best.bpk` (the best epoch by held-out PGD
/// accuracy), `final.bpk`, `metrics.jsonl`, `config.json` and `checkpoint/`.
///
/// Pass a model no one else holds a clone of: Burn's module clones share their BatchNorm
/// running statistics, so training would move the clone's statistics too.
///
/// # Examples
///
/// The bundled teacher's recipe (PGD-AT of a small CNN), cut to one epoch on 300 images:
/// ```
/// use ferd_core::DeviceSpec;
/// use ferd_data::{DatasetName, Split, load};
/// use ferd_distill::{RunOptions, TeacherPreset, train_teacher};
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let device = DeviceSpec::Flex.device()?;
/// let recipe = TeacherPreset::FmnistSmall.recipe();
/// let config = ferd_distill::TeacherConfig { epochs: 1, held_out_per_class: 10, ..recipe.config };
/// let data = load(DatasetName::FashionMnist, Split::Test, None)?.balanced_subset(30);
/// let model = recipe.arch.build(1, 10, &device.clone().autodiff());
/// let dir = std::env::temp_dir().join("ferd-doc-teacher");
/// # let _ = std::fs::remove_dir_all(&dir);
/// let trained = train_teacher(model, &data, &config, &RunOptions::new(&dir, device), &mut ())?;
/// assert_eq!(trained.history.len(), 1);
/// assert!(dir.join("best.bpk").is_file());
/// # Ok(())
/// # }
/// ```
pub fn train_teacher<M>(
    model: M,
    data: &ImageDataset,
    config: &TeacherConfig,
    options: &RunOptions,
    observer: &mut dyn Observer<Event>,
) -> Result<Trained<M>>
where
    M: Classifier + Module + ModuleSnapshot,
{
    config.check()?;
    let (train, held_out) = hold_out(data, config.held_out_per_class)?;
    let mut job = TeacherJob {
        model: Some(model),
        optim: config.sgd().build(),
        config,
        train,
        held_out,
        device: options.device.clone(),
        dir: &options.dir,
        best: Best {
            epoch: 0,
            robust: f64::NEG_INFINITY,
        },
    };
    let history = run(&mut job, config, config.epochs, options, observer)?;
    let model = job.model.take().expect("the job holds its model");
    save_weights(&model.valid(), options.dir.join("final.bpk"))?;
    Ok(Trained {
        model,
        history,
        best_epoch: job.best.epoch,
    })
}

/// The best epoch so far by held-out PGD accuracy.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
struct Best {
    epoch: usize,
    robust: f64,
}

struct TeacherJob<'a, M> {
    /// Always `Some` between epochs (an optimizer step takes the model by value).
    model: Option<M>,
    optim: ModuleOptimizer,
    config: &'a TeacherConfig,
    train: ImageDataset,
    held_out: ImageDataset,
    device: Device,
    dir: &'a Path,
    best: Best,
}

impl<M: Classifier + Module + ModuleSnapshot> Job for TeacherJob<'_, M> {
    type Metrics = TeacherEpoch;

    fn epoch(&mut self, epoch: usize, observer: &mut dyn Observer<Event>) -> Result<TeacherEpoch> {
        let config = self.config;
        let started = std::time::Instant::now();
        let mut model = self.model.take().expect("the job holds its model");
        let batches = self.train.batch_indices(
            config.batch_size,
            Order::Shuffled(mix(config.seed, &[epoch as u64, 0, draw::SHUFFLE])),
        )?;
        let augment = Augment {
            padding: config.crop_padding,
            flip: config.flip,
        };
        let lr_at = |i| {
            config
                .schedule
                .lr(config.lr, epoch, i, batches.len(), config.epochs)
        };
        let (mut loss_sum, mut hits, mut seen) = (0.0, 0usize, 0usize);
        for (i, rows) in batches.iter().enumerate() {
            let at = |purpose| mix(config.seed, &[epoch as u64, i as u64, purpose]);
            let batch = self.train.batch(rows, &self.device)?;
            let x = augment.apply(batch.images, at(draw::AUGMENT));
            let (loss, logits) = batch_loss(
                &model,
                &config.method,
                x,
                batch.labels.clone(),
                at(draw::ATTACK),
            )?;
            let value = f64::from(loss.clone().without_autodiff().into_scalar::<f32>());
            if !value.is_finite() {
                return Err(DistillError::NonFinite {
                    what: format!("the training loss ({:?}) at batch {i}", config.method),
                    detail: format!("{value} at learning rate {}", lr_at(i)),
                });
            }
            let grads = GradientsParams::from_grads(loss.backward(), &model);
            model = self.optim.step(lr_at(i), model, grads);
            loss_sum += value * rows.len() as f64;
            let predicted = to_indices(logits.without_autodiff().argmax(1).reshape([rows.len()]));
            hits += predicted
                .iter()
                .zip(to_indices(batch.labels))
                .filter(|(p, y)| **p == *y)
                .count();
            seen += rows.len();
            observer.event(&Event::Progress {
                epoch,
                phase: "train",
                done: seen,
                total: self.train.len(),
                status: format!(
                    "loss {:.4} acc {:.2}%",
                    loss_sum / seen as f64,
                    100.0 * hits as f64 / seen as f64
                ),
            });
        }
        let evaluation = Pgd::new(config.eval_eps, config.eval_eps / 4.0, config.eval_steps);
        let eval_config = EvalConfig {
            batch_size: 500,
            seed: mix(config.seed, &[epoch as u64, 0, draw::EVALUATION]),
            state: None,
        };
        let report = evaluate(
            &Frozen::new(&model),
            &self.held_out,
            &[&evaluation],
            &self.device,
            &eval_config,
        )?;
        let metrics = TeacherEpoch {
            epoch,
            lr: lr_at(0),
            train_loss: loss_sum / seen as f64,
            train_accuracy: hits as f64 / seen as f64,
            clean: report.clean,
            robust: report.attacks[0].robust.clone(),
            seconds: started.elapsed().as_secs_f64(),
        };
        if metrics.robust.overall > self.best.robust {
            self.best = Best {
                epoch,
                robust: metrics.robust.overall,
            };
            save_weights(&model.valid(), self.dir.join("best.bpk"))?;
        }
        self.model = Some(model);
        Ok(metrics)
    }

    fn summary(&self, m: &TeacherEpoch) -> String {
        format!(
            "held-out clean {:.2}%, PGD-{} {:.2}% (worst class {:.2}%)",
            100.0 * m.clean.overall,
            self.config.eval_steps,
            100.0 * m.robust.overall,
            100.0 * m.robust.worst_class.map_or(0.0, |(_, a)| a),
        )
    }

    fn save(&self, dir: &Path) -> Result<()> {
        let model = self.model.as_ref().expect("the job holds its model");
        save_trainable(dir, "model", model, &self.optim)?;
        let path = dir.join("best.json");
        let json = serde_json::to_string(&self.best).expect("serializes");
        std::fs::write(&path, json).map_err(io_error(&path))
    }

    fn restore(&mut self, dir: &Path) -> Result<()> {
        let model = self.model.take().expect("the job holds its model");
        let optim = self.config.sgd().build();
        let (model, optim) = restore_trainable(dir, "model", model, optim)?;
        (self.model, self.optim) = (Some(model), optim);
        let path = dir.join("best.json");
        let raw = std::fs::read_to_string(&path).map_err(io_error(&path))?;
        self.best = serde_json::from_str(&raw).map_err(|e| DistillError::Checkpoint {
            path,
            detail: format!("unreadable: {e}"),
        })?;
        Ok(())
    }
}
