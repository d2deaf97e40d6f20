//! `vggdsl prune FILE --weights W --ranks R --compress-rate RATES --out DIR`: a model cut down to
//! the filters that score highest, as a new model file, its weights and the kept indices.
//!
//! FILE's model without its `compress_rate` is the network W holds and R ranks; the rates come
//! from `--compress-rate` or, without it, from FILE's own `compress_rate`.

use std::path::{Path, PathBuf};

use clap::ValueEnum;
use vggdsl::analysis::{self, thousands};
use vggdsl::select::WidthRule;
use vggdsl_runtime::state_dict::safetensors_bytes;
use vggdsl_train::budget::{prune_to, BudgetError, Reached};
use vggdsl_train::hrank::Inherit;
use vggdsl_train::prune::{self, describe, Figures, Rates, KEPT_FILE, MODEL_FILE, WEIGHTS_FILE};
use vggdsl_train::{PruneError, Pruned, Request};

use super::criterion::CriterionArgs;
use super::setup::weights_failure;
use crate::budget::BudgetArgs;
use crate::exit::{FAILED, USAGE};
use crate::failure::Failure;
use crate::staged::{refuse_overwrite, Staged};
use crate::{input, output, FileArg};

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
    /// Rates in the language's list syntax, one per conv or one fewer (the last conv keeps its
    /// width), e.g. "[0.95] + [0.5] * 6 + [0.9] * 4 + [0.8] * 2" [default: FILE's compress_rate]
    #[arg(
        long,
        value_name = "RATES",
        allow_hyphen_values = true,
        conflicts_with = "target"
    )]
    compress_rate: Option<String>,
    #[command(flatten)]
    criterion: CriterionArgs,
    /// How many filters survive: hrankplus keeps int(c·(1 − r)) as the language does; hrank
    /// keeps HRank's c − int(r·c), written as the rates that give those widths.
    #[arg(long, value_enum, default_value_t = Rule::Hrankplus, conflicts_with = "target")]
    rule: Rule,
    /// Round every pruned width up to a multiple of N (never past the conv's width), and write
    /// `round_to = N` into the pruned model [default: FILE's round_to, else 1: no rounding]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(i64).range(1..=65536))]
    round_to: Option<i64>,
    /// What surgery copies: all tensors, sliced; or only the conv kernels, as HRankPlus does
    /// (the rest keeps the pruned model's fresh init, drawn after seeding with --seed).
    #[arg(long, value_enum, default_value_t = CopyArg::All)]
    copy: CopyArg,
    /// Seeds --by random and the pruned model's fresh init.
    #[arg(long, value_name = "N", default_value_t = 0)]
    seed: u64,
    /// The pruned model's name in DIR/model.vgg [default: the model's name + `Pruned`, so that
    /// `vggdsl train DIR/model.vgg` gets a run folder of its own]
    #[arg(long, value_name = "NEW")]
    name: Option<String>,
    /// The folder to write model.vgg, model.safetensors and kept.json in (created if missing; it
    /// must be empty, or hold what prune wrote there before).
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// Print the before/after figures as JSON instead of a table.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    budget: BudgetArgs,
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

impl Rule {
    fn width_rule(self) -> WidthRule {
        match self {
            Rule::Hrankplus => WidthRule::HRankPlus,
            Rule::Hrank => WidthRule::HRank,
        }
    }
}

