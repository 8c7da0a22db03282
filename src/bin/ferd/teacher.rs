//! `ferd train-teacher`: a robust teacher from a recipe of the library.

use std::error::Error;
use std::path::Path;

use ferd::data::{Split, load};
use ferd::distill::{Event, TeacherConfig, TeacherPreset, train_teacher};

use crate::job::JobArgs;
use crate::ui::Renderer;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The recipe: fmnist-small (the bundled teacher's, about 25 minutes on 2 cores) or
    /// cifar10-resnet18-pgdat (Rice et al.'s PGD-AT, GPU work; needs the CIFAR-10 files).
    #[arg(long)]
    preset: TeacherPreset,
    #[command(flatten)]
    job: JobArgs,
}

pub fn run(args: Args) -> Result<(), Box<dyn Error>> {
    let recipe = args.preset.recipe();
    let Some(config) = args.job.configure(recipe.config, TeacherConfig::check)? else {
        return Ok(());
    };
    let dir = args.job.dir(&Path::new("runs").join(args.preset.name()));
    let options = args.job.run_options(dir.clone())?;
    let device = options.device.clone();
    let data = load(recipe.dataset, Split::Train, args.job.data_dir.as_deref())?;
    let [channels, ..] = data.image_shape();
    // The seed fixes the initial weights through the device's generator, as in the
    // `train_teacher` example that trained the bundled teacher.
    device.seed(config.seed);
    let model = recipe
        .arch
        .build(channels, data.num_classes(), &device.clone().autodiff());
    eprintln!(
        "training {:?} on {} ({} images) into {}",
        recipe.arch,
        data.name(),
        data.len(),
        dir.display()
    );
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
