//! ferd's models load PyTorch weights and reproduce PyTorch's logits, split features and
//! BatchNorm statistics (fixtures from `tools/golden/model_fixtures.py`, reduced widths), within
//! a relative error of 1e-4. Also: mismatched checkpoints are errors naming the keys, and
//! saving then loading in Burn's formats reproduces the model.

use std::path::{Path, PathBuf};

use burn::module::Module;
use burn::store::ModuleSnapshot;
use burn::tensor::{Tensor, TensorData};
use ferd_core::device::test_device;
use ferd_models::AnyClassifier;
use ferd_models::generator::GeneratorConfig;
use ferd_models::mobilenet_v2::MobileNetV2Config;
use ferd_models::resnet::ResNetConfig;
use ferd_models::wide_resnet::WideResNetConfig;
use ferd_models::{
    Classifier, ModelError, PyTorchLayout, load_pytorch, load_weights, save_weights,
};
use serde_json::Value;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn cases() -> Value {
    serde_json::from_str(&std::fs::read_to_string(fixtures().join("models.json")).unwrap()).unwrap()
}

fn floats(v: &Value) -> Vec<f32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap() as f32)
        .collect()
}

fn shape<const D: usize>(v: &Value) -> [usize; D] {
    let dims: Vec<usize> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as usize)
        .collect();
    dims.try_into().unwrap()
}

fn assert_close(what: &str, got: &[f32], expected: &[f32]) {
    assert_eq!(got.len(), expected.len(), "{what}: length");
    let scale = expected
        .iter()
        .fold(0.0f32, |m, v| m.max(v.abs()))
        .max(1e-3);
    for (i, (g, e)) in got.iter().zip(expected).enumerate() {
        // Relative to the tensor's scale: f32 convolutions reorder sums differently from PyTorch.
        assert!(
            (g - e).abs() <= 1e-4 * scale.max(e.abs()),
            "{what}[{i}]: {g} vs {e} (scale {scale})"
        );
    }
}

