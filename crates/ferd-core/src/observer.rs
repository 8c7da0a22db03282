//! How long jobs talk to the outside world. A library never prints: it emits events of its own
//! type `E` to an [`Observer`], and the program decides how to draw them (progress bars, log
//! lines, nothing at all in tests).

/// Receives the events of a job, in order.
pub trait Observer<E> {
    /// Called for every event.
    fn event(&mut self, event: &E);
}

/// Ignores every event.
impl<E> Observer<E> for () {
    fn event(&mut self, _event: &E) {}
}

/// Any closure over events is an observer.
impl<E, F: FnMut(&E)> Observer<E> for F {
    fn event(&mut self, event: &E) {
        self(event)
    }
}

/// `h:mm:ss` or `m:ss`, for elapsed times and ETAs in progress displays.
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

    #[test]
    fn closures_and_unit_observe() {
        let mut seen = Vec::new();
        let mut record = |e: &u32| seen.push(*e);
        for e in [3, 1, 2] {
            Observer::event(&mut record, &e);
        }
        Observer::<u32>::event(&mut (), &7);
        assert_eq!(seen, [3, 1, 2]);
    }
}
