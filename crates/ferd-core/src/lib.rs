//! Core of ferd: device selection, the losses of FERD and of the attacks, robustness-guided class
//! reweighting and class-wise robustness metrics.
//!
//! Everything here is backend-agnostic: tensors carry their backend in their [`Device`]
//! (Burn 0.22), chosen at run time with [`device::DeviceSpec`].
//!
//! [`Device`]: burn::tensor::Device

pub mod device;
pub mod error;
pub mod losses;
pub mod metrics;
pub mod progress;
pub mod reweighting;

pub use device::DeviceSpec;
pub use error::CoreError;
