//! # ferd
//!
//! Data-free adversarial robustness distillation with robust fairness (FERD, arXiv 2509.20793)
//! on Burn. This crate is the facade: it re-exports the workspace's crates under short names.
//!
//! - [`core`]: devices, losses, class reweighting, class-wise metrics (`ferd-core`)
//! - [`kernels`]: ferd's CPU kernels behind Burn-compatible ops (`ferd-kernels`)
//! - [`data`]: dataset readers, batching, augmentation (`ferd-data`)
//! - [`models`], [`attacks`], [`distill`]: the classifier zoo, the attack suite and the training
//!   loops (`ferd-models`, `ferd-attacks`, `ferd-distill`)
//! - [`images`]: image grids written as PNG, for looking at datasets and synthesized samples
//! - [`pipeline`]: a whole FERD run from files (teacher weights in, student and the
//!   teacher-student comparison out), as `ferd distill` and the quickstart run it
//! - [`compare`]: teacher and student side by side at the end of a distillation
//! - [`report`]: Markdown, CSV and SVG charts from evaluation reports and run folders
//!
//! Backends are cargo features (`flex`, the default; `wgpu`; `cuda`; `ndarray`) and the device is
//! chosen at run time with [`core::DeviceSpec`].
//!
//! # Examples
//!
//! AutoAttack, class by class, on the bundled Fashion-MNIST teacher (here on one test image per
//! class; `balanced_subset(1000)` is the whole test set), and the report as Markdown, CSV and
//! SVG charts:
//!
//! ```
//! use ferd::prelude::*;
//!
//! let device = DeviceSpec::Flex.device()?;
//! let test = load(DatasetName::FashionMnist, Split::Test, None)?.balanced_subset(1);
//! let mut model = Architecture::SmallCnn { width: 16 }.build(1, 10, &device);
//! load_weights(&mut model, "models/fmnist-small-teacher/teacher.bpk")?;
//! let (aa, pgd) = (AutoAttack::standard(0.1), Pgd::new(0.1, 0.01, 20));
//! let report = evaluate(&Frozen::new(&model), &test, &[&aa, &pgd], &device, &EvalConfig::default())?;
//! write_evaluation(&[Entry::new("teacher", &report)], std::env::temp_dir().join("ferd-doc"))?;
//! assert!(report.attacks[0].robust.overall <= report.clean.overall);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub use ferd_attacks as attacks;
pub use ferd_core as core;
pub use ferd_data as data;
pub use ferd_distill as distill;
pub use ferd_kernels as kernels;
pub use ferd_models as models;

#[cfg(feature = "mimalloc")]
pub mod allocator;
pub mod compare;
pub mod images;
pub mod pipeline;
pub mod report;

/// The names most programs need, in one import: `use ferd::prelude::*;`.
pub mod prelude {
    pub use crate::attacks::{
        Attack, AutoAttack, EvalConfig, EvalEvent, EvaluationReport, Frozen, Pgd, attack_by_name,
        evaluate, evaluate_observed,
    };
    pub use crate::core::DeviceSpec;
    pub use crate::data::{DatasetName, ImageDataset, Split, load};
    pub use crate::distill::{
        Budget, Event, FerdConfig, FerdMethod, RunOptions, TeacherPreset, distill, train_teacher,
    };
    pub use crate::models::zoo::{AnyClassifier, Architecture};
    pub use crate::models::{
        Classifier, KeyRename, load_pytorch, load_pytorch_with, load_weights, save_pytorch,
        save_weights,
    };
    pub use crate::pipeline::{Distillation, Outcome};
    pub use crate::report::{Entry, RunReport, markdown, write_evaluation};
}
