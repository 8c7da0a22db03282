//! The flags every training job of the `ferd` command takes (`ferd distill`, `ferd
//! train-teacher`): the configuration's `--set`, `--print-config` and `--list-config`, and the
//! run's folder, resumption, device and data.

use std::error::Error;
use std::path::{Path, PathBuf};

use ferd::core::DeviceSpec;
use ferd::distill::RunOptions;
use ferd::distill::config::{FieldDoc, field_docs, with_field};
use schemars::JsonSchema;
use serde::Serialize;
use serde::de::DeserializeOwned;

#[derive(Debug, clap::Args)]
pub struct JobArgs {
    /// Change one field of the configuration, by its dotted path in config.json (repeatable):
    /// --set epochs=20 --set student.utae.gamma=0.5. The keys, their values and what each
    /// means: --list-config.
    #[arg(long = "set", value_name = "KEY=VALUE", value_parser = key_value)]
    set: Vec<(String, String)>,
    /// Print the configuration as JSON and exit (nothing is run).
    #[arg(long)]
    print_config: bool,
    /// List every field of the configuration (the keys of --set) with its value and its
    /// documentation (the paper's or the official code's setting it reproduces), and exit.
    #[arg(long)]
    list_config: bool,
    /// The run folder (default: runs/ferd for a distillation, runs/<preset> for a teacher).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Continue the run in --out from its last checkpoint.
    #[arg(long)]
    resume: bool,
    /// Stop after this many epochs (to run a long job in slices; continue with --resume).
    #[arg(long, value_name = "EPOCHS")]
    stop_after: Option<usize>,
    /// The device: flex (CPU), wgpu, cuda:N, ndarray.
    #[arg(long, default_value = "flex")]
    pub device: DeviceSpec,
    /// Where the datasets are (default: $FERD_DATA_DIR, then the usual system places).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
}

impl JobArgs {
    /// `config` with every `--set` applied and passing `check` as a whole, or `None` when
    /// `--print-config` or `--list-config` answered and there is nothing to run.
    pub fn configure<C, E>(
        &self,
        mut config: C,
        check: impl Fn(&C) -> Result<(), E>,
    ) -> Result<Option<C>, Box<dyn Error>>
    where
        C: Serialize + DeserializeOwned + JsonSchema,
        E: Error + 'static,
    {
        for (key, value) in &self.set {
            config = with_field(&config, key, value)?;
        }
        check(&config)?;
        if self.print_config {
            println!("{}", serde_json::to_string_pretty(&config)?);
            return Ok(None);
        }
        if self.list_config {
            print!("{}", list_config(&field_docs(&config)));
            return Ok(None);
        }
        Ok(Some(config))
    }

    /// The run folder: `--out`, else `default`.
    pub fn dir(&self, default: &Path) -> PathBuf {
        self.out.clone().unwrap_or_else(|| default.to_path_buf())
    }

    /// The run's options, in `dir` (from [`JobArgs::dir`]).
    pub fn run_options(&self, dir: PathBuf) -> Result<RunOptions, Box<dyn Error>> {
        Ok(RunOptions {
            dir,
            resume: self.resume,
            stop_after: self.stop_after,
            device: self.device.device()?,
        })
    }
}

/// `--list-config`: every field as `key = value`, then its doc and an enum's alternatives,
/// wrapped and indented.
fn list_config(fields: &[FieldDoc]) -> String {
    let mut out = String::new();
    for field in fields {
        out.push_str(&format!("{} = {}\n", field.key, shortest(&field.value)));
        wrap(&mut out, "    ", &field.doc);
        for alternative in &field.alternatives {
            wrap(&mut out, "      - ", alternative);
        }
    }
    out
}

/// `text` wrapped at 96 columns, the first line after `lead`, the others aligned with it.
fn wrap(out: &mut String, lead: &str, text: &str) {
    const WIDTH: usize = 96;
    let indent = " ".repeat(lead.len());
    let mut line = lead.to_string();
    for word in text.split_whitespace() {
        if line.len() > indent.len() && line.len() + 1 + word.len() > WIDTH {
            out.push_str(line.trim_end());
            out.push('\n');
            line.clone_from(&indent);
        }
        if line.len() > indent.len() {
            line.push(' ');
        }
        line.push_str(word);
    }
    out.push_str(&line);
    out.push('\n');
}

/// JSON with each number as written in a config: an `f32` field's 0.3 is shown as 0.3, not as
/// the 0.30000001192092896 its widening to `f64` gives.
fn shortest(value: &serde_json::Value) -> String {
    use serde_json::Value;
    match value {
        Value::Number(n) if n.is_f64() => {
            let v = n.as_f64().unwrap_or_default();
            let narrow = v as f32;
            if f64::from(narrow) == v {
                format!("{narrow:?}")
            } else {
                format!("{v:?}")
            }
        }
        Value::Array(items) => {
            let items: Vec<String> = items.iter().map(shortest).collect();
            format!("[{}]", items.join(","))
        }
        Value::Object(map) => {
            let items: Vec<String> = map
                .iter()
                .map(|(k, v)| format!("{}:{}", Value::String(k.clone()), shortest(v)))
                .collect();
            format!("{{{}}}", items.join(","))
        }
        other => other.to_string(),
    }
}

/// Parses `KEY=VALUE` of `--set`.
fn key_value(text: &str) -> Result<(String, String), String> {
    let (key, value) = text
        .split_once('=')
        .ok_or_else(|| format!("`{text}` is not KEY=VALUE"))?;
    Ok((key.trim().to_string(), value.trim().to_string()))
}
