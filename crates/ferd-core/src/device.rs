//! Device selection in one place.
//!
//! A device is named by a short string — `flex`, `ndarray`, `wgpu`, `wgpu:N`, `wgpu:cpu`,
//! `cuda:N` — parsed into a [`DeviceSpec`], then turned into a Burn [`Device`]. A backend that
//! was not compiled in is an error naming the cargo feature that enables it.
//!
//! Tests choose their device with one switch, the environment variable [`TEST_DEVICE_VAR`]
//! (`FERD_TEST_DEVICE`, default `flex`), read by [`test_device`].

use std::fmt;
use std::str::FromStr;

use burn::tensor::Device;

use crate::error::{CoreError, Result};

/// The environment variable that selects the device of every tensor test.
pub const TEST_DEVICE_VAR: &str = "FERD_TEST_DEVICE";

/// The environment variable that runs the slow tests on every device (`FERD_SLOW_TESTS=1`).
pub const SLOW_TESTS_VAR: &str = "FERD_SLOW_TESTS";

/// A device named by the user, not yet opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceSpec {
    /// Burn's Flex backend on the CPU (feature `flex`, the default).
    Flex,
    /// Burn's NdArray backend on the CPU (feature `ndarray`; deprecated upstream and slow).
    NdArray,
    /// A wgpu adapter: the default one, the N-th discrete GPU, or the CPU adapter
    /// (e.g. Mesa's software Vulkan). Feature `wgpu`.
    Wgpu(WgpuAdapter),
    /// The N-th CUDA device (feature `cuda`).
    Cuda(usize),
}

/// Which wgpu adapter a [`DeviceSpec::Wgpu`] selects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WgpuAdapter {
    /// wgpu's own choice (high-power GPU first; a software adapter when there is nothing else).
    Default,
    /// The N-th discrete GPU.
    Discrete(usize),
    /// The CPU adapter.
    Cpu,
}

impl FromStr for DeviceSpec {
    type Err = CoreError;

    fn from_str(spec: &str) -> Result<Self> {
        let unknown = || CoreError::UnknownDevice {
            spec: spec.to_string(),
        };
        let (name, index) = match spec.trim().split_once(':') {
            Some((name, index)) => (name, Some(index)),
            None => (spec.trim(), None),
        };
        let parse_index = |index: &str| index.parse::<usize>().map_err(|_| unknown());
        match (name.to_ascii_lowercase().as_str(), index) {
            ("flex", None) => Ok(Self::Flex),
            ("ndarray", None) => Ok(Self::NdArray),
            ("wgpu", None) => Ok(Self::Wgpu(WgpuAdapter::Default)),
            ("wgpu", Some("cpu")) => Ok(Self::Wgpu(WgpuAdapter::Cpu)),
            ("wgpu", Some(index)) => Ok(Self::Wgpu(WgpuAdapter::Discrete(parse_index(index)?))),
            ("cuda", None) => Ok(Self::Cuda(0)),
            ("cuda", Some(index)) => Ok(Self::Cuda(parse_index(index)?)),
            _ => Err(unknown()),
        }
    }
}

impl fmt::Display for DeviceSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Flex => write!(f, "flex"),
            Self::NdArray => write!(f, "ndarray"),
            Self::Wgpu(WgpuAdapter::Default) => write!(f, "wgpu"),
            Self::Wgpu(WgpuAdapter::Discrete(index)) => write!(f, "wgpu:{index}"),
            Self::Wgpu(WgpuAdapter::Cpu) => write!(f, "wgpu:cpu"),
            Self::Cuda(index) => write!(f, "cuda:{index}"),
        }
    }
}

impl DeviceSpec {
    /// The cargo feature that compiles this device's backend in.
    pub fn feature(&self) -> &'static str {
        match self {
            Self::Flex => "flex",
            Self::NdArray => "ndarray",
            Self::Wgpu(_) => "wgpu",
            Self::Cuda(_) => "cuda",
        }
    }

    /// The plain (inference) device: evaluation, attacks on frozen models, data loading.
    pub fn device(&self) -> Result<Device> {
        let not_compiled = || CoreError::BackendNotCompiled {
            spec: self.to_string(),
            feature: self.feature(),
        };
        match self {
            #[cfg(feature = "flex")]
            Self::Flex => Ok(Device::flex()),
            #[cfg(feature = "ndarray")]
            #[allow(deprecated)]
            // kept as an opt-in for comparison with older Burn setups
            Self::NdArray => Ok(Device::ndarray()),
            #[cfg(feature = "wgpu")]
            Self::Wgpu(adapter) => {
                use burn::tensor::DeviceKind;
                let kind = match adapter {
                    WgpuAdapter::Default => DeviceKind::DefaultDevice,
                    WgpuAdapter::Discrete(index) => DeviceKind::DiscreteGpu(*index),
                    WgpuAdapter::Cpu => DeviceKind::Cpu,
                };
                Ok(Device::wgpu(kind))
            }
            #[cfg(feature = "cuda")]
            Self::Cuda(index) => Ok(Device::cuda(*index)),
            #[allow(unreachable_patterns)]
            _ => Err(not_compiled()),
        }
    }

    /// The same device with autodiff enabled: what training and input-gradient attacks use.
    pub fn autodiff_device(&self) -> Result<Device> {
        Ok(self.device()?.autodiff())
    }
}

