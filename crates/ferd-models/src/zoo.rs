//! Models by name, for command lines and configuration files: `resnet18`, `resnet34`,
//! `preact-resnet18`, `preact-resnet34` (each with `-wW` for a stem width `W` other than the
//! paper's 64: `resnet18-w16`), `wrn-D-K` (e.g. `wrn-34-10`), `mobilenet-v2`, `small-cnn[-W]`,
//! `small-resnet[-W]` (width `W`, default 32 and 16).
//!
//! A checkpoint that does not fit its architecture gets a fitting name where one exists:
//! [`Architecture::refit`] reads the first shape that differs.

use std::str::FromStr;

use burn::module::Module;
use burn::tensor::{Device, Tensor};

use crate::classifier::{Classifier, Tap};
use crate::error::{ModelError, ShapeDifference};
use crate::mobilenet_v2::{MobileNetV2, MobileNetV2Config};
use crate::preact_resnet::PreActResNet;
use crate::resnet::{ResNet, ResNetConfig};
use crate::small_cnn::{SmallCnn, SmallCnnConfig};
use crate::weights::PyTorchLayout;
use crate::wide_resnet::{WideResNet, WideResNetConfig};

/// The names [`Architecture::from_str`] accepts, for error messages and help texts.
pub const KNOWN: &str = "resnet18[-wW], resnet34[-wW], preact-resnet18[-wW], preact-resnet34[-wW], wrn-D-K (e.g. wrn-34-10), mobilenet-v2, small-cnn[-W], small-resnet[-W]";

/// The stem and first-stage width of the ResNets of the papers (and of RobustBench's entries).
pub const RESNET_WIDTH: usize = 64;

/// A named architecture.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Architecture {
    /// CIFAR ResNet-18.
    ResNet18 {
        /// Stem and first-stage channels ([`RESNET_WIDTH`] in the paper's).
        width: usize,
    },
    /// CIFAR ResNet-34.
    ResNet34 {
        /// Stem and first-stage channels ([`RESNET_WIDTH`] in the paper's).
        width: usize,
    },
    /// PreAct ResNet-18.
    PreActResNet18 {
        /// Stem and first-stage channels ([`RESNET_WIDTH`] in the paper's).
        width: usize,
    },
    /// PreAct ResNet-34.
    PreActResNet34 {
        /// Stem and first-stage channels ([`RESNET_WIDTH`] in the paper's).
        width: usize,
    },
    /// WideResNet of the given depth and widen factor.
    WideResNet {
        /// Depth `6n + 4`.
        depth: usize,
        /// Widen factor.
        widen: usize,
    },
    /// CIFAR MobileNet-V2.
    MobileNetV2,
    /// The small 28x28 CNN of the given width.
    SmallCnn {
        /// First-stage channels.
        width: usize,
    },
    /// The small 28x28 ResNet of the given width.
    SmallResNet {
        /// First-stage channels.
        width: usize,
    },
}

impl FromStr for Architecture {
    type Err = ModelError;

    fn from_str(name: &str) -> Result<Self, ModelError> {
        let lower = name.trim().to_ascii_lowercase().replace('_', "-");
        let unknown = || ModelError::UnknownArchitecture {
            name: name.to_string(),
            known: KNOWN,
        };
        let width = |rest: &str, default: usize| match rest {
            "" => Ok(default),
            _ => rest
                .strip_prefix('-')
                .and_then(|w| w.parse().ok())
                .filter(|&w| w > 0)
                .ok_or_else(unknown),
        };
        // A ResNet's stem width: `-wW` after the family's name.
        let (family, resnet_width) = match lower.rsplit_once("-w") {
            Some((family, w)) if family.contains("resnet") && !family.starts_with("small") => (
                family,
                w.parse().ok().filter(|&w| w > 0).ok_or_else(unknown)?,
            ),
            _ => (lower.as_str(), RESNET_WIDTH),
        };
        match family {
            "resnet18" | "resnet-18" => Ok(Self::ResNet18 {
                width: resnet_width,
            }),
            "resnet34" | "resnet-34" => Ok(Self::ResNet34 {
                width: resnet_width,
            }),
            "preact-resnet18" | "preactresnet18" => Ok(Self::PreActResNet18 {
                width: resnet_width,
            }),
            "preact-resnet34" | "preactresnet34" => Ok(Self::PreActResNet34 {
                width: resnet_width,
            }),
            "mobilenet-v2" | "mobilenetv2" => Ok(Self::MobileNetV2),
            _ => {
                if let Some(rest) = lower.strip_prefix("small-cnn") {
                    return Ok(Self::SmallCnn {
                        width: width(rest, 32)?,
                    });
                }
                if let Some(rest) = lower.strip_prefix("small-resnet") {
                    return Ok(Self::SmallResNet {
                        width: width(rest, 16)?,
                    });
                }
                let wrn = lower
                    .strip_prefix("wrn-")
                    .and_then(|rest| rest.split_once('-'));
                let (depth, widen) = wrn.ok_or_else(unknown)?;
                let (depth, widen) = (
                    depth.parse().map_err(|_| unknown())?,
                    widen.parse().map_err(|_| unknown())?,
                );
                if depth < 10 || (depth - 4) % 6 != 0 || widen == 0 {
                    return Err(unknown());
                }
                Ok(Self::WideResNet { depth, widen })
            }
        }
    }
}

