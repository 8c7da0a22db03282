//! The bundled Fashion-MNIST teacher (`models/fmnist-small-teacher`) loads by its zoo name and
//! is what its model card says: a robust classifier, checked on the first 500 test images.

use std::path::Path;

use ferd::attacks::{Attack, Frozen, Model, Pgd};
use ferd::core::device::test_device;
use ferd::data::{DatasetName, Split, load};
use ferd::models::weights::load_weights;
use ferd::models::zoo::Architecture;

fn accuracy(model: &dyn Model, x: burn::tensor::Tensor<4>, labels: &[i64]) -> f64 {
    let logits = model.logits(x);
    let [n, _] = logits.dims();
    let predicted = logits
        .argmax(1)
        .reshape([n])
        .try_to_vec_as::<i64>()
        .unwrap();
    predicted.iter().zip(labels).filter(|(p, y)| p == y).count() as f64 / n as f64
}

#[test]
fn bundled_teacher_is_accurate_and_robust() {
    let device = test_device();
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("models/fmnist-small-teacher");
    let arch: Architecture = "small-cnn-16".parse().unwrap();
    let mut model = arch.build(1, 10, &device);
    load_weights(&mut model, dir.join("teacher.bpk")).unwrap();
    let model = Frozen::new(&model);
    let test = load(DatasetName::FashionMnist, Split::Test, None).unwrap();
    let rows: Vec<usize> = (0..500).collect();
    let batch = test.batch(&rows, &device).unwrap();
    let labels = batch.labels.clone().try_to_vec_as::<i64>().unwrap();
    let clean = accuracy(&model, batch.images.clone(), &labels);
    let adv = Pgd::new(0.1, 0.025, 20)
        .perturb(&model, batch.images, batch.labels, 0)
        .unwrap();
    let robust = accuracy(&model, adv, &labels);
    eprintln!("bundled teacher on 500 test images: clean {clean:.3}, PGD-20 {robust:.3}");
    assert!(clean >= 0.83, "clean accuracy {clean}");
    assert!(robust >= 0.7, "PGD-20 accuracy {robust}");
}
