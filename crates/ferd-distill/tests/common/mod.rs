//! Helpers shared by the training tests, and the PyTorch fixtures of the golden tests.
#![allow(dead_code)]

use std::path::PathBuf;

use burn::module::{Module, ModuleVisitor, Param};
use burn::tensor::{Device, Tensor};
use ferd_models::generator::{Generator, GeneratorConfig};
use ferd_models::load_pytorch;
use ferd_models::small_cnn::{SmallCnn, SmallCnnConfig};

/// The folder of the PyTorch fixtures (`tools/golden/ferd_fixtures.py`).
pub fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// A small CNN of `width` with the weights of the fixture `file`.
pub fn small_cnn(width: usize, file: &str, device: &Device) -> SmallCnn {
    let mut model = SmallCnnConfig::new().with_width(width).init(device);
    load_pytorch(&mut model, fixtures().join(file)).unwrap();
    model
}

/// The fixtures' generator (latent 16, ngf 8, 28x28x1).
pub fn generator(device: &Device) -> Generator {
    let mut g = GeneratorConfig::new()
        .with_latent(16)
        .with_ngf(8)
        .with_image_side(28)
        .with_channels(1)
        .init(device, 0);
    load_pytorch(&mut g, fixtures().join("ferd_generator.safetensors")).unwrap();
    g
}

/// Every float parameter of a model (its inference-mode copy), flattened in visiting order: two
/// models with equal vectors have the same weights bit for bit.
pub fn parameters<M: Module>(model: &M) -> Vec<f32> {
    struct Flat(Vec<f32>);
    impl ModuleVisitor for Flat {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            self.0.extend(param.val().try_to_vec_as::<f32>().unwrap());
        }
    }
    let mut flat = Flat(Vec::new());
    model.valid().visit(&mut flat);
    flat.0
}

/// Asserts that `got` is within `rtol` of `want`, relative to `want`'s largest magnitude; the
/// message names the worst entry.
pub fn assert_close(name: &str, got: &[f32], want: &[f32], rtol: f64) {
    assert_eq!(got.len(), want.len(), "{name}: lengths");
    let scale = want.iter().fold(0.0f32, |m, v| m.max(v.abs())).max(1e-12);
    let (worst, at) = got
        .iter()
        .zip(want)
        .enumerate()
        .map(|(i, (a, b))| ((a - b).abs(), i))
        .fold((0.0f32, 0), |m, x| if x.0 > m.0 { x } else { m });
    let err = f64::from(worst / scale);
    assert!(
        err <= rtol,
        "{name}: max difference {worst} at index {at} ({} vs {}), scale {scale} (relative {err:.2e})",
        got[at],
        want[at]
    );
}
