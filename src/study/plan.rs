//! A study as steps: each one `vggdsl` command line with its own folder, and the steps whose
//! results it needs. What each step reads is another step's folder, so a step can run as soon as
//! those are done, in any order and in parallel.

use std::path::{Path, PathBuf};

use vggdsl::files::run::{BEST, LAST};
use vggdsl::files::study::{Recipe, StudyFile};
use vggdsl::spec::Schedule;

/// An argument of a step's command line.
#[derive(Debug, Clone, PartialEq)]
pub enum Arg {
    Text(String),
    /// The weights a training run in this folder left: `best.safetensors` (chosen on the
    /// validation images) if it wrote one, else `last.safetensors`. Known once the run is done.
    Weights(PathBuf),
}

impl Arg {
    pub fn resolve(&self) -> String {
        match self {
            Arg::Text(t) => t.clone(),
            Arg::Weights(run) => {
                let best = run.join(BEST);
                let file = if best.exists() { best } else { run.join(LAST) };
                file.display().to_string()
            }
        }
    }
}

/// What a step is, for reading its results.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Train,
    Eval,
    Rank,
    Prune,
    Latency,
    Sensitivity,
}

#[derive(Debug, Clone)]
pub struct Step {
    /// Its folder under the study's, which is also its name in progress lines.
    pub id: String,
    pub kind: Kind,
    pub args: Vec<Arg>,
    /// Indices of the steps it needs.
    pub after: Vec<usize>,
}

/// The steps, and where each run's results are.
#[derive(Debug, Default)]
pub struct Plan {
    pub steps: Vec<Step>,
}

impl Plan {
    /// Adds a step; its index.
    pub fn add(&mut self, id: String, kind: Kind, args: Vec<Arg>, after: Vec<usize>) -> usize {
        self.steps.push(Step {
            id,
            kind,
            args,
            after,
        });
        self.steps.len() - 1
    }
}

/// Text arguments.
pub fn text<I: IntoIterator<Item = S>, S: Into<String>>(items: I) -> Vec<Arg> {
    items.into_iter().map(|s| Arg::Text(s.into())).collect()
}

/// The flags of the commands a study runs, from the study file.
pub struct Common {
    /// `--model NAME`.
    pub model: Vec<Arg>,
    /// `--dataset` and `--data`.
    pub data: Vec<Arg>,
    /// `--threads`.
    pub threads: Vec<Arg>,
    /// `train`'s `--val-size`, `--limit-train` (and `--limit-test`).
    pub split: Vec<Arg>,
    /// `--val-size` and `--limit-train`: which images are held out for validation (`sensitivity`
    /// measures on them; `rank` and `prune --by taylor` read only the rest).
    pub validation: Vec<Arg>,
    /// `--limit-test`.
    pub test_limit: Vec<Arg>,
}

impl Common {
    pub fn new(study: &StudyFile, val_size: Option<u64>, base: &Path) -> Common {
        let mut model = Vec::new();
        if let Some(name) = &study.model_name {
            model.extend(text(["--model", name]));
        }
        let mut data = Vec::new();
        if let Some(dataset) = &study.dataset {
            data.extend(text(["--dataset", dataset]));
        }
        if let Some(dir) = &study.data {
            data.extend(text([
                "--data".to_owned(),
                base.join(dir).display().to_string(),
            ]));
        }
        let threads = text([
            "--threads".to_owned(),
            study.threads.unwrap_or(1).to_string(),
        ]);
        let mut split = Vec::new();
        for (flag, value) in [
            ("--val-size", val_size.or(study.val_size)),
            ("--limit-train", study.limit_train),
        ] {
            if let Some(v) = value {
                split.extend(text([flag.to_owned(), v.to_string()]));
            }
        }
        let test_limit = match study.limit_test {
            Some(n) => text(["--limit-test".to_owned(), n.to_string()]),
            None => Vec::new(),
        };
        let validation = split.clone();
        split.extend(test_limit.clone());
        Common {
            model,
            data,
            threads,
            split,
            validation,
            test_limit,
        }
    }

    /// The model, data, threads and validation flags: what a command that reads the training
    /// images (`rank`, `sensitivity`) takes.
    pub fn reading(&self) -> Vec<Arg> {
        [&self.model, &self.data, &self.threads, &self.validation]
            .into_iter()
            .flatten()
            .cloned()
            .collect()
    }

    /// `vggdsl train MODEL --out OUT` with the model, data and split flags.
    pub fn train(&self, model: &str, out: &Path) -> Vec<Arg> {
        let mut a = text(["train".to_owned(), model.to_owned(), "--out".into()]);
        a.push(Arg::Text(out.display().to_string()));
        for flags in [&self.model, &self.data, &self.threads, &self.split] {
            a.extend(flags.iter().cloned());
        }
        a
    }

    /// `vggdsl eval MODEL --weights W --json` on the (limited) test set.
    pub fn eval(&self, model: &str, weights: Arg) -> Vec<Arg> {
        let mut a = text(["eval", model, "--json", "--weights"]);
        a.push(weights);
        for flags in [&self.model, &self.data, &self.threads, &self.test_limit] {
            a.extend(flags.iter().cloned());
        }
        a
    }
}

/// The base recipe's epochs and multistep milestones: the model file's `train` block (or the
/// seed's recipe) under the study's flags, as `vggdsl train` resolves them.
pub fn base_schedule(
    written: Option<vggdsl::spec::Recipe>,
    flags: &Recipe,
) -> (u32, Option<Vec<u32>>) {
    let mut recipe = match flags
        .recipe
        .as_deref()
        .and_then(vggdsl::spec::Recipe::named)
    {
        Some(named) => named,
        None => written.unwrap_or_default(),
    };
    if let Some(e) = flags.epochs {
        recipe.epochs = e;
    }
    let multistep = !matches!(
        (flags.schedule.as_deref(), &recipe.schedule),
        (Some("cosine"), _) | (None, Schedule::Cosine)
    );
    let written_milestones = |schedule: &Schedule| match schedule {
        Schedule::MultiStep { milestones, .. } => Some(milestones.clone()),
        Schedule::Cosine => None,
    };
    let milestones = flags
        .milestones
        .clone()
        .or_else(|| written_milestones(&recipe.schedule))
        .or_else(|| written_milestones(&vggdsl::spec::Recipe::default().schedule))
        .unwrap_or_default();
    (recipe.epochs, multistep.then_some(milestones))
}

/// Scratch-B's epochs (Liu et al. 2019, `main_B.py` of their code): the base's epochs times the
/// base's MACs over the pruned model's, truncated, so that both train for the same computation.
pub fn scratch_b_epochs(base_epochs: u32, base_macs: u64, pruned_macs: u64) -> u32 {
    let scaled = f64::from(base_epochs) * base_macs as f64 / pruned_macs.max(1) as f64;
    (scaled as u32).max(1)
}
