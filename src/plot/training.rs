//! `vggdsl plot training`: loss and accuracy per epoch of one or more runs, read from the
//! `metrics.jsonl` that `vggdsl train` (and `examples/ddp_train.py`) write in a run folder
//! ([`vggdsl::files::metrics`]). Each run has a colour; training curves are solid, test curves
//! dashed, validation curves (when the run had a validation split) dotted, in both panels; a
//! figure a line lacks is not drawn.

use super::{colour, legend, titled, Area, Chart, Drawn, FONT, LABEL, LIGHT, TICK};
use crate::exit::FAILED;
use crate::failure::Failure;
use crate::{input, FileArg};
use plotters::coord::types::RangedCoordf64;
use plotters::element::DashedPathElement;
use plotters::prelude::*;
use std::path::Path;
use vggdsl::files::metrics::EpochMetrics as Epoch;
use vggdsl::files::run::METRICS;
use vggdsl::files::FormatError;

/// One run: its folder's name and its epochs, in order.
pub struct Run {
    name: String,
    epochs: Vec<Epoch>,
}

impl Run {
    /// The run in folder `path` (or the metrics file `path`), named after the folder.
    pub fn read(path: &Path) -> Result<Run, Failure> {
        let file = if path.is_dir() {
            path.join(METRICS)
        } else {
            path.to_owned()
        };
        let folder = if path.is_dir() {
            Some(path)
        } else {
            path.parent()
        };
        let name = folder
            .and_then(|f| f.canonicalize().ok())
            .and_then(|f| f.file_name().map(|n| n.to_string_lossy().into_owned()))
            .unwrap_or_else(|| path.display().to_string());
        let source = input::read_up_to(&FileArg::Path(file.clone()), input::MAX_DATA_BYTES)?;
        let mut epochs: Vec<Epoch> = Vec::new();
        let mut last_line = 0;
        for (i, line) in source.text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let epoch = Epoch::from_line(line).map_err(|e| {
                Failure::new(
                    FAILED,
                    format_args!(
                        "{} line {} is not a metrics line (a JSON object with epoch and loss): {}",
                        file.display(),
                        i + 1,
                        without_position(&e)
                    ),
                )
            })?;
            // Which of two lines of one epoch is right, or where a line out of order belongs,
            // cannot be known: such a file is refused rather than drawn one way.
            if let Some(before) = epochs.last().filter(|b| b.epoch >= epoch.epoch) {
                return Err(Failure::new(
                    FAILED,
                    format_args!(
                        "{} line {} has epoch {} after epoch {} (line {last_line}): the epochs of \
                         a metrics file go up, each once",
                        file.display(),
                        i + 1,
                        epoch.epoch,
                        before.epoch
                    ),
                ));
            }
            epochs.push(epoch);
            last_line = i + 1;
        }
        if epochs.is_empty() {
            return Err(Failure::new(
                FAILED,
                format_args!("{} holds no epoch", file.display()),
            ));
        }
        Ok(Run { name, epochs })
    }
}

/// serde_json's message without its ` at line 1 column 9`, which counts within one line.
fn without_position(e: &FormatError) -> String {
    let FormatError::Json(e) = e else {
        return e.to_string();
    };
    let text = e.to_string();
    let text = match text.rfind(" at line ") {
        Some(at) => &text[..at],
        None => &text,
    };
    format!("{text} (column {})", e.column())
}

pub const SIZE: (u32, u32) = (1400, 640);

/// Runs up to this many epochs show a marker at every epoch (so that a lone epoch shows).
const MARKED_EPOCHS: usize = 40;

/// How a split's curve is stroked: training solid, test dashed, validation dotted.
#[derive(Clone, Copy)]
enum Stroke {
    Solid,
    Dashed,
    Dotted,
}

impl Stroke {
    /// Dash and gap in pixels; the legend's sample is drawn the same way (a gap of 0: solid).
    fn dash_gap(self) -> (u32, u32) {
        match self {
            Stroke::Solid => (21, 0),
            Stroke::Dashed => (8, 5),
            Stroke::Dotted => (2, 4),
        }
    }
}

/// A curve: points (epoch, value), stroked as `stroke`, with a marker at every epoch of short
/// runs; whether there was one to draw.
fn curve(
    chart: &mut Chart<'_, '_, RangedCoordf64, RangedCoordf64>,
    points: Vec<(f64, f64)>,
    style: ShapeStyle,
    stroke: Stroke,
    label: String,
) -> Result<bool, Box<dyn std::error::Error>> {
    if points.is_empty() {
        return Ok(false);
    }
    let (dash, gap) = stroke.dash_gap();
    let series = match stroke {
        Stroke::Solid => chart.draw_series(LineSeries::new(points.clone(), style))?,
        _ => chart.draw_series(DashedLineSeries::new(points.clone(), dash, gap, style))?,
    };
    series
        .label(label)
        .legend(move |(x, y)| DashedPathElement::new([(x, y), (x + 21, y)], dash, gap, style));
    if points.len() <= MARKED_EPOCHS {
        chart.draw_series(
            points
                .into_iter()
                .map(|p| Circle::new(p, 3, style.filled())),
        )?;
    }
    Ok(true)
}

