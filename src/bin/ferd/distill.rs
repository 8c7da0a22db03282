//! `ferd distill`: a FERD run from a preset or a config file, then the teacher-student comparison.

use std::error::Error;
use std::path::PathBuf;

use ferd::core::DeviceSpec;
use ferd::distill::config::{field_docs, with_field};
use ferd::distill::{Budget, FerdConfig, FerdMethod, RunOptions};
use ferd::distillation::{BUNDLED_TEACHER, Distillation, FINAL_PER_CLASS, Outcome};
use ferd::models::KeyRename;
use ferd::models::zoo::Architecture;
use ferd::report::{Entry, markdown};

use crate::ui::Renderer;

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
    /// Change one field of the configuration, by its dotted path in config.json (repeatable):
    /// --set student.utae.gamma=0.5 --set epochs=20. The keys, their values and what each
    /// means: --list-config.
    #[arg(long = "set", value_name = "KEY=VALUE", value_parser = crate::key_value)]
    set: Vec<(String, String)>,
    /// Print the configuration as JSON and exit (nothing is run).
    #[arg(long)]
    print_config: bool,
    /// List every field of the configuration (the keys of --set) with its value and its
    /// documentation (the paper's or the official code's setting it reproduces), and exit.
    #[arg(long)]
    list_config: bool,
    /// The teacher's architecture (small-cnn-N, resnet18, wrn-34-10, mobilenet-v2, ...).
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
    /// The run folder: config.json, metrics.jsonl, checkpoint/, student.bpk, student.safetensors
    /// (PyTorch's layout), final.json.
    #[arg(long, default_value = "runs/ferd")]
    out: PathBuf,
    /// Continue the run in --out from its last checkpoint.
    #[arg(long)]
    resume: bool,
    /// Stop after this many epochs (to run a long job in slices; continue with --resume).
    #[arg(long, value_name = "EPOCHS")]
    stop_after: Option<usize>,
    /// Test images per class of the final teacher-student comparison (a class-balanced subset;
    /// 1000 is the whole Fashion-MNIST test set).
    #[arg(long, default_value_t = FINAL_PER_CLASS)]
    final_per_class: usize,
    /// The device: flex (CPU), wgpu, cuda:N, ndarray.
    #[arg(long, default_value = "flex")]
    device: DeviceSpec,
    /// Where the datasets are (default: $FERD_DATA_DIR, then the usual system places).
    #[arg(long)]
    data_dir: Option<PathBuf>,
}

pub fn run(args: Args) -> Result<(), Box<dyn Error>> {
    let mut config = match &args.config {
        Some(path) => FerdConfig::read(path)?,
        None => FerdConfig::preset(args.budget, args.method),
    };
    for (key, value) in &args.set {
        config = with_field(&config, key, value)?;
    }
    config.check()?;
    if args.print_config {
        println!("{}", serde_json::to_string_pretty(&config)?);
        return Ok(());
    }
    if args.list_config {
        print!("{}", crate::list_config(&field_docs(&config)));
        return Ok(());
    }
    let run = Distillation {
        teacher_arch: args.teacher_arch,
        teacher_weights: args
            .teacher
            .clone()
            .unwrap_or_else(|| BUNDLED_TEACHER.into()),
        pytorch: args.pytorch,
        renames: args.rename.clone(),
        student_arch: args.student,
        options: RunOptions {
            dir: args.out.clone(),
            resume: args.resume,
            stop_after: args.stop_after,
            device: args.device.device()?,
        },
        data_dir: args.data_dir.clone(),
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
        args.device,
        args.out.display()
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
                args.out.join("final.json").display(),
                args.out.display()
            );
        }
    }
    Ok(())
}
