//! AutoAttack (Croce & Hein, ICML 2020): a fixed ensemble of attacks run in sequence, each on the
//! points the previous ones did not break, always from the clean images, as fra31's
//! `autoattack.py`. ferd seeds every component with the evaluation's seed (the reference
//! defaults to a time-based seed).

use std::fmt;
use std::time::Instant;

use burn::tensor::{Int, Tensor};

use crate::apgd::{Apgd, ApgdLoss, ApgdTargeted};
use crate::attack::{Attack, Stage, Staged, prepare};
use crate::error::{Result, invalid};
use crate::events::{AttackEvent, Observer, PassStarted, StageStarted};
use crate::fab::Fab;
use crate::model::Model;
use crate::rows::Robust;
use crate::square::Square;

/// Which ensemble.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    /// APGD-CE, APGD-T (9 targets), FAB-T (9 targets), Square (5000 queries).
    Standard,
    /// APGD-CE and APGD-DLR (5 restarts), FAB (5 restarts), Square, APGD-T, FAB-T.
    Plus,
    /// APGD-CE and APGD-DLR with EOT over 20 samples, for randomized models.
    Rand,
    /// A list given by the user.
    Custom,
}

/// AutoAttack: its components in order.
pub struct AutoAttack {
    eps: f32,
    version: Version,
    components: Vec<Box<dyn Attack>>,
}

impl fmt::Debug for AutoAttack {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AutoAttack")
            .field("eps", &self.eps)
            .field("version", &self.version)
            .field("components", &self.component_names())
            .finish()
    }
}

impl AutoAttack {
    /// The standard version.
    pub fn standard(eps: f32) -> Self {
        Self {
            eps,
            version: Version::Standard,
            components: vec![
                Box::new(Apgd::new(eps, ApgdLoss::CrossEntropy)),
                Box::new(ApgdTargeted::new(eps)),
                Box::new(Fab::targeted(eps)),
                Box::new(Square::new(eps)),
            ],
        }
    }

    /// The plus version.
    pub fn plus(eps: f32) -> Self {
        Self {
            eps,
            version: Version::Plus,
            components: vec![
                Box::new(Apgd::new(eps, ApgdLoss::CrossEntropy).with_restarts(5)),
                Box::new(Apgd::new(eps, ApgdLoss::Dlr).with_restarts(5)),
                Box::new(Fab::new(eps).with_restarts(5)),
                Box::new(Square::new(eps)),
                Box::new(ApgdTargeted::new(eps)),
                Box::new(Fab::targeted(eps)),
            ],
        }
    }

    /// The version for randomized models.
    pub fn rand(eps: f32) -> Self {
        Self {
            eps,
            version: Version::Rand,
            components: vec![
                Box::new(Apgd::new(eps, ApgdLoss::CrossEntropy).with_eot(20)),
                Box::new(Apgd::new(eps, ApgdLoss::Dlr).with_eot(20)),
            ],
        }
    }

    /// A custom list of attacks, each with the settings given; all must use `eps`.
    pub fn custom(eps: f32, components: Vec<Box<dyn Attack>>) -> Result<Self> {
        if components.is_empty() {
            return Err(invalid(
                "autoattack",
                "a custom version needs at least one attack",
            ));
        }
        if let Some(bad) = components.iter().find(|a| a.eps() != eps) {
            return Err(invalid(
                "autoattack",
                format!(
                    "component {} uses eps {}, the ensemble {eps}",
                    bad.name(),
                    bad.eps()
                ),
            ));
        }
        Ok(Self {
            eps,
            version: Version::Custom,
            components,
        })
    }

    /// The version.
    pub fn version(&self) -> Version {
        self.version
    }

    /// The names of the components, in order.
    pub fn component_names(&self) -> Vec<String> {
        self.components.iter().map(|a| a.name()).collect()
    }
}

impl Attack for AutoAttack {
    fn name(&self) -> String {
        match self.version {
            Version::Standard => "autoattack".to_string(),
            Version::Plus => "autoattack-plus".to_string(),
            Version::Rand => "autoattack-rand".to_string(),
            Version::Custom => format!("autoattack-custom({})", self.component_names().join("+")),
        }
    }

    fn eps(&self) -> f32 {
        self.eps
    }

    fn perturb(
        &self,
        model: &dyn Model,
        x: Tensor<4>,
        labels: Tensor<1, Int>,
        seed: u64,
    ) -> Result<Tensor<4>> {
        Ok(self.perturb_staged(model, x, labels, seed, &mut ())?.adv)
    }

    fn perturb_staged(
        &self,
        model: &dyn Model,
        x: Tensor<4>,
        labels: Tensor<1, Int>,
        seed: u64,
        observer: &mut dyn Observer<AttackEvent>,
    ) -> Result<Staged> {
        let prepared = prepare("autoattack", model, x, &labels, self.eps)?;
        let mut robust = Robust::new(&prepared.x, prepared.correct(&labels));
        let mut stages = Vec::with_capacity(self.components.len());
        for (stage, attack) in self.components.iter().enumerate() {
            observer.event(&AttackEvent::Stage(StageStarted {
                stage,
                stages: self.components.len(),
                name: attack.name(),
                points: robust.flags.iter().filter(|&&f| f).count(),
            }));
            let start = Instant::now();
            let mut passes = |p: &PassStarted| observer.event(&AttackEvent::Pass(p.clone()));
            robust.refine(model, &prepared.x, &labels, |_, xs, ys| {
                attack.perturb_observed(model, xs, ys, seed, &mut passes)
            })?;
            stages.push(Stage {
                name: attack.name(),
                robust: robust.flags.clone(),
                seconds: start.elapsed().as_secs_f64(),
            });
        }
        Ok(Staged {
            adv: robust.adv,
            stages,
        })
    }
}
