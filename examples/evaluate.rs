//! Evaluates a saved model on a dataset under a list of attacks and writes the class-wise
//! robustness report as JSON (and prints it as tables).
//!
//! ```text
//! cargo run --release --example evaluate -- --arch ARCH --weights FILE [--pytorch]
//!     [--dataset fashion-mnist] [--split test] [--data-dir DIR] [--limit N]
//!     [--eps 0.1] [--attacks fgsm,pgd-20,cw-20,autoattack] [--batch 250] [--seed 0]
//!     [--device flex] [--out report.json] [--resume]
//! ```
//! Progress is recorded after every batch of every attack in `report.state.json` next to the
//! report; `--resume` continues an interrupted evaluation from it (same arguments), and gives
//! the report an uninterrupted run gives. The state file is removed once the report is written.
//! ARCH: a zoo name (`small-cnn-8`, `resnet18`, `wrn-34-10`, ...). Weights saved by ferd
//! (burnpack or SafeTensors in Burn's names) load as they are; `--pytorch` reads a PyTorch
//! state dict (`.pt`, `.pth` or `.safetensors`). The model must take images in `[0, 1]`.
//! `--limit N` evaluates a class-balanced subset of N images (N / classes per class).

use std::path::PathBuf;
use std::process::ExitCode;

use ferd::attacks::{EvalConfig, Frozen, attack_by_name, evaluate};
use ferd::core::DeviceSpec;
use ferd::data::{DatasetName, Split, load};
use ferd::models::weights::{load_pytorch, load_weights};
use ferd::models::zoo::Architecture;

const USAGE: &str = "usage: evaluate --arch ARCH --weights FILE [--pytorch] [--dataset NAME] \
[--split train|test] [--data-dir DIR] [--limit N] [--eps E] [--attacks a,b,...] [--batch B] \
[--seed S] [--device flex|wgpu|cuda:N] [--out FILE.json] [--resume]";

struct Args {
    arch: Architecture,
    weights: PathBuf,
    pytorch: bool,
    dataset: DatasetName,
    split: Split,
    data_dir: Option<PathBuf>,
    limit: Option<usize>,
    eps: f32,
    attacks: Vec<String>,
    batch: usize,
    seed: u64,
    device: DeviceSpec,
    out: PathBuf,
    resume: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut arch = None;
    let mut weights = None;
    let mut args = Args {
        arch: Architecture::SmallCnn { width: 32 },
        weights: PathBuf::new(),
        pytorch: false,
        dataset: DatasetName::FashionMnist,
        split: Split::Test,
        data_dir: None,
        limit: None,
        eps: 0.1,
        attacks: ["fgsm", "pgd-20", "cw-20", "autoattack"]
            .map(String::from)
            .to_vec(),
        batch: 250,
        seed: 0,
        device: DeviceSpec::Flex,
        out: PathBuf::from("report.json"),
        resume: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = |name: &str| it.next().ok_or(format!("{name} needs a value"));
        let number = |name: &str, v: String| v.parse::<f64>().map_err(|e| format!("{name}: {e}"));
        match arg.as_str() {
            "--arch" => arch = Some(value("--arch")?.parse().map_err(|e| format!("{e}"))?),
            "--weights" => weights = Some(PathBuf::from(value("--weights")?)),
            "--pytorch" => args.pytorch = true,
            "--dataset" => {
                args.dataset = value("--dataset")?.parse().map_err(|e| format!("{e}"))?
            }
            "--split" => {
                args.split = match value("--split")?.as_str() {
                    "train" => Split::Train,
                    "test" => Split::Test,
                    other => return Err(format!("unknown split `{other}` (train or test)")),
                }
            }
            "--data-dir" => args.data_dir = Some(PathBuf::from(value("--data-dir")?)),
            "--limit" => args.limit = Some(number("--limit", value("--limit")?)? as usize),
            "--eps" => args.eps = number("--eps", value("--eps")?)? as f32,
            "--attacks" => {
                args.attacks = value("--attacks")?
                    .split(',')
                    .map(|s| s.trim().to_string())
                    .collect()
            }
            "--batch" => args.batch = number("--batch", value("--batch")?)? as usize,
            "--seed" => args.seed = number("--seed", value("--seed")?)? as u64,
            "--device" => args.device = value("--device")?.parse().map_err(|e| format!("{e}"))?,
            "--out" => args.out = PathBuf::from(value("--out")?),
            "--resume" => args.resume = true,
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown option `{other}`")),
        }
    }
    args.arch = arch.ok_or("--arch is required")?;
    args.weights = weights.ok_or("--weights is required")?;
    Ok(args)
}

fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    let device = args.device.device()?;
    let mut data = load(args.dataset, args.split, args.data_dir.as_deref())?;
    if let Some(limit) = args.limit {
        data = data.balanced_subset(limit.div_ceil(data.num_classes()));
    }
    let attacks = args
        .attacks
        .iter()
        .map(|name| attack_by_name(name, args.eps))
        .collect::<Result<Vec<_>, _>>()?;
    let [channels, ..] = data.image_shape();
    let mut model = args.arch.build(channels, data.num_classes(), &device);
    if args.pytorch {
        load_pytorch(&mut model, &args.weights)?;
    } else {
        load_weights(&mut model, &args.weights)?;
    }
    eprintln!(
        "evaluating {:?} ({}) on {} images of {} on {}",
        args.arch,
        args.weights.display(),
        data.len(),
        data.name(),
        args.device
    );
    let state = args.out.with_extension("state.json");
    if !args.resume && state.exists() {
        std::fs::remove_file(&state)?;
    }
    let config = EvalConfig {
        batch_size: args.batch,
        seed: args.seed,
        progress: true,
        state: Some(state.clone()),
    };
    let report = evaluate(&Frozen::new(&model), &data, &attacks, &device, &config)?;
    println!("{}", report.table());
    std::fs::write(&args.out, report.to_json())?;
    std::fs::remove_file(&state)?;
    eprintln!("report written to {}", args.out.display());
    Ok(())
}

fn main() -> ExitCode {
    match parse_args() {
        Ok(args) => match run(args) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::FAILURE
            }
        },
        Err(message) => {
            if !message.is_empty() {
                eprintln!("error: {message}\n");
            }
            eprintln!("{USAGE}");
            ExitCode::from(2)
        }
    }
}
