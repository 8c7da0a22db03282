//! Trains a robust teacher with a preset and writes the run folder: `best.bpk` (best epoch by
//! held-out PGD accuracy), `final.bpk`, `metrics.jsonl`, `config.json` and `checkpoint/`.
//!
//! ```text
//! cargo run --release --example train_teacher -- --preset fmnist-small [--out DIR] [--resume]
//!     [--epochs N] [--seed S] [--device flex] [--data-dir DIR]
//! ```
//! Presets are the library's [`ferd::distill::TeacherPreset`]s: `fmnist-small` (the bundled
//! teacher's recipe) and `cifar10-resnet18-pgdat` (needs the CIFAR-10 binary files, `--data-dir`
//! or `$FERD_DATA_DIR/cifar-10-batches-bin`). The `ferd train-teacher` command does the same with
//! more options.

use std::path::PathBuf;
use std::process::ExitCode;

#[path = "common/mod.rs"]
mod common;

use ferd::core::DeviceSpec;
use ferd::data::{Split, load};
use ferd::distill::{Event, RunOptions, TeacherPreset, train_teacher};

const USAGE: &str = "usage: train_teacher --preset fmnist-small|cifar10-resnet18-pgdat [--out DIR] \
[--resume] [--epochs N] [--seed S] [--device flex|wgpu|cuda:N] [--data-dir DIR]";

struct Args {
    preset: String,
    out: Option<PathBuf>,
    resume: bool,
    epochs: Option<usize>,
    seed: Option<u64>,
    device: DeviceSpec,
    data_dir: Option<PathBuf>,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        preset: String::new(),
        out: None,
        resume: false,
        epochs: None,
        seed: None,
        device: DeviceSpec::Flex,
        data_dir: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = |name: &str| it.next().ok_or(format!("{name} needs a value"));
        match arg.as_str() {
            "--preset" => args.preset = value("--preset")?,
            "--out" => args.out = Some(PathBuf::from(value("--out")?)),
            "--resume" => args.resume = true,
            "--epochs" => {
                args.epochs = Some(
                    value("--epochs")?
                        .parse()
                        .map_err(|e| format!("--epochs: {e}"))?,
                )
            }
            "--seed" => {
                args.seed = Some(
                    value("--seed")?
                        .parse()
                        .map_err(|e| format!("--seed: {e}"))?,
                )
            }
            "--device" => args.device = value("--device")?.parse().map_err(|e| format!("{e}"))?,
            "--data-dir" => args.data_dir = Some(PathBuf::from(value("--data-dir")?)),
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown option `{other}`")),
        }
    }
    if args.preset.is_empty() {
        return Err("--preset is required".into());
    }
    Ok(args)
}

fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    let preset: TeacherPreset = args.preset.parse()?;
    let mut p = preset.recipe();
    if let Some(epochs) = args.epochs {
        p.config.epochs = epochs;
    }
    if let Some(seed) = args.seed {
        p.config.seed = seed;
    }
    let device = args.device.device()?;
    let data = load(p.dataset, Split::Train, args.data_dir.as_deref())?;
    let [channels, ..] = data.image_shape();
    // The seed also fixes the initial weights.
    device.seed(p.config.seed);
    let model = p
        .arch
        .build(channels, data.num_classes(), &device.clone().autodiff());
    let dir = args
        .out
        .unwrap_or_else(|| PathBuf::from("runs").join(&args.preset));
    eprintln!(
        "training {:?} on {} ({} images) into {}",
        p.arch,
        data.name(),
        data.len(),
        dir.display()
    );
    let options = RunOptions {
        dir: dir.clone(),
        resume: args.resume,
        stop_after: None,
        device,
    };
    let mut renderer = common::Renderer::new();
    let trained = train_teacher(model, &data, &p.config, &options, &mut |e: &Event| {
        renderer.draw(e)
    })?;
    let best = &trained.history[trained.best_epoch];
    eprintln!(
        "best epoch {}: held-out clean {:.2}%, PGD-{} {:.2}%; weights in {}",
        trained.best_epoch + 1,
        100.0 * best.clean.overall,
        p.config.eval_steps,
        100.0 * best.robust.overall,
        dir.join("best.bpk").display()
    );
    Ok(())
}

fn main() -> ExitCode {
    common::main(parse_args, run, USAGE)
}
