//! `vggdsl prune FILE --weights W --ranks R --compress-rate RATES --out DIR`: a model cut down to
//! the filters that score highest, as a new model file, its weights and the kept indices.
//!
//! FILE's model without its `compress_rate` is the network W holds and R ranks; the rates come
//! from `--compress-rate` or, without it, from FILE's own `compress_rate`.

use std::path::{Path, PathBuf};

use clap::ValueEnum;
use serde::Serialize;
use vggdsl::analysis::{self, thousands};
use vggdsl::ir::LayerKind;
use vggdsl::{Diagnostic, Diagnostics, Network as Ir};
use vggdsl_runtime::hrank::select::{self, Criterion, WidthRule};
use vggdsl_runtime::hrank::{surgery, Copy};
use vggdsl_runtime::tch::{self, nn::VarStore, Device};
use vggdsl_runtime::{ModelError, Network};

use super::setup::load_failure;
use crate::failure::{Failure, FAILED, UNREADABLE, USAGE};
use crate::staged::{refuse_overwrite, Staged};
use crate::{input, output, FileArg};

/// The exit codes of `prune`.
pub const EXIT_CODES: &str = "\
Exit codes:
  0  success
  1  FILE, the weights or the ranks are invalid or do not fit one another, or DIR cannot be
     written (nothing is written)
  2  a file cannot be read, or the command line is wrong (--compress-rate included)";

/// The files `prune` writes in DIR.
const MODEL_FILE: &str = "model.vgg";
const WEIGHTS_FILE: &str = "model.safetensors";
const KEPT_FILE: &str = "kept.json";

#[derive(clap::Args)]
pub struct Args {
    /// The .vgg file (`-` reads standard input). Its model without `compress_rate` is the
    /// network the weights and the ranks belong to.
    #[arg(value_name = "FILE")]
    file: FileArg,
    /// The model to prune when FILE declares several.
    #[arg(long, value_name = "NAME")]
    model: Option<String>,
    /// The weights of the unpruned model (.safetensors or a torch.save archive).
    #[arg(long, value_name = "W")]
    weights: PathBuf,
    /// ranks.json from `vggdsl rank` on the unpruned model (needed with --by rank).
    #[arg(long, value_name = "R")]
    ranks: Option<PathBuf>,
    /// Rates in the language's list syntax, one per conv or one fewer (the last conv keeps its
    /// width), e.g. "[0.95] + [0.5] * 6 + [0.9] * 4 + [0.8] * 2" [default: FILE's compress_rate]
    #[arg(long, value_name = "RATES", allow_hyphen_values = true)]
    compress_rate: Option<String>,
    /// Which filters survive: the highest mean feature-map rank, the largest L1 norm, or a
    /// random choice (seeded by --seed); ties go to the lower filter index.
    #[arg(long, value_enum, default_value_t = By::Rank)]
    by: By,
    /// How many filters survive: hrankplus keeps int(c·(1 − r)) as the language does; hrank
    /// keeps HRank's c − int(r·c), written as the rates that give those widths.
    #[arg(long, value_enum, default_value_t = Rule::Hrankplus)]
    rule: Rule,
    /// What surgery copies: all tensors, sliced; or only the conv kernels, as HRankPlus does
    /// (the rest keeps the pruned model's fresh init, drawn after seeding with --seed).
    #[arg(long, value_enum, default_value_t = CopyArg::All)]
    copy: CopyArg,
    /// Seeds --by random and the pruned model's fresh init.
    #[arg(long, value_name = "N", default_value_t = 0)]
    seed: u64,
    /// The folder to write model.vgg, model.safetensors and kept.json in (created if missing).
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// Print the before/after figures as JSON instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum By {
    Rank,
    L1,
    Random,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Rule {
    Hrankplus,
    Hrank,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum CopyArg {
    All,
    ConvOnly,
}

impl By {
    fn name(self) -> &'static str {
        match self {
            By::Rank => "rank",
            By::L1 => "l1",
            By::Random => "random",
        }
    }
}

impl Rule {
    fn width_rule(self) -> WidthRule {
        match self {
            Rule::Hrankplus => WidthRule::HRankPlus,
            Rule::Hrank => WidthRule::HRank,
        }
    }

