//! `vggdsl plot ranks`: per conv, every filter's average feature-map rank, and the cut a
//! compress_rate makes: a conv of width c with rate r keeps its `int(c·(1 − r))` highest-ranked
//! filters (HRankPlus's rule), the lower index first among equal ranks, as `vggdsl prune` keeps
//! them ([`vggdsl::select`]).
//!
//! The ranks come from the file `vggdsl rank` writes ([`vggdsl::files::ranks`]).

use super::{
    category_label_area, category_labels, colour, legend, titled, Area, Categories, Chart, Drawn,
    FONT, LABEL, LIGHT, TICK,
};
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;
use vggdsl::files::ranks::RanksFile;
use vggdsl::ir::{Architecture, LayerKind};
use vggdsl::rewrite::rate_list;
use vggdsl::select::{keep_highest, WidthRule};
use vggdsl::spec::CfgItem;

/// The ranks of one conv's filters, and which survive the cut once there is one.
struct Conv {
    name: String,
    ranks: Vec<f64>,
    kept: Option<Vec<bool>>,
}

pub struct Ranks {
    model: String,
    images: i64,
    convs: Vec<Conv>,
    /// The rates of the cut, as given.
    rates: Option<Vec<f64>>,
}

impl Ranks {
    pub fn new(file: RanksFile) -> Ranks {
        Ranks {
            model: file.model,
            images: file.images,
            convs: file
                .convs
                .into_iter()
                .map(|(name, ranks)| Conv {
                    name,
                    ranks,
                    kept: None,
                })
                .collect(),
            rates: None,
        }
    }

    /// Whether the file ranks `net`'s filters: all its convs in order, each with one rank per
    /// filter of its cfg width; else the sentence that names the first conv that differs.
    pub fn check_against(&self, net: &Architecture) -> Result<(), String> {
        let (ranked, model) = (&self.model, &net.spec.name);
        let widths = net.spec.features().iter().filter_map(|item| match item {
            CfgItem::Conv(w) => Some(*w),
            CfgItem::Pool => None,
        });
        let names = net.features.iter().filter_map(|l| match l.kind {
            LayerKind::Conv2d { .. } => Some(&l.name),
            _ => None,
        });
        let convs: Vec<(&String, i64)> = names.zip(widths).collect();
        for (i, conv) in self.convs.iter().enumerate() {
            let Some(&(name, width)) = convs.get(i) else {
                return Err(format!(
                    "it ranks model {ranked}, whose {} model {model} does not have",
                    conv.name
                ));
            };
            if conv.name != *name {
                return Err(format!(
                    "it ranks model {ranked}, whose conv number {} is {}, but {model}'s is {name}",
                    i + 1,
                    conv.name
                ));
            }
            if conv.ranks.len() as i64 != width {
                return Err(format!(
                    "it ranks model {ranked}, whose {name} has {} filters, but {model}'s {name} \
                     has {width}",
                    conv.ranks.len()
                ));
            }
        }
        match convs.get(self.convs.len()) {
            Some((name, _)) => Err(format!(
                "it ranks model {ranked}, which has no ranks for {model}'s {name}"
            )),
            None => Ok(()),
        }
    }

    /// A model with the file's convs and its name, to read `--compress-rate` against when no
    /// model is given.
    pub fn as_model(&self) -> (String, &'static str) {
        let widths: Vec<String> = self
            .convs
            .iter()
            .map(|c| c.ranks.len().to_string())
            .collect();
        let name = "Ranked";
        let source = format!(
            "model {name} {{ input = [1, 2, 2] cfg = [{}, 1] }}",
            widths.join(", ")
        );
        (source, name)
    }

    /// Marks the filters each conv keeps under `rates` (one per conv of the file), widths
    /// rounded up to a multiple of `round_to` as the model's are.
    pub fn cut(&mut self, rates: Option<&[f64]>, round_to: i64) {
        let Some(rates) = rates else { return };
        for (conv, &rate) in self.convs.iter_mut().zip(rates) {
            let keep = WidthRule::HRankPlus
                .kept(conv.ranks.len() as i64, rate, round_to)
                .max(0);
            let mut kept = vec![false; conv.ranks.len()];
            for i in keep_highest(&conv.ranks, keep as usize) {
                kept[i as usize] = true;
            }
            conv.kept = Some(kept);
        }
        self.rates = Some(rates[..rates.len().min(self.convs.len())].to_vec());
    }
}

pub fn size(ranks: &Ranks) -> (u32, u32) {
    ((240 + 64 * ranks.convs.len() as u32).max(960), 720)
}

/// Where filter `j` of a conv sits across its column: spread by the golden ratio, the same on
/// every run.
fn spread(j: usize) -> f64 {
    0.5 + ((j as f64 * 0.618_033_988_749_895).fract() - 0.5) * 0.7
}

