//! Pruning a model to compress rates: its weights loaded, the filters each conv keeps chosen by a
//! criterion, the network cut down to them ([`crate::hrank::surgery`]), and the pruned model
//! written as the same file's model with the `compress_rate` that gives the kept widths. What
//! `vggdsl prune` does between reading its arguments and writing its files.
//!
//! The model to prune is the network the weights hold: its `compress_rate`, if any, is where it
//! is pruned to (when no other rates are given), not a cut already made.

use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};

use serde::Serialize;
use tch::nn::VarStore;
use tch::Device;
use vggdsl::analysis;
use vggdsl::files::kept::KeptFile;
use vggdsl::files::ranks::{self, RanksFile};
use vggdsl::files::ReadError;
use vggdsl::ir::LayerKind;
use vggdsl::rewrite::{self, rate_list};
use vggdsl::select::{language_rate, WidthRule};
use vggdsl::Architecture;
use vggdsl_runtime::state_dict::LoadError;
use vggdsl_runtime::Network;

use crate::criteria::{bn, fpgm, taylor};
use crate::data::ImageSet;
use crate::hrank::{self, Criterion, Inherit, RanksMismatch};
use crate::weights::{self, WeightsError};

/// What to prune, to what, and how.
#[derive(Debug, Clone)]
pub struct Request<'a> {
    /// The `.vgg` file's text, and the name it goes by in messages and in the pruned file's
    /// comment.
    pub source: &'a str,
    pub file_name: &'a str,
    /// The model to prune, one of the file's.
    pub model: &'a Architecture,
    /// The unpruned model's weights (a `.safetensors` file or a `torch.save` archive).
    pub weights: &'a Path,
    /// The rates; `None`: the model's own `compress_rate`.
    pub rates: Option<Rates>,
    /// Which filters survive.
    pub by: By<'a>,
    /// How many filters survive.
    pub rule: WidthRule,
    /// `round_to` for the pruned widths, written into the pruned model; `None`: the model's own.
    pub round_to: Option<i64>,
    /// What the pruned network inherits.
    pub inherit: Inherit,
    /// Seeds [`By::Random`] and the draws of what the pruned network does not inherit.
    pub seed: u64,
    /// The pruned model's name; `None`: [`pruned_name`].
    pub name: Option<&'a str>,
}

/// The name a pruned model goes by unless told otherwise: a different network deserves a name
/// of its own, so that its default run folder (`runs/<model>`), its generated struct and its
/// labels in summaries and plots never clash with the model it was cut from.
pub fn pruned_name(model: &str) -> String {
    format!("{model}Pruned")
}

/// Rates given for the model, checked as its `compress_rate` would be.
#[derive(Debug, Clone, PartialEq)]
pub struct Rates {
    /// One per conv, or one fewer (the last conv keeps its width).
    pub values: Vec<f64>,
    /// The list as it was written, such as `[0.95] + [0.5] * 6`.
    pub text: String,
}

/// Which filters of each conv survive; ties go to the lower filter index.
#[derive(Debug, Clone, Copy)]
pub enum By<'a> {
    /// The highest mean feature-map rank, from the ranks file of `vggdsl rank` at this path.
    Rank(&'a Path),
    /// The largest L1 norm of the filter's kernel.
    L1,
    /// A uniformly random choice, seeded by [`Request::seed`].
    Random,
    /// The largest BatchNorm scale |γ| (Network Slimming, [`crate::criteria::bn`]).
    Bn,
    /// The largest sum of distances to the conv's other filters (FPGM, [`crate::criteria::fpgm`]).
    Fpgm,
    /// The highest first-order Taylor importance ([`crate::criteria::taylor`]) over these images.
    Taylor(TaylorImages<'a>),
}

/// The training images the Taylor criterion runs: the first `images` of `set`, in batches.
#[derive(Debug, Clone, Copy)]
pub struct TaylorImages<'a> {
    pub set: &'a ImageSet,
    pub images: usize,
    pub batch_size: NonZeroUsize,
}

