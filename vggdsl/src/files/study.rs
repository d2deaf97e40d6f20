//! The study file `vggdsl study` runs (docs/language.md, "Study files"): TOML, since a study is a
//! list of runs (a base model, criteria, budgets, seeds, recipes), not an architecture.
//!
//! ```toml
//! model = "../fashion_tiny.vgg"    # relative to the study file
//! seeds = [0, 1, 2]
//!
//! [base.train]                     # the base's recipe: `vggdsl train` flags over the file's
//! epochs = 3
//!
//! [prune]
//! criteria = ["rank", "l1", "random", "bn", "fpgm", "taylor"]
//! budgets = [{ macs_removed = 0.5 }, { compress_rate = "[0.3] * 4" },
//!            { target_macs = "50%", strategies = ["uniform", "sensitivity", "global"] }]
//!
//! [finetune]
//! recipe = "hrankplus"
//! epochs = 3
//! schedule = "cosine"
//!
//! baselines = ["scratch-e", "scratch-b"]   # (at the top, before the tables)
//! ```

use serde::Deserialize;

use super::FormatError;
use crate::budget::{Resource, Target};

/// A study: what to prune, how, and what to compare it with.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StudyFile {
    /// The base model's `.vgg` file, relative to the study file.
    pub model: String,
    /// Which model of that file, when it declares several (`--model`).
    #[serde(default)]
    pub model_name: Option<String>,
    /// `--dataset` and `--data` of every step.
    #[serde(default)]
    pub dataset: Option<String>,
    #[serde(default)]
    pub data: Option<String>,
    /// libtorch threads of each step (`--threads`).
    #[serde(default)]
    pub threads: Option<u32>,
    /// `--val-size`, `--limit-train` and `--limit-test` of every run.
    #[serde(default)]
    pub val_size: Option<u64>,
    #[serde(default)]
    pub limit_train: Option<u64>,
    #[serde(default)]
    pub limit_test: Option<u64>,
    /// Each fine-tuning and scratch run, and each random choice, is repeated with each seed.
    pub seeds: Vec<u64>,
    /// `scratch-e` and `scratch-b`: the pruned architecture trained from scratch.
    #[serde(default)]
    pub baselines: Vec<String>,
    pub base: Base,
    pub prune: Prune,
    /// The fine-tuning recipe: `vggdsl train` flags over the pruned file's `train` block.
    pub finetune: Recipe,
    #[serde(default)]
    pub latency: Latency,
}

/// The model everything is cut from.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Base {
    /// Its trained weights; without them the study trains it with `train`.
    #[serde(default)]
    pub weights: Option<String>,
    /// The recipe it is (or was) trained with, which the scratch baselines repeat.
    #[serde(default)]
    pub train: Recipe,
    /// Network Slimming's λ: a second base trained with `--sparsity`, which `bn` prunes.
    #[serde(default)]
    pub bn_sparsity: Option<f64>,
}

/// `vggdsl train` flags, each optional: over the model file's `train` block.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Recipe {
    pub recipe: Option<String>,
    pub epochs: Option<u32>,
    pub batch_size: Option<u32>,
    pub lr: Option<f64>,
    pub momentum: Option<f64>,
    pub weight_decay: Option<f64>,
    pub nesterov: Option<bool>,
    pub schedule: Option<String>,
    pub milestones: Option<Vec<u32>>,
    pub gamma: Option<f64>,
    pub seed: Option<u64>,
}

