//! The whole-config check: every count positive, every weight and rate finite and in range,
//! the shapes consistent, each strategy's own parameters valid. A config that makes no sense is
//! an error before any work starts.

use super::{FerdConfig, StudentIkl, Threat};
use crate::error::{DistillError, Result};

impl FerdConfig {
    /// Checks every setting; a config that makes no sense is an error before any work starts.
    pub fn check(&self) -> Result<()> {
        let bad = |m: String| Err(DistillError::Config(m));
        let counts = [
            ("epochs", self.epochs),
            ("batch_size", self.batch_size),
            ("synthesis.steps", self.synthesis.steps),
            ("reweighting.pgd_steps", self.reweighting.pgd_steps),
            ("student.steps", self.student.steps),
            ("student.utae.steps", self.student.utae.steps),
            ("evaluation.pgd_steps", self.evaluation.pgd_steps),
            ("evaluation.batch_size", self.evaluation.batch_size),
            ("generator.latent", self.generator.latent),
            ("generator.ngf", self.generator.ngf),
            ("image.channels", self.image.channels),
        ];
        for (name, value) in counts {
            if value == 0 {
                return bad(format!("{name} must be at least 1"));
            }
        }
        if self.fairness_aware() && self.fairness.inner_steps == 0 {
            return bad("fairness.inner_steps must be at least 1 when weights.uni > 0".into());
        }
        if self.warmup >= self.epochs {
            return bad(format!(
                "warmup {} leaves no epoch of student training out of {}",
                self.warmup, self.epochs
            ));
        }
        if self.num_classes < 2 {
            return bad(format!("{} classes: need at least 2", self.num_classes));
        }
        if self.image.side == 0 || !self.image.side.is_multiple_of(4) {
            return bad(format!(
                "image side {} must be a positive multiple of 4 (the generator upsamples twice)",
                self.image.side
            ));
        }
        let Threat { eps, alpha } = self.threat;
        if !(eps.is_finite() && eps > 0.0 && eps <= 1.0) {
            return bad(format!(
                "eps {eps} is outside (0, 1] (images are in [0, 1])"
            ));
        }
        if !(alpha.is_finite() && alpha > 0.0 && alpha <= eps) {
            return bad(format!("alpha {alpha} must be in (0, eps = {eps}]"));
        }
        let rates = [
            ("synthesis.lr_generator", self.synthesis.lr_generator),
            ("synthesis.lr_latent", self.synthesis.lr_latent),
            ("fairness.lr", self.fairness.lr),
            ("student.lr", self.student.lr),
        ];
        for (name, lr) in rates {
            if !(lr.is_finite() && lr > 0.0) {
                return bad(format!("{name} {lr} must be positive"));
            }
        }
        let w = self.synthesis.weights;
        let weights = [
            ("weights.bn", w.bn),
            ("weights.adv", w.adv),
            ("weights.oh", w.oh),
            ("weights.uni", w.uni),
            ("fairness.beta", self.fairness.beta),
            ("student.clean_weight", self.student.clean_weight),
            ("student.adv_weight", self.student.adv_weight),
            ("student.utae.gamma", self.student.utae.gamma),
            ("student.utae.start_std", self.student.utae.start_std),
        ];
        for (name, value) in weights {
            if !(value.is_finite() && value >= 0.0) {
                return bad(format!("{name} {value} must be finite and >= 0"));
            }
        }
        if self.synthesis.betas.iter().any(|b| !(0.0..1.0).contains(b)) {
            return bad(format!(
                "Adam betas {:?} must be in [0, 1)",
                self.synthesis.betas
            ));
        }
        if self.synthesis.adv_temperature.is_nan() || self.synthesis.adv_temperature <= 0.0 {
            return bad("synthesis.adv_temperature must be > 0".into());
        }
        if let StudentIkl::TeacherSoftmax { temperature } = self.student.ikl
            && (temperature.is_nan() || temperature <= 0.0)
        {
            return bad("student.ikl.temperature must be > 0".into());
        }
        crate::optim::Sgd {
            momentum: self.student.momentum,
            nesterov: false,
            weight_decay: self.student.weight_decay,
        }
        .check()
        .map_err(DistillError::Config)?;
        // The strategy's own parameters are checked on a flat fragility vector.
        self.reweighting
            .strategy
            .class_distribution(&vec![0.0; self.num_classes])?;
        Ok(())
    }
}
