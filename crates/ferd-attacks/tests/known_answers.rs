//! Known answers on a two-class linear model `z = W x + b`. With `v = w_y - w_other` the
//! margin is `v . x + c`, and the Linf attack that minimizes it within the ball and the box is
//! `x*_i = clip01(x_i - eps sign(v_i))`: FGSM finds it in one step, PGD and APGD reach it, and a
//! point is robust exactly when its margin at `x*` stays positive.

use crate::common;

use common::{host, images, labels, linear, predict, uniform};
use ferd_attacks::{Apgd, ApgdLoss, Attack, Pgd};
use ferd_core::device::test_device;

const N: usize = 64;
const EPS: f32 = 0.08;

struct Case {
    model: Box<dyn Fn(burn::tensor::Tensor<4>) -> burn::tensor::Tensor<2>>,
    x: burn::tensor::Tensor<4>,
    y: Vec<usize>,
    optimum: Vec<f32>,
    robust: Vec<bool>,
}

fn case() -> Case {
    let device = test_device();
    let w = uniform(2 * N, -1.0, 1.0, 11);
    let bias = vec![0.3, -0.3];
    let batch = 16;
    let x = images([batch, 1, 8, 8], 0.0, 1.0, 12, &device);
    let pixels = host(x.clone());
    let model = linear(w.clone(), bias.clone(), &device);
    let y = predict(&model, x.clone());
    let mut optimum = Vec::with_capacity(batch * N);
    let mut robust = Vec::with_capacity(batch);
    for (b, &label) in y.iter().enumerate() {
        let v: Vec<f32> = (0..N)
            .map(|i| w[label * N + i] - w[(1 - label) * N + i])
            .collect();
        let xb = &pixels[b * N..(b + 1) * N];
        let best: Vec<f32> = xb
            .iter()
            .zip(&v)
            .map(|(&p, &vi)| (p - EPS * vi.signum()).clamp(0.0, 1.0))
            .collect();
        let margin: f32 =
            best.iter().zip(&v).map(|(p, vi)| p * vi).sum::<f32>() + bias[label] - bias[1 - label];
        robust.push(margin > 0.0);
        optimum.extend(best);
    }
    assert!(
        robust.iter().any(|&r| r) && robust.iter().any(|&r| !r),
        "the case needs both kinds"
    );
    Case {
        model: Box::new(model),
        x,
        y,
        optimum,
        robust,
    }
}

fn assert_close(name: &str, got: &[f32], want: &[f32], rows: impl Fn(usize) -> bool) {
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        if rows(i / N) {
            assert!(
                (g - w).abs() < 1e-5,
                "{name}: pixel {i}: {g} vs optimum {w}"
            );
        }
    }
}

#[test]
fn fgsm_and_pgd_find_the_optimum() {
    let c = case();
    let y = labels(&c.y, &c.x.device());
    let fgsm = Pgd::fgsm(EPS)
        .perturb(&c.model, c.x.clone(), y.clone(), 0)
        .unwrap();
    assert_close("fgsm", &host(fgsm), &c.optimum, |_| true);
    // From a random start, 10 steps of eps / 4 cross the ball (2 eps wide) and stay at the corner.
    let pgd = Pgd::new(EPS, EPS / 4.0, 10)
        .perturb(&c.model, c.x.clone(), y, 1)
        .unwrap();
    assert_close("pgd", &host(pgd), &c.optimum, |_| true);
}

#[test]
fn apgd_finds_the_optimum_exactly_where_it_flips_the_decision() {
    let c = case();
    let y = labels(&c.y, &c.x.device());
    let adv = Apgd::new(EPS, ApgdLoss::CrossEntropy)
        .perturb(&c.model, c.x.clone(), y, 2)
        .unwrap();
    let still = predict(&c.model, adv.clone());
    let robust: Vec<bool> = still.iter().zip(&c.y).map(|(p, y)| p == y).collect();
    assert_eq!(
        robust, c.robust,
        "APGD's robust points differ from the analytic ones"
    );
    assert_close("apgd", &host(adv), &c.optimum, |b| !c.robust[b]);
}