fn check_classifier<M: Classifier + ModuleSnapshot + PyTorchLayout>(name: &str, mut model: M) {
    let all = cases();
    let case = all["classifiers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap();
    load_pytorch(
        &mut model,
        fixtures().join(case["weights"].as_str().unwrap()),
    )
    .unwrap();
    let x: Tensor<4> = Tensor::from_data(
        TensorData::new(floats(&case["input"]), shape::<4>(&case["input_shape"])),
        &test_device(),
    );
    let z = model.features(x.clone());
    assert_eq!(
        z.dims(),
        shape::<4>(&case["features_shape"]),
        "{name}: split shape"
    );
    assert_close(
        &format!("{name} features"),
        &z.try_to_vec_as::<f32>().unwrap(),
        &floats(&case["features"]),
    );
    let (logits, stats) = model.forward_with_bn_stats(x);
    assert_close(
        &format!("{name} logits"),
        &logits.try_to_vec_as::<f32>().unwrap(),
        &floats(&case["logits"]),
    );
    let expected = case["bn"].as_array().unwrap();
    assert_eq!(stats.len(), expected.len(), "{name}: BN layers");
    for (i, (got, want)) in stats.iter().zip(expected).enumerate() {
        for (field, tensor) in [
            ("batch_mean", &got.batch_mean),
            ("batch_var", &got.batch_var),
            ("running_mean", &got.running_mean),
            ("running_var", &got.running_var),
        ] {
            assert_close(
                &format!("{name} bn{i} {field}"),
                &tensor.try_to_vec_as::<f32>().unwrap(),
                &floats(&want[field]),
            );
        }
    }
}

#[test]
fn resnets_match_pytorch() {
    let device = test_device();
    check_classifier(
        "resnet_w8",
        ResNetConfig::new(vec![2, 2, 2, 2])
            .with_base_width(8)
            .init(&device),
    );
    // A training checkpoint: {"epoch", "model_state_dict": {"module.conv1.weight", ...}}.
    check_classifier(
        "resnet34_w4",
        ResNetConfig::new(vec![3, 4, 6, 3])
            .with_base_width(4)
            .init(&device),
    );
    check_classifier("small_resnet_w4", ResNetConfig::small(4, 10).init(&device));
    // Through the run-time enum: the variant name is not part of the PyTorch keys.
    let any = AnyClassifier::ResNet(
        ResNetConfig::new(vec![2, 2, 2, 2])
            .with_base_width(8)
            .init(&device),
    );
    check_classifier("resnet_w8", any);
}

#[test]
fn preact_resnet_matches_pytorch() {
    let device = test_device();
    check_classifier(
        "preact_resnet_w8",
        ResNetConfig::new(vec![2, 2, 2, 2])
            .with_base_width(8)
            .init_preact(&device),
    );
}

#[test]
fn wide_resnet_matches_pytorch() {
    check_classifier(
        "wrn_10_1",
        WideResNetConfig::new(10, 1).init(&test_device()),
    );
}

#[test]
fn mobilenet_v2_matches_pytorch() {
    check_classifier(
        "mobilenet_v2_w025",
        MobileNetV2Config::new()
            .with_width(0.25)
            .init(&test_device()),
    );
}

#[test]
fn generator_matches_pytorch() {
    let device = test_device();
    let all = cases();
    let case = &all["dcgan"];
    let mut generator = GeneratorConfig::new()
        .with_latent(16)
        .with_ngf(8)
        .init(&device, 0)
        .valid();
    load_pytorch(
        &mut generator,
        fixtures().join(case["weights"].as_str().unwrap()),
    )
    .unwrap();
    let z: Tensor<2> =
        Tensor::from_data(TensorData::new(floats(&case["latent"]), [2, 16]), &device);
    let images = generator.forward(z);
    assert_eq!(images.dims(), shape::<4>(&case["images_shape"]));
    assert_close(
        "generator",
        &images.try_to_vec_as::<f32>().unwrap(),
        &floats(&case["images"]),
    );
}

#[test]
fn mismatched_checkpoints_name_the_keys() {
    let device = test_device();
    // ResNet-18-shaped weights into a ResNet-34 of another width.
    let mut model = ResNetConfig::new(vec![3, 4, 6, 3])
        .with_base_width(4)
        .init(&device);
    let err = load_pytorch(&mut model, fixtures().join("resnet_w8.pt")).unwrap_err();
    let ModelError::Mismatch { problems, .. } = &err else {
        panic!("{err}")
    };
    let text = err.to_string();
    assert!(
        problems
            .iter()
            .any(|p| p.contains("missing in the file: layer3.5.conv1.weight")),
        "{text}"
    );
    assert!(
        problems
            .iter()
            .any(|p| p.contains("conv1.weight") && p.contains("hape")),
        "{text}"
    );
    // Extra tensors in the file are named too: a small ResNet has no layer4.
    let mut small = ResNetConfig::new(vec![2, 2, 2])
        .with_base_width(8)
        .init(&device);
    let err = load_pytorch(&mut small, fixtures().join("resnet_w8.pt")).unwrap_err();
    assert!(
        err.to_string()
            .contains("unexpected in the file: layer4.0.conv1.weight"),
        "{err}"
    );
    let err = load_pytorch(&mut small, Path::new("weights.onnx")).unwrap_err();
    assert!(matches!(err, ModelError::UnknownFormat { .. }));
    let err = load_pytorch(&mut small, fixtures().join("missing.pt")).unwrap_err();
    assert!(matches!(err, ModelError::Read { .. }), "{err}");
}

#[test]
fn burn_formats_round_trip() {
    let device = test_device();
    let model = ResNetConfig::small(4, 10).init(&device).valid();
    let x: Tensor<4> = Tensor::ones([1, 1, 28, 28], &device).mul_scalar(0.5);
    let expected = model.forward(x.clone()).try_to_vec_as::<f32>().unwrap();
    let dir = std::env::temp_dir().join(format!("ferd-weights-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for file in ["small.bpk", "small.safetensors"] {
        let path = dir.join(file);
        save_weights(&model, &path).unwrap();
        let mut fresh = ResNetConfig::small(4, 10).init(&device).valid();
        assert_ne!(
            fresh.forward(x.clone()).try_to_vec_as::<f32>().unwrap(),
            expected
        );
        load_weights(&mut fresh, &path).unwrap();
        assert_eq!(
            fresh.forward(x.clone()).try_to_vec_as::<f32>().unwrap(),
            expected,
            "{file}"
        );
    }
}
