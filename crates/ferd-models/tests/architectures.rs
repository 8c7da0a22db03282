//! Architecture checks: parameter counts against PyTorch's, split forwards, BatchNorm statistics
//! and the generator's initialization.

use burn::module::Module;
use burn::tensor::Tensor;
use ferd_core::device::test_device;
use ferd_models::Classifier;
use ferd_models::generator::GeneratorConfig;
use ferd_models::layers::trainable_params;
use ferd_models::mobilenet_v2::MobileNetV2Config;
use ferd_models::resnet::ResNetConfig;
use ferd_models::small_cnn::SmallCnnConfig;
use ferd_models::wide_resnet::WideResNetConfig;

/// Counts measured with PyTorch on the FERD code's model definitions (10 classes).
#[test]
fn parameter_counts_equal_pytorch() {
    let device = test_device();

    assert_eq!(
        trainable_params(&ResNetConfig::resnet18(10).init(&device)),
        11_173_962
    );
    assert_eq!(
        trainable_params(&ResNetConfig::resnet34(10).init(&device)),
        21_282_122
    );
    assert_eq!(
        trainable_params(&ResNetConfig::resnet18(10).init_preact(&device)),
        11_172_170
    );
    assert_eq!(
        trainable_params(&ResNetConfig::resnet34(10).init_preact(&device)),
        21_280_330
    );
    assert_eq!(
        trainable_params(&MobileNetV2Config::new().init(&device)),
        2_296_922
    );
    assert_eq!(
        trainable_params(&WideResNetConfig::wrn_34_10(10).init(&device)),
        46_160_474
    );
}

/// Uniform images drawn on the host from a fixed seed (not Burn's global RNG).
fn images(batch: usize, channels: usize, side: usize) -> Tensor<4> {
    let mut noise = ferd_core::random::rng(batch as u64 * 1000 + side as u64);
    ferd_core::random::uniform(
        &mut noise,
        [batch, channels, side, side],
        0.0,
        1.0,
        &test_device(),
    )
}

/// `forward = head(features)`, the split shape, and one BN statistic per BN layer.
fn check_split(model: &impl Classifier, x: Tensor<4>, split: [usize; 4], bn_layers: usize) {
    let z = model.features(x.clone());
    assert_eq!(z.dims(), split);
    let logits = model.forward(x.clone());
    assert_eq!(logits.dims(), [split[0], model.num_classes()]);
    let via_split = model.head(z);
    let diff = (logits.clone() - via_split)
        .abs()
        .max()
        .into_scalar::<f32>();
    assert_eq!(diff, 0.0);
    let (tapped, stats) = model.forward_with_bn_stats(x);
    assert_eq!((tapped - logits).abs().max().into_scalar::<f32>(), 0.0);
    assert_eq!(stats.len(), bn_layers);
    for s in &stats {
        let c = s.running_mean.dims()[0];
        assert_eq!(
            [
                s.batch_mean.dims()[0],
                s.batch_var.dims()[0],
                s.running_var.dims()[0]
            ],
            [c, c, c]
        );
        assert!(s.batch_var.clone().min().into_scalar::<f32>() >= 0.0);
    }
}

#[test]
fn split_forwards_and_bn_statistics() {
    let device = test_device();
    let resnet = ResNetConfig::new(vec![1, 1, 1, 1])
        .with_base_width(8)
        .init(&device);
    // stem 1 + 4 blocks x 2 + 3 projection shortcuts.
    check_split(&resnet, images(2, 3, 32), [2, 64, 4, 4], 12);
    let preact = ResNetConfig::new(vec![1, 1, 1, 1])
        .with_base_width(8)
        .init_preact(&device);
    // 4 blocks x 2 + the final bn.
    check_split(&preact, images(2, 3, 32), [2, 64, 4, 4], 9);
    let wrn = WideResNetConfig::new(10, 2).init(&device);
    // 3 groups x 1 block x 2 + final bn1.
    check_split(&wrn, images(2, 3, 32), [2, 128, 8, 8], 7);
    let mobile = MobileNetV2Config::new().with_width(0.25).init(&device);
    // stem + 17 blocks x 3 + 4 projection shortcuts (stride-1 stages that change width) + bn2.
    check_split(&mobile, images(2, 3, 32), [2, 320, 4, 4], 1 + 51 + 4 + 1);
    let small = SmallCnnConfig::new().with_width(4).init(&device);
    check_split(&small, images(2, 1, 28), [2, 8, 7, 7], 4);
    let small_resnet = ResNetConfig::small(4, 10).init(&device);
    check_split(
        &small_resnet,
        images(2, 1, 28),
        [2, 16, 7, 7],
        1 + 3 * 2 + 2,
    );
}

#[test]
fn generator_shapes_range_and_initialization() {
    let device = test_device();
    let generator = GeneratorConfig::new().init(&device, 7);
    let z = ferd_core::random::normal(&mut ferd_core::random::rng(7), [4, 100], 0.0, 1.0, &device);
    let x = generator.forward(z);
    assert_eq!(x.dims(), [4, 3, 32, 32]);
    assert!(x.clone().min().into_scalar::<f32>() >= 0.0 && x.max().into_scalar::<f32>() <= 1.0);
    let small = GeneratorConfig::new()
        .with_image_side(28)
        .with_channels(1)
        .with_ngf(16)
        .init(&device, 8);
    assert_eq!(
        small.forward(Tensor::zeros([2, 100], &device)).dims(),
        [2, 1, 28, 28]
    );
    // Parameter count of the PyTorch generator (nz 100, ngf 64, 32x32x3): computed by hand,
    // l1 100*8192+8192, BN 256, conv 128*128*9, BN 256, conv 128*64*9, BN 128, conv 64*3*9+3.
    let expected =
        100 * 8192 + 8192 + 256 + 128 * 128 * 9 + 256 + 128 * 64 * 9 + 128 + 64 * 3 * 9 + 3;
    assert_eq!(trainable_params(&generator), expected);
}

#[test]
fn in_model_normalization_equals_normalizing_the_input() {
    let device = test_device();
    let norm = ferd_models::Normalization::cifar10();
    let plain = ResNetConfig::new(vec![1, 1])
        .with_base_width(4)
        .init(&device);
    let with_norm = ResNetConfig::new(vec![1, 1])
        .with_base_width(4)
        .with_normalization(Some(norm.clone()))
        .init(&device)
        .load_record(burn::module::Module::into_record(plain.clone()));
    let x = images(2, 3, 16);
    let a = with_norm.forward(x.clone()).try_to_vec_as::<f32>().unwrap();
    let b = plain.forward(norm.apply(x)).try_to_vec_as::<f32>().unwrap();
    for (u, v) in a.iter().zip(&b) {
        assert!((u - v).abs() <= 1e-5 * v.abs().max(1.0), "{u} vs {v}");
    }
}
