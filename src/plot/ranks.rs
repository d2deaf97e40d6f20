//! `vggdsl plot ranks`: per conv, every filter's average feature-map rank, and the cut a
//! compress_rate makes: a conv of width c with rate r keeps its `int(c·(1 − r))` highest-ranked
//! filters (HRankPlus's rule, [`vggdsl::ir::pruned_width`]), the lower index first among equal
//! ranks.
//!
//! The ranks file (written by `vggdsl rank`, documented in docs/language.md):
//! `{"model": NAME, "images": N, "ranks": {"conv0": [f64 per filter, …], …}}`, the convs in
//! order, named as in the model (`conv0`, `conv1`, `conv3`, …).

use super::{
    category_label_area, category_labels, colour, legend, titled, Area, Categories, Drawn, FONT,
    LABEL, LIGHT, TICK,
};
use plotters::prelude::*;
use serde::de::{Deserializer, MapAccess, Visitor};
use serde::Deserialize;
use std::fmt;
use vggdsl::ir::{pruned_width, LayerKind, Network};
use vggdsl::spec::CfgItem;

/// The ranks of one conv's filters, and which survive the cut once there is one.
struct Conv {
    name: String,
    ranks: Vec<f64>,
    kept: Option<Vec<bool>>,
}

pub struct Ranks {
    model: String,
    images: u64,
    convs: Vec<Conv>,
    /// The rates of the cut, as given.
    rates: Option<Vec<f64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    model: String,
    images: u64,
    ranks: InOrder,
}

/// The `ranks` object with its keys in the file's order (a map would sort them).
struct InOrder(Vec<(String, Vec<f64>)>);

impl<'de> Deserialize<'de> for InOrder {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Entries;
        impl<'de> Visitor<'de> for Entries {
            type Value = InOrder;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an object of conv names and rank lists")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<InOrder, A::Error> {
                let mut entries: Vec<(String, Vec<f64>)> = Vec::new();
                while let Some((name, ranks)) = map.next_entry::<String, Vec<f64>>()? {
                    if entries.iter().any(|(n, _)| *n == name) {
                        return Err(serde::de::Error::custom(format!("`{name}` appears twice")));
                    }
                    entries.push((name, ranks));
                }
                Ok(InOrder(entries))
            }
        }
        d.deserialize_map(Entries)
    }
}

impl Ranks {
    /// A ranks file's text, or why it is not one.
    pub fn parse(text: &str) -> Result<Ranks, String> {
        let file: File =
            serde_json::from_str(text).map_err(|e| format!("it is not a ranks file: {e}"))?;
        if file.ranks.0.is_empty() {
            return Err("it is not a ranks file: `ranks` holds no conv".into());
        }
        if let Some((name, _)) = file.ranks.0.iter().find(|(_, r)| r.is_empty()) {
            return Err(format!("it is not a ranks file: {name} has no ranks"));
        }
        Ok(Ranks {
            model: file.model,
            images: file.images,
            convs: file
                .ranks
                .0
                .into_iter()
                .map(|(name, ranks)| Conv {
                    name,
                    ranks,
                    kept: None,
                })
                .collect(),
            rates: None,
        })
    }

    /// Whether the file ranks `net`'s filters: its convs in order (every one, or every one but
    /// the last, which HRank never ranks), each with one rank per filter of its cfg width.
    pub fn check_against(&self, net: &Network) -> Result<(), String> {
        let model = &net.spec.name;
        let widths = cfg_widths(net);
        let convs = net.features.iter().filter_map(|l| match l.kind {
            LayerKind::Conv2d { .. } => Some(&l.name),
            _ => None,
        });
        let convs: Vec<(&String, i64)> = convs.zip(widths).collect();
        for (i, conv) in self.convs.iter().enumerate() {
            let Some(&(name, width)) = convs.get(i) else {
                return Err(format!(
                    "it ranks {}, but model {model} has only {} convs",
                    conv.name,
                    convs.len()
                ));
            };
            if conv.name != *name {
                return Err(format!(
                    "its conv number {} is {}, but model {model}'s is {name}",
                    i + 1,
                    conv.name
                ));
            }
            if conv.ranks.len() as i64 != width {
                return Err(format!(
                    "{name} has {} ranks, but model {model}'s {name} has {width} filters",
                    conv.ranks.len()
                ));
            }
        }
        if self.convs.len() + 1 < convs.len() {
            return Err(format!(
                "it has no ranks for {}, a conv of model {model}",
                convs[self.convs.len()].0
            ));
        }
        Ok(())
    }

