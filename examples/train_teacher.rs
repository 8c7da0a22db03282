//! The library's teacher training in a few lines: a recipe of `ferd::distill::TeacherPreset`
//! (`fmnist-small`, the bundled teacher's, by default), trained into `runs/<preset>` with
//! progress lines on stderr: `best.bpk`, `final.bpk`, `metrics.jsonl`, `config.json` and a
//! resumable `checkpoint/`.
//!
//! ```sh
//! cargo run --release --example train_teacher                 # about 25 min on 2 cores
//! cargo run --release --example train_teacher -- cifar10-resnet18-pgdat
//! ```
//!
//! `ferd train-teacher` (`docs/guide.md`) adds `--resume`, `--stop-after`, `--set`, devices and
//! progress bars.

use std::path::PathBuf;

use ferd::core::DeviceSpec;
use ferd::data::{Split, load};
use ferd::distill::{Event, RunOptions, TeacherPreset, train_teacher};

/// mimalloc, keeping freed memory for reuse (`ferd::allocator`; the default `mimalloc` feature).
#[cfg(feature = "mimalloc")]
#[global_allocator]
static ALLOCATOR: ferd::allocator::Allocator = ferd::allocator::Allocator;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let preset: TeacherPreset = std::env::args()
        .nth(1)
        .unwrap_or("fmnist-small".into())
        .parse()?;
    let recipe = preset.recipe();
    let device = DeviceSpec::Flex.device()?;
    let data = load(recipe.dataset, Split::Train, None)?;
    let [channels, ..] = data.image_shape();
    // The seed fixes the initial weights through the device's generator: this is how the
    // bundled teacher was trained (`ferd train-teacher` does the same).
    device.seed(recipe.config.seed);
    let model = recipe
        .arch
        .build(channels, data.num_classes(), &device.clone().autodiff());
    let options = RunOptions::new(PathBuf::from("runs").join(preset.name()), device);
    let trained = train_teacher(model, &data, &recipe.config, &options, &mut |e: &Event| {
        if let Event::EpochEnded {
            epoch,
            epochs,
            summary,
            ..
        } = e
        {
            eprintln!("epoch {}/{epochs}: {summary}", epoch + 1);
        }
    })?;
    let best = &trained.history[trained.best_epoch];
    println!(
        "best epoch {}: held-out clean {:.2}%, PGD {:.2}%",
        trained.best_epoch + 1,
        100.0 * best.clean.overall,
        100.0 * best.robust.overall
    );
    Ok(())
}
