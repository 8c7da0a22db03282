//! `ferd evaluate`: a saved model under a list of attacks, class by class.

use std::error::Error;
use std::path::PathBuf;

use ferd::attacks::{Attack, EvalConfig, EvalEvent, Frozen, attack_by_name, evaluate_observed};
use ferd::core::DeviceSpec;
use ferd::data::{DatasetName, Split, load};
use ferd::models::zoo::Architecture;
use ferd::models::{KeyRename, load_pytorch_with, load_weights};
use ferd::report::{Entry, markdown};

use crate::ui::EvalRenderer;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The architecture (small-cnn-N, resnet18, resnet18-w16 for a stem of 16 channels,
    /// wrn-34-10, wrn-28-10, preact-resnet18, mobilenet-v2, ...).
    #[arg(long)]
    arch: Architecture,
    /// The weights: saved by ferd (burnpack or SafeTensors), or a PyTorch state dict with
    /// --pytorch. The model takes images in [0, 1].
    #[arg(long)]
    weights: PathBuf,
    /// The weights are a PyTorch state dict (.pt, .pth or .safetensors).
    #[arg(long)]
    pytorch: bool,
    /// Rename the state dict's keys before loading (with --pytorch; repeatable; a regular
    /// expression and its replacement): --rename '^backbone\.='.
    #[arg(long, value_name = "PATTERN=REPLACEMENT", requires = "pytorch")]
    rename: Vec<KeyRename>,
    /// The dataset: fashion-mnist, mnist, cifar10, cifar100.
    #[arg(long, default_value = "fashion-mnist")]
    dataset: DatasetName,
    /// The split.
    #[arg(long, default_value = "test", value_parser = ["train", "test"])]
    split: String,
    /// Where the datasets are (default: $FERD_DATA_DIR, then the usual system places).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Evaluate a class-balanced subset of this many images.
    #[arg(long)]
    limit: Option<usize>,
    /// The Linf radius (0.1 on Fashion-MNIST; 8/255 = 0.0314 on CIFAR-10).
    #[arg(long, default_value_t = 0.1)]
    eps: f32,
    /// Attacks, comma-separated: fgsm, pgd-N, cw-N, apgd-ce, apgd-dlr, apgd-t, fab, fab-t,
    /// square, autoattack (aa), autoattack-plus, autoattack-rand.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "fgsm,pgd-20,cw-20,autoattack"
    )]
    attacks: Vec<String>,
    /// Images per batch.
    #[arg(long, default_value_t = 250)]
    batch: usize,
    /// The seed of random starts and restarts.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// The device: flex (CPU), wgpu, cuda:N, ndarray.
    #[arg(long, default_value = "flex")]
    device: DeviceSpec,
    /// The report (JSON). Progress is kept next to it in <out>.state.json after every batch.
    #[arg(long, default_value = "report.json")]
    out: PathBuf,
    /// Continue an interrupted evaluation from <out>.state.json (same arguments).
    #[arg(long)]
    resume: bool,
}

pub fn run(args: Args) -> Result<(), Box<dyn Error>> {
    let device = args.device.device()?;
    let split = if args.split == "train" {
        Split::Train
    } else {
        Split::Test
    };
    let mut data = load(args.dataset, split, args.data_dir.as_deref())?;
    if let Some(limit) = args.limit {
        data = data.balanced_subset(limit.div_ceil(data.num_classes()));
    }
    let attacks = args
        .attacks
        .iter()
        .map(|name| attack_by_name(name.trim(), args.eps))
        .collect::<Result<Vec<_>, _>>()?;
    let [channels, ..] = data.image_shape();
    let mut model = args.arch.build(channels, data.num_classes(), &device);
    if args.pytorch {
        load_pytorch_with(&mut model, &args.weights, &args.rename)
            .map_err(|e| args.arch.explain(e))?;
    } else {
        load_weights(&mut model, &args.weights).map_err(|e| args.arch.explain(e))?;
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
        state: Some(state.clone()),
    };
    let attacks: Vec<&dyn Attack> = attacks.iter().map(AsRef::as_ref).collect();
    let mut renderer = EvalRenderer::new();
    let report = evaluate_observed(
        &Frozen::new(&model),
        &data,
        &attacks,
        &device,
        &config,
        &mut |e: &EvalEvent| renderer.draw(e),
    );
    renderer.finish();
    let mut report = report?;
    report.architecture = Some(args.arch.to_string());
    let label = args.arch.to_string();
    println!("{}", markdown(&[Entry::new(&label, &report)]));
    std::fs::write(&args.out, report.to_json())?;
    std::fs::remove_file(&state)?;
    eprintln!(
        "report written to {} (tables and charts: ferd report {})",
        args.out.display(),
        args.out.display()
    );
    Ok(())
}
