//! The budget flags of `vggdsl prune` (`--target-macs`, `--target-params`, `--target-latency`,
//! `--strategy` and what each strategy reads), read into a [`vggdsl_train::budget::Budget`], and
//! the lines that say what the pruned model reached.

use std::path::PathBuf;

use clap::ValueEnum;
use vggdsl::analysis::thousands;
use vggdsl::budget::{Normalise, Resource, Target};
use vggdsl::files::sensitivity::SensitivityFile;
use vggdsl_train::budget::{Budget, Reached, Strategy};
use vggdsl_train::latency::{At, LatencyTable};

use crate::exit::USAGE;
use crate::failure::Failure;
use crate::input;

#[derive(clap::Args)]
#[command(next_help_heading = "Budget (instead of --compress-rate)")]
#[command(group(clap::ArgGroup::new("target").multiple(false)))]
pub struct BudgetArgs {
    /// The most MACs the pruned model keeps: a share of the unpruned model's (50%) or a count
    /// (150000000, or 150M, 2.5M: K, M, G for thousands, millions, billions)
    #[arg(long, value_name = "T", group = "target", allow_hyphen_values = true, value_parser = |s: &str| Target::parse(Resource::Macs, s))]
    target_macs: Option<Target>,
    /// The most Conv2d + Linear parameters the pruned model keeps: a share (50%) or a count
    /// (2.5M)
    #[arg(long, value_name = "T", group = "target", allow_hyphen_values = true, value_parser = |s: &str| Target::parse(Resource::Params, s))]
    target_params: Option<Target>,
    /// The most milliseconds one batch of --latency-batch images may take through the pruned
    /// model's to_inference() at --latency-threads threads, timed on this machine (12.5), or a
    /// share of the unpruned model's (50%)
    #[arg(long, value_name = "T", group = "target", allow_hyphen_values = true, value_parser = |s: &str| Target::parse(Resource::Latency, s))]
    target_latency: Option<Target>,
    /// How the widths are chosen for the target: one rate for every conv (uniform); where
    /// accuracy drops least in a `vggdsl sensitivity` sweep (sensitivity, with --sensitivity);
    /// every conv's filters in one ranking of the --by scores normalised per conv (global)
    #[arg(long, value_enum, default_value_t = StrategyArg::Uniform, requires = "target")]
    strategy: StrategyArg,
    /// sensitivity.json of `vggdsl sensitivity` on the same model, weights and --by
    #[arg(long, value_name = "FILE", requires = "target")]
    sensitivity: Option<PathBuf>,
    /// How --strategy global brings each conv's scores to one scale: divided by the conv's mean
    /// score, or none (to compare) [default: mean]
    #[arg(long, value_enum, requires = "target")]
    normalise: Option<NormaliseArg>,
    /// Images per batch of a latency target [default: 1]
    #[arg(long, value_name = "B", requires = "target", value_parser = clap::value_parser!(i64).range(1..=65536))]
    latency_batch: Option<i64>,
    /// libtorch threads of a latency target [default: 1]
    #[arg(long, value_name = "T", requires = "target", value_parser = clap::value_parser!(i32).range(1..=1024))]
    latency_threads: Option<i32>,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum StrategyArg {
    Uniform,
    Sensitivity,
    Global,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum NormaliseArg {
    Mean,
    None,
}

/// What a budget needs besides the flags: the sweep it reads, the table it times blocks with.
pub struct Inputs {
    sensitivity: Option<SensitivityFile>,
    table: Option<LatencyTable>,
}

impl BudgetArgs {
    /// The one target given, if any (clap allows at most one).
    pub fn target(&self) -> Option<Target> {
        self.target_macs
            .or(self.target_params)
            .or(self.target_latency)
    }

    /// Refuses a flag that the strategy or the target would ignore: `--sensitivity` without
    /// `--strategy sensitivity`, `--normalise` without `--strategy global`, `--latency-batch` and
    /// `--latency-threads` without `--target-latency`.
    pub fn check(&self) -> Result<(), Failure> {
        let strategy = self.strategy();
        let ignored = |flag: &str, by: &str, instead: &str| {
            Err(Failure::new(
                USAGE,
                format_args!(
                    "{flag} is read only by {by}, so {instead} would ignore it; leave it out, or \
                     {by}"
                ),
            ))
        };
        let uses = format!("--strategy {strategy}");
        if self.sensitivity.is_some() && self.strategy != StrategyArg::Sensitivity {
            return ignored("--sensitivity", "--strategy sensitivity", &uses);
        }
        if self.normalise.is_some() && self.strategy != StrategyArg::Global {
            return ignored("--normalise", "--strategy global", &uses);
        }
        // clap requires a target with these flags: without --target-latency, one of the others.
        if self.target_latency.is_none() {
            let target = match self.target_macs {
                Some(_) => "--target-macs",
                None => "--target-params",
            };
            for (flag, given) in [
                ("--latency-batch", self.latency_batch.is_some()),
                ("--latency-threads", self.latency_threads.is_some()),
            ] {
                if given {
                    return ignored(flag, "--target-latency", target);
                }
            }
        }
        Ok(())
    }

    /// Reads what the strategy and the target need; `None` without a target. After
    /// [`BudgetArgs::check`].
    pub fn inputs(&self) -> Result<Option<Inputs>, Failure> {
        let Some(target) = self.target() else {
            return Ok(None);
        };
        let sensitivity = match (self.strategy, &self.sensitivity) {
            (StrategyArg::Sensitivity, Some(path)) => Some(input::sensitivity(path)?),
            (StrategyArg::Sensitivity, None) => {
                return Err(Failure::new(
                    USAGE,
                    "--strategy sensitivity needs --sensitivity FILE, the sensitivity.json of \
                     `vggdsl sensitivity`",
                ))
            }
            _ => None,
        };
        let table = (target.resource == Resource::Latency).then(LatencyTable::for_this_machine);
        Ok(Some(Inputs { sensitivity, table }))
    }

    /// The budget of the flags, over `inputs`.
    pub fn budget<'a>(&self, inputs: &'a mut Inputs) -> Budget<'a> {
        let strategy = match self.strategy {
            StrategyArg::Uniform => Strategy::Uniform,
            StrategyArg::Sensitivity => {
                Strategy::Sensitivity(inputs.sensitivity.as_ref().expect("read by inputs"))
            }
            StrategyArg::Global => Strategy::Global(match self.normalise {
                Some(NormaliseArg::Mean) | None => Normalise::Mean,
                Some(NormaliseArg::None) => Normalise::None,
            }),
        };
        Budget {
            target: self.target().expect("inputs are read for a target"),
            strategy,
            latency: inputs.table.as_mut().map(|t| (self.at(), t)),
        }
    }

