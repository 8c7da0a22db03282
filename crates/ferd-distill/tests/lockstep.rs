//! FERD in lockstep with the official code itself: two epochs of the released training loop
//! (`tools/peer/official_lockstep.py` drives `mayaobuduyao/FERD`'s own functions on tiny models)
//! replayed by `distill_with` with the same initial weights and the same random draws
//! (latents, generator initializations, labels, crops and flips, bottleneck noise, PGD and UTAE
//! starts, bank order). Every recorded quantity is compared: each synthesis step's four loss
//! terms and robust share, each round's kept images (through the bank), fragility, next class
//! distribution and learning rate, each student step's two IKL terms, and the final student's
//! weights.
//!
//! Tolerances come from the peer itself: the same run with one CPU thread instead of two (other
//! summation orders, `official_lockstep.py --check --threads 1`) moves the first epoch's
//! synthesis by at most 1.2e-6 relative and its student losses by 1.1e-4, and the second epoch
//! by up to 2.5e-3 on the kept images and 2.3e-2 on the fragility (a PGD sign that flips): each
//! quantity's own float32 spread, with a margin of about 2.5 (see [`CHECKS`]).

use std::collections::HashMap;

use ferd_core::device::test_device;
use ferd_core::reweighting::ReweightStrategy;
use ferd_distill::config::{GeneratorShape, ImageShape, StudentIkl, Threat};
use ferd_distill::draws::Recorded;
use ferd_distill::presets::{Budget, FerdMethod};
use ferd_distill::{Event, FerdConfig, RunOptions, distill_with};
use safetensors::SafeTensors;

use crate::common::{fixtures, parameters, small_cnn};

/// The fixture: `tape.e{epoch}.{site}` (draws) and `value.{name}` (what the official code
/// computed).
fn fixture() -> HashMap<String, Vec<f32>> {
    let bytes = std::fs::read(fixtures().join("lockstep/lockstep.safetensors")).unwrap();
    let file = SafeTensors::deserialize(&bytes).unwrap();
    file.tensors()
        .into_iter()
        .map(|(name, view)| {
            let values = view
                .data()
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
                .collect();
            (name, values)
        })
        .collect()
}

/// The official run's setting (`tools/peer/official_lockstep.py`, `lockstep.json`).
fn official_config() -> FerdConfig {
    let mut c = FerdConfig::preset(Budget::Tiny, FerdMethod::FerdOfficialCode);
    c.epochs = 2;
    c.warmup = 0;
    c.batch_size = 8;
    c.num_classes = 10;
    c.image = ImageShape {
        channels: 1,
        side: 28,
    };
    // test.py / query_sample.py: eps 8/255, alpha 2/255 for UTAE and the fragility PGD.
    c.threat = Threat {
        eps: 8.0 / 255.0,
        alpha: 2.0 / 255.0,
    };
    c.augment = ferd_data::Augment {
        padding: 4,
        flip: true,
    };
    c.generator = GeneratorShape { latent: 16, ngf: 8 };
    c.synthesis.steps = 3;
    c.synthesis.lr_generator = 2e-3;
    c.synthesis.lr_latent = 0.015;
    c.fairness.inner_steps = 50;
    c.fairness.lr = 0.1;
    c.fairness.beta = 0.3;
    c.reweighting.pgd_steps = 20;
    c.reweighting.strategy = ReweightStrategy::official_minmax();
    c.student.steps = 3;
    c.student.lr = 0.1;
    c.student.momentum = 0.9;
    c.student.weight_decay = 5e-4;
    c.student.ikl = StudentIkl::ClassPrior;
    c.student.utae.steps = 10;
    c.student.utae.gamma = 0.0;
    c.student.utae.start_std = 0.001;
    c.evaluation.every = 0;
    c
}

fn recorded(fixture: &HashMap<String, Vec<f32>>) -> Recorded {
    let mut draws = Recorded::new();
    for (name, numbers) in fixture {
        if let Some(rest) = name.strip_prefix("tape.e") {
            let (epoch, site) = rest.split_once('.').unwrap();
            draws.insert(epoch.parse().unwrap(), site, numbers.clone());
        }
    }
    for epoch in 0..2 {
        draws.insert_generator(
            epoch,
            fixtures().join(format!("lockstep/generator_e{epoch}.safetensors")),
        );
    }
    draws
}