pub fn draw(root: &Area, runs: &[Run]) -> Drawn {
    let names: Vec<&str> = runs.iter().map(|r| r.name.as_str()).collect();
    let area = titled(root, &format!("Training: {}", names.join(" vs ")))?;
    let last = runs
        .iter()
        .filter_map(|r| r.epochs.last())
        .map(|e| e.epoch)
        .max()
        .unwrap_or(1)
        .max(1);
    let first = runs
        .iter()
        .filter_map(|r| r.epochs.first())
        .map(|e| e.epoch)
        .min()
        .unwrap_or(1)
        .min(last);
    let max_loss = runs
        .iter()
        .flat_map(|r| &r.epochs)
        .flat_map(|e| [e.loss, e.test_loss, e.val_loss])
        .filter(|l| l.is_finite())
        .fold(0.0_f64, f64::max);
    let (left, right) = area.split_horizontally(area.dim_in_pixel().0 / 2);

    let x = Epochs { first, last };
    let loss_range = 0.0..max_loss * 1.1 + 1e-9;
    let mut loss = panel(&left, "Loss", x, loss_range, "cross-entropy loss")?;
    let mut accuracy = panel(&right, "Accuracy", x, 0.0..100.0, "accuracy (%)")?;
    // A panel without a curve (metrics without accuracies) gets no empty legend.
    let (mut losses, mut accuracies) = (false, false);
    for (i, run) in runs.iter().enumerate() {
        let style = colour(i).stroke_width(2);
        let series = |f: fn(&Epoch) -> f64, scale: f64| -> Vec<(f64, f64)> {
            run.epochs
                .iter()
                .map(|e| (e.epoch as f64, f(e) * scale))
                .filter(|(_, v)| v.is_finite())
                .collect()
        };
        let name = &run.name;
        type Figure = fn(&Epoch) -> f64;
        let losses_of: [(Figure, Stroke, &str); 3] = [
            (|e| e.loss, Stroke::Solid, "train"),
            (|e| e.test_loss, Stroke::Dashed, "test"),
            (|e| e.val_loss, Stroke::Dotted, "validation"),
        ];
        let accuracies_of: [(Figure, Stroke, &str); 3] = [
            (|e| e.train_accuracy, Stroke::Solid, "train"),
            (|e| e.test_accuracy, Stroke::Dashed, "test"),
            (|e| e.val_accuracy, Stroke::Dotted, "validation"),
        ];
        for (f, stroke, split) in losses_of {
            let label = format!("{name}: {split}");
            losses |= curve(&mut loss, series(f, 1.0), style, stroke, label)?;
        }
        for (f, stroke, split) in accuracies_of {
            let label = format!("{name}: {split}");
            accuracies |= curve(&mut accuracy, series(f, 100.0), style, stroke, label)?;
        }
    }
    if losses {
        legend(&mut loss, SeriesLabelPosition::UpperRight)?;
    }
    if accuracies {
        legend(&mut accuracy, SeriesLabelPosition::LowerRight)?;
    }
    Ok(())
}

/// The epochs the x axes span.
#[derive(Clone, Copy)]
struct Epochs {
    first: u32,
    last: u32,
}

/// One panel's chart: the epochs across, `y` up.
fn panel<'a, 'b>(
    area: &'a Area<'b>,
    caption: &str,
    x: Epochs,
    y: std::ops::Range<f64>,
    y_desc: &str,
) -> Result<Chart<'a, 'b, RangedCoordf64, RangedCoordf64>, Box<dyn std::error::Error>> {
    let epochs = f64::from(x.first) - 0.5..f64::from(x.last) + 0.5;
    let digits = if y.end - y.start >= 20.0 { 0 } else { 1 };
    let mut chart = super::line_panel(area, caption).build_cartesian_2d(epochs, y)?;
    chart
        .configure_mesh()
        .x_labels(((x.last - x.first) as usize + 1).min(15))
        .x_label_formatter(&|e| format!("{}", e.round()))
        .y_label_formatter(&|v| format!("{v:.digits$}"))
        .light_line_style(LIGHT)
        .max_light_lines(4)
        .label_style((FONT, TICK))
        .x_desc("epoch")
        .y_desc(y_desc)
        .axis_desc_style((FONT, LABEL))
        .draw()?;
    Ok(chart)
}