impl Recipe {
    /// The flags, as `vggdsl train` takes them (`--seed` too, if set).
    pub fn flags(&self) -> Vec<String> {
        let mut out = Vec::new();
        let mut flag = |name: &str, value: Option<String>| {
            if let Some(value) = value {
                out.push(format!("--{name}"));
                out.push(value);
            }
        };
        flag("recipe", self.recipe.clone());
        flag("epochs", self.epochs.map(|v| v.to_string()));
        flag("batch-size", self.batch_size.map(|v| v.to_string()));
        flag("lr", self.lr.map(|v| v.to_string()));
        flag("momentum", self.momentum.map(|v| v.to_string()));
        flag("weight-decay", self.weight_decay.map(|v| v.to_string()));
        flag("nesterov", self.nesterov.map(|v| v.to_string()));
        flag("schedule", self.schedule.clone());
        let milestones = self.milestones.as_ref().map(|m| {
            let m: Vec<String> = m.iter().map(u32::to_string).collect();
            m.join(",")
        });
        flag("milestones", milestones);
        flag("gamma", self.gamma.map(|v| v.to_string()));
        flag("seed", self.seed.map(|v| v.to_string()));
        out
    }
}

/// How the base is cut.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Prune {
    /// Of [`CRITERIA`].
    pub criteria: Vec<String>,
    pub budgets: Vec<Budget>,
    /// `--rule` and `--copy` of `vggdsl prune`.
    #[serde(default)]
    pub rule: Option<String>,
    #[serde(default)]
    pub copy: Option<String>,
    /// Batches and batch size of `rank` and of `--by taylor`.
    #[serde(default)]
    pub limit: Option<u32>,
    #[serde(default)]
    pub batch_size: Option<u32>,
    /// Prune/fine-tune rounds that reach each budget (1: one cut, then fine-tuning).
    #[serde(default = "one")]
    pub steps: u32,
}

fn one() -> u32 {
    1
}

/// The criteria `vggdsl prune --by` knows.
pub const CRITERIA: [&str; 6] = ["rank", "l1", "random", "bn", "fpgm", "taylor"];
/// The baselines a study can add.
pub const BASELINES: [&str; 2] = ["scratch-e", "scratch-b"];

/// How much to cut: exactly one of a share of the MACs, reached by one rate for every conv (the
/// smallest rate in steps of 0.001 that removes at least that share); explicit rates; or a
/// target of `vggdsl prune` (`target_macs`, `target_params` or `target_latency`, in its syntax:
/// `50%`, `2.5M`, `12.5`), whose widths prune chooses by each of `strategies`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Budget {
    #[serde(default)]
    pub macs_removed: Option<f64>,
    #[serde(default)]
    pub compress_rate: Option<String>,
    #[serde(default)]
    pub target_macs: Option<String>,
    #[serde(default)]
    pub target_params: Option<String>,
    #[serde(default)]
    pub target_latency: Option<String>,
    /// `vggdsl prune --strategy` of a target, each a method of its own [default: uniform].
    #[serde(default)]
    pub strategies: Vec<String>,
    /// `vggdsl prune --round-to` of a target.
    #[serde(default)]
    pub round_to: Option<u32>,
}

/// The strategies `vggdsl prune --strategy` knows.
pub const STRATEGIES: [&str; 3] = ["uniform", "sensitivity", "global"];

impl Budget {
    /// A short name for tables: `macs-50%`, `target-macs-50%` (`-r16` when rounded), or
    /// `rates-2` for the second budget given as rates.
    pub fn name(&self, index: usize) -> String {
        match (self.macs_removed, self.target()) {
            (Some(share), _) => format!("macs-{}%", (1000.0 * share).round() / 10.0),
            (None, Some(target)) => {
                let rounded = self.round_to.map_or(String::new(), |n| format!("-r{n}"));
                format!(
                    "target-{}-{}{rounded}",
                    target.resource.name(),
                    self.target_text()
                )
            }
            (None, None) => format!("rates-{}", index + 1),
        }
    }

    /// Its name as a folder, safe in any file system and unquoted in a shell: `%` is `pct`
    /// (`macs-50pct`), and any character other than a letter, a digit, `.` or `-` is `_`.
    pub fn folder(&self, index: usize) -> String {
        self.name(index)
            .chars()
            .map(|c| match c {
                '%' => "pct".to_owned(),
                c if c.is_ascii_alphanumeric() || c == '.' || c == '-' => c.to_string(),
                _ => "_".to_owned(),
            })
            .collect()
    }

