//! Figures about a network: parameters, multiply-accumulates, FLOPs and the summaries built from
//! them, each printed with the convention it counts by.
//!
//! Each layer counts itself ([`crate::ir::Layer::params`], [`crate::ir::Layer::macs`]); this
//! module adds them up and says how ([`CONVENTION`]): MACs count Conv2d and Linear only, bias and
//! BatchNorm excluded; FLOPs are twice that ([`FLOPS_CONVENTION`]). Pruning papers count
//! otherwise, and mismatched counts are what their users ask about most: [`hrank`] counts as
//! HRank's `get_flops.py` does ([`HRANK_CONVENTION`]), to compare with its published tables.

use crate::ir::{self, Architecture, LayerKind};

mod hrankplus;
pub use hrankplus::hrankplus;

/// What the MACs figures count, printed wherever they are.
pub const CONVENTION: &str =
    "MACs: Conv2d + Linear multiply-accumulates for one sample, bias and BatchNorm excluded";

/// What FLOPs are beside MACs.
pub const FLOPS_CONVENTION: &str = "FLOPs = 2 × MACs, a multiply and an add each";

/// HRank's counting (`get_flops.py`), which [`hrank`] reproduces.
pub const HRANK_CONVENTION: &str = "HRank's counting (its get_flops.py), for one image: \
     Conv2d and Linear only; a conv with rate r counts c_out - int(r·c_out) filters over its full, \
     unpruned input channels (FLOPs = c_in × kept × k² × H_out × W_out, params = kept/c_out of \
     its weight and bias); a Linear counts its weight and bias elements as FLOPs, and all its \
     parameters";

/// HRankPlus's published figures ([`hrankplus`]).
pub const HRANKPLUS_CONVENTION: &str = "HRankPlus's counting, for one image: FLOPs as thop 0.0.31 \
     counts them (HRankPlus's evaluate_cifar.py and cal_flops_params.py call it): a conv \
     c_out × H_out × W_out × (c_in × k² + 1), a BatchNorm 2 per element, a Linear \
     in_features × out_features, ReLU and pooling 0, on the network as built; params of Conv2d \
     and Linear only, as HRankPlus's README prints them";

/// The convention a set of figures is counted by, as JSON shows it beside them.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct Convention {
    /// `exact` or `hrank`.
    pub name: &'static str,
    pub text: String,
}

impl Convention {
    /// vggdsl's own count, with or without FLOPs beside the MACs.
    pub fn exact(flops: bool) -> Self {
        let text = if flops {
            format!("{CONVENTION}; {FLOPS_CONVENTION}")
        } else {
            CONVENTION.to_owned()
        };
        Convention {
            name: "exact",
            text,
        }
    }

    pub fn hrank() -> Self {
        Convention {
            name: "hrank",
            text: HRANK_CONVENTION.to_owned(),
        }
    }

    pub fn hrankplus() -> Self {
        Convention {
            name: "hrankplus",
            text: HRANKPLUS_CONVENTION.to_owned(),
        }
    }
}

/// FLOPs as most counters print them: two per multiply-accumulate.
pub fn flops(macs: u64) -> u128 {
    2 * u128::from(macs)
}

fn is_conv_or_linear(kind: &LayerKind) -> bool {
    matches!(kind, LayerKind::Conv2d { .. } | LayerKind::Linear { .. })
}

#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct LayerSummary {
    pub name: String,
    pub kind: &'static str,
    pub out_shape: Vec<i64>,
    pub params: u64,
    pub macs: u64,
    /// 2 × MACs, when asked for ([`Summary::with_flops`]).
    #[cfg_attr(feature = "serde", serde(skip_serializing_if = "Option::is_none"))]
    pub flops: Option<u128>,
}