    fn describe(self) -> &'static str {
        match self {
            Rule::Hrankplus => "HRankPlus's int(c·(1 − r)), the language's",
            Rule::Hrank => "HRank's c − int(r·c)",
        }
    }
}

pub fn run(args: Args) -> Result<(), Failure> {
    let source = input::read(&args.file)?;
    let nets = vggdsl::load(&source.text, &source.name).map_err(|d| Failure::invalid(&d))?;
    let model = pick(&nets, args.model.as_deref(), &source.name)?;
    let name = model.spec.name.clone();
    let full_ir = vggdsl::ir::lower(&model.spec.unpruned())
        .expect("a model lowers only if its unpruned form does");

    // The rates, checked by the compiler in the model itself.
    let (rates, rates_text) = match &args.compress_rate {
        Some(text) => (flag_rates(&source.text, &name, text)?, text.clone()),
        None => match &model.spec.compress_rate {
            Some(rates) => (rates.clone(), String::new()),
            None => {
                return Err(Failure::new(
                    USAGE,
                    format_args!(
                        "model {name} of {} has no compress_rate, so give --compress-rate",
                        source.name
                    ),
                ))
            }
        },
    };
    let widths: Vec<i64> = select::conv_widths(&full_ir);
    let keep: Vec<i64> = widths
        .iter()
        .zip(&rates)
        .map(|(&c, &r)| args.rule.width_rule().kept(c, r))
        .collect();

    // The pruned model's text: FILE's model with the rates that give `keep`.
    let written_rates = match args.rule {
        Rule::Hrankplus if !rates_text.is_empty() => rates_text.clone(),
        Rule::Hrankplus => vggdsl::rewrite::compress_rate(&source.text, &name)
            .expect("the model has a compress_rate")
            .to_owned(),
        Rule::Hrank => rate_list(
            &widths
                .iter()
                .zip(&keep)
                .zip(&rates)
                .map(|((&c, &k), &r)| select::language_rate(c, k, r))
                .collect::<Vec<_>>(),
        ),
    };

    let mut full_vs = VarStore::new(Device::Cpu);
    let full = Network::new(&full_vs.root(), &full_ir);
    vggdsl_runtime::load_state_dict(&mut full_vs, &args.weights)
        .map_err(|e| load_failure(&e, &name))?;
    let (criterion_text, ranks);
    let criterion = match args.by {
        By::Rank => {
            let path = args.ranks.as_ref().ok_or_else(|| {
                Failure::new(
                    USAGE,
                    "--by rank needs --ranks R, the ranks.json of `vggdsl rank`",
                )
            })?;
            ranks = super::rank::read(path)?;
            criterion_text = format!(
                "the highest mean feature-map rank ({}, {} images)",
                path.display(),
                ranks.images
            );
            let scores = ranks.scores_for(&full_ir).map_err(|e| {
                Failure::new(
                    FAILED,
                    format_args!("{} does not fit {}: {e}", path.display(), source.name),
                )
            })?;
            Criterion::Rank(scores)
        }
        By::L1 => {
            criterion_text = "the largest L1 norm".to_owned();
            Criterion::L1
        }
        By::Random => {
            criterion_text = format!("a random choice (seed {})", args.seed);
            Criterion::Random(args.seed)
        }
    };
    let kept = select::choose(&full, &keep, &criterion);

    let copy = match args.copy {
        CopyArg::All => Copy::All,
        CopyArg::ConvOnly => Copy::ConvOnly,
    };
    let comment = format!(
        "Pruned by `vggdsl prune` from model {name} of {} with the weights {}:\n\
         filters kept by {criterion_text}; widths by {}{};\n\
         {}. Weights: {WEIGHTS_FILE}; kept filters: {KEPT_FILE}.",
        source.name,
        args.weights.display(),
        args.rule.describe(),
        match (args.rule, args.compress_rate.as_ref()) {
            (Rule::Hrank, Some(text)) => format!(" for the rates {text}"),
            (Rule::Hrank, None) => format!(" for the rates {}", rate_list(&rates)),
            (Rule::Hrankplus, _) => String::new(),
        },
        match copy {
            Copy::All => "every tensor copied".to_owned(),
            Copy::ConvOnly => format!(
                "conv kernels copied, the rest drawn fresh (seed {})",
                args.seed
            ),
        },
    );
    let (text, _) =
        vggdsl::rewrite::with_compress_rate(&source.text, &name, &written_rates, &comment)
            .expect("FILE parsed and has the model");
    let pruned_ir = match vggdsl::check_source(&text).as_deref() {
        Ok([net]) => net.clone(),
        _ => unreachable!("the rates were checked in this model:\n{text}"),
    };
    assert_eq!(
        select::conv_widths(&pruned_ir),
        keep,
        "the written rates give the kept widths"
    );

    tch::manual_seed(args.seed as i64);
    let pruned_vs = VarStore::new(Device::Cpu);
    let _pruned = Network::new(&pruned_vs.root(), &pruned_ir);
    surgery::transplant(&full_ir, &full_vs, &kept, &pruned_vs, copy);

    let figures = Figures::new(&full_ir, &pruned_ir);
    let mut staged = Staged::new(&args.out)?;
    for (file, input, what) in [
        (
            MODEL_FILE,
            source_path(&args.file),
            "the model being pruned",
        ),
        (
            WEIGHTS_FILE,
            Some(args.weights.as_path()),
            "the weights being pruned",
        ),
    ] {
        if let Some(input) = input {
            refuse_overwrite(&args.out.join(file), input, what)?;
        }
    }
    staged.write(MODEL_FILE, text.as_bytes())?;
    let weights = staged.path(WEIGHTS_FILE);
    vggdsl_runtime::save_state_dict(&pruned_vs, &weights).map_err(|e| Failure::new(FAILED, e))?;
    staged.write(KEPT_FILE, kept_json(&full_ir, &kept).as_bytes())?;
    staged.commit()?;

    let by = format!(
        "Kept by: {criterion_text}\nWidths: {}\nCopied: {}\nWrote: {}",
        args.rule.describe(),
        match copy {
            Copy::All => "every tensor".to_owned(),
            Copy::ConvOnly => format!("conv kernels only (the rest fresh, seed {})", args.seed),
        },
        [MODEL_FILE, WEIGHTS_FILE, KEPT_FILE]
            .map(|f| args.out.join(f).display().to_string())
            .join(", ")
    );
    let text = if args.json {
        let doc = serde_json::json!({
            "model": name,
            "by": args.by.name(),
            "rule": match args.rule { Rule::Hrankplus => "hrankplus", Rule::Hrank => "hrank" },
            "copy": match copy { Copy::All => "all", Copy::ConvOnly => "conv-only" },
            "compress_rate": written_rates,
            "layers": figures.layers,
            "total": figures.total,
            "out": args.out,
            "convention": analysis::CONVENTION,
        });
        serde_json::to_string_pretty(&doc).expect("figures serialize") + "\n"
    } else {
        format!("{}{by}\n({})\n", figures.table(), analysis::CONVENTION)
    };
    output::stdout(text.as_bytes())
}

