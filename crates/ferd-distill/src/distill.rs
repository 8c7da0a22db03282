//! The FERD loop (method spec, sections 2 and 3). Per epoch:
//!
//! 1. the class distribution `p` (uniform at the first round);
//! 2. one synthesis round with labels drawn from `p` ([`crate::synthesis`]), its images added
//!    to the bank ([`crate::bank`]);
//! 3. the teacher's class fragility on the round's samples and the next round's `p`
//!    ([`crate::fragility`], `ferd_core::reweighting`);
//! 4. after the warm-up, `N_S` student steps on bank batches ([`crate::student`]);
//! 5. optionally, the student's clean and PGD accuracy per class on a real test set, which is
//!    reported and never used for any decision (data-free: the kept model is the last one).
//!
//! Everything needed to continue is checkpointed after every epoch (student and optimizer, bank,
//! next class distribution; every draw derives from the seed and its site, [`crate::draws`]),
//! so a resumed CPU run equals an uninterrupted one bit for bit.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;
use std::time::Instant;

use burn::module::Module;
use burn::optim::ModuleOptimizer;
use burn::store::ModuleSnapshot;
use burn::tensor::{Device, Tensor};
use ferd_attacks::{EvalConfig, EvalEvent, Frozen, Pgd, evaluate_observed};
use ferd_core::metrics::{ClassWiseAccuracy, to_indices};
use ferd_core::random::mix;
use ferd_data::ImageDataset;
use ferd_models::Classifier;
use ferd_models::weights::save_weights;
use serde::{Deserialize, Serialize};

use crate::bank::Bank;
use crate::checkpoint::{restore_trainable, save_trainable};
use crate::config::FerdConfig;
use crate::draws::{Draws, Seeded, Site};
use crate::error::{DistillError, Result, io_error};
use crate::events::{Event, Observer};
use crate::fragility::fragility;
use crate::optim::Sgd;
use crate::run::{Job, RunOptions, run};
use crate::schedule::LrSchedule;
use crate::student::{StepReport, train_step};
use crate::synthesis::{LossTerms, synthesize};

/// What one epoch did: one line of `metrics.jsonl`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DistillEpoch {
    /// The epoch (0-based).
    pub epoch: usize,
    /// The student's learning rate this epoch.
    pub lr: f64,
    /// The class distribution the round's labels were drawn from.
    pub class_distribution: Vec<f64>,
    /// The round's labels per class.
    pub label_counts: Vec<usize>,
    /// The generator loss terms, averaged over the round's steps.
    pub synthesis_mean: LossTerms,
    /// The terms of the step whose images were kept.
    pub synthesis_best: LossTerms,
    /// Fraction of the kept images the teacher classifies as their sampled label.
    pub teacher_agreement: f64,
    /// The teacher's per-class fragility on the round's samples.
    pub fragility: Vec<f64>,
    /// Samples in the bank after this round.
    pub bank_size: usize,
    /// The student's mean loss terms this epoch (`None` during warm-up).
    pub student: Option<StepReport>,
    /// The student on the test set (`None` when not evaluated this epoch).
    pub evaluation: Option<Evaluation>,
    /// Seconds per phase.
    pub seconds: PhaseSeconds,
}

/// The student's accuracy on the evaluation set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Evaluation {
    /// Images evaluated.
    pub images: usize,
    /// Clean accuracy per class.
    pub clean: ClassWiseAccuracy,
    /// PGD accuracy per class.
    pub robust: ClassWiseAccuracy,
}

/// Wall-clock seconds of each phase of an epoch.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct PhaseSeconds {
    /// The synthesis round.
    pub synthesis: f64,
    /// The fragility attack.
    pub fragility: f64,
    /// The student steps.
    pub student: f64,
    /// The evaluation.
    pub evaluation: f64,
}

