//! PGD-20 and AutoAttack standard (eps 0.1) on the first 1,000 Fashion-MNIST test images of the
//! attack reference model (`small-cnn-8`, `crates/ferd-attacks/tests/fixtures`), on the device
//! named by `FERD_TEST_DEVICE` (default flex, the CPU). One timed run each (AutoAttack takes
//! minutes); the figures go to stdout and `target/attack_bench.json`.
//! `tools/bench/torch_attacks.py` times the same with torchattacks and prints the ratios.
//!
//! ```text
//! cargo bench --bench attacks                # FERD_BENCH_IMAGES=200 for a quicker run
//! python3 tools/bench/torch_attacks.py
//! ```

use std::path::Path;
use std::time::Instant;

use burn::tensor::{Int, Tensor};
use ferd::attacks::{Attack, AutoAttack, Frozen, Model, Pgd};
use ferd::core::device::test_device;
use ferd::data::{DatasetName, Split, load};
use ferd::models::small_cnn::SmallCnnConfig;
use ferd::models::weights::load_pytorch;

#[global_allocator]
static ALLOCATOR: ferd::allocator::Allocator = ferd::allocator::Allocator;

const EPS: f32 = 0.1;
const BATCH: usize = 500;

fn robust_accuracy(
    model: &dyn Model,
    attack: &dyn Attack,
    batches: &[(Tensor<4>, Tensor<1, Int>)],
) -> (f64, f64) {
    let start = Instant::now();
    let (mut hits, mut total) = (0usize, 0usize);
    for (i, (x, y)) in batches.iter().enumerate() {
        let adv = attack
            .perturb(model, x.clone(), y.clone(), i as u64)
            .expect("attack runs");
        let [n, _] = model.logits(adv.clone()).dims();
        let correct = model
            .logits(adv)
            .argmax(1)
            .reshape([n])
            .equal(y.clone())
            .int()
            .sum()
            .into_scalar::<i64>();
        hits += correct as usize;
        total += n;
    }
    (hits as f64 / total as f64, start.elapsed().as_secs_f64())
}

fn main() {
    let images: usize = std::env::var("FERD_BENCH_IMAGES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    let device = test_device();
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("crates/ferd-attacks/tests/fixtures");
    let mut model = SmallCnnConfig::new().with_width(8).init(&device);
    load_pytorch(&mut model, fixtures.join("small_cnn_w8.safetensors")).expect("weights load");
    let model = Frozen::new(&model);
    let test = load(DatasetName::FashionMnist, Split::Test, None).expect("Fashion-MNIST test set");
    let rows: Vec<usize> = (0..images).collect();
    let batches: Vec<_> = rows
        .chunks(BATCH)
        .map(|chunk| {
            let b = test.batch(chunk, &device).expect("batch");
            (b.images, b.labels)
        })
        .collect();

    let (pgd_acc, pgd_s) = robust_accuracy(&model, &Pgd::new(EPS, EPS / 4.0, 20), &batches);
    println!("pgd-20: robust accuracy {pgd_acc:.4}, {pgd_s:.2} s for {images} images");
    let aa = AutoAttack::standard(EPS);
    let start = Instant::now();
    let (mut robust, mut stage_seconds) = (0usize, Vec::new());
    for (i, (x, y)) in batches.iter().enumerate() {
        let staged = aa
            .perturb_staged(&model, x.clone(), y.clone(), i as u64, &mut ())
            .expect("runs");
        for (s, stage) in staged.stages.iter().enumerate() {
            if stage_seconds.len() <= s {
                stage_seconds.push((stage.name.clone(), 0.0));
            }
            stage_seconds[s].1 += stage.seconds;
        }
        let last = staged.stages.last().expect("four stages");
        robust += last.robust.iter().filter(|&&r| r).count();
    }
    let (aa_acc, aa_s) = (robust as f64 / images as f64, start.elapsed().as_secs_f64());
    println!("autoattack components (seconds): {stage_seconds:?}");
    println!("autoattack: robust accuracy {aa_acc:.4}, {aa_s:.2} s for {images} images");
    let json = format!(
        "{{\"images\": {images}, \"device\": \"{}\", \"pgd20_seconds\": {pgd_s}, \"pgd20_robust\": {pgd_acc}, \
         \"autoattack_seconds\": {aa_s}, \"autoattack_robust\": {aa_acc}}}\n",
        ferd::core::device::test_device_spec()
    );
    std::fs::write(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("target/attack_bench.json"),
        json,
    )
    .expect("target/ is writable");
}
