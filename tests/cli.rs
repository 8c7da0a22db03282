//! The `ferd` binary, run as a user runs it: exit codes, `--help`, bad arguments, and tiny
//! `evaluate`, `report` and `distill` runs end to end (bundled teacher, bundled test set).
//! The figures the reports show are checked against the JSON they were made from, read here
//! with serde_json, not with ferd's types.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

fn ferd(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ferd"))
        .args(args)
        // The CLI's defaults (flex) whatever the test device: these tests are about the command.
        .env_remove("FERD_TEST_DEVICE")
        .output()
        .expect("the ferd binary runs")
}

/// Whether an end-to-end run is skipped here. The command computes on its default device (flex)
/// whatever the test device, so under another `FERD_TEST_DEVICE` (CI's wgpu step) such a run
/// would only repeat the flex step's, in a build whose flex exists as the agreement tests'
/// reference.
fn end_to_end_skipped() -> bool {
    let why = ferd::core::device::flex_only_skipped(
        "the command computes on flex, tested in the flex run",
    );
    if let Some(why) = &why {
        eprintln!("skipped {why}");
    }
    why.is_some()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ferd-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn teacher() -> String {
    concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/models/fmnist-small-teacher/teacher.bpk"
    )
    .to_string()
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn help_lists_the_subcommands_and_exits_0() {
    let out = ferd(&["--help"]);
    assert_eq!(out.status.code(), Some(0));
    let help = text(&out.stdout);
    for command in ["distill", "evaluate", "train-teacher", "report"] {
        assert!(help.contains(command), "{help}");
    }
    let out = ferd(&["distill", "--help"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(text(&out.stdout).contains("--stop-after"));
}

#[test]
fn bad_arguments_exit_2_and_name_the_argument() {
    let out = ferd(&[
        "evaluate",
        "--arch",
        "small-cnn-16",
        "--weights",
        "x.bpk",
        "--bogus",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("--bogus"));
    let out = ferd(&["evaluate", "--arch", "resnet-7", "--weights", "x.bpk"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("resnet-7"),
        "{}",
        text(&out.stderr)
    );
    let out = ferd(&["distill", "--budget", "huge"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("fmnist-quick"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn a_failed_run_exits_1_and_names_the_file() {
    let dir = scratch("missing");
    let missing = dir.join("no-such-teacher.bpk");
    let out = ferd(&[
        "evaluate",
        "--arch",
        "small-cnn-16",
        "--weights",
        path(&missing),
        "--limit",
        "10",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("no-such-teacher.bpk"));
}

#[test]
fn set_changes_one_field_and_refuses_unknown_ones() {
    let out = ferd(&[
        "distill",
        "--budget",
        "fmnist",
        "--method",
        "dfrd-uniform",
        "--set",
        "student.utae.gamma=0.5",
        "--set",
        r#"reweighting.strategy={"strategy": "min_max", "p_min": 0.05, "p_max": 0.2}"#,
        "--print-config",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let config: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(config["student"]["utae"]["gamma"], 0.5);
    assert_eq!(config["reweighting"]["strategy"]["p_max"], 0.2);
    assert_eq!(config["epochs"], 30);
    // --list-config: every key of --set with its value and the field's doc comment.
    let out = ferd(&[
        "distill",
        "--set",
        "student.utae.gamma=0.5",
        "--list-config",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let listing = text(&out.stdout);
    let gamma = listing
        .split_once("student.utae.gamma = 0.5\n")
        .expect("the gamma line")
        .1;
    assert!(
        gamma.starts_with("    Weight `gamma` of the uniformity term"),
        "{listing}"
    );
    assert!(listing.contains("      - min_max: The official code's rule"));
    let out = ferd(&["distill", "--set", "student.gama=0.5", "--print-config"]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(err.contains("gama") && err.contains("utae"), "{err}");
    // A value of the wrong type, and a config that fails its own checks.
    let out = ferd(&["distill", "--set", "epochs=many", "--print-config"]);
    assert_eq!(out.status.code(), Some(1));
    let out = ferd(&["distill", "--set", "threat.eps=2", "--print-config"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("eps"));
    // The teacher's flags are the same: its config is checked before it is printed.
    let teacher = [
        "train-teacher",
        "--preset",
        "fmnist-small",
        "--print-config",
    ];
    assert_eq!(ferd(&teacher).status.code(), Some(0));
    let out = ferd(&[&teacher[..], &["--set", "epochs=0"]].concat());
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("epochs"),
        "{}",
        text(&out.stderr)
    );
}

/// The class-wise accuracy of `measure` in a report, read from the JSON.
fn per_class(report: &Value, measure: usize) -> Vec<Option<f64>> {
    let accuracy = if measure == 0 {
        &report["clean"]
    } else {
        &report["attacks"][measure - 1]["robust"]
    };
    accuracy["per_class"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64())
        .collect()
}

/// `ferd evaluate` of the bundled teacher with `args`.
fn evaluate_teacher(args: &[&str]) -> Output {
    let teacher = teacher();
    let mut all = vec!["evaluate", "--arch", "small-cnn-16", "--weights", &teacher];
    all.extend_from_slice(args);
    ferd(&all)
}

#[test]
fn evaluate_then_report_end_to_end() {
    if end_to_end_skipped() {
        return;
    }
    let dir = scratch("evaluate");
    let json = dir.join("teacher.json");
    let out = evaluate_teacher(&[
        "--limit",
        "30",
        "--attacks",
        "fgsm,pgd-3",
        "--batch",
        "16",
        "--out",
        path(&json),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    // Progress as plain lines (stderr is not a terminal): every batch of every attack.
    let log = text(&out.stderr);
    for line in [
        "fgsm: 16/30 images, robust",
        "fgsm: 30/30 images",
        "pgd-3 done: robust",
    ] {
        assert!(log.contains(line), "{line} not in\n{log}");
    }
    assert!(
        !dir.join("teacher.state.json").exists(),
        "the state file is removed"
    );
    let report: Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(report["samples"], 30);
    let clean = report["clean"]["overall"].as_f64().unwrap();
    let pgd = report["attacks"][1]["robust"]["overall"].as_f64().unwrap();
    assert!(pgd <= clean, "robust {pgd} above clean {clean}");

    let out = ferd(&["report", path(&json), "--labels", "teacher"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let folder = dir.join("teacher-report");
    let md = std::fs::read_to_string(folder.join("report.md")).unwrap();
    let row = format!(
        "| teacher | SmallCNN-16 | fashion-mnist/test | 30 | 0.1000 | {:.1} |",
        100.0 * clean
    );
    assert!(md.contains(&row), "{row} not in\n{md}");
    assert!(md.contains(&format!(" {:.1} |", 100.0 * pgd)));

    let csv = std::fs::read_to_string(folder.join("report.csv")).unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(
        lines.len(),
        1 + 3 * 10,
        "a header and one row per measure and class"
    );
    assert!(lines[0].starts_with("model,dataset,measure,eps,class"));
    let trouser_pgd = lines
        .iter()
        .find(|l| l.starts_with("teacher,fashion-mnist/test,pgd-3,0.1,1,Trouser,3,"))
        .expect("the trouser row of pgd-3");
    let value: f64 = trouser_pgd.rsplit(',').next().unwrap().parse().unwrap();
    assert_eq!(Some(value), per_class(&report, 2)[1]);

    let svg = std::fs::read_to_string(folder.join("class_accuracy.svg")).unwrap();
    let doc = roxmltree::Document::parse(&svg).expect("valid SVG (XML)");
    let bars: Vec<_> = doc
        .descendants()
        .filter(|n| n.attribute("class").is_some_and(|c| c.starts_with("bar")))
        .collect();
    let expected: usize = (0..3)
        .map(|m| per_class(&report, m).iter().flatten().count())
        .sum();
    assert_eq!(bars.len(), expected, "one bar per measure and class");
    for bar in bars {
        let measure: usize = bar.attribute("data-series").unwrap().parse().unwrap();
        let class: usize = bar.attribute("data-category").unwrap().parse().unwrap();
        let value: f64 = bar.attribute("data-value").unwrap().parse().unwrap();
        assert_eq!(Some(value), per_class(&report, measure)[class]);
        let height: f64 = bar.attribute("height").unwrap().parse().unwrap();
        assert!(
            (height - 260.0 * value).abs() < 0.06,
            "bar height {height} for {value}"
        );
    }
}

#[test]
fn a_tiny_distillation_then_its_report() {
    if end_to_end_skipped() {
        return;
    }
    let dir = scratch("distill");
    let run = dir.join("run");
    let out = ferd(&[
        "distill",
        "--budget",
        "tiny",
        "--out",
        path(&run),
        "--final-per-class",
        "2",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    for file in [
        "config.json",
        "metrics.jsonl",
        "student.bpk",
        "student.safetensors",
        "final.json",
    ] {
        assert!(run.join(file).is_file(), "{file} missing");
    }
    let out = ferd(&["report", path(&run)]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let folder = run.join("report");
    for file in [
        "report.md",
        "report.csv",
        "curves.svg",
        "nsd.svg",
        "class_distribution.svg",
        "synthesis_losses.svg",
        "class_clean.svg",
    ] {
        assert!(folder.join(file).is_file(), "{file} missing");
    }
    let metrics = std::fs::read_to_string(run.join("metrics.jsonl")).unwrap();
    let epochs: Vec<Value> = metrics
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let svg = std::fs::read_to_string(folder.join("class_distribution.svg")).unwrap();
    let doc = roxmltree::Document::parse(&svg).unwrap();
    // One point per class and epoch, at the probability metrics.jsonl recorded.
    let points: Vec<_> = doc
        .descendants()
        .filter(|n| n.attribute("class") == Some("point"))
        .collect();
    assert_eq!(points.len(), 10 * epochs.len());
    for p in points {
        let class: usize = p.attribute("data-series").unwrap().parse().unwrap();
        let epoch: f64 = p.attribute("data-x").unwrap().parse().unwrap();
        let value: f64 = p.attribute("data-value").unwrap().parse().unwrap();
        let recorded = epochs[epoch as usize - 1]["class_distribution"][class]
            .as_f64()
            .unwrap();
        assert_eq!(value, recorded);
    }
    // The UTAE diagnostic: per class and epoch with student training, the fraction of the
    // epoch's UTAE examples the student put in that class, from the counts in metrics.jsonl.
    let svg = std::fs::read_to_string(folder.join("utae_predictions.svg")).unwrap();
    let doc = roxmltree::Document::parse(&svg).unwrap();
    let mut checked = 0;
    for p in doc
        .descendants()
        .filter(|n| n.attribute("class") == Some("point"))
    {
        let class: usize = p.attribute("data-series").unwrap().parse().unwrap();
        let epoch: f64 = p.attribute("data-x").unwrap().parse().unwrap();
        let value: f64 = p.attribute("data-value").unwrap().parse().unwrap();
        let counts = &epochs[epoch as usize - 1]["student"]["utae_predictions"];
        let counts: Vec<f64> = (0..10).map(|c| counts[c].as_f64().unwrap()).collect();
        assert_eq!(value, counts[class] / counts.iter().sum::<f64>());
        checked += 1;
    }
    let trained = epochs.iter().filter(|e| !e["student"].is_null()).count();
    assert_eq!(checked, 10 * trained);
    let md = std::fs::read_to_string(folder.join("report.md")).unwrap();
    assert!(md.contains("| teacher | SmallCNN-16 |") && md.contains("| student | SmallCNN-8 |"));
    // The grids of synthesized images of the first and last rounds: one row per class with as
    // many images as the round drew for it (at most 12), from the labels metrics.jsonl counted.
    for epoch in [1, epochs.len()] {
        let file = format!("synthesized-epoch-{epoch}.png");
        assert!(md.contains(&file), "{file} not in the Markdown");
        let counts = &epochs[epoch - 1]["label_counts"];
        let filled = synthesized_cells(&folder.join(&file));
        for (class, row) in filled.iter().enumerate() {
            let drawn = counts[class].as_u64().unwrap() as usize;
            let expected: Vec<bool> = (0..12).map(|k| k < drawn.min(12)).collect();
            assert_eq!(row, &expected, "{file}, class {class}");
        }
    }
}

/// `ferd distill --device D` at the tiny budget, D the test device when it is not flex (CI's
/// wgpu step): the command runs end to end there, records every epoch, and its final table
/// scores the teacher, whose weights the run does not touch, as flex does.
#[test]
fn a_tiny_distillation_on_the_test_device() {
    let spec = ferd::core::device::test_device_spec();
    if spec == ferd::core::DeviceSpec::Flex {
        eprintln!("skipped on flex: a_tiny_distillation_then_its_report runs there");
        return;
    }
    let dir = scratch("distill-device");
    let run = dir.join("run");
    let device = spec.to_string();
    let out = ferd(&[
        "distill",
        "--budget",
        "tiny",
        "--device",
        &device,
        "--out",
        path(&run),
        "--final-per-class",
        "2",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let table = text(&out.stdout);
    assert!(
        table.contains("| teacher |") && table.contains("| student |"),
        "no final table in\n{table}"
    );
    let metrics = std::fs::read_to_string(run.join("metrics.jsonl")).unwrap();
    let epochs: Vec<Value> = metrics
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(epochs.len(), 2, "the tiny budget's two epochs");
    for epoch in &epochs {
        let p: Vec<f64> = epoch["class_distribution"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect();
        assert_eq!(p.len(), 10);
        assert!((p.iter().sum::<f64>() - 1.0).abs() < 1e-9, "{p:?}");
    }
    let last = &epochs[1]["student"];
    assert!(last["loss"].as_f64().is_some_and(f64::is_finite), "{last}");

    // The teacher on the same 20 images, on flex, through `ferd evaluate`.
    let json = dir.join("teacher.json");
    let out = evaluate_teacher(&["--limit", "20", "--attacks", "fgsm", "--out", path(&json)]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let on_flex: Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let fin: Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("final.json")).unwrap()).unwrap();
    assert_eq!(fin["teacher"]["samples"], 20);
    assert_eq!(
        per_class(&fin["teacher"], 0),
        per_class(&on_flex, 0),
        "the teacher's clean accuracy per class on {device} and on flex"
    );
}

/// Which cells of a grid of 28x28 grey images (12 per row, one row per class, 1-pixel gaps
/// of grey 64) hold an image: a blank cell is grey 64 throughout.
fn synthesized_cells(png_file: &Path) -> Vec<Vec<bool>> {
    let decoder = png::Decoder::new(std::io::BufReader::new(
        std::fs::File::open(png_file).unwrap(),
    ));
    let mut reader = decoder.read_info().unwrap();
    let mut pixels = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut pixels).unwrap();
    let (width, height) = (info.width as usize, info.height as usize);
    assert_eq!(info.color_type, png::ColorType::Grayscale);
    assert_eq!((width, height), (12 * 29 + 1, 10 * 29 + 1));
    (0..10)
        .map(|row| {
            (0..12)
                .map(|col| {
                    (0..28).any(|y| {
                        (0..28).any(|x| pixels[(row * 29 + 1 + y) * width + col * 29 + 1 + x] != 64)
                    })
                })
                .collect()
        })
        .collect()
}

#[test]
fn a_study_report_averages_seeds() {
    if end_to_end_skipped() {
        return;
    }
    let dir = scratch("study");
    let runs = dir.join("runs");
    for (run, seed) in [("teacher", "0"), ("a-s0", "0"), ("a-s1", "1")] {
        let folder = runs.join(run);
        std::fs::create_dir_all(&folder).unwrap();
        let attacks = if run == "teacher" {
            "pgd-2,pgd-20"
        } else {
            "pgd-2"
        };
        let out = evaluate_teacher(&[
            "--limit",
            "20",
            "--attacks",
            attacks,
            "--seed",
            seed,
            "--out",
            path(&folder.join("eval-10k.json")),
        ]);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    }
    // Arm `a` was distilled: a tiny run's metrics give it a diagnostics row.
    let tiny = dir.join("tiny");
    let out = ferd(&[
        "distill",
        "--budget",
        "tiny",
        "--out",
        path(&tiny),
        "--final-per-class",
        "1",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    std::fs::copy(tiny.join("metrics.jsonl"), runs.join("a-s0/metrics.jsonl")).unwrap();
    let out = ferd(&[
        "report",
        path(&runs),
        "--study",
        "--labels",
        "teacher,a",
        "--measures",
        "clean,pgd-2",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let md = std::fs::read_to_string(runs.join("report/report.md")).unwrap();
    // The row of arm `a`: PGD average over its two seeds, mean ± sample std, from the JSON.
    let pgd: Vec<f64> = ["a-s0", "a-s1"]
        .iter()
        .map(|run| {
            let text = std::fs::read_to_string(runs.join(run).join("eval-10k.json")).unwrap();
            let report: Value = serde_json::from_str(&text).unwrap();
            100.0 * report["attacks"][0]["robust"]["overall"].as_f64().unwrap()
        })
        .collect();
    let mean = (pgd[0] + pgd[1]) / 2.0;
    let std = ((pgd[0] - mean).powi(2) + (pgd[1] - mean).powi(2)).sqrt();
    let row = md
        .lines()
        .find(|l| l.starts_with("| a | 2 |"))
        .unwrap_or_else(|| panic!("no row of arm a in\n{md}"));
    assert!(row.contains(&format!(" {mean:.1} ± {std:.1} |")), "{row}");
    assert!(md.lines().any(|l| l.starts_with("| teacher | 1 |")));
    assert!(runs.join("report/study_pgd-2.svg").is_file());
    // The diagnostics of the distilled arm against the teacher's PGD-20 (figures unit-tested
    // in ferd::report::diagnostics): one run, a share in %, a correlation in [-1, 1], L_uni
    // (FERD's preset has Fairness-Aware Examples on) and a spread in [0, 1].
    let row = md
        .split("## Diagnostics")
        .nth(1)
        .and_then(|d| d.lines().find(|l| l.starts_with("| a | 1 |")))
        .unwrap_or_else(|| panic!("no diagnostics row of arm a in\n{md}"));
    let cells: Vec<&str> = row.split('|').map(str::trim).collect();
    let share: f64 = cells[3].parse().unwrap();
    assert!((0.0..=100.0).contains(&share), "{row}");
    if let Ok(rho) = cells[4].parse::<f64>() {
        assert!((-1.0..=1.0).contains(&rho), "{row}");
    }
    assert!(cells[5].parse::<f64>().is_ok(), "L_uni: {row}");
    let spread: f64 = cells[6].parse().unwrap();
    assert!((0.0..=1.0).contains(&spread), "{row}");
    // The cost of arm `a`: its run's epoch times from metrics.jsonl, in minutes.
    let metrics = std::fs::read_to_string(runs.join("a-s0/metrics.jsonl")).unwrap();
    let seconds: f64 = metrics
        .lines()
        .map(|l| {
            let r: Value = serde_json::from_str(l).unwrap();
            let s = &r["seconds"];
            ["synthesis", "fragility", "student", "evaluation"]
                .iter()
                .map(|k| s[k].as_f64().unwrap())
                .sum::<f64>()
        })
        .sum();
    let cost = md
        .split("## Wall-clock cost")
        .nth(1)
        .and_then(|d| d.lines().find(|l| l.starts_with("| a | 2 |")))
        .unwrap_or_else(|| panic!("no cost row of arm a in\n{md}"));
    assert!(
        cost.starts_with(&format!("| a | 2 | {:.1} |", seconds / 60.0)),
        "{cost}"
    );
}

/// A PyTorch checkpoint of another width, evaluated under the width ferd builds by default: the
/// error says first which tensor differs and which name fits the file, and that name loads it.
#[test]
fn a_checkpoint_of_another_width_gets_the_name_that_fits() {
    let dir = scratch("refit");
    let weights = dir.join("small-resnet-8.safetensors");
    let device = ferd::core::DeviceSpec::Flex.device().unwrap();
    let model = ferd::models::zoo::Architecture::SmallResNet { width: 8 }.build(1, 10, &device);
    ferd::models::save_pytorch(&model, &weights).unwrap();
    let weights = weights.to_str().unwrap();
    let run = |arch: &str| {
        let out = dir.join(format!("{arch}.json"));
        ferd(&[
            "evaluate",
            "--arch",
            arch,
            "--pytorch",
            "--weights",
            weights,
            "--limit",
            "10",
            "--attacks",
            "fgsm",
            "--out",
            out.to_str().unwrap(),
        ])
    };
    let out = run("small-resnet-16");
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    let first = err
        .lines()
        .find(|l| l.contains("does not fit"))
        .expect("the diagnosis");
    assert!(
        first.contains("conv1.weight is [8, 1, 3, 3] in the file, [16, 1, 3, 3] in the model")
            && first.contains("the file fits small-resnet-8 (its conv1 has 8 output channels)"),
        "{err}"
    );
    assert_eq!(run("small-resnet-8").status.code(), Some(0));
}