impl By<'_> {
    /// As `vggdsl prune --by` names it.
    pub fn name(&self) -> &'static str {
        match self {
            By::Rank(_) => "rank",
            By::L1 => "l1",
            By::Random => "random",
            By::Bn => "bn",
            By::Fpgm => "fpgm",
            By::Taylor(_) => "taylor",
        }
    }
}

/// A pruned model.
#[derive(Debug)]
pub struct Pruned {
    /// The pruned model's `.vgg` text: the file's, with the model's new `compress_rate` and a
    /// comment saying how it was pruned.
    pub text: String,
    /// The pruned model, as the text declares it.
    pub architecture: Architecture,
    /// Its weights.
    pub vars: VarStore,
    /// The filters each conv kept.
    pub kept: KeptFile,
    /// The `compress_rate` written in the text.
    pub compress_rate: String,
    /// How the filters were chosen, in words, such as `the largest L1 norm`.
    pub criterion: String,
    pub figures: Figures,
    /// What the user should know of how the inputs were taken, a sentence each.
    pub notes: Vec<String>,
}

/// Why a model could not be pruned: one sentence.
#[derive(Debug, thiserror::Error)]
pub enum PruneError {
    #[error("model {model} of {file} has no compress_rate, and no rates were given")]
    NoRates { model: String, file: String },
    #[error(transparent)]
    Weights(#[from] WeightsError),
    #[error(
        "{} holds the weights of {model} as its compress_rate prunes it, but prune reads the \
         weights of the model without its compress_rate; to prune it further, declare it with \
         its widths as its cfg, cfg = {cfg}, and no compress_rate, or give the unpruned model's \
         weights",
        weights.display()
    )]
    PrunedWeights {
        weights: PathBuf,
        model: String,
        cfg: String,
    },
    #[error(transparent)]
    Ranks(#[from] ReadError),
    #[error("{} does not fit {file}: {source}", ranks.display())]
    RanksDoNotFit {
        ranks: PathBuf,
        file: String,
        source: Box<RanksMismatch>,
    },
    #[error(transparent)]
    NoBatchNorm(#[from] bn::NoBatchNorm),
    #[error("libtorch failed: {0}")]
    Torch(#[from] tch::TchError),
}

/// Prunes `request.model` as `request` says.
pub fn prune(request: &Request) -> Result<Pruned, PruneError> {
    let (rates, given) = rates(request)?;
    load(request, |full| {
        let widths = full.widths();
        let round_to = round_to(request);
        let keep: Vec<i64> = widths
            .iter()
            .zip(&rates)
            .map(|(&c, &r)| request.rule.kept(c, r, round_to))
            .collect();
        let compress_rate = written_rates(request, given, &widths, &keep, &rates);
        let how = format!(
            "widths by {}{}",
            describe(request.rule),
            criterion_rates(request.rule, given, &rates)
        );
        Ok(finish(request, &full, &keep, compress_rate, &how))
    })
}

/// The unpruned network with its weights, and how its filters are chosen: what pruning starts
/// from, whatever decides the widths.
pub(crate) struct Loaded<'a> {
    pub ir: &'a Architecture,
    pub vars: &'a VarStore,
    pub net: &'a Network,
    pub criterion: &'a Criterion<'a>,
    /// The criterion in words, such as `the largest L1 norm`.
    pub text: &'a str,
    /// What the user should know of the inputs (a ranks file of another model's name).
    pub notes: &'a [String],
}

impl Loaded<'_> {
    /// The unpruned widths of the convs.
    pub fn widths(&self) -> Vec<i64> {
        self.ir.convs().map(|(.., c)| c).collect()
    }
}

