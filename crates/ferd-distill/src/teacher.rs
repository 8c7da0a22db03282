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

use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use burn::module::Module;
use burn::optim::decay::WeightDecayConfig;
use burn::optim::momentum::MomentumConfig;
use burn::optim::{GradientsParams, ModuleOptimizer, SgdConfig};
use burn::store::ModuleSnapshot;
use burn::tensor::{Device, Int, Tensor};
use ferd_attacks::{Attack, EvalConfig, Frozen, Model, Objective, Pgd, Start, evaluate};
use ferd_core::losses::{Reduction, cross_entropy, kl_divergence};
use ferd_core::metrics::{ClassWiseAccuracy, to_indices};
use ferd_core::progress::Progress;
use ferd_data::{Augment, ImageDataset, Order};
use ferd_models::Classifier;
use ferd_models::weights::{load_weights, save_weights};
use serde::{Deserialize, Serialize};

use crate::checkpoint::{CheckpointDir, param_ids, with_param_ids};
use crate::error::{DistillError, Result, io_error};
use crate::schedule::LrSchedule;

/// The training objective.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Method {
    /// Cross-entropy on clean images.
    Standard,
    /// Cross-entropy on PGD examples: `steps` steps of `alpha` from a uniform random start.
    PgdAt {
        /// Radius.
        eps: f32,
        /// Step size.
        alpha: f32,
        /// Steps.
        steps: usize,
    },
    /// TRADES: `CE(f(x), y) + beta KL(f(x) || f(x'))`, `x'` maximizing the KL from
    /// `x + 0.001 N(0, I)` with `steps` steps of `alpha`.
    Trades {
        /// Radius.
        eps: f32,
        /// Step size.
        alpha: f32,
        /// Steps.
        steps: usize,
        /// Weight of the robustness term (6 in the paper).
        beta: f32,
    },
    /// Fast AT: cross-entropy on one FGSM step of `alpha` (1.25 eps) from a uniform random start.
    FastAt {
        /// Radius.
        eps: f32,
        /// Step size.
        alpha: f32,
    },
}

impl Method {
    /// The radius the method trains against (0 for standard training).
    pub fn eps(&self) -> f32 {
        match *self {
            Self::Standard => 0.0,
            Self::PgdAt { eps, .. } | Self::Trades { eps, .. } | Self::FastAt { eps, .. } => eps,
        }
    }
}

/// Everything that defines a teacher training run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TeacherConfig {
    /// The objective.
    pub method: Method,
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
    fn check(&self) -> Result<()> {
        let bad = |m: String| Err(DistillError::Config(m));
        if self.epochs == 0 || self.batch_size == 0 || self.eval_steps == 0 {
            return bad("epochs, batch size and evaluation steps must be at least 1".into());
        }
        if !(self.lr > 0.0 && self.lr.is_finite()) {
            return bad(format!("learning rate {} must be positive", self.lr));
        }
        if !(0.0..1.0).contains(&self.momentum) || self.weight_decay < 0.0 {
            return bad(format!(
                "momentum {} must be in [0, 1), weight decay {} >= 0",
                self.momentum, self.weight_decay
            ));
        }
        let eps = self.method.eps();
        if self.method != Method::Standard && !(eps > 0.0 && eps <= 1.0) {
            return bad(format!("training epsilon {eps} is outside (0, 1]"));
        }
        Ok(())
    }
}

/// What one epoch did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochMetrics {
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

/// Where a run keeps its files and how it reports.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// The run folder: `checkpoint/`, `best.bpk`, `final.bpk`, `metrics.jsonl`, `config.json`.
    pub dir: PathBuf,
    /// Continue from the checkpoint in `dir` if there is one.
    pub resume: bool,
    /// Show progress on stderr.
    pub progress: bool,
    /// Stop after this many epochs in all (the checkpoint then allows resuming), e.g. to run a
    /// long training in slices.
    pub stop_after: Option<usize>,
    /// The plain (non-autodiff) device; training runs on its autodiff twin.
    pub device: Device,
}