    /// The target, if the budget gives one (checked by [`StudyFile::from_toml`]).
    pub fn target(&self) -> Option<Target> {
        [
            (Resource::Macs, &self.target_macs),
            (Resource::Params, &self.target_params),
            (Resource::Latency, &self.target_latency),
        ]
        .into_iter()
        .find_map(|(resource, text)| Target::parse(resource, text.as_deref()?).ok())
    }

    /// The target as written.
    pub fn target_text(&self) -> &str {
        [&self.target_macs, &self.target_params, &self.target_latency]
            .into_iter()
            .find_map(|t| t.as_deref())
            .unwrap_or_default()
    }

    /// The strategies of a target: those listed, or uniform.
    pub fn strategies(&self) -> Vec<String> {
        match self.strategies.is_empty() {
            true => vec![STRATEGIES[0].to_owned()],
            false => self.strategies.clone(),
        }
    }

    /// Exactly one amount, a valid target, strategies and rounding only with a target.
    fn check(&self) -> Result<(), String> {
        let given = [
            self.macs_removed.is_some(),
            self.compress_rate.is_some(),
            self.target_macs.is_some(),
            self.target_params.is_some(),
            self.target_latency.is_some(),
        ];
        if given.iter().filter(|&&g| g).count() != 1 {
            return Err(
                "each budget gives exactly one of `macs_removed`, `compress_rate`, \
                        `target_macs`, `target_params` and `target_latency`"
                    .into(),
            );
        }
        if let Some(share) = self.macs_removed.filter(|s| !(*s > 0.0 && *s < 1.0)) {
            return Err(format!(
                "a budget removes {share} of the MACs; a share is above 0 and below 1"
            ));
        }
        for (resource, text) in [
            (Resource::Macs, &self.target_macs),
            (Resource::Params, &self.target_params),
            (Resource::Latency, &self.target_latency),
        ] {
            if let Some(text) = text {
                Target::parse(resource, text)
                    .map_err(|e| format!("`target_{}`: {e}", resource.name()))?;
            }
        }
        if self.target().is_none() && (!self.strategies.is_empty() || self.round_to.is_some()) {
            return Err("`strategies` and `round_to` go with a `target_…` budget".into());
        }
        if self.round_to == Some(0) {
            return Err("`round_to` is at least 1".into());
        }
        once("strategy", &self.strategies, &STRATEGIES)
    }
}

/// Each of `names` is one of `known`, and listed once.
fn once(what: &str, names: &[String], known: &[&str]) -> Result<(), String> {
    for (i, name) in names.iter().enumerate() {
        if !known.contains(&name.as_str()) {
            return Err(format!(
                "{what} `{name}` is not one vggdsl knows; expected one of {}",
                known.join(", ")
            ));
        }
        if names[..i].contains(name) {
            return Err(format!("{what} `{name}` is listed twice"));
        }
    }
    Ok(())
}

/// `vggdsl latency`'s batch and threads.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Latency {
    pub batch: u32,
    pub threads: u32,
}

impl Default for Latency {
    fn default() -> Self {
        Latency {
            batch: 1,
            threads: 1,
        }
    }
}

impl StudyFile {
    /// Reads a study file's text and checks what TOML cannot: names, ranges, at least one seed,
    /// criterion and budget, each once.
    pub fn from_toml(text: &str) -> Result<StudyFile, FormatError> {
        let study: StudyFile =
            toml::from_str(text).map_err(|e| FormatError::Invalid(e.to_string()))?;
        study.check().map_err(FormatError::Invalid)?;
        Ok(study)
    }