/// Loads `request`'s unpruned network, its weights and its criterion, and hands them to `then`.
pub(crate) fn load<T, E: From<PruneError>>(
    request: &Request,
    then: impl FnOnce(Loaded) -> Result<T, E>,
) -> Result<T, E> {
    let full_ir = vggdsl::ir::lower(&request.model.spec.unpruned())
        .expect("a model lowers only if its unpruned form does");
    let mut full_vs = VarStore::new(Device::Cpu);
    let full = Network::new(&full_vs.root(), &full_ir);
    weights::load(&mut full_vs, request.weights).map_err(|e| weights_error(e, request))?;
    let mut notes = Vec::new();
    let ranks = match request.by {
        By::Rank(path) => {
            let filters = full_ir.convs().map(|(.., c)| c as u64).sum();
            let ranks =
                RanksFile::read(path, ranks::max_bytes(filters)).map_err(PruneError::from)?;
            notes.extend(other_name(path, &ranks, &request.model.spec.name));
            Some(ranks)
        }
        _ => None,
    };
    let (criterion, text) = criterion(request, &full, ranks.as_ref())?;
    then(Loaded {
        ir: &full_ir,
        vars: &full_vs,
        net: &full,
        criterion: &criterion,
        text: &text,
        notes: &notes,
    })
}

/// The multiple pruned widths are rounded up to: `--round-to`, else the model's `round_to`.
pub(crate) fn round_to(request: &Request) -> i64 {
    request
        .round_to
        .unwrap_or_else(|| request.model.spec.round_to())
}

/// `full` cut to `keep` filters per conv, chosen by its criterion: the pruned text (with
/// `compress_rate`, `round_to` when given, and a comment saying `how` the widths were set), its
/// architecture and weights, the kept filters and the figures.
pub(crate) fn finish(
    request: &Request,
    full: &Loaded,
    keep: &[i64],
    compress_rate: String,
    how: &str,
) -> Pruned {
    let kept = hrank::choose(full.net, keep, full.criterion);
    let comment = comment(request, how, full.text);
    let (pruned_text, architecture) = rewritten(request, &compress_rate, &comment, keep);

    tch::manual_seed(request.seed as i64);
    let vars = VarStore::new(Device::Cpu);
    let _pruned = Network::new(&vars.root(), &architecture);
    hrank::transplant(full.ir, full.vars, &kept, &vars, request.inherit);

    Pruned {
        figures: Figures::new(full.ir, &architecture),
        kept: KeptFile {
            convs: full
                .ir
                .convs()
                .map(|(_, name, _)| name.to_owned())
                .zip(kept)
                .collect(),
        },
        text: pruned_text,
        architecture,
        vars,
        compress_rate,
        criterion: full.text.to_owned(),
        notes: full.notes.to_vec(),
    }
}

/// The request's criterion on `full` (with `ranks`, read for `By::Rank`), and the criterion in
/// words.
fn criterion<'r>(
    request: &Request,
    full: &Network,
    ranks: Option<&'r RanksFile>,
) -> Result<(Criterion<'r>, String), PruneError> {
    let full_ir = full.ir();
    Ok(match request.by {
        By::Rank(path) => {
            let ranks = ranks.expect("read for By::Rank");
            let scores =
                hrank::scores_for(ranks, full_ir).map_err(|source| PruneError::RanksDoNotFit {
                    ranks: path.to_owned(),
                    file: request.file_name.to_owned(),
                    source: Box::new(source),
                })?;
            let text = format!(
                "the highest mean feature-map rank ({}, {} images)",
                path.display(),
                ranks.images
            );
            (Criterion::Rank(scores), text)
        }
        By::L1 => (Criterion::L1, "the largest L1 norm".to_owned()),
        By::Random => (
            Criterion::Random(request.seed),
            format!("a random choice (seed {})", request.seed),
        ),
        By::Bn => (
            Criterion::Scores(bn::scores(full)?),
            "the largest BatchNorm scale |γ| (Network Slimming)".to_owned(),
        ),
        By::Fpgm => (
            Criterion::Scores(fpgm::scores(full)),
            "the largest sum of distances to the other filters (FPGM)".to_owned(),
        ),
        By::Taylor(images) => {
            let scores = taylor::scores(
                full,
                images.set,
                images.batch_size,
                images.images,
                &mut |_| {},
            )?;
            let text = format!(
                "the highest first-order Taylor importance ({} training images)",
                images.images.min(images.set.len())
            );
            (Criterion::Scores(scores), text)
        }
    })
}

