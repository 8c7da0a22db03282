//! What the training examples share: drawing a run's events on stderr (one progress line
//! redrawn in place on a terminal, at most five times a second; plain lines for phase ends
//! otherwise, for logs) and the `main` that parses arguments, runs and reports errors.

use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use ferd::distill::Event;

/// Draws events on stderr.
pub struct Renderer {
    terminal: bool,
    last: Option<Instant>,
    started: Instant,
}

impl Renderer {
    /// A renderer for this process's stderr.
    pub fn new() -> Self {
        Self {
            terminal: std::io::stderr().is_terminal(),
            last: None,
            started: Instant::now(),
        }
    }

    /// Draws one event.
    pub fn draw(&mut self, event: &Event) {
        let mut err = std::io::stderr().lock();
        let clock = format_minutes(self.started.elapsed());
        match event {
            Event::RunStarted {
                first_epoch,
                epochs,
            } if *first_epoch > 0 => {
                let _ = writeln!(err, "resuming at epoch {}/{epochs}", first_epoch + 1);
            }
            Event::Progress {
                epoch,
                phase,
                done,
                total,
                status,
            } => {
                let due = self
                    .last
                    .is_none_or(|t| t.elapsed() >= Duration::from_millis(200));
                let end = done == total;
                if self.terminal && (due || end) {
                    let _ = write!(
                        err,
                        "\r\x1b[2K[{clock}] epoch {} {phase} {done}/{total} {status}",
                        epoch + 1
                    );
                    self.last = Some(Instant::now());
                } else if !self.terminal && end && *phase != "evaluation" {
                    let _ = writeln!(err, "[{clock}] epoch {} {phase} done: {status}", epoch + 1);
                }
            }
            Event::EpochEnded {
                epoch,
                epochs,
                seconds,
                summary,
            } => {
                let clear = if self.terminal { "\r\x1b[2K" } else { "" };
                let _ = writeln!(
                    err,
                    "{clear}[{clock}] epoch {}/{epochs} ({seconds:.0} s): {summary}",
                    epoch + 1
                );
            }
            _ => {}
        }
    }
}

fn format_minutes(elapsed: Duration) -> String {
    let s = elapsed.as_secs();
    format!("{:02}:{:02}", s / 60, s % 60)
}

/// Parses the arguments and runs: exit code 0 on success, 1 on a failed run, 2 on bad arguments
/// (with `usage`). `parse` returns an empty message for `--help`.
pub fn main<A>(
    parse: fn() -> Result<A, String>,
    run: fn(A) -> Result<(), Box<dyn std::error::Error>>,
    usage: &str,
) -> ExitCode {
    match parse() {
        Ok(args) => match run(args) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::FAILURE
            }
        },
        Err(message) => {
            if !message.is_empty() {
                eprintln!("error: {message}\n");
            }
            eprintln!("{usage}");
            ExitCode::from(2)
        }
    }
}