pub fn run(args: Args) -> Result<(), Failure> {
    let source = input::read(&args.file)?;
    let nets = vggdsl::load(&source.text, &source.name).map_err(|d| Failure::invalid(&d))?;
    let model = input::model(&nets, args.model.as_deref(), &source.name)?;
    // The rates, checked by the compiler in the model itself.
    let rates = match &args.compress_rate {
        Some(text) => Some(Rates {
            values: crate::rates::from_flag(&source.text, &model.spec.name, text)?,
            text: text.clone(),
        }),
        None => None,
    };
    if let Some(name) = &args.name {
        check_name(&source.text, &model.spec.name, name)?;
    }
    args.budget.check()?;
    refuse_inputs(&args)?;
    // Before the work (and Taylor's training set): a folder that cannot be written, or someone
    // else's, fails first.
    let mut staged = Staged::new(&args.out)?;
    refuse_foreign(&staged)?;
    let taylor_set = args.criterion.taylor_images(model)?;
    let by = args.criterion.by(taylor_set.as_ref())?;
    let inherit = match args.copy {
        CopyArg::All => Inherit::All,
        CopyArg::ConvOnly => Inherit::ConvOnly,
    };
    let request = Request {
        source: &source.text,
        file_name: &source.name,
        model,
        weights: &args.weights,
        rates,
        by,
        rule: args.rule.width_rule(),
        round_to: args.round_to,
        inherit,
        seed: args.seed,
        name: args.name.as_deref(),
    };
    let (pruned, reached) = match args.budget.inputs()? {
        None => (
            prune::prune(&request).map_err(|e| prune_failure(e, &request))?,
            None,
        ),
        Some(mut inputs) => {
            let budget = args.budget.budget(&mut inputs);
            let (pruned, reached) = prune_to(&request, budget).map_err(|e| match e {
                BudgetError::Prune(e) => prune_failure(e, &request),
                e => Failure::new(FAILED, e),
            })?;
            if !reached.met() {
                return Err(Failure::new(
                    FAILED,
                    format_args!(
                        "the target {} was not met: the fastest network timed took {:.3} ms, \
                         more than {:.3} ms (nothing is written)",
                        reached.target, reached.reached, reached.limit
                    ),
                ));
            }
            (pruned, Some(reached))
        }
    };
    let weights =
        safetensors_bytes(pruned.vars.variables()).map_err(|e| Failure::new(FAILED, e))?;
    staged.write(MODEL_FILE, pruned.text.as_bytes())?;
    staged.write(WEIGHTS_FILE, &weights)?;
    staged.write(KEPT_FILE, pruned.kept.to_json().as_bytes())?;
    staged.commit()?;
    for note in &pruned.notes {
        output::stderr(&format!("note: {note}\n"));
    }
    output::stdout(report(&args, &request, &pruned, reached.as_ref()).as_bytes())
}

/// A pruning error as one sentence, with the code `prune --help` gives it.
pub(super) fn prune_failure(error: PruneError, request: &Request) -> Failure {
    match error {
        PruneError::NoRates { model, file } => Failure::new(
            USAGE,
            format_args!("model {model} of {file} has no compress_rate, so give --compress-rate"),
        ),
        PruneError::Weights(e) => weights_failure(&e, &request.model.spec.name),
        PruneError::Ranks(e) => input::read_failure(e),
        e @ (PruneError::RanksDoNotFit { .. }
        | PruneError::PrunedWeights { .. }
        | PruneError::NoBatchNorm(_)
        | PruneError::Torch(_)) => Failure::new(FAILED, e),
    }
}

/// `--name NEW` names a model the language accepts in place of the pruned one.
fn check_name(source: &str, model: &str, name: &str) -> Result<(), Failure> {
    let identifier = name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    let renamed = vggdsl::rewrite::with_name(source, model, name);
    match renamed.as_deref().map(vggdsl::check_source) {
        Some(Ok(_)) if identifier => Ok(()),
        _ => Err(Failure::new(
            USAGE,
            format!("--name {name} is not a model name this file can take (letters, digits and `_`, a name no other model has)"),
        )),
    }
}

/// DIR's files never replace the model or the weights being pruned, under any name.
fn refuse_inputs(args: &Args) -> Result<(), Failure> {
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
    Ok(())
}

