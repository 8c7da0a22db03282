//! Progress of long jobs on stderr: done/total, throughput and estimated time left.

use std::io::Write as _;
use std::time::{Duration, Instant};

/// A progress line for `total` units of work, redrawn at most twice a second.
#[derive(Debug)]
pub struct Progress {
    label: String,
    unit: &'static str,
    total: usize,
    start: Instant,
    last_draw: Option<Instant>,
    enabled: bool,
}

impl Progress {
    /// A progress line labelled `label` counting `total` `unit`s; silent unless `enabled`.
    pub fn new(label: impl Into<String>, unit: &'static str, total: usize, enabled: bool) -> Self {
        Self {
            label: label.into(),
            unit,
            total,
            start: Instant::now(),
            last_draw: None,
            enabled,
        }
    }

    /// Time since the start.
    pub fn elapsed(&self) -> Duration {
        self.start.elapsed()
    }

    /// Reports `done` units finished, with a free-form status.
    pub fn update(&mut self, done: usize, status: &str) {
        let now = Instant::now();
        let finished = done >= self.total;
        let due = self
            .last_draw
            .is_none_or(|t| now.duration_since(t) >= Duration::from_millis(500));
        if !self.enabled || !(due || finished) {
            return;
        }
        self.last_draw = Some(now);
        let seconds = self.start.elapsed().as_secs_f64();
        let rate = done as f64 / seconds.max(1e-9);
        let left = if done == 0 {
            "?".to_string()
        } else {
            format_duration((self.total.saturating_sub(done)) as f64 / rate)
        };
        let mut err = std::io::stderr().lock();
        let _ = write!(
            err,
            "\r[{}] {done}/{} {} ({:.1} {}/s, {} elapsed, ETA {left}) {status}\x1b[K",
            self.label,
            self.total,
            self.unit,
            rate,
            self.unit,
            format_duration(seconds),
        );
        if finished {
            let _ = writeln!(err);
        }
        let _ = err.flush();
    }
}

/// `h:mm:ss` or `m:ss`.
pub fn format_duration(seconds: f64) -> String {
    let s = seconds.max(0.0).round() as u64;
    let (h, m, s) = (s / 3600, (s / 60) % 60, s % 60);
    if h > 0 {
        format!("{h}:{m:02}:{s:02}")
    } else {
        format!("{m}:{s:02}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_format_as_clock_time() {
        assert_eq!(format_duration(0.4), "0:00");
        assert_eq!(format_duration(75.0), "1:15");
        assert_eq!(format_duration(3725.0), "1:02:05");
    }
}
