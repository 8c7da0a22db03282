//! Every random draw of a FERD run, named by where it happens ([`Site`]) and served by a
//! [`Draws`]: [`Seeded`] derives each site's numbers from the run's seed (the default, and what
//! makes a resumed run equal an uninterrupted one), [`Recorded`] plays back numbers recorded
//! elsewhere, e.g. from the official code (`tools/peer/official_lockstep.py`), which is how ferd
//! is run in lockstep with it.
//!
//! Each site consumes its numbers in one documented form, so that another implementation's
//! draws can be converted into it:
//!
//! | site | numbers | consumed by |
//! |---|---|---|
//! | [`Site::Labels`] | one uniform per label, inverse CDF, then sorted | `ferd_core::reweighting::sample_labels_from` |
//! | [`Site::Latent`] | `B nz` standard normals | the latent `z` |
//! | [`Site::SynthesisAugment`] | three uniforms per sample: row, column, flip | `ferd_data::Augment::apply_from` |
//! | [`Site::Bottleneck`] | `B C` standard normals per inner step | `fairness_aware::noise_scale` |
//! | [`Site::FragilityStart`] | one uniform per pixel, mapped to `[-eps, eps)` | `ferd_attacks::Pgd::perturb_from` |
//! | [`Site::BankOrder`] | `N` uniforms per pass over the bank (the order is their argsort) | `Bank::epoch_batches` |
//! | [`Site::StudentAugment`] | as [`Site::SynthesisAugment`] | `ferd_data::Augment::apply_from` |
//! | [`Site::UtaeStart`] | one standard normal per pixel | `uniform_target::perturb_from` |
//!
//! The generator's initial weights are a draw too ([`Draws::generator`]).

use std::collections::HashMap;
use std::path::PathBuf;

use burn::tensor::Device;
use ferd_core::random::{Noise, Replay, mix, rng};
use ferd_models::generator::{Generator, GeneratorConfig};
use ferd_models::weights::load_pytorch;

use crate::error::{DistillError, Result};

/// Where in an epoch a random draw happens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Site {
    /// The round's labels.
    Labels,
    /// The round's latent codes.
    Latent,
    /// The augmentation of synthesis step `step`.
    SynthesisAugment {
        /// The synthesis step (0-based).
        step: usize,
    },
    /// The information bottleneck's noise at synthesis step `step`.
    Bottleneck {
        /// The synthesis step (0-based).
        step: usize,
    },
    /// The random start of the fragility PGD.
    FragilityStart,
    /// The order in which the student walks the bank this epoch.
    BankOrder,
    /// The augmentation of student step `step`.
    StudentAugment {
        /// The student step (0-based).
        step: usize,
    },
    /// The start of the Uniform-Target Adversarial Examples at student step `step`.
    UtaeStart {
        /// The student step (0-based).
        step: usize,
    },
}

impl Site {
    /// The site's name in a recording (`labels`, `g3.augment`, `s0.utae`, ...), without the
    /// epoch.
    pub fn key(self) -> String {
        match self {
            Self::Labels => "labels".into(),
            Self::Latent => "latent".into(),
            Self::SynthesisAugment { step } => format!("g{step}.augment"),
            Self::Bottleneck { step } => format!("g{step}.bottleneck"),
            Self::FragilityStart => "fragility".into(),
            Self::BankOrder => "bank".into(),
            Self::StudentAugment { step } => format!("s{step}.augment"),
            Self::UtaeStart { step } => format!("s{step}.utae"),
        }
    }

    /// The site's coordinates for the seed mixer: a purpose and a step.
    fn coordinates(self) -> [u64; 2] {
        let (purpose, step) = match self {
            Self::Labels => (0, 0),
            Self::Latent => (1, 0),
            Self::SynthesisAugment { step } => (2, step),
            Self::Bottleneck { step } => (3, step),
            Self::FragilityStart => (4, 0),
            Self::BankOrder => (5, 0),
            Self::StudentAugment { step } => (6, step),
            Self::UtaeStart { step } => (7, step),
        };
        [purpose, step as u64]
    }
}

/// The source of a run's random draws.
pub trait Draws {
    /// The numbers of `site` in `epoch` (0-based).
    fn noise(&mut self, epoch: usize, site: Site) -> Box<dyn Noise>;

    /// The generator a synthesis round of `epoch` starts from, of the shape `config` gives.
    fn generator(
        &mut self,
        epoch: usize,
        config: &GeneratorConfig,
        device: &Device,
    ) -> Result<Generator>;
}

/// Draws derived from a seed and the site's coordinates (`ferd_core::random::mix`): no state,
/// so a resumed run draws what an uninterrupted one would.
#[derive(Debug, Clone, Copy)]
pub struct Seeded {
    seed: u64,
}

/// The seed mixer's purpose coordinate of the generator's initialization.
const GENERATOR_PURPOSE: u64 = 8;

impl Seeded {
    /// The draws of a run seeded with `seed`.
    pub fn new(seed: u64) -> Self {
        Self { seed }
    }

    /// The seed of `site` in `epoch`, for draws that take a seed rather than a [`Noise`].
    pub fn seed(&self, epoch: usize, site: Site) -> u64 {
        let [purpose, step] = site.coordinates();
        mix(self.seed, &[epoch as u64, purpose, step])
    }
}

impl Draws for Seeded {
    fn noise(&mut self, epoch: usize, site: Site) -> Box<dyn Noise> {
        Box::new(rng(self.seed(epoch, site)))
    }

    fn generator(
        &mut self,
        epoch: usize,
        config: &GeneratorConfig,
        device: &Device,
    ) -> Result<Generator> {
        Ok(config.init(device, mix(self.seed, &[epoch as u64, GENERATOR_PURPOSE])))
    }
}

/// Draws recorded elsewhere: per epoch and site the numbers, and per epoch the generator's
/// initial weights as a PyTorch state dict (`.safetensors` or `.pt`, in the layout of the
/// official `models/generator.py`).
#[derive(Debug, Clone, Default)]
pub struct Recorded {
    numbers: HashMap<(usize, String), Vec<f32>>,
    generators: HashMap<usize, PathBuf>,
}

impl Recorded {
    /// An empty recording.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records the numbers of `site` (its [`Site::key`]) in `epoch`.
    pub fn insert(&mut self, epoch: usize, site: &str, numbers: Vec<f32>) {
        self.numbers.insert((epoch, site.to_string()), numbers);
    }

    /// Records the initial generator of `epoch`'s round.
    pub fn insert_generator(&mut self, epoch: usize, state_dict: impl Into<PathBuf>) {
        self.generators.insert(epoch, state_dict.into());
    }
}

impl Draws for Recorded {
    /// # Panics
    /// When nothing was recorded for the site, or when the site asks for more numbers than
    /// were recorded: the recording does not describe this run.
    fn noise(&mut self, epoch: usize, site: Site) -> Box<dyn Noise> {
        let key = (epoch, site.key());
        let numbers = self.numbers.get(&key).unwrap_or_else(|| {
            panic!("no draws recorded for epoch {epoch}, site {}", key.1);
        });
        Box::new(Replay::new(numbers.clone()))
    }

    fn generator(
        &mut self,
        epoch: usize,
        config: &GeneratorConfig,
        device: &Device,
    ) -> Result<Generator> {
        let path = self.generators.get(&epoch).ok_or_else(|| {
            DistillError::Config(format!("no initial generator recorded for epoch {epoch}"))
        })?;
        let mut generator = config.init(device, 0);
        load_pytorch(&mut generator, path)?;
        Ok(generator)
    }
}