pub fn draw(root: &Area, figure: &Ranks) -> Drawn {
    let title = format!(
        "Filter ranks of {} ({} images)",
        figure.model, figure.images
    );
    let area = titled(root, &title)?;
    let all = || figure.convs.iter().flat_map(|c| &c.ranks).copied();
    let top = all().fold(1.0_f64, f64::max);
    let bottom = all().fold(0.0_f64, f64::min);
    let caption = match &figure.rates {
        Some(rates) => format!(
            "cut by compress_rate {}: each conv keeps its int(c·(1 − r)) highest-ranked filters",
            rate_list(rates)
        ),
        None => "no cut: give --compress-rate, or a --model with a compress_rate".to_owned(),
    };
    let names: Vec<String> = figure
        .convs
        .iter()
        .map(|c| match &c.kept {
            Some(kept) => {
                let n = kept.iter().filter(|&&k| k).count();
                format!("{}: {n} of {}", c.name, c.ranks.len())
            }
            None => c.name.clone(),
        })
        .collect();
    let mut chart = ChartBuilder::on(&area)
        .caption(caption, (FONT, LABEL))
        .margin(14)
        .x_label_area_size(category_label_area(root, &names))
        .y_label_area_size(80)
        // Headroom above the highest rank for the legend.
        .build_cartesian_2d(Categories(names.len()), bottom..top * 1.3)?;
    let digits = if top >= 10.0 { 0 } else { 1 };
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_label_formatter(&|_| String::new())
        .y_label_formatter(&|r| format!("{r:.digits$}"))
        .light_line_style(LIGHT)
        .max_light_lines(4)
        .y_label_style((FONT, TICK))
        .x_desc(if figure.rates.is_some() {
            "conv layer: filters kept of its width"
        } else {
            "conv layer"
        })
        .y_desc("average rank of the filter's feature map")
        .axis_desc_style((FONT, LABEL))
        .draw()?;
    category_labels(root, &chart, &names, bottom)?;

    filters(&mut chart, figure)?;
    legend(&mut chart, SeriesLabelPosition::UpperRight)
}

/// Every filter as a point in its conv's column, pruned ones apart, and each conv's cut.
fn filters(chart: &mut Chart<'_, '_, Categories, RangedCoordf64>, figure: &Ranks) -> Drawn {
    let points = |keep: bool| {
        figure.convs.iter().enumerate().flat_map(move |(i, c)| {
            c.ranks.iter().enumerate().filter_map(move |(j, &r)| {
                let kept = c.kept.as_ref().is_none_or(|k| k[j]);
                (kept == keep).then_some((i as f64 + spread(j), r))
            })
        })
    };
    let count = |keep: bool| points(keep).count();
    // Pruned filters first, so that the kept ones show on top.
    if figure.rates.is_some() {
        let pruned = colour(3).stroke_width(2);
        chart
            .draw_series(points(false).map(|p| Cross::new(p, 3, pruned)))?
            .label(format!("pruned filter ({})", count(false)))
            .legend(move |(x, y)| Cross::new((x + 7, y), 4, pruned));
    }
    let kept = colour(0).mix(0.8).filled();
    let label = match figure.rates {
        Some(_) => format!("kept filter ({})", count(true)),
        None => format!("filter ({})", count(true)),
    };
    chart
        .draw_series(points(true).map(|p| Circle::new(p, 3, kept)))?
        .label(label)
        .legend(move |(x, y)| Circle::new((x + 7, y), 4, kept));
    if figure.rates.is_some() {
        // A line at the lowest rank kept, in each conv that loses filters.
        let cuts = figure.convs.iter().enumerate().filter_map(|(i, c)| {
            let kept = c.kept.as_ref()?;
            let lowest = c
                .ranks
                .iter()
                .zip(kept)
                .filter(|(_, &k)| k)
                .map(|(&r, _)| r)
                .fold(f64::INFINITY, f64::min);
            let x = i as f64;
            let line = [(x + 0.05, lowest), (x + 0.95, lowest)];
            (lowest.is_finite() && kept.contains(&false))
                .then(|| PathElement::new(line, BLACK.stroke_width(3)))
        });
        chart
            .draw_series(cuts)?
            .label("cut: the lowest rank kept")
            .legend(|(x, y)| PathElement::new([(x, y), (x + 16, y)], BLACK.stroke_width(3)));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{Ranks, RanksFile};

    #[test]
    fn the_cut_keeps_the_highest_ranks_and_the_lower_index_among_ties() {
        let kept = |rate: f64| {
            let mut r = Ranks::new(RanksFile {
                model: "A".into(),
                images: 1,
                convs: vec![("conv0".into(), vec![3.0, 5.0, 4.0, 4.0, 1.0, 0.0, 4.0, 4.0])],
            });
            r.cut(Some(&[rate]), 1);
            r.convs.remove(0).kept.unwrap()
        };
        // int(8 × 0.5) = 4 kept: 5.0 (filter 1), then three of the four 4.0s: filters 2, 3, 6.
        let want = [false, true, true, true, false, false, true, false];
        assert_eq!(kept(0.5), want);
        // int(8 × (1 − 0.95)) = 0: nothing survives; rate 0 keeps everything.
        assert_eq!(kept(0.95), [false; 8]);
        assert_eq!(kept(0.0), [true; 8]);
    }
}