/// The model named `--model`, or the file's only one.
fn pick<'a>(nets: &'a [Ir], name: Option<&str>, file: &str) -> Result<&'a Ir, Failure> {
    let available = || nets.iter().map(|n| n.spec.name.clone()).collect();
    let error = match (name, nets) {
        (None, [only]) => return Ok(only),
        (Some(name), _) => match nets.iter().find(|n| n.spec.name == name) {
            Some(net) => return Ok(net),
            None => ModelError::NoSuchModel {
                file: file.to_owned(),
                name: name.to_owned(),
                available: available(),
            },
        },
        (None, _) => ModelError::Ambiguous {
            file: file.to_owned(),
            available: available(),
        },
    };
    Err(Failure::new(UNREADABLE, error))
}

/// The rates of `--compress-rate`, checked as the `compress_rate` of model `name`, with errors
/// pointing at the flag's text.
fn flag_rates(source: &str, name: &str, flag: &str) -> Result<Vec<f64>, Failure> {
    let flag = flag.trim();
    let (text, span) = vggdsl::rewrite::with_compress_rate(source, name, flag, "")
        .expect("FILE parsed and has the model");
    let inside = |d: &Diagnostic| d.span.start >= span.start && d.span.end <= span.end;
    // The flag must be one value, not text that ends the model and starts another.
    let one_value = match vggdsl::parse::parse(&text) {
        Ok(file) => {
            vggdsl::rewrite::compress_rate(&text, name).map(str::len) == Some(flag.len())
                && file.models.len() == 1
        }
        Err(d) => inside(&d),
    };
    let not_a_list = || {
        Failure::new(
            USAGE,
            format_args!(
                "--compress-rate `{flag}` is not one list of rates, such as \
                 [0.95] + [0.5] * 6 + [0.9] * 4 + [0.8] * 2"
            ),
        )
    };
    if !one_value {
        return Err(not_a_list());
    }
    let nets = match vggdsl::check_source(&text) {
        Ok(nets) => nets,
        Err(items) => {
            if !items.iter().all(inside) {
                return Err(not_a_list());
            }
            let shift = |s: &std::ops::Range<usize>| s.start - span.start..s.end - span.start;
            let items = items
                .into_iter()
                .map(|d| Diagnostic {
                    span: shift(&d.span),
                    labels: d
                        .labels
                        .iter()
                        .filter(|l| l.span.start >= span.start && l.span.end <= span.end)
                        .map(|l| vggdsl::diagnostic::Label {
                            span: shift(&l.span),
                            text: l.text.clone(),
                        })
                        .collect(),
                    ..d
                })
                .collect();
            let mut failure = Failure::invalid(&Diagnostics {
                file_name: "--compress-rate".to_owned(),
                source: flag.to_owned(),
                items,
            });
            failure.code = USAGE;
            return Err(failure);
        }
    };
    Ok(nets[0]
        .spec
        .compress_rate
        .clone()
        .expect("the model has the flag's rates"))
}