/// DIR may be new or empty, or hold what prune wrote there before (its model.vgg begins with
/// prune's comment), which the new files replace; anything else is someone's work.
fn refuse_foreign(staged: &Staged) -> Result<(), Failure> {
    let entries = staged.entries()?;
    if entries.is_empty() {
        return Ok(());
    }
    let model = staged.path().join(MODEL_FILE);
    let ours = input::read(&FileArg::Path(model.clone())).is_ok_and(|s| prune::wrote(&s.text));
    let others: Vec<&str> = entries
        .iter()
        .map(String::as_str)
        .filter(|e| ![MODEL_FILE, WEIGHTS_FILE, KEPT_FILE].contains(e))
        .collect();
    if ours && others.is_empty() {
        return Ok(());
    }
    let why = if !ours && entries.iter().any(|e| e == MODEL_FILE) {
        format!(
            "cannot write {}: it does not begin with prune's comment, so vggdsl prune did not \
             write it and will not replace it; choose another --out",
            model.display()
        )
    } else {
        let shown = if ours {
            others
        } else {
            entries.iter().map(String::as_str).collect()
        };
        format!(
            "{} holds files vggdsl prune did not write ({}); choose an empty or new --out",
            staged.path().display(),
            shown.join(", ")
        )
    };
    Err(Failure::new(FAILED, why))
}

/// The before/after figures as HRank's table or as JSON, how the model was pruned, and the target
/// it reached, if any.
fn report(args: &Args, request: &Request, pruned: &Pruned, reached: Option<&Reached>) -> String {
    let copied = match request.inherit {
        Inherit::All => "every tensor".to_owned(),
        Inherit::ConvOnly => format!("conv kernels only (the rest fresh, seed {})", args.seed),
    };
    let widths = match reached {
        Some(_) => format!(
            "chosen by --strategy {} (compress_rate = {})",
            args.budget.strategy(),
            pruned.compress_rate
        ),
        None => describe(request.rule).to_owned(),
    };
    let by = format!(
        "Kept by: {}\nWidths: {widths}\nCopied: {copied}\nWrote: {}",
        pruned.criterion,
        [MODEL_FILE, WEIGHTS_FILE, KEPT_FILE]
            .map(|f| args.out.join(f).display().to_string())
            .join(", ")
    );
    if args.json {
        let mut doc = serde_json::json!({
            "model": request.model.spec.name,
            "by": request.by.name(),
            "rule": match args.rule { Rule::Hrankplus => "hrankplus", Rule::Hrank => "hrank" },
            "copy": match request.inherit { Inherit::All => "all", Inherit::ConvOnly => "conv-only" },
            "compress_rate": pruned.compress_rate,
            "layers": pruned.figures.layers,
            "total": pruned.figures.total,
            "out": args.out,
            "convention": analysis::CONVENTION,
        });
        if let Some(reached) = reached {
            doc["target"] = args.budget.json(reached);
        }
        serde_json::to_string_pretty(&doc).expect("figures serialize") + "\n"
    } else {
        let target = reached.map_or_else(String::new, |r| args.budget.report(r));
        format!(
            "{}{by}\n{target}({})\n",
            table(&pruned.figures),
            analysis::CONVENTION
        )
    }
}

/// The path of FILE, unless it is standard input.
fn source_path(file: &FileArg) -> Option<&Path> {
    match file {
        FileArg::Path(p) => Some(p),
        FileArg::Std => None,
    }
}

/// HRank's table: per layer filters, params and MACs before → after, then the totals.
fn table(figures: &Figures) -> String {
    use comfy_table::{presets::UTF8_FULL_CONDENSED, CellAlignment, Table};
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED)
        .set_header(["Layer", "Filters", "Params", "Params", "MACs", "MACs"]);
    t.add_row(["", "before → after", "before", "after", "before", "after"]);
    for l in &figures.layers {
        t.add_row([
            l.name.clone(),
            format!("{} → {}", l.filters[0], l.filters[1]),
            thousands(l.params[0]),
            thousands(l.params[1]),
            thousands(l.macs[0]),
            thousands(l.macs[1]),
        ]);
    }
    let s = &figures.total;
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
