//! A whole FERD run from files, as `ferd distill` and the quickstart run it: load the teacher's
//! weights, start a fresh student, distill (data-free; the test set is only reported on), then
//! write the student in PyTorch's layout (`student.safetensors`), compare teacher and student
//! class by class and write `final.json` into the run folder.
//!
//! # Examples
//! ```no_run
//! use ferd::distill::{Budget, FerdConfig, FerdMethod, RunOptions};
//! use ferd::pipeline::{Distillation, Outcome};
//! use ferd::models::zoo::Architecture;
//!
//! let device = ferd::core::DeviceSpec::Flex.device()?;
//! let config = FerdConfig::preset(Budget::FmnistQuick, FerdMethod::Ferd);
//! // The bundled teacher to a small-cnn-8 student; change any field, e.g. the student:
//! let run = Distillation {
//!     student_arch: Architecture::SmallCnn { width: 16 },
//!     ..Distillation::new(config, RunOptions::new("runs/ferd", device))
//! };
//! if let Outcome::Finished(comparison) = run.run(&mut ())? {
//!     println!("student PGD accuracy {:.3}", comparison.student.attacks[0].robust.overall);
//! }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::path::PathBuf;
use std::time::Instant;

use burn::module::Module;
use ferd_attacks::AttackError;
use ferd_core::CoreError;
use ferd_data::{DataError, DatasetName, Split, load};
use ferd_distill::{DistillError, Event, FerdConfig, Observer, RunOptions, distill};
use ferd_models::init::{Init, initialize};
use ferd_models::zoo::Architecture;
use ferd_models::{KeyRename, ModelError, load_pytorch_with, load_weights, save_pytorch};

use crate::compare::Comparison;

/// The bundled Fashion-MNIST teacher (`models/fmnist-small-teacher`: small-cnn-16, 85.6% clean
/// and 73.4% PGD-20 at eps 0.1), in the source tree ferd was built from.
pub const BUNDLED_TEACHER: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/models/fmnist-small-teacher/teacher.bpk"
);

/// Why a distillation could not run to its end.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The device.
    #[error(transparent)]
    Core(#[from] CoreError),
    /// The test set.
    #[error(transparent)]
    Data(#[from] DataError),
    /// The teacher's or the student's weights.
    #[error(transparent)]
    Model(#[from] ModelError),
    /// The distillation itself.
    #[error(transparent)]
    Distill(#[from] DistillError),
    /// The final evaluation.
    #[error(transparent)]
    Attack(#[from] AttackError),
    /// `final.json` could not be written.
    #[error("cannot write {path}: {reason}")]
    Write {
        /// The file.
        path: PathBuf,
        /// The system's error.
        reason: String,
    },
}

/// Everything a run from files needs.
#[derive(Debug, Clone)]
pub struct Distillation {
    /// The method, budget and seed.
    pub config: FerdConfig,
    /// The teacher's architecture.
    pub teacher_arch: Architecture,
    /// The teacher's weights.
    pub teacher_weights: PathBuf,
    /// The weights are a PyTorch state dict rather than ferd's own file.
    pub pytorch: bool,
    /// Key renamings for a PyTorch state dict of another layout.
    pub renames: Vec<KeyRename>,
    /// The student's architecture (initialized as PyTorch does, from `config.seed`).
    pub student_arch: Architecture,
    /// The run folder, resuming, slicing and the device.
    pub options: RunOptions,
    /// Where the test set is (`None`: the usual places).
    pub data_dir: Option<PathBuf>,
    /// Test images per class of the final comparison (a class-balanced subset).
    pub final_per_class: usize,
}

/// How far a run went.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// Stopped by `options.stop_after` before the last epoch; continue with `resume`.
    Stopped {
        /// Epochs done so far.
        epochs_done: usize,
    },
    /// Done: teacher and student compared (also in `final.json`).
    Finished(Box<Comparison>),
}

/// Fashion-MNIST for one channel, CIFAR-10 for three: the test set the run reports on.
fn test_set_of(config: &FerdConfig) -> DatasetName {
    if config.image.channels == 3 {
        DatasetName::Cifar10
    } else {
        DatasetName::FashionMnist
    }
}

/// The student of [`Distillation::new`]: half the bundled teacher's width.
const DEFAULT_STUDENT: Architecture = Architecture::SmallCnn { width: 8 };
/// The bundled teacher's architecture.
const BUNDLED_TEACHER_ARCH: Architecture = Architecture::SmallCnn { width: 16 };
/// Test images per class of the final comparison by default: 1,000 images keep the quickstart
/// within its minutes (PGD-20 on all 10,000 Fashion-MNIST test images adds about five on 2
/// cores).
pub const FINAL_PER_CLASS: usize = 100;

impl Distillation {
    /// A run of `config` from the bundled Fashion-MNIST teacher to a `small-cnn-8` student,
    /// reported on [`FINAL_PER_CLASS`] test images per class: the quickstart's run. Every
    /// field is public, to change any of them.
    pub fn new(config: FerdConfig, options: RunOptions) -> Self {
        Self {
            config,
            teacher_arch: BUNDLED_TEACHER_ARCH,
            teacher_weights: BUNDLED_TEACHER.into(),
            pytorch: false,
            renames: Vec::new(),
            student_arch: DEFAULT_STUDENT,
            options,
            data_dir: None,
            final_per_class: FINAL_PER_CLASS,
        }
    }

    /// Runs it, sending progress to `observer`.
    pub fn run(&self, observer: &mut dyn Observer<Event>) -> Result<Outcome, Error> {
        let started = Instant::now();
        let config = &self.config;
        let device = &self.options.device;
        let (channels, classes) = (config.image.channels, config.num_classes);
        // Reported on only: the run keeps its last student (data-free).
        let test = load(test_set_of(config), Split::Test, self.data_dir.as_deref())?;
        let mut teacher = self.teacher_arch.build(channels, classes, device);
        if self.pytorch {
            load_pytorch_with(&mut teacher, &self.teacher_weights, &self.renames)
                .map_err(|e| self.teacher_arch.explain(e))?;
        } else {
            load_weights(&mut teacher, &self.teacher_weights)?;
        }
        let student = initialize(
            self.student_arch
                .build(channels, classes, &device.clone().autodiff()),
            Init::PyTorch,
            config.seed,
        );
        let distilled = distill(
            &teacher,
            student,
            config,
            Some(&test),
            &self.options,
            observer,
        )?;
        if distilled.history.len() < config.epochs {
            return Ok(Outcome::Stopped {
                epochs_done: distilled.history.len(),
            });
        }
        // The student `distill` returns, frozen: what it saved as `student.bpk`.
        let student = distilled.student.valid();
        // For PyTorch and RobustBench tooling: `load_state_dict` reads it as it is.
        save_pytorch(&student, self.options.dir.join("student.safetensors"))?;
        let mut comparison = crate::compare::teacher_and_student(
            &teacher,
            &student,
            &test.balanced_subset(self.final_per_class),
            config,
            device,
            started.elapsed().as_secs_f64(),
        )?;
        comparison.teacher.architecture = Some(self.teacher_arch.to_string());
        comparison.student.architecture = Some(self.student_arch.to_string());
        let path = self.options.dir.join("final.json");
        let json = serde_json::to_string_pretty(&comparison).expect("a comparison serializes");
        std::fs::write(&path, json).map_err(|e| Error::Write {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        Ok(Outcome::Finished(Box::new(comparison)))
    }
}