    /// The rates `text` gives, read as the `compress_rate` of `model` (or, without one, of a
    /// network with the file's convs), with the language's checks: one rate per conv (or one
    /// fewer), each in [0, 1), leaving a filter in every conv.
    pub fn rates_from(&self, text: &str, model: Option<&Network>) -> Result<Vec<f64>, String> {
        // The text goes inside a model's source: only a list sum may be written.
        if let Some(c) = text
            .chars()
            .find(|c| !(c.is_ascii_digit() || c.is_whitespace() || "[],+*.-eE".contains(*c)))
        {
            return Err(format!(
                "`{c}` cannot be part of a list of rates such as \"[0.95] + [0.5] * 6\""
            ));
        }
        let (cfg, input) = match model {
            Some(net) => (vggdsl::codegen::cfg_text(&net.spec.cfg), net.spec.input),
            None => {
                let widths: Vec<String> = self
                    .convs
                    .iter()
                    .map(|c| c.ranks.len().to_string())
                    .collect();
                (format!("[{}, 1]", widths.join(", ")), [1, 2, 2])
            }
        };
        let [c, h, w] = input;
        let source =
            format!("model Cut {{ input = [{c}, {h}, {w}] cfg = {cfg} compress_rate = {text} }}");
        match vggdsl::check_source(&source) {
            Ok(nets) => Ok(nets[0].spec.compress_rate.clone().unwrap_or_default()),
            Err(diagnostics) => {
                let d = &diagnostics[0];
                Err(match d.labels.first() {
                    Some(label) if !label.text.is_empty() => {
                        format!("{}: {}", d.message, label.text)
                    }
                    _ => d.message.clone(),
                })
            }
        }
    }

    /// Marks the filters each conv keeps under `rates` (one per conv of the file, or more).
    pub fn cut(&mut self, rates: Option<&[f64]>) {
        let Some(rates) = rates else { return };
        for (conv, &rate) in self.convs.iter_mut().zip(rates) {
            let keep = pruned_width(conv.ranks.len() as i64, rate).max(0) as usize;
            let mut order: Vec<usize> = (0..conv.ranks.len()).collect();
            // Highest rank first; equal ranks keep the lower index first (a stable sort).
            order.sort_by(|&a, &b| conv.ranks[b].total_cmp(&conv.ranks[a]));
            let mut kept = vec![false; conv.ranks.len()];
            for &i in &order[..keep.min(order.len())] {
                kept[i] = true;
            }
            conv.kept = Some(kept);
        }
        self.rates = Some(rates[..rates.len().min(self.convs.len())].to_vec());
    }
}

/// The cfg widths of `net`'s convs, before pruning.
fn cfg_widths(net: &Network) -> impl Iterator<Item = i64> + '_ {
    net.spec.features().iter().filter_map(|item| match item {
        CfgItem::Conv(w) => Some(*w),
        CfgItem::Pool => None,
    })
}

/// `[0.95] + [0.5] * 6`: rates in HRank's notation, runs of one rate folded.
fn rates_text(rates: &[f64]) -> String {
    let mut terms: Vec<(f64, usize)> = Vec::new();
    for &r in rates {
        match terms.last_mut() {
            Some((last, n)) if *last == r => *n += 1,
            _ => terms.push((r, 1)),
        }
    }
    let terms: Vec<String> = terms
        .iter()
        .map(|&(r, n)| {
            if n == 1 {
                format!("[{r}]")
            } else {
                format!("[{r}] * {n}")
            }
        })
        .collect();
    terms.join(" + ")
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
            rates_text(rates)
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
    legend(&mut chart, SeriesLabelPosition::UpperRight)
}

#[cfg(test)]
mod tests {
    use super::Ranks;

    fn kept(text: &str, rates: &[f64]) -> Vec<Vec<bool>> {
        let mut ranks = Ranks::parse(text).unwrap();
        ranks.cut(Some(rates));
        ranks.convs.into_iter().map(|c| c.kept.unwrap()).collect()
    }

    #[test]
    fn the_cut_keeps_the_highest_ranks_and_the_lower_index_among_ties() {
        // int(8 × 0.5) = 4 kept: 5.0 (filter 1), then three of the four 4.0s: filters 2, 3, 6.
        let text = r#"{"model": "A", "images": 1, "ranks": {"conv0": [3, 5, 4, 4, 1, 0, 4, 4]}}"#;
        let want = [false, true, true, true, false, false, true, false];
        assert_eq!(kept(text, &[0.5]), [want]);
        // int(8 × (1 − 0.95)) = 0: nothing survives; rate 0 keeps everything.
        assert_eq!(kept(text, &[0.95]), [[false; 8]]);
        assert_eq!(kept(text, &[0.0]), [[true; 8]]);
    }

    #[test]
    fn rates_fold_into_hranks_notation() {
        let rates = [0.95, 0.5, 0.5, 0.5, 0.9, 0.8, 0.8];
        assert_eq!(
            super::rates_text(&rates),
            "[0.95] + [0.5] * 3 + [0.9] + [0.8] * 2"
        );
    }
}