/// The result of a run.
#[derive(Debug)]
pub struct Distilled<S> {
    /// The student after the last epoch (training module; `student.bpk` in the run folder).
    pub student: S,
    /// Every epoch's record, resumed ones included.
    pub history: Vec<DistillEpoch>,
}

/// The purpose coordinate of the evaluation attack's seed. The evaluation is not part of the
/// method, whose draws come from [`Draws`].
const EVALUATION_PURPOSE: u64 = 5;

/// Distills `student` (a fresh training module built on `options.device`'s autodiff twin) from
/// `teacher`, data-free, writing the run folder `options.dir`:
/// `config.json`, `metrics.jsonl`, `checkpoint/` and, at the end, `student.bpk`.
///
/// `test` is only evaluated on (per-class clean and PGD accuracy, reported in the metrics);
/// pass `None` to skip it.
///
/// The teacher is frozen here (`valid()`: BatchNorm in inference mode, whatever its input): a
/// teacher in training mode fed the generator's differentiable images would otherwise move its
/// BatchNorm statistics towards the synthetic data. Pass a student no one else holds a clone
/// of: Burn's module clones share their BatchNorm running statistics.
///
/// # Examples
///
/// Two epochs of a few steps (the `tiny` budget) from the bundled Fashion-MNIST teacher:
/// ```
/// use ferd_core::DeviceSpec;
/// use ferd_distill::{Budget, FerdConfig, FerdMethod, RunOptions, distill};
/// use ferd_models::{load_weights, zoo::Architecture};
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let device = DeviceSpec::Flex.device()?;
/// let mut teacher = Architecture::SmallCnn { width: 16 }.build(1, 10, &device);
/// let weights = concat!(env!("CARGO_MANIFEST_DIR"), "/../../models/fmnist-small-teacher");
/// load_weights(&mut teacher, format!("{weights}/teacher.bpk"))?;
/// let student = Architecture::SmallCnn { width: 8 }.build(1, 10, &device.clone().autodiff());
/// let config = FerdConfig::preset(Budget::Tiny, FerdMethod::Ferd);
/// let dir = std::env::temp_dir().join("ferd-doc-distill");
/// # let _ = std::fs::remove_dir_all(&dir);
/// let out = distill(&teacher, student, &config, None, &RunOptions::new(&dir, device), &mut ())?;
/// assert_eq!(out.history.len(), config.epochs);
/// assert!(dir.join("student.bpk").is_file());
/// # Ok(())
/// # }
/// ```
pub fn distill<T, S>(
    teacher: &T,
    student: S,
    config: &FerdConfig,
    test: Option<&ImageDataset>,
    options: &RunOptions,
    observer: &mut dyn Observer<Event>,
) -> Result<Distilled<S>>
where
    T: Classifier + Module,
    S: Classifier + Module + ModuleSnapshot,
{
    let mut draws = Seeded::new(config.seed);
    distill_with(
        teacher, student, config, test, options, &mut draws, observer,
    )
}

/// [`distill`] with the method's random draws taken from `draws` instead of the config's seed:
/// a [`Recorded`](crate::draws::Recorded) recording replays another implementation's draws
/// (the lockstep comparison with the official code). Resuming is only exact with draws that
/// depend on their site alone, as [`Seeded`]'s.
pub fn distill_with<T, S>(
    teacher: &T,
    student: S,
    config: &FerdConfig,
    test: Option<&ImageDataset>,
    options: &RunOptions,
    draws: &mut dyn Draws,
    observer: &mut dyn Observer<Event>,
) -> Result<Distilled<S>>
where
    T: Classifier + Module,
    S: Classifier + Module + ModuleSnapshot,
{
    config.check()?;
    let teacher = teacher.valid();
    check_fit(&teacher, &student, config, test, &options.device)?;
    let test = test.map(|data| match config.evaluation.per_class {
        Some(n) => data.balanced_subset(n),
        None => data.clone(),
    });
    let uniform = vec![1.0 / config.num_classes as f64; config.num_classes];
    let shape = [config.image.channels, config.image.side, config.image.side];
    let mut job = FerdJob {
        teacher: &teacher,
        student: Some(student),
        optim: sgd(config).build(),
        bank: Bank::new(shape, config.num_classes)?,
        next: Next {
            distribution: uniform,
        },
        config,
        test,
        device: options.device.clone(),
        draws,
    };
    let history = run(&mut job, config, config.epochs, options, observer)?;
    let student = job.student.take().expect("the job holds its student");
    save_weights(&student.valid(), options.dir.join("student.bpk"))?;
    Ok(Distilled { student, history })
}