/// Largest difference relative to the largest magnitude of `want`.
fn relative(got: &[f64], want: &[f32]) -> f64 {
    assert_eq!(got.len(), want.len());
    let scale = want
        .iter()
        .fold(1e-12f64, |m, &v| m.max(f64::from(v).abs()));
    got.iter()
        .zip(want)
        .map(|(a, &b)| (a - f64::from(b)).abs())
        .fold(0.0, f64::max)
        / scale
}

/// What ferd computed, by the peer's names.
fn ferd_run(config: &FerdConfig, draws: &mut Recorded, tag: &str) -> HashMap<String, Vec<f64>> {
    let device = test_device();
    let teacher = small_cnn(4, "lockstep/teacher.safetensors", &device);
    let student = small_cnn(
        2,
        "lockstep/student.safetensors",
        &device.clone().autodiff(),
    );
    let dir = std::env::temp_dir().join(format!("ferd-lockstep-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut got: HashMap<String, Vec<f64>> = HashMap::new();
    let mut observer = |event: &Event| match event {
        Event::SynthesisStep { epoch, terms, .. } => {
            for (name, value) in [
                ("g.bn", terms.bn),
                ("g.ikl", -terms.adv),
                ("g.oh", terms.oh),
                ("g.uni", terms.uni),
                ("g.robust", terms.robust_fraction),
            ] {
                got.entry(format!("e{epoch}.{name}"))
                    .or_default()
                    .push(value);
            }
        }
        Event::StudentStep {
            epoch,
            step,
            report,
        } => {
            let ikl = got.entry(format!("e{epoch}.s.ikl")).or_default();
            ikl.extend([report.clean, report.adv]);
            if *step == 0 {
                got.insert(format!("e{epoch}.s.ikl@0"), vec![report.clean, report.adv]);
            }
        }
        _ => {}
    };
    let out = distill_with(
        &teacher,
        student,
        config,
        None,
        &RunOptions::new(&dir, device.clone()),
        draws,
        &mut observer,
    )
    .unwrap();
    for r in &out.history {
        let e = r.epoch;
        got.insert(format!("e{e}.distribution"), r.class_distribution.clone());
        got.insert(format!("e{e}.fragility"), r.fragility.clone());
        got.insert(format!("e{e}.lr"), vec![r.lr]);
    }
    let mut bank = ferd_distill::bank::Bank::new([1, 28, 28], 10).unwrap();
    bank.load(&dir.join("checkpoint")).unwrap();
    got.insert(
        "e1.bank".into(),
        bank.pixels().iter().map(|&p| f64::from(p)).collect(),
    );
    got.insert(
        "final_student".into(),
        parameters(&out.student)
            .into_iter()
            .map(f64::from)
            .collect(),
    );
    let _ = std::fs::remove_dir_all(&dir);
    got
}

/// The official final student in ferd's parameter order (loaded through the PyTorch import).
fn official_student() -> Vec<f32> {
    parameters(&small_cnn(
        2,
        "lockstep/student_final.safetensors",
        &test_device(),
    ))
}

/// Per compared quantity: the peer's name and the tolerance (relative to its largest entry).
/// Where the peer's own spread (one thread against two) is measurable, the tolerance is about
/// 2.5 times it; where it is nil, 1e-5 (float32 differences of the formulas), and 1e-4 for
/// `L_uni`, a KL of near-uniform distributions (about 0.006) that loses digits to cancellation.
const CHECKS: [(&str, f64); 16] = [
    ("e0.g.bn", 1e-5),
    ("e0.g.ikl", 1e-5),
    ("e0.g.oh", 1e-5),
    ("e0.g.uni", 1e-4),
    ("e0.fragility", 1e-4),
    ("e0.distribution", 1e-4),
    ("e0.lr", 1e-7),
    ("e0.s.ikl@0", 1e-5),
    ("e0.s.ikl", 2.5e-4),
    ("e1.g.bn", 1e-5),
    ("e1.g.ikl", 1e-5),
    ("e1.g.oh", 1e-5),
    ("e1.g.uni", 1e-4),
    ("e1.distribution", 1e-4),
    ("e1.lr", 1e-7),
    ("e1.s.ikl", 2.5e-4),
];

/// The bank after two rounds, the second round's fragility and the final student: where the
/// peer's own spread is largest (2.3e-3, 2.3e-2 and 3.1e-4).
const LATE_CHECKS: [(&str, f64); 3] = [
    ("e1.bank", 5e-3),
    ("e1.fragility", 5e-2),
    ("final_student", 1e-3),
];

/// Runs ferd on the recording and returns the failed comparisons, worst first.
fn divergences(config: &FerdConfig, tag: &str) -> Vec<String> {
    let fixture = fixture();
    let got = ferd_run(config, &mut recorded(&fixture), tag);
    let mut report = Vec::new();
    let mut check = |name: &str, want: &[f32], tolerance: f64| {
        let Some(values) = got.get(name) else {
            report.push(format!("{name}: not produced"));
            return;
        };
        let err = relative(values, want);
        eprintln!("{tag} {name}: relative difference {err:.2e} (tolerance {tolerance:.0e})");
        if err.is_nan() || err > tolerance {
            report.push(format!("{name}: {err:.2e} > {tolerance:.0e}"));
        }
    };
    for (name, tolerance) in CHECKS.iter().chain(&LATE_CHECKS) {
        let want = if *name == "final_student" {
            official_student()
        } else if let Some(sequence) = name.strip_suffix("@0") {
            // The first step alone (two entries: the clean and the adversarial term), before
            // any update has carried a difference forward.
            fixture[&format!("value.{sequence}")][..2].to_vec()
        } else {
            fixture[&format!("value.{name}")].clone()
        };
        check(name, &want, *tolerance);
    }
    // The robust share of every synthesis step: the mask's mean, exactly.
    for e in 0..2 {
        let masks: Vec<f32> = (0..3)
            .map(|s| {
                let m = &fixture[&format!("value.e{e}.g{s}.mask")];
                m.iter().sum::<f32>() / m.len() as f32
            })
            .collect();
        check(&format!("e{e}.g.robust"), &masks, 1e-6);
    }
    report
}

#[test]
fn two_epochs_match_the_official_code() {
    let failed = divergences(&official_config(), "official");
    assert!(
        failed.is_empty(),
        "ferd departs from the official code: {failed:#?}"
    );
}

/// The comparison has teeth: swapping any single piece of the method for a plausible
/// alternative makes it fail. (Not the UTAE uniformity term: the tiny random student predicts
/// near-uniformly, so `KL(U || s)` barely has a gradient and `gamma` 0.3 leaves the signed
/// steps unchanged; the golden UTAE step checks that term.)
#[test]
fn a_swapped_piece_breaks_the_lockstep() {
    type Swap = (&'static str, fn(&mut FerdConfig));
    let swaps: [Swap; 6] = [
        ("softmax reweighting", |c| {
            c.reweighting.strategy = ReweightStrategy::default();
        }),
        ("the paper's student IKL weights", |c| {
            c.student.ikl = StudentIkl::TeacherSoftmax { temperature: 100.0 };
        }),
        ("eps/10 steps", |c| c.threat.alpha = c.threat.eps / 10.0),
        ("no bottleneck beta", |c| c.fairness.beta = 0.0),
        ("20 bottleneck steps", |c| c.fairness.inner_steps = 20),
        ("the latent rate of test.py's default", |c| {
            c.synthesis.lr_latent = 0.01;
        }),
    ];
    for (what, swap) in swaps {
        let mut config = official_config();
        swap(&mut config);
        let failed = divergences(&config, what);
        assert!(
            !failed.is_empty(),
            "swapping in {what} went unnoticed by the lockstep comparison"
        );
    }
}

#[test]
fn the_official_setting_is_the_preset() {
    // The lockstep setting is the `ferd-official-code` method on the tiny models: the method
    // switches are the preset's, not the test's.
    let preset = FerdConfig::preset(Budget::Tiny, FerdMethod::FerdOfficialCode);
    let lockstep = official_config();
    assert_eq!(preset.reweighting.strategy, lockstep.reweighting.strategy);
    assert_eq!(preset.student.ikl, lockstep.student.ikl);
    assert_eq!(preset.student.utae.gamma, lockstep.student.utae.gamma);
    assert_eq!(preset.synthesis.weights, lockstep.synthesis.weights);
}
