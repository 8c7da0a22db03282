//! ferd's models load PyTorch weights and reproduce PyTorch's logits, split features and
//! BatchNorm statistics (fixtures from `tools/golden/model_fixtures.py`, reduced widths), within
//! a relative error of 1e-4. Also: mismatched checkpoints are errors naming the keys, and
//! saving then loading in Burn's formats reproduces the model.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use burn::module::Module;
use burn::store::ModuleSnapshot;
use burn::tensor::{Tensor, TensorData};
use ferd_core::device::test_device;
use ferd_models::AnyClassifier;
use ferd_models::error::SHOWN_PROBLEMS;
use ferd_models::generator::GeneratorConfig;
use ferd_models::mobilenet_v2::MobileNetV2Config;
use ferd_models::resnet::ResNetConfig;
use ferd_models::wide_resnet::WideResNetConfig;
use ferd_models::zoo::Architecture;
use ferd_models::{
    Classifier, KeyRename, ModelError, PyTorchLayout, load_pytorch, load_pytorch_with,
    load_weights, save_pytorch, save_weights,
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

fn case(name: &str) -> Value {
    let all = cases();
    all["classifiers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap()
        .clone()
}

/// The PyTorch fixture of case `name`.
fn fixture_weights(name: &str) -> PathBuf {
    fixtures().join(case(name)["weights"].as_str().unwrap())
}

fn check_classifier<M: Classifier + ModuleSnapshot + PyTorchLayout>(name: &str, model: M) {
    check_classifier_from(name, model, &fixture_weights(name));
}

/// Loads `weights` (PyTorch layout) into `model` and checks it against case `name`.
fn check_classifier_from<M: Classifier + ModuleSnapshot + PyTorchLayout>(
    name: &str,
    mut model: M,
    weights: &Path,
) {
    let case = case(name);
    load_pytorch(&mut model, weights).unwrap();
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

/// A checkpoint of another width says so first, with the name that fits it, and that name
/// loads it; the problems after it are counted, not all listed.
#[test]
fn a_checkpoint_of_another_width_names_the_architecture_that_fits() {
    let device = test_device();
    let file = fixtures().join("resnet_w8.pt");
    let arch = Architecture::RESNET18;
    let err = arch.explain(load_pytorch(&mut arch.build(3, 10, &device), &file).unwrap_err());
    let ModelError::Mismatch { problems, fits, .. } = &err else {
        panic!("{err}")
    };
    assert_eq!(
        fits.as_deref(),
        Some("resnet18-w8 (its conv1 has 8 output channels)")
    );
    let text = err.to_string();
    let first = text.lines().next().unwrap();
    assert!(
        first.contains("conv1.weight is [8, 3, 3, 3] in the file, [64, 3, 3, 3] in the model"),
        "{text}"
    );
    assert!(problems.len() > SHOWN_PROBLEMS, "{text}");
    assert_eq!(text.lines().count(), 1 + SHOWN_PROBLEMS + 1, "{text}");
    let fitting: Architecture = "resnet18-w8".parse().unwrap();
    load_pytorch(&mut fitting.build(3, 10, &device), &file).unwrap();
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
    let ModelError::Mismatch { problems, .. } = &err else {
        panic!("{err}")
    };
    assert!(
        problems
            .iter()
            .any(|p| p == "unexpected in the file: layer4.0.conv1.weight"),
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

/// The tensors of a SafeTensors file: name -> shape, read from its JSON header (not through
/// burn-store).
fn safetensors_keys(path: &Path) -> BTreeMap<String, Vec<u64>> {
    let bytes = std::fs::read(path).unwrap();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header: serde_json::Map<String, Value> = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
    header
        .into_iter()
        .filter(|(k, _)| k != "__metadata__")
        .map(|(k, v)| {
            let dims = v["shape"].as_array().unwrap().iter();
            (k, dims.map(|d| d.as_u64().unwrap()).collect())
        })
        .collect()
}

/// Copies a SafeTensors file with its tensors renamed by `rename` (the header rewritten, the
/// data untouched: its offsets are relative to the end of the header).
fn with_renamed_keys(from: &Path, to: &Path, rename: impl Fn(&str) -> String) {
    let bytes = std::fs::read(from).unwrap();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header: serde_json::Map<String, Value> = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
    let renamed: serde_json::Map<String, Value> = header
        .into_iter()
        .map(|(k, v)| {
            if k == "__metadata__" {
                (k, v)
            } else {
                (rename(&k), v)
            }
        })
        .collect();
    let mut text = serde_json::to_vec(&renamed).unwrap();
    while !text.len().is_multiple_of(8) {
        text.push(b' ');
    }
    let mut out = (text.len() as u64).to_le_bytes().to_vec();
    out.extend(text);
    out.extend(&bytes[8 + n..]);
    std::fs::write(to, out).unwrap();
}

fn scratch(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("ferd-export-{}-{name}", std::process::id()))
}

/// Every fixture model, loaded from PyTorch, written back in PyTorch's layout and read again,
/// still gives PyTorch's logits; where PyTorch itself saved SafeTensors, the exported file has
/// the same tensor names and shapes (PyTorch's `num_batches_tracked` counters aside). With
/// `FERD_EXPORT_DIR` set, the exported files are kept there for
/// `tools/golden/check_export.py`, which loads them into the PyTorch definitions.
#[test]
fn pytorch_layout_export_round_trips_with_pytorchs_names() {
    let device = test_device();
    type Build = fn(&burn::tensor::Device) -> AnyClassifier;
    let models: [(&str, Build); 5] = [
        ("resnet_w8", |d| {
            AnyClassifier::ResNet(
                ResNetConfig::new(vec![2, 2, 2, 2])
                    .with_base_width(8)
                    .init(d),
            )
        }),
        ("small_resnet_w4", |d| {
            AnyClassifier::ResNet(ResNetConfig::small(4, 10).init(d))
        }),
        ("preact_resnet_w8", |d| {
            AnyClassifier::PreActResNet(
                ResNetConfig::new(vec![2, 2, 2, 2])
                    .with_base_width(8)
                    .init_preact(d),
            )
        }),
        ("wrn_10_1", |d| {
            AnyClassifier::WideResNet(WideResNetConfig::new(10, 1).init(d))
        }),
        ("mobilenet_v2_w025", |d| {
            AnyClassifier::MobileNetV2(MobileNetV2Config::new().with_width(0.25).init(d))
        }),
    ];
    // Separately built models: module clones would share BatchNorm statistics.
    for (name, build) in models {
        let mut model = build(&device);
        load_pytorch(&mut model, fixture_weights(name)).unwrap();
        let keep = std::env::var_os("FERD_EXPORT_DIR").map(PathBuf::from);
        let exported = match &keep {
            Some(dir) => dir.join(format!("{name}.safetensors")),
            None => scratch(&format!("{name}.safetensors")),
        };
        save_pytorch(&model.valid(), &exported).unwrap();
        if fixture_weights(name).extension().unwrap() == "safetensors" {
            let mut theirs = safetensors_keys(&fixture_weights(name));
            theirs.retain(|k, _| !k.ends_with("num_batches_tracked"));
            assert_eq!(
                safetensors_keys(&exported),
                theirs,
                "{name}: names and shapes"
            );
        }
        check_classifier_from(name, build(&device), &exported);
        if keep.is_none() {
            std::fs::remove_file(exported).unwrap();
        }
    }
    let Err(ModelError::Write { .. }) = save_pytorch(
        &MobileNetV2Config::new().with_width(0.25).init(&device),
        scratch("model.pt"),
    ) else {
        panic!("a .pt export must be refused");
    };
}

/// The FERD repository's MobileNet-V2 names its head `fc`: accepted as it is. A layout ferd
/// does not know loads with the user's renames; a bad regular expression is an error.
#[test]
fn other_layouts_load_by_alias_or_by_user_renames() {
    let device = test_device();
    let mobilenet = || MobileNetV2Config::new().with_width(0.25).init(&device);
    let mut loaded = mobilenet();
    load_pytorch(&mut loaded, fixture_weights("mobilenet_v2_w025")).unwrap();
    let exported = scratch("mobilenet.safetensors");
    save_pytorch(&loaded.valid(), &exported).unwrap();
    let ferd_repo = scratch("mobilenet_fc.safetensors");
    with_renamed_keys(&exported, &ferd_repo, |k| k.replace("linear.", "fc."));
    assert!(safetensors_keys(&ferd_repo).contains_key("fc.weight"));
    check_classifier_from("mobilenet_v2_w025", mobilenet(), &ferd_repo);

    let wrapped = scratch("mobilenet_backbone.safetensors");
    with_renamed_keys(&exported, &wrapped, |k| format!("backbone.{k}"));
    let mut model = mobilenet();
    let Err(ModelError::Mismatch { .. }) = load_pytorch(&mut model, &wrapped) else {
        panic!("unknown names must be refused");
    };
    let rename: KeyRename = r"^backbone\.=".parse().unwrap();
    let mut model = mobilenet();
    load_pytorch_with(&mut model, &wrapped, &[rename]).unwrap();
    check_classifier_from("mobilenet_v2_w025", model, &ferd_repo);
    for bad in ["(unclosed=x", "no-equals-sign"] {
        let Err(ModelError::InvalidArgument { .. }) = bad.parse::<KeyRename>() else {
            panic!("`{bad}` must be refused");
        };
    }
    for file in [exported, ferd_repo, wrapped] {
        std::fs::remove_file(file).unwrap();
    }
}
