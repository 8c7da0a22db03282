//! `ferd train-teacher`: a robust teacher from a recipe of the library.

use std::error::Error;
use std::path::PathBuf;

use ferd::core::DeviceSpec;
use ferd::data::{Split, load};
use ferd::distill::config::{field_docs, with_field};
use ferd::distill::{Event, RunOptions, TeacherPreset, train_teacher};

use crate::ui::Renderer;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The recipe: fmnist-small (the bundled teacher's, about 25 minutes on 2 cores) or
    /// cifar10-resnet18-pgdat (Rice et al.'s PGD-AT, GPU work; needs the CIFAR-10 files).
    #[arg(long)]
    preset: TeacherPreset,
    /// Change one field of the training configuration (repeatable): --set epochs=4. The keys,
    /// their values and what each means: --list-config.
    #[arg(long = "set", value_name = "KEY=VALUE", value_parser = crate::key_value)]
    set: Vec<(String, String)>,
    /// Print the training configuration as JSON and exit.
    #[arg(long)]
    print_config: bool,
    /// List every field of the training configuration (the keys of --set) with its value and
    /// its documentation, and exit.
    #[arg(long)]
    list_config: bool,
    /// The run folder (default runs/<preset>): best.bpk, final.bpk, metrics.jsonl, config.json,
    /// checkpoint/.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Continue the run in --out from its last checkpoint.
    #[arg(long)]
    resume: bool,
    /// Stop after this many epochs (continue with --resume).
    #[arg(long, value_name = "EPOCHS")]
    stop_after: Option<usize>,
    /// The device: flex (CPU), wgpu, cuda:N, ndarray.
    #[arg(long, default_value = "flex")]
    device: DeviceSpec,
    /// Where the datasets are (default: $FERD_DATA_DIR, then the usual system places).
    #[arg(long)]
    data_dir: Option<PathBuf>,
}

pub fn run(args: Args) -> Result<(), Box<dyn Error>> {
    let recipe = args.preset.recipe();
    let mut config = recipe.config;
    for (key, value) in &args.set {
        config = with_field(&config, key, value)?;
    }
    if args.print_config {
        println!("{}", serde_json::to_string_pretty(&config)?);
        return Ok(());
    }
    if args.list_config {
        print!("{}", crate::list_config(&field_docs(&config)));
        return Ok(());
    }
    let device = args.device.device()?;
    let data = load(recipe.dataset, Split::Train, args.data_dir.as_deref())?;
    let [channels, ..] = data.image_shape();
    // The seed fixes the initial weights through the device's generator, as in the
    // `train_teacher` example that trained the bundled teacher.
    device.seed(config.seed);
    let model = recipe
        .arch
        .build(channels, data.num_classes(), &device.clone().autodiff());
    let dir = args
        .out
        .unwrap_or_else(|| PathBuf::from("runs").join(args.preset.name()));
    eprintln!(
        "training {:?} on {} ({} images) into {}",
        recipe.arch,
        data.name(),
        data.len(),
        dir.display()
    );
    let options = RunOptions {
        dir: dir.clone(),
        resume: args.resume,
        stop_after: args.stop_after,
        device,
    };
    let mut renderer = Renderer::new();
    let trained = train_teacher(model, &data, &config, &options, &mut |e: &Event| {
        renderer.draw(e)
    });
    renderer.finish();
    let trained = trained?;
    if trained.history.len() < config.epochs {
        eprintln!(
            "stopped after epoch {} of {}; continue with --resume",
            trained.history.len(),
            config.epochs
        );
        return Ok(());
    }
    let best = &trained.history[trained.best_epoch];
    eprintln!(
        "best epoch {}: held-out clean {:.2}%, PGD-{} {:.2}%; weights in {}",
        trained.best_epoch + 1,
        100.0 * best.clean.overall,
        config.eval_steps,
        100.0 * best.robust.overall,
        dir.join("best.bpk").display()
    );
    Ok(())
}
