//! Two hand-written SVG charts, enough for robustness reports: grouped bars (accuracy per class,
//! one bar per series) and lines over epochs. Plain SVG 1.1 with no scripts or fonts to fetch: it
//! renders in browsers, GitHub's Markdown and `rsvg-convert`. Every bar and point carries its
//! value in a `data-value` attribute and a `<title>` tooltip, so tests and readers can check the
//! chart against the report it was drawn from.

use std::fmt::Write as _;

/// Tableau 10: distinguishable, and readable by most colour-blind readers.
pub const PALETTE: [&str; 10] = [
    "#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7",
    "#9c755f", "#bab0ac",
];

/// Plot area height in pixels (both charts).
const PLOT_HEIGHT: f64 = 260.0;
/// Space left of the plot for the y axis labels.
const LEFT: f64 = 56.0;
/// Space above the plot for the title.
const TOP: f64 = 40.0;
/// Space right of the plot.
const RIGHT: f64 = 16.0;
/// Height of one legend line.
const LEGEND_LINE: f64 = 18.0;

/// One series of a bar chart: a value per category.
#[derive(Debug, Clone)]
pub struct Bars {
    /// The legend's label.
    pub label: String,
    /// One value per category in `[0, 1]`; `None` leaves the bar out (a class without images).
    pub values: Vec<Option<f64>>,
    /// The category to outline (the worst class).
    pub marked: Option<usize>,
    /// Text after the label in the legend (mean, worst class, NSD).
    pub note: String,
}

/// A grouped bar chart of fractions, drawn as percentages.
#[derive(Debug, Clone)]
pub struct BarChart {
    /// The title above the plot.
    pub title: String,
    /// Category names under the groups (class names).
    pub categories: Vec<String>,
    /// The series, one bar per category each.
    pub series: Vec<Bars>,
}

/// One line of a line chart.
#[derive(Debug, Clone)]
pub struct Line {
    /// The legend's label.
    pub label: String,
    /// `(x, y)` points, in order of x.
    pub points: Vec<(f64, f64)>,
    /// Dashed instead of solid.
    pub dashed: bool,
}

/// A line chart.
#[derive(Debug, Clone)]
pub struct LineChart {
    /// The title above the plot.
    pub title: String,
    /// The x axis' name.
    pub x_label: String,
    /// The y axis' name.
    pub y_label: String,
    /// y values are fractions drawn as percentages on a 0–100 axis.
    pub percent: bool,
    /// The lines.
    pub lines: Vec<Line>,
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn header(out: &mut String, width: f64, height: f64, title: &str) {
    let _ = writeln!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0}" height="{height:.0}" viewBox="0 0 {width:.0} {height:.0}" font-family="Helvetica, Arial, sans-serif" font-size="12">"#
    );
    let _ = writeln!(
        out,
        r#"<rect width="100%" height="100%" fill="white"/><text x="{:.1}" y="22" text-anchor="middle" font-size="15" font-weight="bold">{}</text>"#,
        width / 2.0,
        escape(title)
    );
}

/// Horizontal grid lines and labels of a y axis from 0 to `max` in `ticks` steps.
fn y_axis(out: &mut String, plot_width: f64, max: f64, ticks: usize, percent: bool, name: &str) {
    for i in 0..=ticks {
        let value = max * i as f64 / ticks as f64;
        let y = TOP + PLOT_HEIGHT * (1.0 - i as f64 / ticks as f64);
        let text = if percent {
            format!("{:.0}%", 100.0 * value)
        } else {
            format!("{value:.2}")
        };
        let _ = writeln!(
            out,
            r##"<line x1="{LEFT}" x2="{:.1}" y1="{y:.1}" y2="{y:.1}" stroke="#ddd"/><text x="{:.1}" y="{:.1}" text-anchor="end">{text}</text>"##,
            LEFT + plot_width,
            LEFT - 6.0,
            y + 4.0
        );
    }
    let _ = writeln!(
        out,
        r#"<text transform="translate(14 {:.1}) rotate(-90)" text-anchor="middle">{}</text>"#,
        TOP + PLOT_HEIGHT / 2.0,
        escape(name)
    );
}

/// The width the title (15 px bold) and the legend's lines (12 px) need, estimated from their
/// lengths, so that no text is cut at the right edge.
fn text_width(title: &str, entries: &[(String, &str, bool)]) -> f64 {
    let title = 9.0 * title.chars().count() as f64 + 40.0;
    let longest = entries
        .iter()
        .map(|e| e.0.chars().count())
        .max()
        .unwrap_or(0);
    title.max(LEFT + 30.0 + 6.8 * longest as f64 + 20.0)
}

