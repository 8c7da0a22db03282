//! `ferd distill`: a FERD run from a preset or a config file, then the teacher-student comparison.

use std::error::Error;
use std::path::{Path, PathBuf};

use ferd::distill::{Budget, FerdConfig, FerdMethod};
use ferd::models::KeyRename;
use ferd::models::zoo::Architecture;
use ferd::pipeline::{BUNDLED_TEACHER, Distillation, FINAL_PER_CLASS, Outcome};
use ferd::report::{Entry, markdown};

use crate::job::JobArgs;
use crate::ui::Renderer;

/// The run folder without --out.
const DEFAULT_DIR: &str = "runs/ferd";

#[derive(Debug, clap::Args)]
pub struct Args {
    /// How big the run is: fmnist-quick (about ten minutes on 2 cores), fmnist-study (the
    /// first robust-fairness study's, about 20 minutes), fmnist-paper-round (the second
    /// study's: the paper's round shape, about 90 minutes), fmnist (about an hour),
    /// cifar10-paper (the paper's CIFAR-10 budget, GPU work), tiny (seconds, for tests).
    #[arg(long, default_value = "fmnist-quick")]
    budget: Budget,
    /// Which parts of FERD are on: ferd (the paper), ferd-minmax (the paper with the official
    /// code's label rule), ferd-official-code, dfrd-uniform (the baseline), no-reweighting,
    /// no-fae, no-utae, no-fae-utae.
    #[arg(long, default_value = "ferd")]
    method: FerdMethod,
    /// A configuration file (a run's config.json or your own) instead of --budget and --method.
    #[arg(long, conflicts_with_all = ["budget", "method"])]
    config: Option<PathBuf>,
    /// The teacher's architecture (small-cnn-N, resnet18, resnet18-w16, wrn-34-10, mobilenet-v2,
    /// ...).
    #[arg(long, default_value = "small-cnn-16")]
    teacher_arch: Architecture,
    /// The teacher's weights. Default: the bundled Fashion-MNIST teacher.
    #[arg(long)]
    teacher: Option<PathBuf>,
    /// The teacher's weights are a PyTorch state dict (.pt, .pth or .safetensors).
    #[arg(long)]
    pytorch: bool,
    /// Rename the teacher's keys before loading (with --pytorch; repeatable; a regular
    /// expression and its replacement): --rename '^backbone\.='.
    #[arg(long, value_name = "PATTERN=REPLACEMENT", requires = "pytorch")]
    rename: Vec<KeyRename>,
    /// The student's architecture.
    #[arg(long, default_value = "small-cnn-8")]
    student: Architecture,
    /// Test images per class of the final teacher-student comparison (a class-balanced subset;
    /// 1000 is the whole Fashion-MNIST test set).
    #[arg(long, default_value_t = FINAL_PER_CLASS)]
    final_per_class: usize,
    #[command(flatten)]
    job: JobArgs,
}

pub fn run(args: Args) -> Result<(), Box<dyn Error>> {
    let config = match &args.config {
        Some(path) => FerdConfig::read(path)?,
        None => FerdConfig::preset(args.budget, args.method),
    };
    let Some(config) = args.job.configure(config, FerdConfig::check)? else {
        return Ok(());
    };
    let dir = args.job.dir(Path::new(DEFAULT_DIR));
    let run = Distillation {
        teacher_arch: args.teacher_arch,
        teacher_weights: args
            .teacher
            .clone()
            .unwrap_or_else(|| BUNDLED_TEACHER.into()),
        pytorch: args.pytorch,
        renames: args.rename.clone(),
        student_arch: args.student,
        options: args.job.run_options(dir.clone())?,
        data_dir: args.job.data_dir.clone(),
        final_per_class: args.final_per_class,
        config,
    };
    eprintln!(
        "FERD from {:?} ({}) to {:?}: {} epochs of {} images, on {}, into {}",
        run.teacher_arch,
        run.teacher_weights.display(),
        run.student_arch,
        run.config.epochs,
        run.config.batch_size,
        args.job.device,
        dir.display()
    );
    let mut renderer = Renderer::new();
    let outcome = run.run(&mut |e: &ferd::distill::Event| renderer.draw(e));
    renderer.finish();
    match outcome? {
        Outcome::Stopped { epochs_done } => eprintln!(
            "stopped after epoch {epochs_done} of {}; continue with --resume",
            run.config.epochs
        ),
        Outcome::Finished(comparison) => {
            println!(
                "{}",
                markdown(&[
                    Entry::new("teacher", &comparison.teacher),
                    Entry::new("student", &comparison.student),
                ])
            );
            eprintln!(
                "distilled in {:.1} min; written: {} (charts and tables: ferd report {})",
                comparison.distill_seconds / 60.0,
                dir.join("final.json").display(),
                dir.display()
            );
        }
    }
    Ok(())
}