fn sgd(config: &FerdConfig) -> Sgd {
    Sgd {
        momentum: config.student.momentum,
        nesterov: false,
        weight_decay: config.student.weight_decay,
    }
}

/// Checks, before any work, that teacher, student, configuration and test set fit together.
fn check_fit<T: Classifier, S: Classifier + Module>(
    teacher: &T,
    student: &S,
    config: &FerdConfig,
    test: Option<&ImageDataset>,
    device: &Device,
) -> Result<()> {
    let mismatch = |m: String| Err(DistillError::Mismatch(m));
    let classes = [
        ("teacher", teacher.num_classes()),
        ("student", student.num_classes()),
        ("config", config.num_classes),
    ];
    if classes.iter().any(|&(_, c)| c != config.num_classes) {
        return mismatch(format!("numbers of classes differ: {classes:?}"));
    }
    let shape = [config.image.channels, config.image.side, config.image.side];
    if let Some(test) = test
        && (test.image_shape() != shape || test.num_classes() != config.num_classes)
    {
        return mismatch(format!(
            "the test set has images {:?} and {} classes, the config {shape:?} and {}",
            test.image_shape(),
            test.num_classes(),
            config.num_classes
        ));
    }
    let probe = Tensor::<4>::zeros([1, shape[0], shape[1], shape[2]], device);
    let accepts =
        |name: &str, forward: &dyn Fn() -> Tensor<2>| match catch_unwind(AssertUnwindSafe(forward))
        {
            Ok(logits) if logits.dims() == [1, config.num_classes] => Ok(()),
            Ok(logits) => mismatch(format!(
                "the {name} maps one image to logits {:?}",
                logits.dims()
            )),
            Err(_) => mismatch(format!(
                "the {name} does not accept {:?} images (the config's image shape)",
                shape
            )),
        };
    accepts("teacher", &|| teacher.forward(probe.clone()))?;
    let frozen = student.valid();
    accepts("student", &|| frozen.forward(probe.clone()))
}

/// What the next epoch starts from, besides the student and the bank.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Next {
    distribution: Vec<f64>,
}

struct FerdJob<'a, T, S> {
    teacher: &'a T,
    /// Always `Some` between epochs (an optimizer step takes the model by value).
    student: Option<S>,
    optim: ModuleOptimizer,
    bank: Bank,
    next: Next,
    config: &'a FerdConfig,
    test: Option<ImageDataset>,
    device: Device,
    draws: &'a mut dyn Draws,
}

