//! `vggdsl plot sensitivity`: the accuracy of the network with one conv pruned, against the rate,
//! one line per conv, from a sensitivity file of `vggdsl sensitivity`
//! ([`vggdsl::files::sensitivity`]); the unpruned accuracy as a dashed line across. A conv whose
//! line stays up can lose filters cheaply; `vggdsl prune --strategy sensitivity` spends the
//! budget there.

use super::{colour, legend, titled, Area, Drawn, FONT, LABEL, LIGHT, PALETTE, TICK};
use plotters::element::DashedPathElement;
use plotters::prelude::*;
use vggdsl::files::sensitivity::SensitivityFile;

pub const SIZE: (u32, u32) = (1100, 700);

pub fn draw(root: &Area, file: &SensitivityFile) -> Drawn {
    let area = titled(
        root,
        &format!(
            "Sensitivity of {}: each conv pruned alone ({} validation images, filters by {})",
            file.model,
            vggdsl::analysis::thousands(file.validation.images),
            file.by
        ),
    )?;
    let lowest = file
        .convs
        .iter()
        .flat_map(|c| &c.points)
        .map(|p| p.accuracy)
        .fold(file.unpruned.accuracy, f64::min);
    let y = (100.0 * lowest - 5.0).max(0.0).floor()..100.0;
    let mut chart = super::line_panel(&area, "accuracy on the validation images")
        .build_cartesian_2d(0.0..1.0, y)?;
    chart
        .configure_mesh()
        .x_labels(11)
        .x_label_formatter(&|r| format!("{r:.1}"))
        .y_label_formatter(&|v| format!("{v:.0}"))
        .light_line_style(LIGHT)
        .max_light_lines(4)
        .label_style((FONT, TICK))
        .x_desc("rate (share of the conv's filters removed)")
        .y_desc("accuracy (%)")
        .axis_desc_style((FONT, LABEL))
        .draw()?;
    let base = 100.0 * file.unpruned.accuracy;
    let grey = PALETTE[7].stroke_width(1);
    chart
        .draw_series(DashedLineSeries::new(
            [(0.0, base), (1.0, base)],
            6,
            4,
            grey,
        ))?
        .label(format!("unpruned: {base:.2}%"))
        .legend(move |(x, y)| DashedPathElement::new([(x, y), (x + 21, y)], 6, 4, grey));
    for (i, conv) in file.convs.iter().enumerate() {
        // Past the palette's eight colours, lines repeat them dashed.
        let style = colour(i).stroke_width(2);
        let (dash, gap) = if i < PALETTE.len() { (21, 0) } else { (8, 5) };
        let points: Vec<(f64, f64)> = std::iter::once((0.0, base))
            .chain(conv.points.iter().map(|p| (p.rate, 100.0 * p.accuracy)))
            .collect();
        chart
            .draw_series(DashedLineSeries::new(points.clone(), dash, gap, style))?
            .label(format!("{} ({} filters)", conv.name, conv.width))
            .legend(move |(x, y)| DashedPathElement::new([(x, y), (x + 21, y)], dash, gap, style));
        chart.draw_series(
            points
                .into_iter()
                .skip(1)
                .map(|p| Circle::new(p, 3, style.filled())),
        )?;
    }
    legend(&mut chart, SeriesLabelPosition::LowerLeft)
}