/// The device named by `FERD_TEST_DEVICE` (default `flex`).
///
/// # Panics
/// When the variable names an unknown device or one not compiled in: a test run on the wrong
/// backend must fail loudly, not fall back silently.
pub fn test_device() -> Device {
    let spec = test_device_spec();
    spec.device()
        .unwrap_or_else(|err| panic!("{TEST_DEVICE_VAR}: {err}"))
}

/// Why a slow test does not run on the test device, or `None` where it runs.
///
/// The slow tests check behaviour over many steps (AutoAttack against its reference, a
/// synthesis round, the bundled models against their cards, PGD-AT against standard training,
/// UTAE's flatter predictions, an evaluation resumed after an error): seconds to minutes on the
/// CPU, minutes each on Mesa's software Vulkan, and nothing in them depends on the backend
/// beyond the ops, which the tests that always run check on every device. They run on flex, and on the
/// other devices when [`SLOW_TESTS_VAR`] is set (on a GPU, say).
pub fn slow_test_skipped() -> Option<String> {
    let spec = test_device_spec();
    let runs = spec == DeviceSpec::Flex || std::env::var_os(SLOW_TESTS_VAR).is_some();
    (!runs).then(|| format!("slow on {spec}: set {SLOW_TESTS_VAR}=1 to run it"))
}

/// Why a test that holds on flex alone does not run on the test device, or `None` on flex.
///
/// Some tests check a promise ferd makes on the CPU only (a resumed run bit-identical to an
/// uninterrupted one), or run a child process or the `ferd` command, which compute on flex
/// whatever the test device: on another device they would only repeat the flex run. `reason`
/// says which.
pub fn flex_only_skipped(reason: &str) -> Option<String> {
    let spec = test_device_spec();
    (spec != DeviceSpec::Flex).then(|| format!("on {spec}: {reason}"))
}

/// The [`DeviceSpec`] named by `FERD_TEST_DEVICE` (default `flex`).
pub fn test_device_spec() -> DeviceSpec {
    let spec = std::env::var(TEST_DEVICE_VAR).unwrap_or_else(|_| "flex".to_string());
    spec.parse()
        .unwrap_or_else(|err| panic!("{TEST_DEVICE_VAR}: {err}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_documented_form() {
        assert_eq!("flex".parse(), Ok(DeviceSpec::Flex));
        assert_eq!("NdArray".parse(), Ok(DeviceSpec::NdArray));
        assert_eq!("wgpu".parse(), Ok(DeviceSpec::Wgpu(WgpuAdapter::Default)));
        assert_eq!(
            "wgpu:1".parse(),
            Ok(DeviceSpec::Wgpu(WgpuAdapter::Discrete(1)))
        );
        assert_eq!("wgpu:cpu".parse(), Ok(DeviceSpec::Wgpu(WgpuAdapter::Cpu)));
        assert_eq!("cuda".parse(), Ok(DeviceSpec::Cuda(0)));
        assert_eq!("cuda:3".parse(), Ok(DeviceSpec::Cuda(3)));
    }

    #[test]
    fn display_round_trips() {
        for spec in ["flex", "ndarray", "wgpu", "wgpu:2", "wgpu:cpu", "cuda:1"] {
            let parsed: DeviceSpec = spec.parse().unwrap();
            assert_eq!(parsed.to_string(), spec);
        }
    }

    #[test]
    fn rejects_unknown_devices() {
        for spec in ["gpu", "cuda:x", "flex:0", "", "wgpu:-1"] {
            let err = spec.parse::<DeviceSpec>().unwrap_err();
            assert!(
                matches!(err, CoreError::UnknownDevice { .. }),
                "{spec}: {err}"
            );
        }
    }

    #[cfg(not(feature = "cuda"))]
    #[test]
    fn missing_backend_names_its_feature() {
        let err = DeviceSpec::Cuda(0).device().unwrap_err();
        assert_eq!(
            err,
            CoreError::BackendNotCompiled {
                spec: "cuda:0".into(),
                feature: "cuda"
            }
        );
        assert!(err.to_string().contains("--features cuda"));
    }

    #[test]
    fn autodiff_device_is_autodiff() {
        let spec = test_device_spec();
        assert!(spec.autodiff_device().unwrap().is_autodiff());
        assert!(!spec.device().unwrap().is_autodiff());
    }
}
