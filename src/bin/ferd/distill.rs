//! `ferd distill`: a FERD run from a preset or a config file, then the teacher-student comparison.

use std::error::Error;
use std::path::PathBuf;
use std::time::Instant;

use ferd::core::DeviceSpec;
use ferd::data::{DatasetName, Split, load};
use ferd::distill::config::with_field;
use ferd::distill::{Budget, FerdConfig, FerdMethod, RunOptions, distill};
use ferd::models::init::{Init, initialize};
use ferd::models::zoo::Architecture;
use ferd::models::{load_pytorch, load_weights};
use ferd::report::{Entry, markdown};

use crate::ui::Renderer;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// How big the run is: fmnist-quick (about ten minutes on 2 cores), fmnist (about an hour),
    /// cifar10-paper (the paper's CIFAR-10 budget, GPU work), tiny (seconds, for tests).
    #[arg(long, default_value = "fmnist-quick")]
    budget: Budget,
    /// Which parts of FERD are on: ferd (the paper), ferd-official-code, dfrd-uniform (the
    /// baseline), no-reweighting, no-fae, no-utae, no-fae-utae.
    #[arg(long, default_value = "ferd")]
    method: FerdMethod,
    /// A configuration file (a run's config.json or your own) instead of --budget and --method.
    #[arg(long, conflicts_with_all = ["budget", "method"])]
    config: Option<PathBuf>,
    /// Change one field of the configuration, by its dotted path in config.json (repeatable):
    /// --set student.utae.gamma=0.5 --set epochs=20.
    #[arg(long = "set", value_name = "KEY=VALUE", value_parser = crate::key_value)]
    set: Vec<(String, String)>,
    /// Print the configuration as JSON and exit (nothing is run).
    #[arg(long)]
    print_config: bool,
    /// The teacher's architecture (small-cnn-N, resnet18, wrn-34-10, mobilenet-v2, ...).
    #[arg(long, default_value = "small-cnn-16")]
    teacher_arch: Architecture,
    /// The teacher's weights. Default: the bundled Fashion-MNIST teacher.
    #[arg(long)]
    teacher: Option<PathBuf>,
    /// The teacher's weights are a PyTorch state dict (.pt, .pth or .safetensors).
    #[arg(long)]
    pytorch: bool,
    /// The student's architecture.
    #[arg(long, default_value = "small-cnn-8")]
    student: Architecture,
    /// The run folder: config.json, metrics.jsonl, checkpoint/, student.bpk, final.json.
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
    #[arg(long, default_value_t = 100)]
    final_per_class: usize,
    /// The device: flex (CPU), wgpu, cuda:N, ndarray.
    #[arg(long, default_value = "flex")]
    device: DeviceSpec,
    /// Where the datasets are (default: $FERD_DATA_DIR, then the usual system places).
    #[arg(long)]
    data_dir: Option<PathBuf>,
}

/// The bundled Fashion-MNIST teacher (`models/fmnist-small-teacher`).
fn bundled_teacher() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("models/fmnist-small-teacher/teacher.bpk")
}

pub fn run(args: Args) -> Result<(), Box<dyn Error>> {
    let started = Instant::now();
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
    let device = args.device.device()?;
    let dataset = if config.image.channels == 3 {
        DatasetName::Cifar10
    } else {
        DatasetName::FashionMnist
    };
    // The test set is only reported on: the run keeps its last student (data-free).
    let test = load(dataset, Split::Test, args.data_dir.as_deref())?;
    let channels = config.image.channels;
    let mut teacher = args
        .teacher_arch
        .build(channels, config.num_classes, &device);
    let teacher_path = args.teacher.clone().unwrap_or_else(bundled_teacher);
    if args.pytorch {
        load_pytorch(&mut teacher, &teacher_path)?;
    } else {
        load_weights(&mut teacher, &teacher_path)?;
    }
    let student = initialize(
        args.student
            .build(channels, config.num_classes, &device.clone().autodiff()),
        Init::PyTorch,
        config.seed,
    );
    eprintln!(
        "FERD from {:?} ({}) to {:?}: {} epochs of {} images, on {}, into {}",
        args.teacher_arch,
        teacher_path.display(),
        args.student,
        config.epochs,
        config.batch_size,
        args.device,
        args.out.display()
    );
    let options = RunOptions {
        dir: args.out.clone(),
        resume: args.resume,
        stop_after: args.stop_after,
        device: device.clone(),
    };
    let mut renderer = Renderer::new();
    let distilled = distill(
        &teacher,
        student,
        &config,
        Some(&test),
        &options,
        &mut |e: &ferd::distill::Event| renderer.draw(e),
    );
    renderer.finish();
    let distilled = distilled?;
    if distilled.history.len() < config.epochs {
        eprintln!(
            "stopped after epoch {} of {}; continue with --resume",
            distilled.history.len(),
            config.epochs
        );
        return Ok(());
    }
    let distill_seconds = started.elapsed().as_secs_f64();
    let final_test = test.balanced_subset(args.final_per_class);
    eprintln!(
        "distilled in {:.1} min; teacher and student on {} test images",
        distill_seconds / 60.0,
        final_test.len()
    );
    let mut student = args.student.build(channels, config.num_classes, &device);
    load_weights(&mut student, args.out.join("student.bpk"))?;
    let comparison = ferd::compare::teacher_and_student(
        &teacher,
        &student,
        &final_test,
        &config,
        &device,
        distill_seconds,
    )?;
    let path = args.out.join("final.json");
    std::fs::write(&path, serde_json::to_string_pretty(&comparison)?)?;
    println!(
        "{}",
        markdown(&[
            Entry::new("teacher", &comparison.teacher),
            Entry::new("student", &comparison.student),
        ])
    );
    eprintln!(
        "written: {} (charts and tables: ferd report {})",
        path.display(),
        args.out.display()
    );
    Ok(())
}
