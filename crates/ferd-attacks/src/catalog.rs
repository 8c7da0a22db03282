//! Attacks by name, for command lines and configuration files.

use crate::apgd::{Apgd, ApgdLoss, ApgdTargeted};
use crate::attack::Attack;
use crate::autoattack::AutoAttack;
use crate::error::{Result, invalid};
use crate::fab::Fab;
use crate::pgd::Pgd;
use crate::square::Square;

/// The names [`attack_by_name`] accepts.
pub const KNOWN: &str = "fgsm, pgd-N, cw-N, apgd-ce, apgd-dlr, apgd-t, fab, fab-t, square, \
                         autoattack (aa), autoattack-plus (aa-plus), autoattack-rand (aa-rand)";

/// The attack called `name` at radius `eps`, with the settings of the references. `pgd-N` and
/// `cw-N` take `N` steps of `eps / 4` from a random start (2/255 at 8/255, the usual
/// PGD-20 and CW-20 evaluation of the robust-distillation literature).
pub fn attack_by_name(name: &str, eps: f32) -> Result<Box<dyn Attack>> {
    let lower = name.trim().to_ascii_lowercase();
    let steps = |prefix: &str| -> Option<Result<usize>> {
        lower.strip_prefix(prefix).map(|n| {
            n.parse::<usize>().ok().filter(|&n| n > 0).ok_or_else(|| {
                invalid(
                    "attack_by_name",
                    format!("`{name}`: expected {prefix}N with N >= 1"),
                )
            })
        })
    };
    if let Some(n) = steps("pgd-") {
        return Ok(Box::new(Pgd::new(eps, eps / 4.0, n?)));
    }
    if let Some(n) = steps("cw-") {
        return Ok(Box::new(Pgd::cw_inf(eps, eps / 4.0, n?)));
    }
    Ok(match lower.as_str() {
        "fgsm" => Box::new(Pgd::fgsm(eps)),
        "apgd-ce" => Box::new(Apgd::new(eps, ApgdLoss::CrossEntropy)),
        "apgd-dlr" => Box::new(Apgd::new(eps, ApgdLoss::Dlr)),
        "apgd-t" => Box::new(ApgdTargeted::new(eps)),
        "fab" => Box::new(Fab::new(eps)),
        "fab-t" => Box::new(Fab::targeted(eps)),
        "square" => Box::new(Square::new(eps)),
        "aa" | "autoattack" => Box::new(AutoAttack::standard(eps)),
        "aa-plus" | "autoattack-plus" => Box::new(AutoAttack::plus(eps)),
        "aa-rand" | "autoattack-rand" => Box::new(AutoAttack::rand(eps)),
        _ => {
            return Err(invalid(
                "attack_by_name",
                format!("unknown attack `{name}`; known: {KNOWN}"),
            ));
        }
    })
}