impl<T: Classifier + Module, S: Classifier + Module + ModuleSnapshot> FerdJob<'_, T, S> {
    fn student_epoch(
        &mut self,
        epoch: usize,
        lr: f64,
        observer: &mut dyn Observer<Event>,
    ) -> Result<StepReport> {
        let config = self.config;
        let steps = config.student.steps;
        let batches = self.bank.epoch_batches(
            config.batch_size,
            steps,
            self.draws.noise(epoch, Site::BankOrder).as_mut(),
        );
        let mut student = self.student.take().expect("the job holds its student");
        let mut sum = StepReport::default();
        for (step, rows) in batches.iter().enumerate() {
            let batch = self.bank.batch(rows, &self.device)?;
            let x = config.augment.apply_from(
                batch.images,
                self.draws
                    .noise(epoch, Site::StudentAugment { step })
                    .as_mut(),
            );
            let report;
            (student, report) = train_step(
                student,
                &mut self.optim,
                self.teacher,
                x,
                batch.labels,
                &config.student,
                config.threat,
                lr,
                self.draws.noise(epoch, Site::UtaeStart { step }).as_mut(),
            )
            .map_err(|e| e.at(format_args!("student step {step}")))?;
            observer.event(&Event::StudentStep {
                epoch,
                step,
                report: report.clone(),
            });
            sum.loss += report.loss;
            sum.clean += report.clean;
            sum.adv += report.adv;
            sum.utae_predictions
                .resize(report.utae_predictions.len(), 0);
            for (total, count) in sum
                .utae_predictions
                .iter_mut()
                .zip(&report.utae_predictions)
            {
                *total += count;
            }
            let n = (step + 1) as f64;
            observer.event(&Event::Progress {
                epoch,
                phase: "student",
                done: step + 1,
                total: batches.len(),
                status: format!("L_S {:.4}", sum.loss / n),
            });
        }
        self.student = Some(student);
        let n = batches.len().max(1) as f64;
        Ok(StepReport {
            loss: sum.loss / n,
            clean: sum.clean / n,
            adv: sum.adv / n,
            utae_predictions: sum.utae_predictions,
        })
    }

    fn evaluate(
        &self,
        epoch: usize,
        observer: &mut dyn Observer<Event>,
    ) -> Result<Option<Evaluation>> {
        let config = self.config;
        let every = config.evaluation.every;
        let due = epoch + 1 == config.epochs || (every > 0 && (epoch + 1).is_multiple_of(every));
        let Some(test) = self.test.as_ref().filter(|_| due) else {
            return Ok(None);
        };
        observer.event(&Event::Progress {
            epoch,
            phase: "evaluation",
            done: 0,
            total: test.len(),
            status: String::new(),
        });
        let pgd = Pgd::new(
            config.threat.eps,
            config.threat.alpha,
            config.evaluation.pgd_steps,
        );
        let student = self.student.as_ref().expect("the job holds its student");
        let report = evaluate_observed(
            &Frozen::new(student),
            test,
            &[&pgd],
            &self.device,
            &EvalConfig {
                batch_size: config.evaluation.batch_size,
                seed: mix(config.seed, &[epoch as u64, 0, EVALUATION_PURPOSE]),
                state: None,
            },
            &mut |e: &EvalEvent| {
                if let EvalEvent::Batch {
                    done,
                    images,
                    robust_accuracy,
                    ..
                } = e
                {
                    observer.event(&Event::Progress {
                        epoch,
                        phase: "evaluation",
                        done: *done,
                        total: *images,
                        status: format!("PGD {:.1}%", 100.0 * robust_accuracy),
                    });
                }
            },
        )?;
        Ok(Some(Evaluation {
            images: test.len(),
            clean: report.clean,
            robust: report.attacks[0].robust.clone(),
        }))
    }
}