#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct Summary {
    pub name: String,
    pub input: [i64; 3],
    pub params: u64,
    pub params_conv_linear: u64,
    pub macs: u64,
    /// 2 × MACs, when asked for ([`Summary::with_flops`]).
    #[cfg_attr(feature = "serde", serde(skip_serializing_if = "Option::is_none"))]
    pub flops: Option<u128>,
    pub relu_cfg: Vec<usize>,
    pub conv_cfg: Vec<usize>,
    pub layers: Vec<LayerSummary>,
    /// The multiple pruned widths are rounded up to, when the model sets `round_to`.
    #[cfg_attr(feature = "serde", serde(skip_serializing_if = "Option::is_none"))]
    pub round_to: Option<i64>,
    /// The training recipe the file writes, if any.
    #[cfg_attr(feature = "serde", serde(skip_serializing_if = "Option::is_none"))]
    pub train: Option<crate::spec::Recipe>,
    /// Figures of the same model without pruning, when it is pruned.
    #[cfg_attr(feature = "serde", serde(skip_serializing_if = "Option::is_none"))]
    pub unpruned: Option<Baseline>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct Baseline {
    pub params: u64,
    pub params_conv_linear: u64,
    pub macs: u64,
    #[cfg_attr(feature = "serde", serde(skip_serializing_if = "Option::is_none"))]
    pub flops: Option<u128>,
}

pub fn summarize(net: &Architecture) -> Summary {
    let layers: Vec<LayerSummary> = net
        .layers()
        .map(|(section, l)| LayerSummary {
            name: crate::names::module_path(section, &l.name),
            kind: l.kind.class_name(),
            out_shape: l.out_shape.clone(),
            params: l.params(),
            macs: l.macs(),
            flops: None,
        })
        .collect();
    let conv_linear = net
        .layers()
        .filter(|(_, l)| is_conv_or_linear(&l.kind))
        .map(|(_, l)| l.params())
        .sum();
    let unpruned = net.spec.compress_rate.as_ref().map(|_| {
        let base = crate::ir::lower(&net.spec.unpruned())
            .expect("lower accepts a pruned network only if its unpruned form lowers too");
        let s = summarize(&base);
        Baseline {
            params: s.params,
            params_conv_linear: s.params_conv_linear,
            macs: s.macs,
            flops: None,
        }
    });
    Summary {
        name: net.spec.name.clone(),
        input: net.spec.input,
        params: layers.iter().map(|l| l.params).sum(),
        params_conv_linear: conv_linear,
        macs: layers.iter().map(|l| l.macs).sum(),
        flops: None,
        relu_cfg: net.relu_cfg.clone(),
        conv_cfg: net.conv_cfg.clone(),
        layers,
        round_to: net.spec.round_to,
        train: net.spec.train.clone(),
        unpruned,
    }
}

impl Summary {
    /// The same figures with FLOPs (2 × MACs) beside every MACs figure.
    pub fn with_flops(mut self) -> Summary {
        self.flops = Some(flops(self.macs));
        for l in &mut self.layers {
            l.flops = Some(flops(l.macs));
        }
        if let Some(b) = &mut self.unpruned {
            b.flops = Some(flops(b.macs));
        }
        self
    }

    /// The convention the figures are counted by.
    pub fn convention(&self) -> Convention {
        Convention::exact(self.flops.is_some())
    }
}