fn legend(out: &mut String, top: f64, entries: &[(String, &str, bool)]) {
    for (i, (text, color, dashed)) in entries.iter().enumerate() {
        let y = top + LEGEND_LINE * i as f64;
        let dash = if *dashed {
            r#" stroke-dasharray="5 3""#
        } else {
            ""
        };
        let _ = writeln!(
            out,
            r#"<line x1="{LEFT}" x2="{:.1}" y1="{y:.1}" y2="{y:.1}" stroke="{color}" stroke-width="8"{dash}/><text x="{:.1}" y="{:.1}">{}</text>"#,
            LEFT + 22.0,
            LEFT + 30.0,
            y + 4.0,
            escape(text)
        );
    }
}

impl BarChart {
    /// The chart as an SVG document.
    pub fn to_svg(&self) -> String {
        let n = self.series.len().max(1) as f64;
        let bar = 12.0_f64.min(60.0 / n).max(4.0);
        let group = bar * n + 10.0;
        let plot_width = (group * self.categories.len() as f64).max(200.0);
        let labels_height = 70.0;
        let legend_top = TOP + PLOT_HEIGHT + labels_height;
        let mut entries: Vec<(String, &str, bool)> = self
            .series
            .iter()
            .enumerate()
            .map(|(s, b)| {
                let text = if b.note.is_empty() {
                    b.label.clone()
                } else {
                    format!("{}: {}", b.label, b.note)
                };
                (text, PALETTE[s % PALETTE.len()], false)
            })
            .collect();
        entries.push((
            "outlined bar: the series' worst class".into(),
            "#fff",
            false,
        ));
        let width = (LEFT + plot_width + RIGHT).max(text_width(&self.title, &entries));
        let height = legend_top + LEGEND_LINE * (self.series.len() as f64 + 1.0) + 8.0;
        let mut out = String::new();
        header(&mut out, width.max(420.0), height, &self.title);
        y_axis(&mut out, plot_width, 1.0, 5, true, "accuracy");
        for (c, name) in self.categories.iter().enumerate() {
            let x0 = LEFT + group * c as f64 + 5.0;
            for (s, series) in self.series.iter().enumerate() {
                let Some(Some(value)) = series.values.get(c) else {
                    continue;
                };
                let h = PLOT_HEIGHT * value.clamp(0.0, 1.0);
                let x = x0 + bar * s as f64;
                let marked = series.marked == Some(c);
                let (class, outline) = if marked {
                    ("bar worst", r#" stroke="black" stroke-width="2""#)
                } else {
                    ("bar", "")
                };
                let _ = writeln!(
                    out,
                    r#"<rect class="{class}" data-series="{s}" data-category="{c}" data-value="{value}" x="{x:.1}" y="{:.1}" width="{:.1}" height="{h:.1}" fill="{}"{outline}><title>{}, {}: {:.1}%</title></rect>"#,
                    TOP + PLOT_HEIGHT - h,
                    bar - 1.0,
                    PALETTE[s % PALETTE.len()],
                    escape(&series.label),
                    escape(name),
                    100.0 * value
                );
            }
            let _ = writeln!(
                out,
                r#"<text transform="translate({:.1} {:.1}) rotate(-35)" text-anchor="end">{}</text>"#,
                x0 + bar * n / 2.0,
                TOP + PLOT_HEIGHT + 14.0,
                escape(name)
            );
        }
        let _ = writeln!(
            out,
            r#"<line x1="{LEFT}" x2="{:.1}" y1="{:.1}" y2="{:.1}" stroke="black"/>"#,
            LEFT + plot_width,
            TOP + PLOT_HEIGHT,
            TOP + PLOT_HEIGHT
        );
        legend(&mut out, legend_top, &entries);
        out.push_str("</svg>\n");
        out
    }
}

impl LineChart {
    /// The chart as an SVG document.
    pub fn to_svg(&self) -> String {
        let plot_width = 520.0;
        let legend_top = TOP + PLOT_HEIGHT + 48.0;
        let width = (LEFT + plot_width + RIGHT).max(text_width(&self.title, &[]));
        let height = legend_top + LEGEND_LINE * self.lines.len() as f64 + 8.0;
        let points = || self.lines.iter().flat_map(|l| l.points.iter());
        let x_min = points().map(|p| p.0).fold(f64::INFINITY, f64::min);
        let x_max = points().map(|p| p.0).fold(f64::NEG_INFINITY, f64::max);
        let (x_min, x_max) = if x_min.is_finite() {
            (x_min, x_max.max(x_min + 1.0))
        } else {
            (0.0, 1.0)
        };
        let y_max = if self.percent {
            1.0
        } else {
            let top = points().map(|p| p.1).fold(0.0, f64::max);
            if top > 0.0 { nice_ceiling(top) } else { 1.0 }
        };
        let mut out = String::new();
        header(&mut out, width, height, &self.title);
        y_axis(&mut out, plot_width, y_max, 5, self.percent, &self.y_label);
        let x_of = |x: f64| LEFT + plot_width * (x - x_min) / (x_max - x_min);
        let y_of = |y: f64| TOP + PLOT_HEIGHT * (1.0 - (y / y_max).clamp(0.0, 1.0));
        for x in x_ticks(x_min, x_max) {
            let _ = writeln!(
                out,
                r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
                x_of(x),
                TOP + PLOT_HEIGHT + 16.0,
                format_tick(x)
            );
        }
        let _ = writeln!(
            out,
            r#"<line x1="{LEFT}" x2="{:.1}" y1="{:.1}" y2="{:.1}" stroke="black"/><text x="{:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
            LEFT + plot_width,
            TOP + PLOT_HEIGHT,
            TOP + PLOT_HEIGHT,
            LEFT + plot_width / 2.0,
            TOP + PLOT_HEIGHT + 34.0,
            escape(&self.x_label)
        );
        for (i, line) in self.lines.iter().enumerate() {
            let color = PALETTE[i % PALETTE.len()];
            let path: Vec<String> = line
                .points
                .iter()
                .map(|&(x, y)| format!("{:.1},{:.1}", x_of(x), y_of(y)))
                .collect();
            let dash = if line.dashed {
                r#" stroke-dasharray="5 3""#
            } else {
                ""
            };
            let _ = writeln!(
                out,
                r#"<polyline class="line" data-series="{i}" points="{}" fill="none" stroke="{color}" stroke-width="2"{dash}/>"#,
                path.join(" ")
            );
            for &(x, y) in &line.points {
                let shown = if self.percent {
                    format!("{:.1}%", 100.0 * y)
                } else {
                    format!("{y:.4}")
                };
                let _ = writeln!(
                    out,
                    r#"<circle class="point" data-series="{i}" data-x="{x}" data-value="{y}" cx="{:.1}" cy="{:.1}" r="2.5" fill="{color}"><title>{}, {} {}: {shown}</title></circle>"#,
                    x_of(x),
                    y_of(y),
                    escape(&line.label),
                    escape(&self.x_label),
                    format_tick(x)
                );
            }
        }
        let entries: Vec<(String, &str, bool)> = self
            .lines
            .iter()
            .enumerate()
            .map(|(i, l)| (l.label.clone(), PALETTE[i % PALETTE.len()], l.dashed))
            .collect();
        legend(&mut out, legend_top, &entries);
        out.push_str("</svg>\n");
        out
    }
}

/// The smallest of 1, 2, 2.5, 5 times a power of ten at or above `v`.
fn nice_ceiling(v: f64) -> f64 {
    round_up(v, &[1.0, 2.0, 2.5, 5.0])
}

/// The smallest of `mantissas` (ascending, in `[1, 10)`) times a power of ten at or above `v`.
fn round_up(v: f64, mantissas: &[f64]) -> f64 {
    let power = 10f64.powf(v.log10().floor());
    mantissas
        .iter()
        .map(|m| m * power)
        .find(|&c| c >= v)
        .unwrap_or(10.0 * power)
}

/// The x axis's labelled values: the multiples of a step of 1, 2 or 5 times a power of ten
/// inside `[x_min, x_max]`, at most [`MAX_X_TICKS`] + 1 of them, so that an axis of epochs
/// 1..30 reads 5, 10, ..., 30 rather than 1, 3.9, 6.8, ...
fn x_ticks(x_min: f64, x_max: f64) -> Vec<f64> {
    let range = x_max - x_min;
    if !(range > 0.0 && range.is_finite()) {
        return vec![x_min];
    }
    // Slightly below the exact quotient, so that a range of exactly 10 steps keeps its step.
    let step = round_up(range / MAX_X_TICKS as f64 * (1.0 - 1e-9), &[1.0, 2.0, 5.0]);
    let first = (x_min / step - 1e-9).ceil() as i64;
    let last = (x_max / step + 1e-9).floor() as i64;
    (first..=last).map(|k| k as f64 * step).collect()
}

/// Intervals between x-axis labels, at most.
const MAX_X_TICKS: usize = 10;

fn format_tick(x: f64) -> String {
    if (x - x.round()).abs() < 1e-9 {
        format!("{x:.0}")
    } else {
        format!("{x:.1}")
    }
}

#[cfg(test)]
mod tests {
    use super::{nice_ceiling, x_ticks};

    #[test]
    fn x_ticks_are_round_multiples_inside_the_range() {
        assert_eq!(x_ticks(1.0, 30.0), vec![5.0, 10.0, 15.0, 20.0, 25.0, 30.0]);
        assert_eq!(
            x_ticks(1.0, 10.0),
            (1..=10).map(f64::from).collect::<Vec<_>>()
        );
        assert_eq!(x_ticks(0.0, 1.0).len(), 11);
        assert_eq!(
            x_ticks(0.0, 100.0),
            (0..=10).map(|k| 10.0 * k as f64).collect::<Vec<_>>()
        );
        assert_eq!(x_ticks(3.0, 3.0), vec![3.0]);
    }

    #[test]
    fn nice_ceilings_cover_the_value() {
        assert_eq!(nice_ceiling(0.37), 0.5);
        assert_eq!(nice_ceiling(1.0), 1.0);
        assert_eq!(nice_ceiling(2.2), 2.5);
        assert_eq!(nice_ceiling(7.0), 10.0);
    }
}