impl<T: Classifier + Module, S: Classifier + Module + ModuleSnapshot> Job for FerdJob<'_, T, S> {
    type Metrics = DistillEpoch;

    fn epoch(&mut self, epoch: usize, observer: &mut dyn Observer<Event>) -> Result<DistillEpoch> {
        let config = self.config;
        let mut seconds = PhaseSeconds::default();
        let lr = LrSchedule::Cosine.lr(config.student.lr, epoch, 0, 1, config.epochs);
        let distribution = self.next.distribution.clone();

        let clock = Instant::now();
        let frozen_student = self
            .student
            .as_ref()
            .expect("the job holds its student")
            .valid();
        let steps = config.synthesis.steps;
        let round = synthesize(
            self.teacher,
            &frozen_student,
            &distribution,
            config,
            &mut *self.draws,
            epoch,
            &self.device,
            &mut |step, terms| {
                observer.event(&Event::SynthesisStep {
                    epoch,
                    step,
                    terms: *terms,
                });
                observer.event(&Event::Progress {
                    epoch,
                    phase: "synthesis",
                    done: step + 1,
                    total: steps,
                    status: format!(
                        "L_G {:.3} (bn {:.3} adv {:.3} oh {:.3} uni {:.3})",
                        terms.total, terms.bn, terms.adv, terms.oh, terms.uni
                    ),
                })
            },
        )?;
        drop(frozen_student);
        self.bank.push(&round.images, &round.labels)?;
        let predicted = to_indices(
            self.teacher
                .forward(round.images.clone())
                .argmax(1)
                .reshape([round.labels.len()]),
        );
        let agree = predicted
            .iter()
            .zip(&round.labels)
            .filter(|(p, y)| p == y)
            .count();
        seconds.synthesis = clock.elapsed().as_secs_f64();

        let clock = Instant::now();
        let fragility = fragility(
            self.teacher,
            &round.last_augmented,
            &round.labels,
            config.num_classes,
            config.threat,
            config.reweighting.pgd_steps,
            self.draws.noise(epoch, Site::FragilityStart).as_mut(),
        )?;
        self.next.distribution = config.reweighting.strategy.class_distribution(&fragility)?;
        seconds.fragility = clock.elapsed().as_secs_f64();

        let clock = Instant::now();
        let student = if epoch >= config.warmup {
            Some(self.student_epoch(epoch, lr, observer)?)
        } else {
            None
        };
        seconds.student = clock.elapsed().as_secs_f64();

        let clock = Instant::now();
        let evaluation = self.evaluate(epoch, observer)?;
        seconds.evaluation = clock.elapsed().as_secs_f64();

        let mut label_counts = vec![0; config.num_classes];
        for &y in &round.labels {
            label_counts[y] += 1;
        }
        Ok(DistillEpoch {
            epoch,
            lr,
            class_distribution: distribution,
            label_counts,
            synthesis_mean: round.mean_terms(),
            synthesis_best: round.steps[round.best_step],
            teacher_agreement: agree as f64 / round.labels.len() as f64,
            fragility,
            bank_size: self.bank.len(),
            student,
            evaluation,
            seconds,
        })
    }

    fn summary(&self, r: &DistillEpoch) -> String {
        let mut line = format!(
            "L_G {:.3}, teacher agrees {:.0}%, bank {}",
            r.synthesis_mean.total,
            100.0 * r.teacher_agreement,
            r.bank_size
        );
        if let Some(s) = &r.student {
            line += &format!(", L_S {:.4}", s.loss);
        }
        if let Some(e) = &r.evaluation {
            line += &format!(
                ", student clean {:.2}% PGD-{} {:.2}% (worst class {:.2}%)",
                100.0 * e.clean.overall,
                self.config.evaluation.pgd_steps,
                100.0 * e.robust.overall,
                100.0 * e.robust.worst_class.map_or(0.0, |(_, a)| a)
            );
        }
        line
    }

    fn save(&self, dir: &Path) -> Result<()> {
        let student = self.student.as_ref().expect("the job holds its student");
        save_trainable(dir, "student", student, &self.optim)?;
        self.bank.save(dir)?;
        let path = dir.join("next.json");
        let json = serde_json::to_string(&self.next).expect("serializes");
        std::fs::write(&path, json).map_err(io_error(&path))
    }

    fn restore(&mut self, dir: &Path) -> Result<()> {
        let student = self.student.take().expect("the job holds its student");
        let (student, optim) =
            restore_trainable(dir, "student", student, sgd(self.config).build())?;
        (self.student, self.optim) = (Some(student), optim);
        self.bank.load(dir)?;
        let path = dir.join("next.json");
        let raw = std::fs::read_to_string(&path).map_err(io_error(&path))?;
        self.next = serde_json::from_str(&raw).map_err(|e| DistillError::Checkpoint {
            path,
            detail: format!("unreadable: {e}"),
        })?;
        Ok(())
    }
}