/// Rates in the language's list syntax, runs of equal rates as `[r] * n`.
fn rate_list(rates: &[f64]) -> String {
    let mut terms: Vec<String> = Vec::new();
    let mut singles: Vec<String> = Vec::new();
    let mut i = 0;
    while i < rates.len() {
        let n = rates[i..].iter().take_while(|&&r| r == rates[i]).count();
        if n > 1 {
            if !singles.is_empty() {
                terms.push(format!("[{}]", singles.join(", ")));
                singles.clear();
            }
            terms.push(format!("[{}] * {n}", rates[i]));
        } else {
            singles.push(rates[i].to_string());
        }
        i += n;
    }
    if !singles.is_empty() {
        terms.push(format!("[{}]", singles.join(", ")));
    }
    terms.join(" + ")
}

/// `{"conv0": [kept indices], …}`, convs in order.
fn kept_json(full: &Ir, kept: &[Vec<i64>]) -> String {
    let names = full.features.iter().filter_map(|l| match l.kind {
        LayerKind::Conv2d { .. } => Some(l.name.clone()),
        _ => None,
    });
    let map: serde_json::Map<String, serde_json::Value> = names
        .zip(kept)
        .map(|(n, k)| (n, serde_json::json!(k)))
        .collect();
    // serde_json's map sorts its keys (conv10 before conv2): write the entries in conv order.
    let entries: Vec<String> = full
        .features
        .iter()
        .filter(|l| map.contains_key(&l.name))
        .map(|l| format!("  {:?}: {}", l.name, map[&l.name]))
        .collect();
    format!("{{\n{}\n}}\n", entries.join(",\n"))
}