/// The name `FromStr` reads back: `resnet18`, `wrn-34-10`, `small-cnn-16`, ...
impl std::fmt::Display for Architecture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match *self {
            Self::ResNet18 { width } => write!(f, "resnet18{}", width_suffix(width)),
            Self::ResNet34 { width } => write!(f, "resnet34{}", width_suffix(width)),
            Self::PreActResNet18 { width } => write!(f, "preact-resnet18{}", width_suffix(width)),
            Self::PreActResNet34 { width } => write!(f, "preact-resnet34{}", width_suffix(width)),
            Self::WideResNet { depth, widen } => write!(f, "wrn-{depth}-{widen}"),
            Self::MobileNetV2 => write!(f, "mobilenet-v2"),
            Self::SmallCnn { width } => write!(f, "small-cnn-{width}"),
            Self::SmallResNet { width } => write!(f, "small-resnet-{width}"),
        }
    }
}

/// `-wW` for a ResNet whose width is not the paper's, else nothing.
fn width_suffix(width: usize) -> String {
    match width {
        RESNET_WIDTH => String::new(),
        _ => format!("-w{width}"),
    }
}

impl Architecture {
    /// ResNet-18 at the paper's width.
    pub const RESNET18: Self = Self::ResNet18 {
        width: RESNET_WIDTH,
    };
    /// ResNet-34 at the paper's width.
    pub const RESNET34: Self = Self::ResNet34 {
        width: RESNET_WIDTH,
    };
    /// PreAct ResNet-18 at the paper's width.
    pub const PREACT_RESNET18: Self = Self::PreActResNet18 {
        width: RESNET_WIDTH,
    };
    /// PreAct ResNet-34 at the paper's width.
    pub const PREACT_RESNET34: Self = Self::PreActResNet34 {
        width: RESNET_WIDTH,
    };

    /// The same family at the width a checkpoint's shapes imply, with the reason, where the
    /// stem tells it: a ResNet's (or small net's) `conv1.weight` of `[8, 3, 3, 3]` gives
    /// `resnet18-w8`, a WideResNet's final `bn1.weight` of `[640]` gives `wrn-D-10`. `None`
    /// where the differences say nothing about the width, or the width is already this one.
    ///
    /// # Examples
    /// ```
    /// use ferd_models::ShapeDifference;
    /// use ferd_models::zoo::Architecture;
    ///
    /// let stem = ShapeDifference {
    ///     name: "conv1.weight".into(),
    ///     expected: vec![64, 3, 3, 3],
    ///     found: vec![16, 3, 3, 3],
    /// };
    /// let (fits, why) = Architecture::RESNET18.refit(&[stem]).unwrap();
    /// assert_eq!(fits.to_string(), "resnet18-w16");
    /// assert!(why.contains("16 output channels"));
    /// ```
    pub fn refit(&self, differences: &[ShapeDifference]) -> Option<(Architecture, String)> {
        let found = |name: &str| {
            differences
                .iter()
                .find(|d| d.name == name)
                .and_then(|d| d.found.first().copied())
        };
        let fits = match *self {
            // The last stage has 64 k channels.
            Self::WideResNet { depth, .. } => found("bn1.weight")
                .filter(|c| c % 64 == 0 && *c > 0)
                .map(|c| {
                    let widen = c / 64;
                    let why = format!("its last BatchNorm has {c} channels, 64 x {widen}");
                    (Self::WideResNet { depth, widen }, why)
                }),
            _ => found("conv1.weight").filter(|&w| w > 0).and_then(|width| {
                let why = format!("its conv1 has {width} output channels");
                Some((self.with_stem_width(width)?, why))
            }),
        };
        fits.filter(|(fits, _)| fits != self)
    }