/// The result of a run.
#[derive(Debug)]
pub struct Trained<M> {
    /// The model after the last epoch (training module).
    pub model: M,
    /// Metrics of every epoch, the resumed ones included.
    pub history: Vec<EpochMetrics>,
    /// The epoch with the best PGD accuracy (its weights are `best.bpk`).
    pub best_epoch: usize,
}

/// The loop's own state, saved with each checkpoint.
#[derive(Debug, Serialize, Deserialize)]
struct LoopState {
    config: TeacherConfig,
    epochs_done: usize,
    best_epoch: usize,
    best_robust: f64,
    param_ids: Vec<u64>,
    history: Vec<EpochMetrics>,
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

/// A seed for draw `k` of batch `batch` of epoch `epoch`.
fn mix(seed: u64, epoch: usize, batch: usize, k: u64) -> u64 {
    let mut h = seed ^ 0x51_7C_C1_B7_27_22_0A_95;
    for v in [epoch as u64, batch as u64, k] {
        h = (h ^ v).wrapping_mul(0x9E37_79B9_7F4A_7C15).rotate_left(29);
    }
    h
}

fn optimizer(config: &TeacherConfig) -> ModuleOptimizer {
    let momentum = (config.momentum > 0.0).then(|| {
        MomentumConfig::new()
            .with_momentum(config.momentum)
            .with_dampening(0.0)
            .with_nesterov(config.nesterov)
    });
    let decay =
        (config.weight_decay > 0.0).then(|| WeightDecayConfig::new(config.weight_decay as f32));
    SgdConfig::new()
        .with_momentum(momentum)
        .with_weight_decay(decay)
        .init()
}

/// The training objective of `method` on one batch (images and labels on a plain device; the
/// loss on the model's device) and the logits it was computed from. With a frozen model
/// (`model.valid()`) it measures the objective without training.
pub fn batch_loss<M: Classifier + Module>(
    model: &M,
    method: &Method,
    x: Tensor<4>,
    y: Tensor<1, Int>,
    seed: u64,
) -> Result<(Tensor<1>, Tensor<2>)> {
    let attack = |pgd: Pgd, x: &Tensor<4>| -> Result<Tensor<4>> {
        Ok(pgd.perturb(&Frozen::new(model), x.clone(), y.clone(), seed)?)
    };
    let ad = |t: Tensor<4>| t.autodiff();
    let labels = y.clone().autodiff();
    Ok(match *method {
        Method::Standard => {
            let logits = model.forward(ad(x));
            (cross_entropy(logits.clone(), labels)?, logits)
        }
        Method::PgdAt { eps, alpha, steps } => {
            let adv = attack(Pgd::new(eps, alpha, steps), &x)?;
            let logits = model.forward(ad(adv));
            (cross_entropy(logits.clone(), labels)?, logits)
        }
        Method::FastAt { eps, alpha } => {
            let adv = attack(Pgd::new(eps, alpha, 1), &x)?;
            let logits = model.forward(ad(adv));
            (cross_entropy(logits.clone(), labels)?, logits)
        }
        Method::Trades {
            eps,
            alpha,
            steps,
            beta,
        } => {
            let reference = Frozen::new(model).logits(x.clone());
            let pgd = Pgd::new(eps, alpha, steps)
                .with_start(Start::Gaussian { std: 0.001 })
                .with_objective(Objective::Kl { reference });
            let adv = attack(pgd, &x)?;
            let natural = model.forward(ad(x));
            let robust = kl_divergence(
                natural.clone(),
                model.forward(ad(adv)),
                Reduction::BatchMean,
            )?;
            let loss = cross_entropy(natural.clone(), labels)? + robust.mul_scalar(beta);
            (loss, natural)
        }
    })
}

/// Trains `model` (built on `options.device`'s autodiff twin) on `data` minus the held-out
/// images, writing the run's files to `options.dir`.
///
/// Pass a model no one else holds a clone of: Burn's module clones share their BatchNorm
/// running statistics, so training would move the clone's statistics too.
pub fn train_teacher<M>(
    model: M,
    data: &ImageDataset,
    config: &TeacherConfig,
    options: &RunOptions,
) -> Result<Trained<M>>
where
    M: Classifier + Module + ModuleSnapshot,
{
    config.check()?;
    let (train, held_out) = hold_out(data, config.held_out_per_class)?;
    fs::create_dir_all(&options.dir).map_err(io_error(&options.dir))?;
    let checkpoint = CheckpointDir::new(options.dir.join("checkpoint"));
    let config_json = serde_json::to_string_pretty(config).expect("a config serializes");
    fs::write(options.dir.join("config.json"), &config_json)
        .map_err(io_error(options.dir.join("config.json")))?;

    let mut model = model;
    let mut optim = optimizer(config);
    let mut state = LoopState {
        config: config.clone(),
        epochs_done: 0,
        best_epoch: 0,
        best_robust: f64::NEG_INFINITY,
        param_ids: Vec::new(),
        history: Vec::new(),
    };
    if options.resume && checkpoint.exists() {
        (model, optim, state) = restore(model, optim, config, &checkpoint)?;
        if options.progress {
            eprintln!(
                "resuming after epoch {} from {}",
                state.epochs_done,
                checkpoint.path().display()
            );
        }
    }
    rewrite_metrics(&options.dir, &state.history)?;

    let augment = Augment {
        padding: config.crop_padding,
        flip: config.flip,
    };
    let evaluation: Vec<Box<dyn Attack>> = vec![Box::new(Pgd::new(
        config.eval_eps,
        config.eval_eps / 4.0,
        config.eval_steps,
    ))];
    let last = options
        .stop_after
        .unwrap_or(config.epochs)
        .min(config.epochs);
    for epoch in state.epochs_done..last {
        let started = std::time::Instant::now();
        let batches = train.batch_indices(
            config.batch_size,
            Order::Shuffled(mix(config.seed, epoch, 0, 0)),
        )?;
        let mut progress = Progress::new(
            format!("epoch {}/{}", epoch + 1, config.epochs),
            "images",
            train.len(),
            options.progress,
        );
        let (mut loss_sum, mut hits, mut seen) = (0.0, 0usize, 0usize);
        let first_lr = config
            .schedule
            .lr(config.lr, epoch, 0, batches.len(), config.epochs);
        for (i, rows) in batches.iter().enumerate() {
            let lr = config
                .schedule
                .lr(config.lr, epoch, i, batches.len(), config.epochs);
            let batch = train.batch(rows, &options.device)?;
            let x = augment.apply(batch.images, mix(config.seed, epoch, i, 1));
            let (loss, logits) = batch_loss(
                &model,
                &config.method,
                x,
                batch.labels.clone(),
                mix(config.seed, epoch, i, 2),
            )?;
            let grads = GradientsParams::from_grads(loss.backward(), &model);
            model = optim.step(lr, model, grads);
            loss_sum += f64::from(loss.into_scalar::<f32>()) * rows.len() as f64;
            let predicted = to_indices(logits.without_autodiff().argmax(1).reshape([rows.len()]));
            hits += predicted
                .iter()
                .zip(to_indices(batch.labels))
                .filter(|(p, y)| **p == *y)
                .count();
            seen += rows.len();
            progress.update(
                seen,
                &format!(
                    "loss {:.4} acc {:.2}%",
                    loss_sum / seen as f64,
                    100.0 * hits as f64 / seen as f64
                ),
            );
        }
        let eval_config = EvalConfig {
            batch_size: 500,
            seed: mix(config.seed, epoch, 0, 3),
            progress: false,
        };
        let report = evaluate(
            &Frozen::new(&model),
            &held_out,
            &evaluation,
            &options.device,
            &eval_config,
        )?;
        let metrics = EpochMetrics {
            epoch,
            lr: first_lr,
            train_loss: loss_sum / seen as f64,
            train_accuracy: hits as f64 / seen as f64,
            clean: report.clean,
            robust: report.attacks[0].robust.clone(),
            seconds: started.elapsed().as_secs_f64(),
        };
        if options.progress {
            eprintln!(
                "epoch {}: held-out clean {:.2}%, PGD-{} {:.2}% (worst class {:.2}%), {:.0} s",
                epoch + 1,
                100.0 * metrics.clean.overall,
                config.eval_steps,
                100.0 * metrics.robust.overall,
                100.0 * metrics.robust.worst_class.map_or(0.0, |(_, a)| a),
                metrics.seconds
            );
        }
        append_metrics(&options.dir, &metrics)?;
        if metrics.robust.overall > state.best_robust {
            state.best_robust = metrics.robust.overall;
            state.best_epoch = epoch;
            save_weights(&model.valid(), &options.dir.join("best.bpk"))?;
        }
        state.history.push(metrics);
        state.epochs_done = epoch + 1;
        state.param_ids = param_ids(&model);
        save_checkpoint(&model, &optim, &state, &checkpoint)?;
    }
    save_weights(&model.valid(), &options.dir.join("final.bpk"))?;
    Ok(Trained {
        model,
        history: state.history,
        best_epoch: state.best_epoch,
    })
}

fn save_checkpoint<M: Module + ModuleSnapshot>(
    model: &M,
    optim: &ModuleOptimizer,
    state: &LoopState,
    checkpoint: &CheckpointDir,
) -> Result<()> {
    let json = serde_json::to_string(state).expect("the loop state serializes");
    checkpoint.write(&json, |dir| {
        save_weights(&model.valid(), &dir.join("model.bpk"))?;
        optim
            .save(dir.join("optimizer.bpk"))
            .map_err(|e| checkpoint.error(format!("optimizer state: {e}")))
    })
}

fn restore<M: Module + ModuleSnapshot>(
    mut model: M,
    optim: ModuleOptimizer,
    config: &TeacherConfig,
    checkpoint: &CheckpointDir,
) -> Result<(M, ModuleOptimizer, LoopState)> {
    let raw = checkpoint.read_state()?;
    let unreadable = |e: serde_json::Error| checkpoint.error(format!("unreadable state: {e}"));
    let state: LoopState = serde_json::from_str(&raw).map_err(unreadable)?;
    // Compared as parsed JSON on both sides: serde_json's default float parser may miss the
    // last bit, so a parsed config need not equal the one it was written from.
    let stored: serde_json::Value = serde_json::from_str(&raw).map_err(unreadable)?;
    let current: serde_json::Value =
        serde_json::from_str(&serde_json::to_string(config).expect("a config serializes"))
            .map_err(unreadable)?;
    if stored["config"] != current {
        return Err(checkpoint.error(
            "it was written with another configuration; resume with the same settings or use a new run folder",
        ));
    }
    load_weights(&mut model, &checkpoint.file("model.bpk"))?;
    let model = with_param_ids(model, &state.param_ids)?;
    let optim = optim
        .load(checkpoint.file("optimizer.bpk"))
        .map_err(|e| checkpoint.error(format!("optimizer state: {e}")))?;
    Ok((model, optim, state))
}

fn metrics_path(dir: &Path) -> PathBuf {
    dir.join("metrics.jsonl")
}

fn append_metrics(dir: &Path, metrics: &EpochMetrics) -> Result<()> {
    let path = metrics_path(dir);
    let mut file = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .map_err(io_error(&path))?;
    let line = serde_json::to_string(metrics).expect("metrics serialize");
    writeln!(file, "{line}").map_err(io_error(&path))
}

/// Rewrites `metrics.jsonl` with the epochs of the checkpoint, dropping lines of an epoch that
/// was interrupted before its checkpoint.
fn rewrite_metrics(dir: &Path, history: &[EpochMetrics]) -> Result<()> {
    let path = metrics_path(dir);
    let text: String = history
        .iter()
        .map(|m| serde_json::to_string(m).expect("metrics serialize") + "\n")
        .collect();
    fs::write(&path, text).map_err(io_error(&path))
}