    fn check(&self) -> Result<(), String> {
        once("criterion", &self.prune.criteria, &CRITERIA)?;
        once("baseline", &self.baselines, &BASELINES)?;
        if self.seeds.is_empty() {
            return Err("`seeds` lists no seed; give at least one".into());
        }
        if self.prune.criteria.is_empty() && self.baselines.is_empty() {
            return Err("the study lists no criterion and no baseline: nothing to run".into());
        }
        if self.prune.steps == 0 {
            return Err("`prune.steps` is 0; a budget is reached in at least 1 step".into());
        }
        if self.prune.steps > 1 && self.prune.rule.as_deref() == Some("hrank") {
            return Err(
                "`prune.steps` above 1 takes the language's widths; leave out `rule = \"hrank\"`"
                    .into(),
            );
        }
        if self.prune.steps > 1 {
            if let Some(b) = self.prune.budgets.iter().find(|b| b.target().is_some()) {
                return Err(format!(
                    "`prune.steps` is {}, but budget `{}` is a target whose widths prune \
                     chooses; steps need widths known before pruning (`macs_removed` or \
                     `compress_rate`)",
                    self.prune.steps,
                    b.name(0)
                ));
            }
        }
        if self.prune.budgets.is_empty() {
            return Err("`prune.budgets` lists no budget; give at least one".into());
        }
        for (i, b) in self.prune.budgets.iter().enumerate() {
            b.check()?;
            let folder = b.folder(i);
            if (0..i).any(|j| self.prune.budgets[j].folder(j) == folder) {
                return Err(format!(
                    "two budgets are both `{}` (folder {folder}); give each budget once",
                    b.name(i)
                ));
            }
        }
        if let Some(l) = self.base.bn_sparsity {
            if !(l.is_finite() && l > 0.0) {
                return Err(format!("`base.bn_sparsity` is {l}; λ is a positive number"));
            }
        }
        let latency = self.latency;
        if latency.batch == 0 || latency.threads == 0 {
            return Err("`latency` needs a batch and a thread count of at least 1".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn study(budgets: &str) -> Result<StudyFile, FormatError> {
        StudyFile::from_toml(&format!(
            "model = \"m.vgg\"\nseeds = [0]\n[base]\n[finetune]\n[prune]\ncriteria = [\"l1\"]\n\
             budgets = [{budgets}]\n"
        ))
    }

    #[test]
    fn budget_folders_are_shell_safe_and_rounds_need_known_widths() {
        let s = study(
            "{ macs_removed = 0.5 }, { target_macs = \"2.5M\", round_to = 8 }, \
             { target_latency = \"40%\" }, { compress_rate = \"[0.3] * 4\" }",
        )
        .unwrap();
        let pairs: Vec<(String, String)> = s
            .prune
            .budgets
            .iter()
            .enumerate()
            .map(|(i, b)| (b.name(i), b.folder(i)))
            .collect();
        let want = [
            ("macs-50%", "macs-50pct"),
            ("target-macs-2.5M-r8", "target-macs-2.5M-r8"),
            ("target-latency-40%", "target-latency-40pct"),
            ("rates-4", "rates-4"),
        ];
        let want: Vec<(String, String)> = want
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect();
        assert_eq!(pairs, want);
        let rounds = |extra: &str| {
            StudyFile::from_toml(&format!(
                "model = \"m.vgg\"\nseeds = [0]\n[base]\n[finetune]\n[prune]\ncriteria = [\"l1\"]\n\
                 steps = 2\n{extra}"
            ))
            .map_err(|e| e.to_string())
        };
        assert!(rounds("budgets = [{ macs_removed = 0.5 }]\n").is_ok());
        let target = rounds("budgets = [{ target_macs = \"50%\" }]\n").unwrap_err();
        assert!(
            target.contains("budget `target-macs-50%` is a target"),
            "{target}"
        );
        let hrank = rounds("budgets = [{ macs_removed = 0.5 }]\nrule = \"hrank\"\n").unwrap_err();
        assert!(hrank.contains("leave out `rule"), "{hrank}");
        let twice = study("{ macs_removed = 0.5 }, { macs_removed = 0.5 }").unwrap_err();
        assert!(
            twice
                .to_string()
                .contains("two budgets are both `macs-50%` (folder macs-50pct)"),
            "{twice}"
        );
    }
}
