//! Classifiers and the generator of FERD, with the two capabilities FERD needs beyond a plain
//! forward: a split forward (`features`, then `head`) and the BatchNorm input statistics of the
//! DeepInversion loss ([`classifier::Tap`]).
//!
//! Architectures follow the PyTorch definitions FERD's users already have (the CIFAR ResNets of
//! the DFHL/FERD code, RobustBench's WideResNet), field names included, so that state dicts map
//! one to one. Every model takes images in `[0, 1]`; an optional per-channel normalization lives
//! inside the model.

pub mod classifier;
pub mod error;
pub mod generator;
pub mod init;
pub mod layers;
pub mod mobilenet_v2;
pub mod preact_resnet;
pub mod resnet;
pub mod small_cnn;
pub mod weights;
pub mod wide_resnet;
pub mod zoo;

pub use classifier::{BnStats, Classifier, Tap};
pub use error::{ModelError, ShapeDifference};
pub use layers::Normalization;
pub use weights::{
    KeyRename, PyTorchLayout, load_pytorch, load_pytorch_with, load_weights, save_pytorch,
    save_weights,
};
pub use zoo::{AnyClassifier, Architecture};
