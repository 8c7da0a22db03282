//! # ferd
//!
//! Data-free adversarial robustness distillation with robust fairness (FERD, arXiv 2509.20793)
//! on Burn. This crate is the facade: it re-exports the workspace's crates under short names.
//!
//! - [`core`]: devices, losses, class reweighting, class-wise metrics (`ferd-core`)
//! - [`data`]: dataset readers, batching, augmentation (`ferd-data`)
//! - [`models`], [`attacks`], [`distill`]: the classifier zoo, the attack suite and the training
//!   loops (`ferd-models`, `ferd-attacks`, `ferd-distill`)
//! - [`images`]: image grids written as PNG, for looking at datasets and synthesized samples
//!
//! Backends are cargo features (`flex`, the default; `wgpu`; `cuda`; `ndarray`) and the device is
//! chosen at run time with [`core::DeviceSpec`].

pub use ferd_attacks as attacks;
pub use ferd_core as core;
pub use ferd_data as data;
pub use ferd_distill as distill;
pub use ferd_models as models;

pub mod images;