    /// `--strategy` as written.
    pub fn strategy(&self) -> String {
        self.strategy
            .to_possible_value()
            .map_or_else(String::new, |v| v.get_name().to_owned())
    }

    fn at(&self) -> At {
        At {
            batch: self.latency_batch.unwrap_or(1),
            threads: self.latency_threads.unwrap_or(1),
        }
    }

    /// `50% of the MACs: at most 7,486,976 of 14,973,952; reached 7,290,517 (48.7%), by the
    /// uniform strategy`, and for latency where it was timed and what the table predicted.
    pub fn report(&self, reached: &Reached) -> String {
        let strategy = self.strategy();
        let At { batch, threads } = self.at();
        let share = 100.0 * reached.reached / reached.unpruned;
        match reached.predicted {
            None => format!(
                "Target: {}: at most {} of {}; reached {} ({share:.1}%), by the {strategy} strategy\n",
                reached.target,
                thousands(reached.limit.floor() as u64),
                thousands(reached.unpruned as u64),
                thousands(reached.reached as u64),
            ),
            Some(predicted) => format!(
                "Target: {}: at most {:.3} ms of {:.3} ms (batch {}, {} thread{}); reached \
                 {:.3} ms ({share:.1}%) timed whole ({predicted:.3} ms predicted by the latency \
                 table; {} network{} timed), by the {strategy} strategy\n",
                reached.target,
                reached.limit,
                reached.unpruned,
                batch,
                threads,
                if threads == 1 { "" } else { "s" },
                reached.reached,
                reached.timed,
                if reached.timed == 1 { "" } else { "s" },
            ),
        }
    }

    /// The same as JSON.
    pub fn json(&self, reached: &Reached) -> serde_json::Value {
        let mut doc = serde_json::json!({
            "resource": reached.target.resource.name(),
            "target": reached.target.to_string(),
            "limit": reached.limit,
            "unpruned": reached.unpruned,
            "reached": reached.reached,
            "strategy": self.strategy(),
        });
        if let Some(predicted) = reached.predicted {
            doc["predicted"] = predicted.into();
            doc["timed"] = reached.timed.into();
            let At { batch, threads } = self.at();
            doc["latency"] = serde_json::json!({ "batch": batch, "threads": threads });
        }
        doc
    }
}
