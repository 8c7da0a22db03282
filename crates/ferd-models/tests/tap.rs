//! `Tap`'s BatchNorm in training mode (ferd's fused op on Flex) against Burn's `BatchNorm`
//! layer followed by `relu`: the output, the gradients of the input, gamma and beta, and the
//! running statistics after two batches (so the momentum update is checked from a value that is
//! no longer the initial one). Within 1e-4 of the largest value of each.

use burn::module::Param;
use burn::tensor::activation::relu;
use burn::tensor::{Tensor, TensorData};
use ferd_core::device::test_device;
use ferd_core::random::{normal, rng};
use ferd_models::Tap;
use ferd_models::layers::batch_norm;

fn close(what: &str, a: Vec<f32>, b: Vec<f32>) {
    assert_eq!(a.len(), b.len(), "{what}");
    let scale = b.iter().fold(1.0f32, |m, v| m.max(v.abs()));
    for (i, (p, q)) in a.iter().zip(&b).enumerate() {
        assert!(
            (p - q).abs() <= 1e-4 * scale,
            "{what}[{i}]: tap {p} vs burn {q}"
        );
    }
}

#[test]
fn training_batch_norm_matches_burns_layer() {
    let device = test_device().autodiff();
    let channels = 5;
    // Two layers with the same gamma and beta (off 1 and 0), each on its own path.
    let layer = || {
        let mut bn = batch_norm(channels, &device);
        let gamma: Vec<f32> = (0..channels).map(|c| 0.5 + 0.3 * c as f32).collect();
        let beta: Vec<f32> = (0..channels).map(|c| 0.2 * c as f32 - 0.4).collect();
        bn.gamma = Param::from_tensor(Tensor::from_data(
            TensorData::new(gamma, [channels]),
            &device,
        ));
        bn.beta = Param::from_tensor(Tensor::from_data(
            TensorData::new(beta, [channels]),
            &device,
        ));
        bn
    };
    let (ours, burns) = (layer(), layer());
    let host = |t: Tensor<4>| t.into_data().try_to_vec::<f32>().unwrap();
    let host1 = |t: Tensor<1>| t.into_data().try_to_vec::<f32>().unwrap();
    for step in 0..2u64 {
        let x = normal(&mut rng(10 + step), [3, channels, 6, 7], 0.5, 2.0, &device);
        let probe = normal(&mut rng(20 + step), [3, channels, 6, 7], 0.0, 1.0, &device);
        let x_ours = x.clone().require_grad();
        let x_burn = x.require_grad();
        let y_ours = Tap::none().batch_norm_relu(&ours, x_ours.clone());
        let y_burn = relu(burns.forward(x_burn.clone()));
        let g_ours = (y_ours.clone() * probe.clone()).sum().backward();
        let g_burn = (y_burn.clone() * probe).sum().backward();
        close("output", host(y_ours.inner()), host(y_burn.inner()));
        close(
            "x grad",
            host(x_ours.grad(&g_ours).unwrap()),
            host(x_burn.grad(&g_burn).unwrap()),
        );
        close(
            "gamma grad",
            host1(ours.gamma.grad(&g_ours).unwrap()),
            host1(burns.gamma.grad(&g_burn).unwrap()),
        );
        close(
            "beta grad",
            host1(ours.beta.grad(&g_ours).unwrap()),
            host1(burns.beta.grad(&g_burn).unwrap()),
        );
        close(
            "running mean",
            host1(ours.running_mean.value()),
            host1(burns.running_mean.value()),
        );
        close(
            "running var",
            host1(ours.running_var.value()),
            host1(burns.running_var.value()),
        );
    }
}