    /// The same family with a stem (and first stage) of `width` channels, for the families whose
    /// name carries that width; `None` for the others.
    fn with_stem_width(&self, width: usize) -> Option<Self> {
        match *self {
            Self::ResNet18 { .. } => Some(Self::ResNet18 { width }),
            Self::ResNet34 { .. } => Some(Self::ResNet34 { width }),
            Self::PreActResNet18 { .. } => Some(Self::PreActResNet18 { width }),
            Self::PreActResNet34 { .. } => Some(Self::PreActResNet34 { width }),
            Self::SmallResNet { .. } => Some(Self::SmallResNet { width }),
            Self::WideResNet { .. } | Self::MobileNetV2 | Self::SmallCnn { .. } => None,
        }
    }

    /// `error` with the architecture its checkpoint fits ([`Architecture::refit`]), when it is
    /// a [`ModelError::Mismatch`] of a model built as `self`; any other error unchanged.
    pub fn explain(&self, error: ModelError) -> ModelError {
        match error {
            ModelError::Mismatch {
                path,
                problems,
                differences,
                fits: None,
            } => {
                let fits = self
                    .refit(&differences)
                    .map(|(arch, why)| format!("{arch} ({why})"));
                ModelError::Mismatch {
                    path,
                    problems,
                    differences,
                    fits,
                }
            }
            other => other,
        }
    }

    /// The name papers and RobustBench's leaderboard use: `ResNet-18`, `WideResNet-34-10`,
    /// `PreActResNet-18`, `MobileNet-V2` (ferd's small nets: `SmallCNN-16`, `SmallResNet-16`).
    pub fn paper_name(&self) -> String {
        match *self {
            Self::ResNet18 { width } => format!("ResNet-18{}", width_suffix(width)),
            Self::ResNet34 { width } => format!("ResNet-34{}", width_suffix(width)),
            Self::PreActResNet18 { width } => format!("PreActResNet-18{}", width_suffix(width)),
            Self::PreActResNet34 { width } => format!("PreActResNet-34{}", width_suffix(width)),
            Self::WideResNet { depth, widen } => format!("WideResNet-{depth}-{widen}"),
            Self::MobileNetV2 => "MobileNet-V2".into(),
            Self::SmallCnn { width } => format!("SmallCNN-{width}"),
            Self::SmallResNet { width } => format!("SmallResNet-{width}"),
        }
    }

    /// Builds the model for images of `in_channels` channels and `num_classes` classes.
    pub fn build(&self, in_channels: usize, num_classes: usize, device: &Device) -> AnyClassifier {
        match *self {
            Self::ResNet18 { width } => AnyClassifier::ResNet(
                ResNetConfig::resnet18(num_classes)
                    .with_base_width(width)
                    .with_in_channels(in_channels)
                    .init(device),
            ),
            Self::ResNet34 { width } => AnyClassifier::ResNet(
                ResNetConfig::resnet34(num_classes)
                    .with_base_width(width)
                    .with_in_channels(in_channels)
                    .init(device),
            ),
            Self::PreActResNet18 { width } => AnyClassifier::PreActResNet(
                ResNetConfig::resnet18(num_classes)
                    .with_base_width(width)
                    .with_in_channels(in_channels)
                    .init_preact(device),
            ),
            Self::PreActResNet34 { width } => AnyClassifier::PreActResNet(
                ResNetConfig::resnet34(num_classes)
                    .with_base_width(width)
                    .with_in_channels(in_channels)
                    .init_preact(device),
            ),
            Self::WideResNet { depth, widen } => AnyClassifier::WideResNet(
                WideResNetConfig::new(depth, widen)
                    .with_in_channels(in_channels)
                    .with_num_classes(num_classes)
                    .init(device),
            ),
            Self::MobileNetV2 => AnyClassifier::MobileNetV2(
                MobileNetV2Config::new()
                    .with_in_channels(in_channels)
                    .with_num_classes(num_classes)
                    .init(device),
            ),
            Self::SmallCnn { width } => AnyClassifier::SmallCnn(
                SmallCnnConfig::new()
                    .with_width(width)
                    .with_in_channels(in_channels)
                    .with_num_classes(num_classes)
                    .init(device),
            ),
            Self::SmallResNet { width } => AnyClassifier::ResNet(
                ResNetConfig::small(width, num_classes)
                    .with_in_channels(in_channels)
                    .init(device),
            ),
        }
    }
}

/// Any of ferd's classifiers, chosen at run time. (Variants differ in size; a model is built
/// once and moved rarely, so they are not boxed.)
#[derive(Module, Debug)]
#[allow(clippy::large_enum_variant)]
pub enum AnyClassifier {
    /// A CIFAR or small ResNet.
    ResNet(ResNet),
    /// A PreAct ResNet.
    PreActResNet(PreActResNet),
    /// A WideResNet.
    WideResNet(WideResNet),
    /// A MobileNet-V2.
    MobileNetV2(MobileNetV2),
    /// A small CNN.
    SmallCnn(SmallCnn),
}

