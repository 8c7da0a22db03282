//! Draws a run's events on stderr: indicatif bars (epochs; the current phase with its rate and
//! ETA) on a terminal, plain lines at the end of each phase and epoch otherwise (logs, CI).

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use ferd::distill::Event;
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

/// The renderer of one run.
pub enum Renderer {
    /// Progress bars.
    Bars {
        /// Both bars.
        multi: MultiProgress,
        /// Epochs of the run.
        epochs: ProgressBar,
        /// Units of the current phase.
        phase: ProgressBar,
    },
    /// Plain lines.
    Lines {
        /// The run's start, for the time stamps.
        started: Instant,
    },
}

impl Renderer {
    /// Bars on a terminal, lines otherwise.
    pub fn new() -> Self {
        if !std::io::stderr().is_terminal() {
            return Self::Lines {
                started: Instant::now(),
            };
        }
        let multi = MultiProgress::new();
        let epochs = multi.add(
            ProgressBar::new(0).with_style(
                ProgressStyle::with_template(
                    "{elapsed_precise} epochs {bar:30.cyan/blue} {pos}/{len} (ETA {eta})",
                )
                .expect("a valid template"),
            ),
        );
        let phase = multi.add(
            ProgressBar::new(0).with_style(
                ProgressStyle::with_template(
                    "         {prefix:>10} {bar:30} {pos}/{len} {per_sec} ETA {eta} {msg}",
                )
                .expect("a valid template"),
            ),
        );
        epochs.enable_steady_tick(Duration::from_millis(500));
        Self::Bars {
            multi,
            epochs,
            phase,
        }
    }

    /// Draws one event.
    pub fn draw(&mut self, event: &Event) {
        match self {
            Self::Bars {
                multi,
                epochs,
                phase,
            } => match event {
                Event::RunStarted {
                    first_epoch,
                    epochs: total,
                } => {
                    epochs.set_length(*total as u64);
                    epochs.set_position(*first_epoch as u64);
                    epochs.reset_eta();
                    if *first_epoch > 0 {
                        let _ = multi.println(format!("resuming at epoch {}", first_epoch + 1));
                    }
                }
                Event::Progress {
                    phase: name,
                    done,
                    total,
                    status,
                    ..
                } => {
                    if phase.prefix() != *name || phase.length() != Some(*total as u64) {
                        phase.set_prefix(*name);
                        phase.set_length(*total as u64);
                        phase.reset();
                    }
                    phase.set_position(*done as u64);
                    phase.set_message(status.clone());
                }
                Event::EpochEnded {
                    epoch,
                    epochs: total,
                    seconds,
                    summary,
                } => {
                    let _ = multi.println(format!(
                        "epoch {}/{total} ({seconds:.0} s): {summary}",
                        epoch + 1
                    ));
                    epochs.set_position(*epoch as u64 + 1);
                }
                _ => {}
            },
            Self::Lines { started } => {
                let clock = ferd::core::progress::format_duration(started.elapsed().as_secs_f64());
                match event {
                    Event::RunStarted {
                        first_epoch,
                        epochs,
                    } if *first_epoch > 0 => {
                        eprintln!("resuming at epoch {}/{epochs}", first_epoch + 1);
                    }
                    Event::Progress {
                        epoch,
                        phase,
                        done,
                        total,
                        status,
                    } if done == total && *phase != "evaluation" => {
                        eprintln!("[{clock}] epoch {} {phase} done: {status}", epoch + 1);
                    }
                    Event::EpochEnded {
                        epoch,
                        epochs,
                        seconds,
                        summary,
                    } => {
                        eprintln!(
                            "[{clock}] epoch {}/{epochs} ({seconds:.0} s): {summary}",
                            epoch + 1
                        );
                    }
                    _ => {}
                }
            }
        }
    }

    /// Removes the bars (before the final output).
    pub fn finish(&self) {
        if let Self::Bars { epochs, phase, .. } = self {
            phase.finish_and_clear();
            epochs.finish_and_clear();
        }
    }
}
