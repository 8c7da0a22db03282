//! The comparison at the end of a distillation: teacher and student evaluated on the same test
//! images under the run's PGD, class by class (`final.json` of a FERD run folder).

use std::time::Instant;

use burn::tensor::Device;
use ferd_attacks::{AttackError, EvalConfig, EvaluationReport, Frozen, Pgd, evaluate};
use ferd_data::ImageDataset;
use ferd_distill::FerdConfig;
use ferd_models::AnyClassifier;

use serde::{Deserialize, Serialize};

/// The comparison at the end of a FERD run (`final.json`): teacher and student on the same
/// test images under the same attack.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Comparison {
    /// Test images evaluated (a class-balanced subset of the test set, or all of it).
    pub test_images: usize,
    /// Seconds the distillation took.
    pub distill_seconds: f64,
    /// Seconds of distillation and evaluation.
    pub total_seconds: f64,
    /// The teacher's evaluation.
    pub teacher: EvaluationReport,
    /// The student's evaluation.
    pub student: EvaluationReport,
}

/// Images per batch of the final evaluation.
const BATCH: usize = 500;

/// Clean and PGD accuracy (the run's eps, step and `evaluation.pgd_steps`, seeded by the run's
/// seed) of a frozen `model` on `test`.
pub fn pgd_report(
    model: &AnyClassifier,
    test: &ImageDataset,
    config: &FerdConfig,
    device: &Device,
) -> Result<EvaluationReport, AttackError> {
    let pgd = Pgd::new(
        config.threat.eps,
        config.threat.alpha,
        config.evaluation.pgd_steps,
    );
    let eval = EvalConfig {
        batch_size: BATCH,
        seed: config.seed,
        state: None,
    };
    evaluate(&Frozen::new(model), test, &[&pgd], device, &eval)
}

/// Teacher and student on `test`; `distill_seconds` is recorded with the result, and the total
/// adds the time of these two evaluations.
pub fn teacher_and_student(
    teacher: &AnyClassifier,
    student: &AnyClassifier,
    test: &ImageDataset,
    config: &FerdConfig,
    device: &Device,
    distill_seconds: f64,
) -> Result<Comparison, AttackError> {
    let started = Instant::now();
    let teacher = pgd_report(teacher, test, config, device)?;
    let student = pgd_report(student, test, config, device)?;
    Ok(Comparison {
        test_images: test.len(),
        distill_seconds,
        total_seconds: distill_seconds + started.elapsed().as_secs_f64(),
        teacher,
        student,
    })
}
