//! `vggdsl plot widths`: per conv, the width the cfg asks for and the width pruning leaves; below,
//! per Conv2d and Linear, its parameters and MACs (pruned, over the unpruned ones). One column per
//! model, on shared axes, so that models compare at a glance.

use super::{
    category_label_area, category_labels, colour, legend, short, titled, Area, Categories, Drawn,
    FONT, LABEL, LIGHT, TICK,
};
use plotters::prelude::*;
use vggdsl::analysis;
use vggdsl::ir::{self, Architecture, LayerKind};

/// One conv, or one Conv2d/Linear with its figures, pruned and unpruned.
struct Bar {
    name: String,
    value: f64,
    unpruned: f64,
}

/// What the figure shows of one model.
pub struct Model {
    name: String,
    pruned: bool,
    /// Output channels per conv.
    widths: Vec<Bar>,
    params: Vec<Bar>,
    macs: Vec<Bar>,
    /// `params 0.75M (95.0% pruned), MACs 41.12M (86.9% pruned)`.
    totals: String,
}

impl Model {
    pub fn new(net: &Architecture) -> Model {
        let base = ir::lower(&net.spec.unpruned())
            .expect("lower accepts a pruned network only if its unpruned form lowers too");
        let pairs: Vec<_> = net
            .layers()
            .zip(base.layers())
            .map(|((_, l), (_, u))| (l, u))
            .collect();
        let bar = |l: &ir::Layer, value: u64, unpruned: u64| Bar {
            name: l.name.clone(),
            value: value as f64,
            unpruned: unpruned as f64,
        };
        let width = |k: &LayerKind| match *k {
            LayerKind::Conv2d { out_channels, .. } => out_channels as u64,
            _ => 0,
        };
        let counted = || {
            pairs.iter().filter(|(l, _)| {
                matches!(l.kind, LayerKind::Conv2d { .. } | LayerKind::Linear { .. })
            })
        };
        let s = analysis::summarize(net);
        let totals = match &s.unpruned {
            Some(b) => format!(
                "params {} ({}), MACs {} ({})",
                short(s.params_conv_linear as f64),
                pruned_share(s.params_conv_linear, b.params_conv_linear),
                short(s.macs as f64),
                pruned_share(s.macs, b.macs)
            ),
            None => format!(
                "params {}, MACs {}",
                short(s.params_conv_linear as f64),
                short(s.macs as f64)
            ),
        };
        Model {
            name: net.spec.name.clone(),
            pruned: net.spec.compress_rate.is_some(),
            widths: pairs
                .iter()
                .filter(|(l, _)| matches!(l.kind, LayerKind::Conv2d { .. }))
                .map(|(l, u)| bar(l, width(&l.kind), width(&u.kind)))
                .collect(),
            params: counted()
                .map(|(l, u)| bar(l, l.params(), u.params()))
                .collect(),
            macs: counted().map(|(l, u)| bar(l, l.macs(), u.macs())).collect(),
            totals,
        }
    }
}

/// `95.0% pruned`
fn pruned_share(now: u64, before: u64) -> String {
    let share = if before == 0 {
        0.0
    } else {
        100.0 * before.saturating_sub(now) as f64 / before as f64
    };
    format!("{share:.1}% pruned")
}

/// The figure's size for `models` columns.
pub fn size(models: usize) -> (u32, u32) {
    (80 + 620 * models.max(1) as u32, 960)
}

pub fn draw(root: &Area, models: &[Model]) -> Drawn {
    let names: Vec<&str> = models.iter().map(|m| m.name.as_str()).collect();
    let area = titled(
        root,
        &format!("Widths, params and MACs per layer: {}", names.join(", ")),
    )?;
    let max_width = models
        .iter()
        .flat_map(|m| &m.widths)
        .map(|b| b.unpruned)
        .fold(1.0, f64::max);
    let counts = || models.iter().flat_map(|m| m.params.iter().chain(&m.macs));
    let top = counts().map(|b| b.unpruned).fold(1.0, f64::max);
    let bottom = counts()
        .map(|b| b.value)
        .filter(|&v| v > 0.0)
        .fold(top, f64::min);
    let counts_range = 10f64.powf(bottom.log10().floor())..10f64.powf(top.log10().ceil() + 1.0);
    for (model, column) in models.iter().zip(area.split_evenly((1, models.len()))) {
        let (upper, lower) = column.split_vertically(column.dim_in_pixel().1 * 9 / 20);
        widths(root, &upper, model, max_width * 1.15)?;
        counts_panel(root, &lower, model, counts_range.clone())?;
    }
    Ok(())
}