/// Runs `$body` with `$m` bound to the inner model, whatever the variant.
macro_rules! each_variant {
    ($value:expr, $m:ident => $body:expr) => {
        match $value {
            AnyClassifier::ResNet($m) => $body,
            AnyClassifier::PreActResNet($m) => $body,
            AnyClassifier::WideResNet($m) => $body,
            AnyClassifier::MobileNetV2($m) => $body,
            AnyClassifier::SmallCnn($m) => $body,
        }
    };
}

impl Classifier for AnyClassifier {
    fn features_tapped(&self, x: Tensor<4>, tap: &mut Tap) -> Tensor<4> {
        each_variant!(self, m => m.features_tapped(x, tap))
    }

    fn head_tapped(&self, z: Tensor<4>, tap: &mut Tap) -> Tensor<2> {
        each_variant!(self, m => m.head_tapped(z, tap))
    }

    fn num_classes(&self) -> usize {
        each_variant!(self, m => m.num_classes())
    }
}

impl PyTorchLayout for AnyClassifier {
    fn pytorch_renames(&self) -> &'static [(&'static str, &'static str)] {
        each_variant!(self, m => m.pytorch_renames())
    }

    fn pytorch_aliases(&self) -> &'static [(&'static str, &'static str)] {
        each_variant!(self, m => m.pytorch_aliases())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_names() {
        assert_eq!(
            "ResNet18".parse::<Architecture>().unwrap(),
            Architecture::RESNET18
        );
        assert_eq!(
            "resnet18-w16".parse::<Architecture>().unwrap(),
            Architecture::ResNet18 { width: 16 }
        );
        assert_eq!(
            "PreAct-ResNet34-W32".parse::<Architecture>().unwrap(),
            Architecture::PreActResNet34 { width: 32 }
        );
        assert_eq!(
            "wrn-34-10".parse::<Architecture>().unwrap(),
            Architecture::WideResNet {
                depth: 34,
                widen: 10
            }
        );
        assert_eq!(
            "small-cnn".parse::<Architecture>().unwrap(),
            Architecture::SmallCnn { width: 32 }
        );
        assert_eq!(
            "small_resnet-8".parse::<Architecture>().unwrap(),
            Architecture::SmallResNet { width: 8 }
        );
        assert_eq!(
            "mobilenet-v2".parse::<Architecture>().unwrap(),
            Architecture::MobileNetV2
        );
    }

    #[test]
    fn displayed_names_parse_back() {
        for arch in [
            Architecture::RESNET18,
            Architecture::ResNet18 { width: 16 },
            Architecture::RESNET34,
            Architecture::PREACT_RESNET18,
            Architecture::PreActResNet34 { width: 8 },
            Architecture::WideResNet {
                depth: 28,
                widen: 10,
            },
            Architecture::MobileNetV2,
            Architecture::SmallCnn { width: 8 },
            Architecture::SmallResNet { width: 4 },
        ] {
            assert_eq!(arch.to_string().parse::<Architecture>().unwrap(), arch);
        }
        let wrn = Architecture::WideResNet {
            depth: 34,
            widen: 10,
        };
        assert_eq!(wrn.paper_name(), "WideResNet-34-10");
        assert_eq!(Architecture::RESNET18.to_string(), "resnet18");
        assert_eq!(
            Architecture::ResNet18 { width: 16 }.to_string(),
            "resnet18-w16"
        );
    }

    #[test]
    fn unknown_names_are_errors_listing_the_known_ones() {
        for bad in [
            "resnet50",
            "resnet18-w0",
            "resnet18-wx",
            "mobilenet-v2-w2",
            "small-cnn-w",
            "wrn-33-10",
            "wrn-34",
            "small-cnn-0",
            "small-cnnx",
            "",
        ] {
            let err = bad.parse::<Architecture>().unwrap_err();
            assert!(err.to_string().contains("wrn-D-K"), "{bad}: {err}");
        }
    }

    #[test]
    fn built_models_classify() {
        let device = ferd_core::device::test_device();
        let model = "small-resnet-4"
            .parse::<Architecture>()
            .unwrap()
            .build(1, 7, &device);
        let logits = model.forward(Tensor::zeros([2, 1, 28, 28], &device));
        assert_eq!(logits.dims(), [2, 7]);
        assert_eq!(model.pytorch_renames().len(), 2);
    }
}