/// A note when the ranks file names another model than `name` but fits its convs and widths:
/// a file stating a model's pruned form under a new name prunes with the unpruned one's ranks.
fn other_name(path: &Path, ranks: &RanksFile, name: &str) -> Option<String> {
    (ranks.model != name).then(|| {
        format!(
            "{} ranks model {}, not {name}; its convs and widths are those of {name} without \
             compress_rate, so its ranks are used",
            path.display(),
            ranks.model
        )
    })
}

/// Weights that do not fit the unpruned model: if they are those of the model as its
/// `compress_rate` prunes it, the error says how to prune it further.
fn weights_error(error: WeightsError, request: &Request) -> PruneError {
    let model = request.model;
    let mismatch = matches!(error, WeightsError::Load(LoadError::Mismatch { .. }));
    if mismatch && model.spec.compress_rate.is_some() {
        let mut vs = VarStore::new(Device::Cpu);
        let _pruned = Network::new(&vs.root(), model);
        if vggdsl_runtime::load_state_dict(&mut vs, request.weights).is_ok() {
            return PruneError::PrunedWeights {
                weights: request.weights.into(),
                model: model.spec.name.clone(),
                cfg: pruned_cfg(model),
            };
        }
    }
    PruneError::Weights(error)
}

/// The cfg of a pruned model's network: its cfg with every conv at its pruned width.
fn pruned_cfg(model: &Architecture) -> String {
    let widths: Vec<i64> = model.convs().map(|(.., c)| c).collect();
    rewrite::cfg_with_widths(model, &widths)
}

/// The rates to prune to, and their text when they were given rather than the model's own.
fn rates<'a>(request: &'a Request) -> Result<(Vec<f64>, Option<&'a str>), PruneError> {
    match (&request.rates, &request.model.spec.compress_rate) {
        (Some(rates), _) => Ok((rates.values.clone(), Some(rates.text.as_str()))),
        (None, Some(rates)) => Ok((rates.clone(), None)),
        (None, None) => Err(PruneError::NoRates {
            model: request.model.spec.name.clone(),
            file: request.file_name.to_owned(),
        }),
    }
}

/// The `compress_rate` the pruned model's text gets: the rates as given (the model's own text
/// when none were), or for HRank's rule, the rates that give its widths in the language.
fn written_rates(
    request: &Request,
    given: Option<&str>,
    widths: &[i64],
    keep: &[i64],
    rates: &[f64],
) -> String {
    match (request.rule, given) {
        (WidthRule::HRankPlus, Some(text)) => text.to_owned(),
        (WidthRule::HRankPlus, None) => {
            rewrite::compress_rate(request.source, &request.model.spec.name)
                .expect("the model has a compress_rate")
                .to_owned()
        }
        (WidthRule::HRank, _) => rate_list(
            &widths
                .iter()
                .zip(keep)
                .zip(rates)
                .map(|((&c, &k), &r)| language_rate(c, k, r))
                .collect::<Vec<_>>(),
        ),
    }
}