/// The path of FILE, unless it is standard input.
fn source_path(file: &FileArg) -> Option<&Path> {
    match file {
        FileArg::Path(p) => Some(p),
        FileArg::Std => None,
    }
}

/// Before/after figures of every Conv2d and Linear, and their totals.
struct Figures {
    layers: Vec<LayerFigures>,
    total: Total,
}

#[derive(Serialize)]
struct LayerFigures {
    name: String,
    kind: &'static str,
    /// Output channels or features, before and after.
    filters: [i64; 2],
    params: [u64; 2],
    macs: [u64; 2],
}

#[derive(Serialize)]
struct Total {
    params: [u64; 2],
    macs: [u64; 2],
    params_removed_pct: f64,
    macs_removed_pct: f64,
}

fn removed(before: u64, after: u64) -> f64 {
    if before == 0 {
        0.0
    } else {
        100.0 * (before - after) as f64 / before as f64
    }
}

impl Figures {
    fn new(full: &Ir, pruned: &Ir) -> Figures {
        let (a, b) = (analysis::summarize(full), analysis::summarize(pruned));
        let width = |net: &Ir, i: usize| {
            let l = net.layers().nth(i).expect("same layers").1;
            match l.kind {
                LayerKind::Conv2d { out_channels, .. } => Some(out_channels),
                LayerKind::Linear { out_features, .. } => Some(out_features),
                _ => None,
            }
        };
        let layers: Vec<LayerFigures> = a
            .layers
            .iter()
            .zip(&b.layers)
            .enumerate()
            .filter_map(|(i, (x, y))| {
                Some(LayerFigures {
                    name: x.name.clone(),
                    kind: x.kind,
                    filters: [width(full, i)?, width(pruned, i)?],
                    params: [x.params, y.params],
                    macs: [x.macs, y.macs],
                })
            })
            .collect();
        let total = Total {
            params: [a.params_conv_linear, b.params_conv_linear],
            macs: [a.macs, b.macs],
            params_removed_pct: removed(a.params_conv_linear, b.params_conv_linear),
            macs_removed_pct: removed(a.macs, b.macs),
        };
        Figures { layers, total }
    }

    /// HRank's table: per layer filters, params and MACs before → after, then the totals.
    fn table(&self) -> String {
        use comfy_table::{presets::UTF8_FULL_CONDENSED, CellAlignment, Table};
        let mut t = Table::new();
        t.load_preset(UTF8_FULL_CONDENSED)
            .set_header(["Layer", "Filters", "Params", "Params", "MACs", "MACs"]);
        t.add_row(["", "before → after", "before", "after", "before", "after"]);
        for l in &self.layers {
            t.add_row([
                l.name.clone(),
                format!("{} → {}", l.filters[0], l.filters[1]),
                thousands(l.params[0]),
                thousands(l.params[1]),
                thousands(l.macs[0]),
                thousands(l.macs[1]),
            ]);
        }
        let s = &self.total;
        t.add_row([
            "Total (Conv2d + Linear)".to_owned(),
            String::new(),
            thousands(s.params[0]),
            thousands(s.params[1]),
            thousands(s.macs[0]),
            thousands(s.macs[1]),
        ]);
        t.add_row([
            "Removed".to_owned(),
            String::new(),
            String::new(),
            format!("{:.1}%", s.params_removed_pct),
            String::new(),
            format!("{:.1}%", s.macs_removed_pct),
        ]);
        for i in 1..6 {
            if let Some(c) = t.column_mut(i) {
                c.set_cell_alignment(CellAlignment::Right);
            }
        }
        format!("{t}\n")
    }
}
