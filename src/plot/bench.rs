//! `vggdsl plot bench`: inference throughput against batch size of every variant of a benchmark
//! run, one panel per thread count, side by side on shared axes; both axes on a log scale, the
//! batch sizes ticked where they were measured. Each variant has a colour, the same in every
//! panel, and a marker at every measurement.
//!
//! The results file is [`vggdsl::files::bench`]'s; variants keep the order of their first row.

use super::{colour, legend, short, titled, Area, Chart, Drawn, FONT, LABEL, LIGHT, TICK};
use crate::exit::FAILED;
use crate::failure::Failure;
use crate::{input, FileArg};
use plotters::coord::ranged1d::{DefaultFormatting, KeyPointHint, Ranged};
use plotters::prelude::*;
use vggdsl::files::bench::BenchResults;
use vggdsl::files::FormatError;

/// One measurement: a variant (its index), at a thread count and a batch size.
struct Point {
    variant: usize,
    threads: i64,
    batch: i64,
    images_per_second: f64,
}

/// A benchmark run, checked.
pub struct Results {
    model: String,
    machine: Option<String>,
    /// In the order of their first row.
    variants: Vec<String>,
    /// The thread counts, ascending: one panel each.
    threads: Vec<i64>,
    /// Every batch size measured, ascending: the x axes' ticks.
    batches: Vec<i64>,
    points: Vec<Point>,
}

impl Results {
    /// Reads a results file; a file that cannot be read (exit 2) or is not a results file
    /// (exit 1) is one sentence.
    pub fn read(file: &FileArg) -> Result<Results, Failure> {
        let source = input::read_up_to(file, input::MAX_DATA_BYTES)?;
        let name = &source.name;
        let results = BenchResults::from_json(&source.text).map_err(|e| match e {
            FormatError::Json(e) => Failure::new(
                FAILED,
                format_args!(
                    "{name} is not a benchmark results file (a JSON object with model and \
                     rows): {e}"
                ),
            ),
            FormatError::Invalid(why) => Failure::new(FAILED, format_args!("{name} {why}")),
        })?;
        Ok(Results::new(results))
    }

    /// The figure's data: the rows as points, their variants, thread counts and batch sizes.
    fn new(file: BenchResults) -> Results {
        let mut variants: Vec<String> = Vec::new();
        let mut points: Vec<Point> = Vec::new();
        for row in file.rows {
            let variant = match variants.iter().position(|v| *v == row.variant) {
                Some(v) => v,
                None => {
                    variants.push(row.variant);
                    variants.len() - 1
                }
            };
            points.push(Point {
                variant,
                threads: row.threads,
                batch: row.batch,
                images_per_second: row.images_per_second,
            });
        }
        let sorted = |f: fn(&Point) -> i64| {
            let mut values: Vec<i64> = points.iter().map(f).collect();
            values.sort_unstable();
            values.dedup();
            values
        };
        Results {
            model: file.model,
            machine: file.machine.filter(|m| !m.trim().is_empty()),
            variants,
            threads: sorted(|p| p.threads),
            batches: sorted(|p| p.batch),
            points,
        }
    }
}

/// The figure's size: one panel per thread count.
pub fn size(results: &Results) -> (u32, u32) {
    (100 + 560 * results.threads.len().max(1) as u32, 680)
}

/// About how tall a panel's plotting area is, in pixels: what the legend's headroom is worked out
/// against.
const PLOT_HEIGHT: f64 = 470.0;

/// An axis on a log scale from `start` to `end` (both positive), labelled at `ticks`, with light
/// grid lines at `light` too.
#[derive(Clone)]
struct LogAxis {
    start: f64,
    end: f64,
    ticks: Vec<f64>,
    light: Vec<f64>,
}

impl Ranged for LogAxis {
    type FormatOption = DefaultFormatting;
    type ValueType = f64;

    fn map(&self, value: &f64, (from, to): (i32, i32)) -> i32 {
        let share = (value / self.start).ln() / (self.end / self.start).ln();
        from + (share * f64::from(to - from)).round() as i32
    }

    fn key_points<Hint: KeyPointHint>(&self, hint: Hint) -> Vec<f64> {
        if hint.weight().allow_light_points() {
            self.light.clone()
        } else {
            self.ticks.clone()
        }
    }

    fn range(&self) -> std::ops::Range<f64> {
        self.start..self.end
    }
}

/// The numbers `m·10^k` within `start..=end`, for every mantissa `m`, ascending.
fn decades(start: f64, end: f64, mantissas: &[f64]) -> Vec<f64> {
    let (first, last) = (start.log10().floor() as i32, end.log10().ceil() as i32);
    (first..=last)
        .flat_map(|k| mantissas.iter().map(move |m| m * 10f64.powi(k)))
        .filter(|v| (start..=end).contains(v))
        .collect()
}

/// The batch axis: every batch size measured, half a doubling of room on either side.
fn batch_axis(batches: &[i64]) -> LogAxis {
    let ticks: Vec<f64> = batches.iter().map(|&b| b as f64).collect();
    let (low, high) = (ticks[0], ticks[ticks.len() - 1]);
    LogAxis {
        start: low / std::f64::consts::SQRT_2,
        end: high * std::f64::consts::SQRT_2,
        light: ticks.clone(),
        ticks,
    }
}