/// The pruned model's text and architecture: the file with the model's `compress_rate` replaced,
/// `comment` above it; its convs `keep` wide.
fn rewritten(
    request: &Request,
    compress_rate: &str,
    comment: &str,
    keep: &[i64],
) -> (String, Architecture) {
    let name = &request.model.spec.name;
    let source = match request.round_to {
        Some(n) => rewrite::with_round_to(request.source, name, n),
        None => Some(request.source.to_owned()),
    }
    .expect("the source parsed and has the model");
    let (text, _) = rewrite::with_compress_rate(&source, name, compress_rate, comment)
        .expect("the source parsed and has the model");
    let new_name = request
        .name
        .map_or_else(|| pruned_name(name), str::to_owned);
    let text = rewrite::with_name(&text, name, &new_name).expect("the rewritten source parses");
    let architecture = match vggdsl::check_source(&text).as_deref() {
        Ok([net]) => net.clone(),
        _ => unreachable!("the rates were checked in this model:\n{text}"),
    };
    assert_eq!(
        architecture.convs().map(|(.., c)| c).collect::<Vec<_>>(),
        keep,
        "the written rates give the kept widths"
    );
    (text, architecture)
}

/// The files [`Pruned`] is written as, in a folder: the model, its weights, the kept filters.
pub const MODEL_FILE: &str = "model.vgg";
pub const WEIGHTS_FILE: &str = "model.safetensors";
pub const KEPT_FILE: &str = "kept.json";

/// How a width rule reads in the pruned file's comment and the command's report.
pub fn describe(rule: WidthRule) -> &'static str {
    match rule {
        WidthRule::HRankPlus => "HRankPlus's int(c·(1 − r)), the language's",
        WidthRule::HRank => "HRank's c − int(r·c)",
    }
}

/// `for the rates …` after HRank's rule, whose widths differ from the language's for those rates.
fn criterion_rates(rule: WidthRule, given: Option<&str>, rates: &[f64]) -> String {
    match (rule, given) {
        (WidthRule::HRank, Some(text)) => format!(" for the rates {text}"),
        (WidthRule::HRank, None) => format!(" for the rates {}", rate_list(rates)),
        (WidthRule::HRankPlus, _) => String::new(),
    }
}

/// How the comment that begins every model file prune writes begins.
const MARK: &str = "Pruned by `vggdsl prune` from model ";

/// Whether `text` is a model file prune wrote (its first line is prune's comment), which prune
/// may replace; any other is someone's work.
pub fn wrote(text: &str) -> bool {
    text.strip_prefix("// ")
        .is_some_and(|t| t.starts_with(MARK))
}

/// The pruned model's comment: where it comes from, and how it was pruned (`how`: how the widths
/// were set).
fn comment(request: &Request, how: &str, criterion: &str) -> String {
    format!(
        "{}{} of {} with the weights {}:\n\
         filters kept by {criterion}; {how};\n\
         {}. Weights: {WEIGHTS_FILE}; kept filters: {KEPT_FILE}.",
        MARK,
        request.model.spec.name,
        request.file_name,
        request.weights.display(),
        match request.inherit {
            Inherit::All => "every tensor copied".to_owned(),
            Inherit::ConvOnly => format!(
                "conv kernels copied, the rest drawn fresh (seed {})",
                request.seed
            ),
        },
    )
}

/// Before/after figures of every Conv2d and Linear, and their totals.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Figures {
    pub layers: Vec<LayerFigures>,
    pub total: Total,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LayerFigures {
    pub name: String,
    pub kind: &'static str,
    /// Output channels or features, before and after.
    pub filters: [i64; 2],
    pub params: [u64; 2],
    pub macs: [u64; 2],
}

/// Conv2d and Linear parameters and MACs, before and after, and the share removed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Total {
    pub params: [u64; 2],
    pub macs: [u64; 2],
    pub params_removed_pct: f64,
    pub macs_removed_pct: f64,
}

fn removed(before: u64, after: u64) -> f64 {
    if before == 0 {
        0.0
    } else {
        100.0 * (before - after) as f64 / before as f64
    }
}

impl Figures {
    pub fn new(full: &Architecture, pruned: &Architecture) -> Figures {
        let (a, b) = (analysis::summarize(full), analysis::summarize(pruned));
        let width = |net: &Architecture, i: usize| {
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
}
