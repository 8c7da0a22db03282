//! Named teacher recipes: the dataset, the architecture and the [`TeacherConfig`] of a robust
//! teacher, used by `ferd train-teacher --preset NAME` and the `train_teacher` example.

use std::fmt;
use std::str::FromStr;

use ferd_data::DatasetName;
use ferd_models::zoo::Architecture;

use super::{TeacherConfig, TeacherMethod};
use crate::error::DistillError;
use crate::schedule::LrSchedule;

/// A teacher recipe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TeacherPreset {
    /// `small-cnn-16` on the Fashion-MNIST training set: fast adversarial training at eps 0.1
    /// (FGSM step 0.125 from a random start), 8 epochs, SGD 0.05 with cosine decay, batch 128,
    /// crops with padding 2, no flips. The bundled teacher (`models/fmnist-small-teacher`) was
    /// trained with it.
    FmnistSmall,
    /// ResNet-18 on CIFAR-10 with Rice et al.'s PGD-AT recipe: 200 epochs, SGD 0.1 decayed x0.1
    /// at epochs 100 and 150, momentum 0.9, weight decay 5e-4, batch 128, PGD-10 at 8/255 with
    /// step 2/255, crops with padding 4 and flips; best epoch by PGD-20 accuracy on 1,000
    /// held-out training images.
    Cifar10Resnet18Pgdat,
}

/// What a recipe trains, on what.
#[derive(Debug, Clone, PartialEq)]
pub struct TeacherRecipe {
    /// The training set.
    pub dataset: DatasetName,
    /// The architecture.
    pub arch: Architecture,
    /// The training configuration.
    pub config: TeacherConfig,
}

impl TeacherPreset {
    /// Every preset.
    pub const ALL: [Self; 2] = [Self::FmnistSmall, Self::Cifar10Resnet18Pgdat];

    /// The preset's name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Self::FmnistSmall => "fmnist-small",
            Self::Cifar10Resnet18Pgdat => "cifar10-resnet18-pgdat",
        }
    }

    /// The recipe.
    ///
    /// # Examples
    /// ```
    /// use ferd_distill::TeacherPreset;
    ///
    /// let recipe = TeacherPreset::FmnistSmall.recipe();
    /// assert_eq!(recipe.config.epochs, 8);
    /// ```
    pub fn recipe(self) -> TeacherRecipe {
        match self {
            Self::FmnistSmall => TeacherRecipe {
                dataset: DatasetName::FashionMnist,
                arch: Architecture::SmallCnn { width: 16 },
                config: TeacherConfig {
                    method: TeacherMethod::FastAt {
                        eps: 0.1,
                        alpha: 0.125,
                    },
                    epochs: 8,
                    batch_size: 128,
                    lr: 0.05,
                    momentum: 0.9,
                    nesterov: false,
                    weight_decay: 5e-4,
                    schedule: LrSchedule::Cosine,
                    crop_padding: 2,
                    flip: false,
                    seed: 0,
                    held_out_per_class: 100,
                    eval_eps: 0.1,
                    eval_steps: 20,
                },
            },
            Self::Cifar10Resnet18Pgdat => TeacherRecipe {
                dataset: DatasetName::Cifar10,
                arch: Architecture::RESNET18,
                config: TeacherConfig {
                    method: TeacherMethod::PgdAt {
                        eps: 8.0 / 255.0,
                        alpha: 2.0 / 255.0,
                        steps: 10,
                    },
                    epochs: 200,
                    batch_size: 128,
                    lr: 0.1,
                    momentum: 0.9,
                    nesterov: false,
                    weight_decay: 5e-4,
                    schedule: LrSchedule::MultiStep {
                        milestones: vec![100, 150],
                        gamma: 0.1,
                    },
                    crop_padding: 4,
                    flip: true,
                    seed: 0,
                    held_out_per_class: 100,
                    eval_eps: 8.0 / 255.0,
                    eval_steps: 20,
                },
            },
        }
    }
}

impl FromStr for TeacherPreset {
    type Err = DistillError;

    fn from_str(name: &str) -> Result<Self, DistillError> {
        Self::ALL
            .into_iter()
            .find(|p| p.name() == name.trim())
            .ok_or_else(|| {
                DistillError::Config(format!(
                    "unknown teacher preset `{name}`; known: {}",
                    Self::ALL.map(Self::name).join(", ")
                ))
            })
    }
}

impl fmt::Display for TeacherPreset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_unknown_names_list_the_known_ones() {
        for preset in TeacherPreset::ALL {
            assert_eq!(preset.name().parse::<TeacherPreset>().unwrap(), preset);
        }
        let err = "mnist".parse::<TeacherPreset>().unwrap_err().to_string();
        assert!(err.contains("fmnist-small"), "{err}");
    }
}
