//! Draws the library's events on stderr: indicatif bars with rates and ETAs on a terminal
//! (a run: epochs and the current phase; an evaluation: attacks, images of the current attack
//! and the component of a composite attack), plain time-stamped lines otherwise (logs, CI).

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use ferd::attacks::EvalEvent;
use ferd::core::observer::format_duration;
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
                    "         {prefix:>10} {bar:30} {pos}/{len} {per_sec:1} ETA {eta} {msg}",
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
                let clock = format_duration(started.elapsed().as_secs_f64());
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

fn bar(multi: &MultiProgress, template: &str) -> ProgressBar {
    multi.add(
        ProgressBar::new(0)
            .with_style(ProgressStyle::with_template(template).expect("a valid template")),
    )
}

/// The renderer of one evaluation.
pub enum EvalRenderer {
    /// Progress bars: attacks; images of the current attack; a line with the batch, the
    /// component of a composite attack and the pass in progress.
    Bars {
        /// All three bars.
        multi: MultiProgress,
        /// Attacks done.
        attacks: ProgressBar,
        /// Images of the current attack (or of the clean pass).
        images: ProgressBar,
        /// The batch, component and pass in progress (a line, no bar).
        stage: ProgressBar,
        /// The attacks' names.
        names: Vec<String>,
        /// The component of a composite attack in progress (empty otherwise).
        component: String,
    },
    /// Plain lines.
    Lines {
        /// The evaluation's start, for the time stamps.
        started: Instant,
        /// The attacks' names.
        names: Vec<String>,
        /// The component of a composite attack in progress (empty otherwise).
        component: String,
    },
}

impl EvalRenderer {
    /// Bars on a terminal, lines otherwise.
    pub fn new() -> Self {
        if !std::io::stderr().is_terminal() {
            return Self::Lines {
                started: Instant::now(),
                names: Vec::new(),
                component: String::new(),
            };
        }
        let multi = MultiProgress::new();
        let attacks = bar(
            &multi,
            "{elapsed_precise} attacks {bar:30.cyan/blue} {pos}/{len} {msg}",
        );
        let images = bar(
            &multi,
            "         {prefix:>10} {bar:30} {pos}/{len} images {per_sec:1} ETA {eta} {msg}",
        );
        let stage = bar(&multi, "         {prefix:>10} {msg}");
        attacks.enable_steady_tick(Duration::from_millis(500));
        Self::Bars {
            multi,
            attacks,
            images,
            stage,
            names: Vec::new(),
            component: String::new(),
        }
    }

    /// Draws one event.
    pub fn draw(&mut self, event: &EvalEvent) {
        match self {
            Self::Bars {
                multi,
                attacks,
                images,
                stage,
                names,
                component,
            } => match event {
                EvalEvent::Started {
                    images: total,
                    attacks: list,
                    ..
                } => {
                    *names = list.clone();
                    attacks.set_length(list.len() as u64);
                    attacks.set_message("clean pass");
                    images.set_prefix("clean");
                    images.set_length(*total as u64);
                }
                EvalEvent::CleanBatch { done, .. } => images.set_position(*done as u64),
                EvalEvent::AttackStarted {
                    attack,
                    name,
                    done,
                    images: total,
                } => {
                    if *done > 0 {
                        let _ = multi.println(format!("{name}: resuming after {done} images"));
                    }
                    attacks.set_position(*attack as u64);
                    attacks.set_message(name.clone());
                    images.set_prefix(name.clone());
                    images.set_length(*total as u64);
                    images.reset();
                    images.set_position(*done as u64);
                    images.set_message("");
                    stage.set_prefix("");
                    stage.set_message("");
                    component.clear();
                }
                EvalEvent::Stage {
                    batch,
                    batches,
                    started,
                    ..
                } => {
                    stage.set_prefix(format!("batch {}/{batches}", batch + 1));
                    *component = format!(
                        "{} ({}/{} components)",
                        started.name,
                        started.stage + 1,
                        started.stages
                    );
                    stage.set_message(format!("{component} on {} points", started.points));
                }
                EvalEvent::Pass {
                    batch,
                    batches,
                    started,
                    ..
                } => {
                    stage.set_prefix(format!("batch {}/{batches}", batch + 1));
                    stage.set_message(format!(
                        "{component} pass {}/{} on {} points",
                        started.pass + 1,
                        started.passes,
                        started.points
                    ));
                }
                EvalEvent::Batch {
                    done,
                    robust_accuracy,
                    ..
                } => {
                    images.set_position(*done as u64);
                    images.set_message(format!("robust {:.2}%", 100.0 * robust_accuracy));
                }
                EvalEvent::AttackEnded { attack, .. } => {
                    attacks.set_position(*attack as u64 + 1);
                }
                _ => {}
            },
            Self::Lines {
                started,
                names,
                component,
            } => {
                let clock = format_duration(started.elapsed().as_secs_f64());
                match event {
                    EvalEvent::Started {
                        images,
                        batches,
                        attacks,
                    } => {
                        *names = attacks.clone();
                        eprintln!(
                            "[{clock}] {images} images in {batches} batches, attacks: {}",
                            attacks.join(", ")
                        );
                    }
                    EvalEvent::CleanBatch { done, images } if done == images => {
                        eprintln!("[{clock}] clean pass done");
                    }
                    EvalEvent::AttackStarted { name, done, .. } => {
                        component.clear();
                        if *done > 0 {
                            eprintln!("[{clock}] {name}: resuming after {done} images");
                        }
                    }
                    EvalEvent::Pass {
                        attack,
                        batch,
                        batches,
                        started: p,
                    } if p.passes > 1 => {
                        let of = if component.is_empty() {
                            String::new()
                        } else {
                            format!("{component} ")
                        };
                        eprintln!(
                            "[{clock}] {} batch {}/{batches}: {of}pass {}/{} on {} points",
                            names.get(*attack).map_or("attack", String::as_str),
                            batch + 1,
                            p.pass + 1,
                            p.passes,
                            p.points
                        );
                    }
                    EvalEvent::Stage {
                        attack,
                        batch,
                        batches,
                        started: s,
                    } => {
                        component.clone_from(&s.name);
                        eprintln!(
                            "[{clock}] {} batch {}/{batches}: {} ({}/{}) on {} points",
                            names.get(*attack).map_or("attack", String::as_str),
                            batch + 1,
                            s.name,
                            s.stage + 1,
                            s.stages,
                            s.points
                        );
                    }
                    EvalEvent::Batch {
                        attack,
                        done,
                        images,
                        robust_accuracy,
                    } => {
                        eprintln!(
                            "[{clock}] {}: {done}/{images} images, robust {:.2}%",
                            names.get(*attack).map_or("attack", String::as_str),
                            100.0 * robust_accuracy
                        );
                    }
                    EvalEvent::AttackEnded {
                        name,
                        robust_accuracy,
                        seconds,
                        ..
                    } => {
                        eprintln!(
                            "[{clock}] {name} done: robust {:.2}% in {}",
                            100.0 * robust_accuracy,
                            format_duration(*seconds)
                        );
                    }
                    _ => {}
                }
            }
        }
    }

    /// Removes the bars (before the tables are printed).
    pub fn finish(&self) {
        if let Self::Bars {
            attacks,
            images,
            stage,
            ..
        } = self
        {
            stage.finish_and_clear();
            images.finish_and_clear();
            attacks.finish_and_clear();
        }
    }
}
