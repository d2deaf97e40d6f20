//! `vggdsl plot study`: a study's test accuracy after fine-tuning (or after training from
//! scratch) against the MACs left, one colour per method, a marker at the mean over the seeds
//! with a bar of ± one standard deviation; the unpruned base as a dashed line across. Read from
//! the study's `results.json` ([`vggdsl::files::results`]).

use plotters::element::DashedPathElement;
use plotters::prelude::*;
use vggdsl::files::results::{Group, StudyResults};
use vggdsl::files::FormatError;

use super::{colour, legend, short, titled, Area, Drawn, FONT, LABEL, LIGHT, TICK};
use crate::exit::FAILED;
use crate::failure::Failure;
use crate::{input, FileArg};

pub const SIZE: (u32, u32) = (1000, 640);

/// Reads a study's results file; one sentence when it is not one.
pub fn read(file: &FileArg) -> Result<StudyResults, Failure> {
    let source = input::read_up_to(file, input::MAX_DATA_BYTES)?;
    let name = &source.name;
    StudyResults::from_json(&source.text).map_err(|e| match e {
        FormatError::Json(e) => Failure::new(
            FAILED,
            format_args!("{name} is not a study's results.json: {e}"),
        ),
        FormatError::Invalid(why) => Failure::new(FAILED, format_args!("{name} {why}")),
    })
}

/// The accuracies the y axis spans (%): every mean ± std and the base's, with a margin.
fn accuracy_range(results: &StudyResults, groups: &[Group]) -> (f64, f64) {
    let base = 100.0 * results.base.accuracy;
    let (lo, hi) = groups
        .iter()
        .map(|g| {
            let (m, s) = g.accuracy();
            (100.0 * (m - s), 100.0 * (m + s))
        })
        .fold((base, base), |(a, b), (l, h)| (a.min(l), b.max(h)));
    let pad = ((hi - lo) * 0.1).max(0.5);
    (lo - pad, hi + pad)
}

pub fn draw(root: &Area, results: &StudyResults) -> Drawn {
    let area = titled(
        root,
        &format!(
            "{}: test accuracy against MACs ({})",
            results.study, results.model
        ),
    )?;
    let groups = results.groups();
    let mut methods: Vec<&str> = Vec::new();
    for g in &groups {
        if !methods.contains(&g.method) {
            methods.push(g.method);
        }
    }
    let (lo, hi) = accuracy_range(results, &groups);
    let macs = results.base.macs as f64;
    let mut chart = super::line_panel(&area, "mean ± standard deviation over the seeds")
        .build_cartesian_2d(0.0..macs * 1.08, lo..hi)?;
    chart
        .configure_mesh()
        .x_label_formatter(&|v| short(*v))
        .y_label_formatter(&|v| format!("{v:.1}"))
        .light_line_style(LIGHT)
        .max_light_lines(4)
        .label_style((FONT, TICK))
        .x_desc("MACs per image")
        .y_desc("test accuracy (%)")
        .axis_desc_style((FONT, LABEL))
        .draw()?;
    let base = 100.0 * results.base.accuracy;
    let grey = BLACK.mix(0.6).stroke_width(2);
    chart
        .draw_series(DashedLineSeries::new(
            [(0.0, base), (macs * 1.08, base)],
            8,
            5,
            grey,
        ))?
        .label("unpruned base")
        .legend(move |(x, y)| DashedPathElement::new([(x, y), (x + 21, y)], 8, 5, grey));
    // Methods at the same budget sit a little apart, so that their bars do not hide each other.
    let step = macs * 0.008;
    for (i, method) in methods.iter().enumerate() {
        let style = colour(i).stroke_width(2);
        let offset = (i as f64 - (methods.len() as f64 - 1.0) / 2.0) * step;
        let points: Vec<(f64, f64, f64, f64)> = groups
            .iter()
            .filter(|g| g.method == *method)
            .map(|g| {
                let (m, s) = g.accuracy();
                (
                    g.rows[0].macs as f64 + offset,
                    100.0 * m,
                    100.0 * (m - s),
                    100.0 * (m + s),
                )
            })
            .collect();
        chart.draw_series(
            points
                .iter()
                .map(|&(x, _, l, h)| PathElement::new([(x, l), (x, h)], style)),
        )?;
        chart
            .draw_series(
                points
                    .iter()
                    .map(|&(x, m, ..)| Circle::new((x, m), 5, style.filled())),
            )?
            .label(*method)
            .legend(move |(x, y)| Circle::new((x + 10, y), 5, style.filled()));
    }
    legend(&mut chart, SeriesLabelPosition::LowerRight)
}