/// `1234567` → `1,234,567`.
pub fn thousands(n: impl Into<u128>) -> String {
    let s = n.into().to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A network's figures as HRank's `get_flops.py` counts them ([`HRANK_CONVENTION`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct HrankSummary {
    pub name: String,
    pub input: [i64; 3],
    pub params: u64,
    pub flops: u128,
    pub layers: Vec<HrankLayer>,
    /// The same count with no pruning, when the model is pruned.
    #[cfg_attr(feature = "serde", serde(skip_serializing_if = "Option::is_none"))]
    pub unpruned: Option<HrankTotals>,
    /// Whose counting the figures follow.
    #[cfg_attr(feature = "serde", serde(skip))]
    pub counting: Counting,
}

/// The published counts [`HrankSummary`] reproduces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Counting {
    /// HRank's `get_flops.py` ([`hrank`]).
    Hrank,
    /// HRankPlus's thop figures ([`hrankplus`]).
    HrankPlus,
}

#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct HrankLayer {
    pub name: String,
    pub kind: &'static str,
    /// For a conv, the filters kept (HRank's rule, `c_out - int(r·c_out)`; HRankPlus's, the
    /// width built) and `c_out`.
    #[cfg_attr(feature = "serde", serde(skip_serializing_if = "Option::is_none"))]
    pub filters: Option<Filters>,
    pub params: u64,
    pub flops: u128,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct Filters {
    pub kept: i64,
    pub of: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct HrankTotals {
    pub params: u64,
    pub flops: u128,
}

/// Counts `net` as HRank does: its unpruned layers, each conv with the filters its rate keeps by
/// HRank's rule (which differs from the width vggdsl builds, `int(c·(1 - r))`), over the full
/// input channels. HRank's published VGG-16 figures are counted this way.
pub fn hrank(net: &Architecture) -> HrankSummary {
    let rates = net.spec.compress_rate.as_deref().unwrap_or(&[]);
    let unpruned = net
        .spec
        .compress_rate
        .as_ref()
        .map(|_| hrank_layers(net, &[]));
    HrankSummary::new(net, hrank_layers(net, rates), unpruned, Counting::Hrank)
}

impl HrankSummary {
    /// The totals of `counted` layers of `net`, and of the `unpruned` network's if given.
    fn new(
        net: &Architecture,
        counted: Vec<HrankLayer>,
        unpruned: Option<Vec<HrankLayer>>,
        counting: Counting,
    ) -> HrankSummary {
        let unpruned = unpruned.map(|all| HrankTotals {
            params: all.iter().map(|l| l.params).sum(),
            flops: all.iter().map(|l| l.flops).sum(),
        });
        HrankSummary {
            name: net.spec.name.clone(),
            input: net.spec.input,
            params: counted.iter().map(|l| l.params).sum(),
            flops: counted.iter().map(|l| l.flops).sum(),
            layers: counted,
            unpruned,
            counting,
        }
    }
}

/// HRank's per-layer figures of `net` unpruned, the convs cut by `rates` (none: no cut).
fn hrank_layers(net: &Architecture, rates: &[f64]) -> Vec<HrankLayer> {
    let base = ir::lower(&net.spec.unpruned())
        .expect("lower accepts a pruned network only if its unpruned form lowers too");
    let mut convs = 0;
    base.layers()
        .map(|(section, l)| {
            let wide = |dims: &[i64]| dims.iter().map(|&d| d as u128).product::<u128>();
            let (filters, params, flops) = match l.kind {
                LayerKind::Conv2d {
                    in_channels,
                    out_channels,
                    kernel,
                    ..
                } => {
                    let rate = rates.get(convs).copied().unwrap_or(0.0);
                    convs += 1;
                    let kept = out_channels - (rate * out_channels as f64) as i64;
                    let per_filter = wide(&[in_channels, kernel, kernel]);
                    let flops = per_filter * wide(&[kept]) * wide(&l.out_shape[1..]);
                    let filters = Filters {
                        kept,
                        of: out_channels,
                    };
                    (Some(filters), (per_filter + 1) * wide(&[kept]), flops)
                }
                LayerKind::Linear {
                    in_features,
                    out_features,
                } => {
                    let n = wide(&[in_features, out_features]) + wide(&[out_features]);
                    (None, n, n)
                }
                _ => (None, 0, 0),
            };
            HrankLayer {
                name: crate::names::module_path(section, &l.name),
                kind: l.kind.class_name(),
                filters,
                // At most the unpruned layer's parameters, which `lower` checked to fit.
                params: u64::try_from(params).expect("fits in 64 bits"),
                flops,
            }
        })
        .collect()
}

/// HRank's style: `2.64M (82.1% pruned)`: the figure, and how much pruning removed.
#[cfg(feature = "table")]
fn reduced(now: u128, before: u128) -> String {
    let pct = if before == 0 {
        0.0
    } else {
        100.0 * before.saturating_sub(now) as f64 / before as f64
    };
    format!("{:.2}M ({pct:.1}% pruned)", now as f64 / 1e6)
}

#[cfg(feature = "table")]
mod table {
    use comfy_table::{presets::UTF8_FULL_CONDENSED, CellAlignment, Table};

    /// A table with the columns from `right` on aligned right.
    pub fn grid(header: &[&str], rows: Vec<Vec<String>>, right: usize) -> Table {
        let mut t = Table::new();
        t.load_preset(UTF8_FULL_CONDENSED).set_header(header);
        for row in rows {
            t.add_row(row);
        }
        for i in right..header.len() {
            if let Some(c) = t.column_mut(i) {
                c.set_cell_alignment(CellAlignment::Right);
            }
        }
        t
    }

    /// A count, or `-` for none.
    pub fn count(n: impl Into<u128>) -> String {
        match n.into() {
            0 => "-".to_owned(),
            n => super::thousands(n),
        }
    }

    /// `[64, 32, 32]`
    pub fn shape(dims: &[i64]) -> String {
        let dims: Vec<String> = dims.iter().map(|d| d.to_string()).collect();
        format!("[{}]", dims.join(", "))
    }

    /// One `label   value` line under the table.
    pub fn line(out: &mut String, label: &str, value: impl std::fmt::Display) {
        *out += &format!("{label:<24}{value}\n");
    }
}

#[cfg(feature = "table")]
impl Summary {
    /// A torchinfo-like table and totals, with FLOPs when the summary has them.
    pub fn table(&self) -> String {
        let mut header = vec!["Layer", "Type", "Output shape", "Params", "MACs"];
        if self.flops.is_some() {
            header.push("FLOPs");
        }
        let mut input = vec!["input".to_owned(), String::new(), table::shape(&self.input)];
        input.resize(header.len(), String::new());
        let mut rows = vec![input];
        for l in &self.layers {
            let mut row = vec![
                l.name.clone(),
                l.kind.to_owned(),
                table::shape(&l.out_shape),
                table::count(l.params),
                table::count(l.macs),
            ];
            if let Some(flops) = l.flops {
                row.push(table::count(flops));
            }
            rows.push(row);
        }
        let t = table::grid(&header, rows, 3);
        let mb = self.params as f64 * 4.0 / (1024.0 * 1024.0);
        let mut out = format!("{}\n{t}\n", self.name);
        table::line(&mut out, "Params:", thousands(self.params));
        table::line(
            &mut out,
            "Params (Conv2d+Linear):",
            thousands(self.params_conv_linear),
        );
        table::line(&mut out, "MACs:", thousands(self.macs));
        if let Some(flops) = self.flops {
            table::line(&mut out, "FLOPs:", thousands(flops));
        }
        table::line(&mut out, "Param size (float32):", format!("{mb:.2} MB"));
        table::line(&mut out, "relu_cfg:", format!("{:?}", self.relu_cfg));
        table::line(&mut out, "conv_cfg:", format!("{:?}", self.conv_cfg));
        if let Some(b) = &self.unpruned {
            let mut figures = format!(
                "params {}, MACs {}",
                reduced(self.params_conv_linear.into(), b.params_conv_linear.into()),
                reduced(self.macs.into(), b.macs.into())
            );
            if let (Some(now), Some(before)) = (self.flops, b.flops) {
                figures += &format!(", FLOPs {}", reduced(now, before));
            }
            table::line(&mut out, "Pruned vs unpruned:", figures);
        }
        if let Some(n) = self.round_to {
            table::line(
                &mut out,
                "round_to:",
                format!("{n} (pruned widths rounded up to a multiple of {n})"),
            );
        }
        if let Some(recipe) = &self.train {
            table::line(&mut out, "Training:", recipe);
        }
        out += &format!("({})\n", self.convention().text);
        out
    }
}

#[cfg(feature = "table")]
impl HrankSummary {
    /// The layers with the filters kept and their figures, then the totals.
    pub fn table(&self) -> String {
        let header = ["Layer", "Type", "Filters kept", "Params", "FLOPs"];
        let rows = self
            .layers
            .iter()
            .map(|l| {
                let filters = l
                    .filters
                    .map_or_else(String::new, |f| format!("{} of {}", f.kept, f.of));
                vec![
                    l.name.clone(),
                    l.kind.to_owned(),
                    filters,
                    table::count(l.params),
                    table::count(l.flops),
                ]
            })
            .collect();
        let t = table::grid(&header, rows, 3);
        let (whose, convention) = match self.counting {
            Counting::Hrank => ("HRank", HRANK_CONVENTION),
            Counting::HrankPlus => ("HRankPlus", HRANKPLUS_CONVENTION),
        };
        let mut out = format!("{} ({whose}'s counting)\n{t}\n", self.name);
        table::line(&mut out, "Params:", thousands(self.params));
        table::line(&mut out, "FLOPs:", thousands(self.flops));
        if let Some(b) = &self.unpruned {
            table::line(
                &mut out,
                "Pruned vs unpruned:",
                format!(
                    "params {}, FLOPs {}",
                    reduced(self.params.into(), b.params.into()),
                    reduced(self.flops, b.flops)
                ),
            );
        }
        out += &format!("({convention})\n");
        out
    }
}