/// The bars of the widths panel: each conv's cfg width, and over it the pruned width.
fn widths(root: &Area, area: &Area, model: &Model, top: f64) -> Drawn {
    let n = model.widths.len();
    let caption = if model.pruned {
        format!("{}: channel widths, cfg vs compress_rate", model.name)
    } else {
        format!("{}: channel widths", model.name)
    };
    let names: Vec<String> = model.widths.iter().map(|b| b.name.clone()).collect();
    let mut chart = ChartBuilder::on(area)
        .caption(caption, (FONT, super::CAPTION))
        .margin(12)
        .x_label_area_size(category_label_area(root, &names))
        .y_label_area_size(70)
        .build_cartesian_2d(Categories(n), 0f64..top)?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_label_formatter(&|_| String::new())
        .y_label_formatter(&|w| format!("{w:.0}"))
        .light_line_style(LIGHT)
        .max_light_lines(4)
        .y_label_style((FONT, TICK))
        .x_desc("conv layer")
        .y_desc("output channels")
        .axis_desc_style((FONT, LABEL))
        .draw()?;
    category_labels(root, &chart, &names, 0.0)?;
    let bars = |f: fn(&Bar) -> f64, style: ShapeStyle| {
        model.widths.iter().enumerate().map(move |(i, b)| {
            let x = i as f64;
            Rectangle::new([(x + 0.15, 0.0), (x + 0.85, f(b))], style)
        })
    };
    let unpruned = colour(4).mix(0.45).filled();
    let pruned = colour(0).filled();
    if model.pruned {
        chart
            .draw_series(bars(|b| b.unpruned, unpruned))?
            .label("cfg width (unpruned)")
            .legend(move |(x, y)| Rectangle::new([(x, y - 6), (x + 14, y + 6)], unpruned));
    }
    let label = if model.pruned {
        "width after compress_rate"
    } else {
        "width"
    };
    chart
        .draw_series(bars(|b| b.value, pruned))?
        .label(label)
        .legend(move |(x, y)| Rectangle::new([(x, y - 6), (x + 14, y + 6)], pruned));
    legend(&mut chart, SeriesLabelPosition::UpperLeft)
}

/// The bars of the counts panel: parameters and MACs of each Conv2d and Linear, on a log scale;
/// for a pruned model, outlines show the unpruned figures.
fn counts_panel(root: &Area, area: &Area, model: &Model, range: std::ops::Range<f64>) -> Drawn {
    let n = model.params.len();
    let bottom = range.start;
    let names: Vec<String> = model.params.iter().map(|b| b.name.clone()).collect();
    let mut chart = ChartBuilder::on(area)
        .caption(
            format!("{}: {}", model.name, model.totals),
            (FONT, super::CAPTION),
        )
        .margin(12)
        .x_label_area_size(category_label_area(root, &names))
        .y_label_area_size(70)
        .build_cartesian_2d(Categories(n), range.log_scale())?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_label_formatter(&|_| String::new())
        .y_label_formatter(&|v| short(*v))
        .light_line_style(LIGHT)
        .max_light_lines(4)
        .y_label_style((FONT, TICK))
        .x_desc("Conv2d / Linear layer")
        .y_desc("per image (log scale)")
        .axis_desc_style((FONT, LABEL))
        .draw()?;
    category_labels(root, &chart, &names, bottom)?;
    for (k, (bars, what)) in [(&model.params, "parameters"), (&model.macs, "MACs")]
        .into_iter()
        .enumerate()
    {
        let colour = colour(k);
        let offset = 0.1 + 0.4 * k as f64;
        let rect = |i: usize, value: f64, style: ShapeStyle| {
            let x = i as f64 + offset;
            Rectangle::new([(x, bottom), (x + 0.4, value.max(bottom))], style)
        };
        let filled = colour.filled();
        chart
            .draw_series(
                bars.iter()
                    .enumerate()
                    .map(|(i, b)| rect(i, b.value, filled)),
            )?
            .label(what)
            .legend(move |(x, y)| Rectangle::new([(x, y - 6), (x + 14, y + 6)], filled));
        if model.pruned {
            let outline = colour.stroke_width(1);
            let series = chart.draw_series(
                bars.iter()
                    .enumerate()
                    .map(|(i, b)| rect(i, b.unpruned, outline)),
            )?;
            if k == 0 {
                series.label("unpruned (outline)").legend(move |(x, y)| {
                    Rectangle::new([(x, y - 6), (x + 14, y + 6)], BLACK.stroke_width(1))
                });
            }
        }
    }
    legend(&mut chart, SeriesLabelPosition::UpperRight)
}