/// The throughput axis: all the measurements, spanning at least half a decade, with headroom
/// above them for a legend of `entries` lines; ticks at 1, 2 and 5 times the powers of ten (at
/// the powers alone over a wide range; at 1, 1.5, 2, 3, 5 and 7 times them, or at every digit,
/// over a narrow one).
fn throughput_axis(values: impl Iterator<Item = f64> + Clone, entries: usize) -> LogAxis {
    let low = values.clone().fold(f64::INFINITY, f64::min).log10();
    let high = values.fold(f64::NEG_INFINITY, f64::max).log10();
    let span = (high - low).max(0.5);
    let middle = (low + high) / 2.0;
    let bottom = low.min(middle - span / 2.0) - 0.08 * span;
    let data_top = high.max(middle + span / 2.0) + 0.08 * span;
    let legend_share = ((entries as f64 + 1.0) * 22.0 / PLOT_HEIGHT).min(0.6);
    let top = data_top + (data_top - bottom) * legend_share / (1.0 - legend_share);
    let (start, end) = (10f64.powf(bottom), 10f64.powf(top));
    let digits = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0];
    let mut ticks = decades(start, end, &[1.0, 2.0, 5.0]);
    if ticks.len() > 8 {
        ticks = decades(start, end, &[1.0]);
    } else if ticks.len() < 5 {
        ticks = decades(start, end, &[1.0, 1.5, 2.0, 3.0, 5.0, 7.0]);
        if ticks.len() < 3 {
            ticks = decades(start, end, &digits);
        }
    }
    LogAxis {
        start,
        end,
        ticks,
        light: decades(start, end, &digits),
    }
}

pub fn draw(root: &Area, results: &Results) -> Drawn {
    let mut area = titled(root, &format!("Inference throughput of {}", results.model))?;
    if let Some(machine) = &results.machine {
        area = area.titled(machine, (FONT, LABEL))?;
    }
    let x = batch_axis(&results.batches);
    let y = throughput_axis(
        results.points.iter().map(|p| p.images_per_second),
        results.variants.len(),
    );
    let panels = area.split_evenly((1, results.threads.len()));
    for (k, (&threads, panel_area)) in results.threads.iter().zip(&panels).enumerate() {
        let caption = if threads == 1 {
            "1 thread".to_owned()
        } else {
            format!("{threads} threads")
        };
        let mut chart = panel(panel_area, &caption, x.clone(), y.clone())?;
        for (i, name) in results.variants.iter().enumerate() {
            let style = colour(i).stroke_width(2);
            let mut line: Vec<(f64, f64)> = results
                .points
                .iter()
                .filter(|p| p.variant == i && p.threads == threads)
                .map(|p| (p.batch as f64, p.images_per_second))
                .collect();
            line.sort_by(|a, b| a.0.total_cmp(&b.0));
            // Every variant is named in the first panel's legend, measured there or not.
            let series = chart.draw_series(LineSeries::new(line.clone(), style))?;
            if k == 0 {
                series.label(name.as_str()).legend(move |(x, y)| {
                    EmptyElement::at((x, y))
                        + PathElement::new([(0, 0), (21, 0)], style)
                        + Circle::new((10, 0), 4, style.filled())
                });
            }
            chart.draw_series(line.into_iter().map(|p| Circle::new(p, 4, style.filled())))?;
        }
        if k == 0 {
            legend(&mut chart, SeriesLabelPosition::UpperLeft)?;
        }
    }
    Ok(())
}

/// A throughput tick: `150`, `1.5K`, `0.15`, to the two significant digits a tick has.
fn tick(v: f64) -> String {
    if v >= 1000.0 {
        return short(v);
    }
    let digits = (1 - v.log10().floor() as i32).max(0) as usize;
    let text = format!("{v:.digits$}");
    if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.').to_owned()
    } else {
        text
    }
}

/// One thread count's chart: the batch sizes across, images/s up.
fn panel<'a, 'b>(
    area: &'a Area<'b>,
    caption: &str,
    x: LogAxis,
    y: LogAxis,
) -> Result<Chart<'a, 'b, LogAxis, LogAxis>, Box<dyn std::error::Error>> {
    let mut chart = super::line_panel(area, caption).build_cartesian_2d(x, y)?;
    chart
        .configure_mesh()
        .x_label_formatter(&|b| format!("{b}"))
        .y_label_formatter(&|v| tick(*v))
        .light_line_style(LIGHT)
        .label_style((FONT, TICK))
        .x_desc("batch size (images, log2 scale)")
        .y_desc("throughput (images/s, log scale)")
        .axis_desc_style((FONT, LABEL))
        .draw()?;
    Ok(chart)
}

#[cfg(test)]
mod tests {
    use super::{decades, throughput_axis, tick};

    #[test]
    fn log_ticks_fall_at_round_numbers_within_the_range() {
        assert_eq!(
            decades(80.0, 1200.0, &[1.0, 2.0, 5.0]),
            [100.0, 200.0, 500.0, 1000.0]
        );
        // A narrow range (all variants alike) still gets ticks.
        let axis = throughput_axis([100.0, 110.0].into_iter(), 2);
        assert!(axis.ticks.len() >= 3, "{:?}", axis.ticks);
        assert!(axis.start < 100.0 && axis.end > 110.0);
        // A wide one gets the powers of ten alone.
        let axis = throughput_axis([0.5, 5e4].into_iter(), 3);
        assert!(axis
            .ticks
            .iter()
            .all(|t| (t.log10() - t.log10().round()).abs() < 1e-9));
        // Tick labels: two significant digits at most, no trailing zeros.
        let labels: Vec<String> = [0.15, 0.5, 7.0, 50.0, 150.0, 1000.0, 1500.0, 20_000.0]
            .into_iter()
            .map(tick)
            .collect();
        assert_eq!(
            labels,
            ["0.15", "0.5", "7", "50", "150", "1K", "1.5K", "20K"]
        );
    }
}
