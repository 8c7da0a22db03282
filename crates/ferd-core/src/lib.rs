//! Core of ferd: device selection, the losses of FERD and of the attacks, robustness-guided class
//! reweighting, class-wise robustness metrics and backend-independent seeded randomness.
//!
//! Everything here is backend-agnostic: tensors carry their backend in their [`Device`]
//! (Burn 0.22), chosen at run time with [`device::DeviceSpec`].
//!
//! [`Device`]: burn::tensor::Device

pub mod device;
pub mod error;
pub mod losses;
pub mod metrics;
pub mod observer;
pub mod random;
pub mod reweighting;

pub use device::DeviceSpec;
pub use error::CoreError;
pub use observer::Observer;
