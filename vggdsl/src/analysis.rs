//! Figures about a network: parameters, multiply-accumulates and the summary built from them.
//!
//! Each layer counts itself ([`crate::ir::Layer::params`], [`crate::ir::Layer::macs`]); this
//! module adds them up and says how ([`CONVENTION`]): MACs count Conv2d and Linear only, bias and
//! BatchNorm excluded (HRank's "313.73M"-style tables, up to bias handling).

use crate::ir::{LayerKind, Network};

/// What the MACs figures count, printed wherever they are.
pub const CONVENTION: &str =
    "MACs: Conv2d + Linear multiply-accumulates for one sample, bias and BatchNorm excluded";

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
}

#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct Summary {
    pub name: String,
    pub input: [i64; 3],
    pub params: u64,
    pub params_conv_linear: u64,
    pub macs: u64,
    pub relu_cfg: Vec<usize>,
    pub conv_cfg: Vec<usize>,
    pub layers: Vec<LayerSummary>,
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
}

pub fn summarize(net: &Network) -> Summary {
    let layers: Vec<LayerSummary> = net
        .layers()
        .map(|(section, l)| LayerSummary {
            name: crate::names::module_path(section, &l.name),
            kind: l.kind.class_name(),
            out_shape: l.out_shape.clone(),
            params: l.params(),
            macs: l.macs(),
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
        }
    });
    Summary {
        name: net.spec.name.clone(),
        input: net.spec.input,
        params: layers.iter().map(|l| l.params).sum(),
        params_conv_linear: conv_linear,
        macs: layers.iter().map(|l| l.macs).sum(),
        relu_cfg: net.relu_cfg.clone(),
        conv_cfg: net.conv_cfg.clone(),
        layers,
        train: net.spec.train.clone(),
        unpruned,
    }
}

/// `1234567` → `1,234,567`.
pub fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// HRank's style: `2.64M (82.1%)`: the figure, and how much pruning removed.
#[cfg(feature = "table")]
fn reduced(now: u64, before: u64) -> String {
    let pct = if before == 0 {
        0.0
    } else {
        100.0 * (before - now) as f64 / before as f64
    };
    format!("{:.2}M ({pct:.1}% pruned)", now as f64 / 1e6)
}

#[cfg(feature = "table")]
impl Summary {
    /// A torchinfo-like table and totals.
    pub fn table(&self) -> String {
        use comfy_table::{presets::UTF8_FULL_CONDENSED, CellAlignment, Table};
        let mut t = Table::new();
        t.load_preset(UTF8_FULL_CONDENSED).set_header([
            "Layer",
            "Type",
            "Output shape",
            "Params",
            "MACs",
        ]);
        let input = format!("[{}]", self.input.map(|d| d.to_string()).join(", "));
        t.add_row(["input", "", &input, "", ""]);
        for l in &self.layers {
            let shape = format!(
                "[{}]",
                l.out_shape
                    .iter()
                    .map(|d| d.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            let num = |n: u64| if n == 0 { "-".to_owned() } else { thousands(n) };
            t.add_row([
                l.name.as_str(),
                l.kind,
                &shape,
                &num(l.params),
                &num(l.macs),
            ]);
        }
        for i in 3..5 {
            if let Some(c) = t.column_mut(i) {
                c.set_cell_alignment(CellAlignment::Right);
            }
        }
        let mb = self.params as f64 * 4.0 / (1024.0 * 1024.0);
        let mut out = format!("{}\n{t}\n", self.name);
        let mut line = |label: &str, value: String| out += &format!("{label:<24}{value}\n");
        line("Params:", thousands(self.params));
        line(
            "Params (Conv2d+Linear):",
            thousands(self.params_conv_linear),
        );
        line("MACs:", thousands(self.macs));
        line("Param size (float32):", format!("{mb:.2} MB"));
        line("relu_cfg:", format!("{:?}", self.relu_cfg));
        line("conv_cfg:", format!("{:?}", self.conv_cfg));
        if let Some(b) = &self.unpruned {
            line(
                "Pruned vs unpruned:",
                format!(
                    "params {}, MACs {}",
                    reduced(self.params_conv_linear, b.params_conv_linear),
                    reduced(self.macs, b.macs)
                ),
            );
        }
        if let Some(recipe) = &self.train {
            line("Training:", recipe.to_string());
        }
        out += &format!("({CONVENTION})\n");
        out
    }
}
