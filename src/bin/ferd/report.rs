//! `ferd report`: Markdown, CSV and SVG charts from evaluation reports or a run folder.

use std::error::Error;
use std::path::PathBuf;

use ferd::attacks::EvaluationReport;
use ferd::report::{Entry, RunReport, study, write_evaluation};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Evaluation reports (JSON written by `ferd evaluate`; several are compared side by side),
    /// or one run folder of `ferd distill` or `ferd train-teacher`.
    #[arg(required = true)]
    inputs: Vec<PathBuf>,
    /// Names of the evaluated models, in the order of the inputs (default: the file names).
    #[arg(long, value_delimiter = ',')]
    labels: Vec<String>,
    /// Where the report goes (default: <first input without extension>-report, or
    /// <run folder>/report).
    #[arg(long)]
    out: Option<PathBuf>,
    /// The input is a study: a folder of runs `<arm>-s<seed>` with their evaluations
    /// (`eval-10k.json`, `eval-aa1000.json`). The report has the paper's table (average, worst
    /// class and NSD of every measure, mean ± std over seeds), per-class tables with 95%
    /// bootstrap intervals and per-class charts. --labels orders the arms.
    #[arg(long)]
    study: bool,
    /// The measures of a study's tables, in order.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "clean,fgsm,pgd-20,cw-20,autoattack",
        requires = "study"
    )]
    measures: Vec<String>,
}

pub fn run(args: Args) -> Result<(), Box<dyn Error>> {
    let first = &args.inputs[0];
    let written = if args.study {
        let arms = study::read_study(first, &args.labels)?;
        let measures: Vec<&str> = args.measures.iter().map(String::as_str).collect();
        let out = args.out.clone().unwrap_or_else(|| first.join("report"));
        std::fs::create_dir_all(&out)?;
        let mut written = vec![out.join("report.md")];
        std::fs::write(&written[0], study::study_markdown(&arms, &measures))?;
        for (stem, chart) in study::study_charts(&arms, &measures) {
            let path = out.join(format!("{stem}.svg"));
            std::fs::write(&path, chart.to_svg())?;
            written.push(path);
        }
        written
    } else if first.is_dir() {
        if args.inputs.len() > 1 {
            return Err("give one run folder, or evaluation reports (JSON files)".into());
        }
        let run = RunReport::read(first)?;
        run.write(args.out.clone().unwrap_or_else(|| first.join("report")))?
    } else {
        if !args.labels.is_empty() && args.labels.len() != args.inputs.len() {
            return Err(format!(
                "{} labels for {} reports",
                args.labels.len(),
                args.inputs.len()
            )
            .into());
        }
        let reports = args
            .inputs
            .iter()
            .map(EvaluationReport::read)
            .collect::<Result<Vec<_>, _>>()?;
        let labels: Vec<String> = if args.labels.is_empty() {
            args.inputs
                .iter()
                .map(|p| {
                    p.file_stem()
                        .map_or("model".into(), |s| s.to_string_lossy().into_owned())
                })
                .collect()
        } else {
            args.labels.clone()
        };
        let entries: Vec<Entry> = labels
            .iter()
            .zip(&reports)
            .map(|(label, report)| Entry::new(label, report))
            .collect();
        let out = args.out.clone().unwrap_or_else(|| {
            let mut name = first.file_stem().unwrap_or_default().to_os_string();
            name.push("-report");
            first.with_file_name(name)
        });
        write_evaluation(&entries, out)?
    };
    for path in written {
        println!("{}", path.display());
    }
    Ok(())
}
