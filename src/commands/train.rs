//! `vggdsl train FILE`: trains a model of FILE with SGD under the file's `train { … }` recipe (or
//! the seed's), flags overriding it; checkpoints in `--out`; Ctrl-C saves one and stops.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use vggdsl::check::{check_recipe, Milestones};
use vggdsl::files::metrics::EpochMetrics;
use vggdsl::files::run::{BEST, LAST, STATE};
use vggdsl::spec::{Recipe, Schedule};
use vggdsl_runtime::tch::nn::VarStore;
use vggdsl_runtime::tch::{self, Device};
use vggdsl_runtime::Network;
use vggdsl_train::checkpoint::{RunDir, RunState};
use vggdsl_train::sparsity::Sparsity;
use vggdsl_train::trainer::{Observer, Outcome, Progress};
use vggdsl_train::{TrainError, Trainer};

use super::setup::{load_failure, ModelArgs};
use super::split::{self, SplitArgs};
use crate::exit::{FAILED, INTERRUPTED, USAGE};
use crate::failure::Failure;
use crate::output;

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    model: ModelArgs,
    /// The run's folder: checkpoints, optimizer state, metrics.jsonl [default: runs/<model>]
    #[arg(long, value_name = "RUN_DIR")]
    out: Option<PathBuf>,
    /// Continue the run in the --out folder exactly where its last checkpoint stopped.
    #[arg(long)]
    resume: bool,
    /// Start from these weights (loaded strictly), e.g. a pruned model to fine-tune.
    #[arg(long, value_name = "W.safetensors", conflicts_with = "resume")]
    init: Option<PathBuf>,
    /// Network Slimming's sparsity training: λ·sign(γ) added to the gradient of every
    /// BatchNorm2d scale γ before each step (an L1 penalty λ·Σ|γ|), e.g. 1e-4; for --by bn.
    #[arg(long, value_name = "LAMBDA", conflicts_with = "resume", value_parser = parse_sparsity)]
    sparsity: Option<f64>,
    #[command(flatten)]
    split: SplitArgs,
    #[command(flatten)]
    recipe: RecipeArgs,
}

fn parse_sparsity(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(x) if x.is_finite() && x >= 0.0 => Ok(x),
        _ => Err("a sparsity weight is a finite number, 0 or more".into()),
    }
}

/// Flags over the recipe that FILE's `train { … }` block writes (or the seed's).
#[derive(clap::Args)]
#[command(next_help_heading = "Recipe (overrides FILE's train block; with --resume only --epochs)")]
struct RecipeArgs {
    /// Start from a named recipe instead of FILE's: seed (SGD lr 0.01, momentum 0.9, weight
    /// decay 5e-4, batch 128, 150 epochs, ×0.1 at 50 and 100) or hrankplus (the same, batch 256)
    #[arg(long, value_name = "NAME", value_parser = Recipe::NAMES)]
    recipe: Option<String>,
    /// Epochs to train in all (with --resume: the new total).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    epochs: Option<u32>,
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    batch_size: Option<u32>,
    /// The initial learning rate.
    #[arg(long, value_name = "LR")]
    lr: Option<f64>,
    #[arg(long, value_name = "M")]
    momentum: Option<f64>,
    #[arg(long, value_name = "WD")]
    weight_decay: Option<f64>,
    /// Nesterov momentum (`--nesterov false` turns off a file's).
    #[arg(long, value_name = "BOOL", num_args = 0..=1, default_missing_value = "true")]
    nesterov: Option<bool>,
    /// The learning-rate schedule: multistep (×gamma at each milestone epoch) or cosine (to 0
    /// over the epochs).
    #[arg(long, value_name = "NAME", value_parser = ["multistep", "cosine"])]
    schedule: Option<String>,
    /// The epochs (from 0) at which multistep multiplies the learning rate by gamma.
    #[arg(long, value_name = "E,E,…", value_delimiter = ',', num_args = 1)]
    milestones: Option<Vec<u32>>,
    #[arg(long, value_name = "G")]
    gamma: Option<f64>,
    /// Seeds the model's init draws, the shuffling and the augmentation.
    #[arg(long, value_name = "N")]
    seed: Option<u64>,
}

impl RecipeArgs {
    /// The flags given other than `--epochs`, by name, for refusing them with `--resume`.
    fn changes(&self) -> Vec<&'static str> {
        [
            ("--recipe", self.recipe.is_some()),
            ("--batch-size", self.batch_size.is_some()),
            ("--lr", self.lr.is_some()),
            ("--momentum", self.momentum.is_some()),
            ("--weight-decay", self.weight_decay.is_some()),
            ("--nesterov", self.nesterov.is_some()),
            ("--schedule", self.schedule.is_some()),
            ("--milestones", self.milestones.is_some()),
            ("--gamma", self.gamma.is_some()),
            ("--seed", self.seed.is_some()),
        ]
        .into_iter()
        .filter_map(|(flag, given)| given.then_some(flag))
        .collect()
    }

    /// `base` with the flags applied, checked.
    fn apply(&self, base: Recipe) -> Result<Recipe, Failure> {
        let mut r = match &self.recipe {
            Some(name) => Recipe::named(name).expect("clap accepts only the named recipes"),
            None => base,
        };
        let usage = |sentence: String| Failure::new(USAGE, sentence);
        r.epochs = self.epochs.unwrap_or(r.epochs);
        r.batch_size = self.batch_size.unwrap_or(r.batch_size);
        r.lr = self.lr.unwrap_or(r.lr);
        r.momentum = self.momentum.unwrap_or(r.momentum);
        r.weight_decay = self.weight_decay.unwrap_or(r.weight_decay);
        r.nesterov = self.nesterov.unwrap_or(r.nesterov);
        r.seed = self.seed.unwrap_or(r.seed);
        match (self.schedule.as_deref(), &r.schedule) {
            (Some("cosine"), _) => r.schedule = Schedule::Cosine,
            (Some(_), Schedule::Cosine) => r.schedule = Recipe::default().schedule,
            _ => {}
        }
        match &mut r.schedule {
            Schedule::MultiStep { milestones, gamma } => {
                *milestones = self.milestones.clone().unwrap_or(milestones.clone());
                *gamma = self.gamma.unwrap_or(*gamma);
            }
            Schedule::Cosine if self.milestones.is_some() || self.gamma.is_some() => {
                return Err(usage(
                    "--milestones and --gamma belong to the multistep schedule, but the \
                     recipe's schedule is cosine"
                        .into(),
                ))
            }
            Schedule::Cosine => {}
        }
        check_recipe(&r, Milestones::PastTheEnd)
            .map_err(|e| usage(format!("the recipe is not valid: {e}")))?;
        Ok(r)
    }
}

/// Raised by Ctrl-C (SIGINT), SIGTERM or SIGHUP: the trainer finishes its batch, saves a
/// checkpoint and stops.
static STOP: AtomicBool = AtomicBool::new(false);

pub fn run(args: Args) -> Result<(), Failure> {
    let model = args.model.model()?;
    let spec = &model.ir.spec;
    let dir = RunDir::new(
        args.out
            .clone()
            .unwrap_or_else(|| Path::new("runs").join(&spec.name)),
    );
    let saved = dir.state().map_err(|e| Failure::new(FAILED, e))?;
    let recipe = recipe(&args, &dir, saved.as_ref(), spec.train.clone())?;
    let data_dir = args.model.data_dir(model.dataset)?;
    let validation = saved.as_ref().map(|s| s.validation_images);
    let data = args.split.load(model.dataset, &data_dir, validation)?;
    let images = split::describe(&data);
    let lambda = match &saved {
        Some(state) => state.sparsity,
        None => args.sparsity.unwrap_or(0.0),
    };

    tch::manual_seed(recipe.seed as i64);
    let mut vs = VarStore::new(Device::Cpu);
    let net = Network::new(&vs.root(), &model.ir);
    let name = spec.name.as_str();
    if let Some(init) = &args.init {
        vggdsl_runtime::load_state_dict(&mut vs, init).map_err(|e| load_failure(&e, name))?;
    }
    // The scales are the variables themselves, which a resume's load copies into.
    let sparsity = (lambda > 0.0)
        .then(|| Sparsity::new(&vs, &model.ir, lambda))
        .transpose()
        .map_err(|e| Failure::new(USAGE, e))?;
    let trainer = if args.resume {
        Trainer::resume(&net, &mut vs, name, data, dir, args.recipe.epochs)
    } else {
        Trainer::new(&net, &vs, name, data, recipe, dir)
    };
    let mut trainer = trainer.map_err(|e| train_failure(e, name))?;
    if let Some(sparsity) = sparsity {
        trainer = trainer.with_sparsity(sparsity);
    }

    // Also SIGTERM and SIGHUP: a job scheduler's or a closed terminal's stop keeps the work too.
    ctrlc::set_handler(|| {
        if !STOP.swap(true, Ordering::Relaxed) {
            output::stderr("\nstopping: saving a checkpoint after this batch\n");
        }
    })
    .map_err(|e| Failure::new(FAILED, format_args!("cannot catch Ctrl-C: {e}")))?;

    let state = trainer.state();
    let (dir, recipe) = (trainer.dir().path().to_owned(), state.recipe.clone());
    if state.epoch >= recipe.epochs {
        output::stderr(&format!(
            "the run in {} has trained all {} epochs; pass --epochs with more to continue it\n",
            dir.display(),
            recipe.epochs
        ));
        return Ok(());
    }
    output::stderr(&format!(
        "{} {name} on {} ({images}): {}{}; checkpoints in {}\n",
        if args.resume { "resuming" } else { "training" },
        model.dataset,
        recipe,
        if lambda > 0.0 {
            format!(", sparsity {lambda:e}")
        } else {
            String::new()
        },
        dir.display()
    ));
    let mut report = Report::new(&recipe);
    let outcome = trainer.run(&STOP, &mut report);
    // The bar goes before anything else is said.
    drop(report);
    let outcome = outcome.map_err(|e| train_failure(e, name))?;
    ended(outcome, &trainer, &args.model, &model.file_name)
}

/// The recipe of a new run (FILE's `train` block, or the seed's, under the flags), or of the run
/// to resume (its own; only `--epochs` may change, which the trainer applies).
fn recipe(
    args: &Args,
    dir: &RunDir,
    saved: Option<&RunState>,
    written: Option<Recipe>,
) -> Result<Recipe, Failure> {
    match (saved, args.resume) {
        (Some(_), false) => Err(Failure::new(
            USAGE,
            format_args!(
                "{} already holds a training run; continue it with --resume, or choose \
                 another --out",
                dir.path().display()
            ),
        )),
        (None, true) => Err(Failure::new(
            USAGE,
            format_args!(
                "{} holds no training run to resume (no {STATE})",
                dir.path().display()
            ),
        )),
        (Some(state), true) => match args.recipe.changes().first() {
            Some(flag) => Err(Failure::new(
                USAGE,
                format_args!(
                    "{flag} cannot change when resuming: the run keeps the recipe in {} \
                     (only --epochs can change)",
                    dir.file(STATE).display()
                ),
            )),
            None => Ok(state.recipe.clone()),
        },
        (None, false) => args.recipe.apply(written.unwrap_or_default()),
    }
}

/// What is said when the run ends: where the weights are, or how to continue it.
fn ended(
    outcome: Outcome,
    trainer: &Trainer,
    model: &ModelArgs,
    file_name: &str,
) -> Result<(), Failure> {
    let dir = trainer.dir().path();
    match outcome {
        Outcome::Finished => {
            let last = dir.join(LAST);
            output::stderr(&match trainer.state().best {
                Some(best) => format!(
                    "done: best validation accuracy {} at epoch {} (test {}; {}); the last \
                     epoch's weights in {}\n",
                    percent(best.val_accuracy.unwrap_or(f64::NAN)),
                    best.epoch,
                    percent(best.test_accuracy),
                    dir.join(BEST).display(),
                    last.display()
                ),
                None => format!(
                    "done: no validation images, so no best epoch; the last epoch's weights in \
                     {}\n",
                    last.display()
                ),
            });
            Ok(())
        }
        Outcome::Stopped {
            epoch,
            batch,
            batches,
        } => {
            output::stderr(&format!(
                "interrupted: checkpoint saved in {} at epoch {}/{}, batch {batch}/{batches}; \
                 continue with `{}`\n",
                dir.display(),
                epoch + 1,
                trainer.state().recipe.epochs,
                resume_command(model, file_name, dir)
            ));
            Err(Failure::exit(INTERRUPTED))
        }
    }
}

/// The command that continues this run.
fn resume_command(m: &ModelArgs, file: &str, dir: &Path) -> String {
    let mut command = format!("vggdsl train {file}");
    if let Some(name) = &m.model {
        command += &format!(" --model {name}");
    }
    if let Some(dataset) = m.dataset {
        command += &format!(" --dataset {dataset}");
    }
    if let Some(data) = &m.data {
        command += &format!(" --data {}", data.display());
    }
    command + &format!(" --out {} --resume", dir.display())
}

/// A trainer's error as one sentence; weights of another model name their first difference.
fn train_failure(error: TrainError, model: &str) -> Failure {
    match error {
        TrainError::Load(e) => load_failure(&e, model),
        TrainError::RunExists { .. } | TrainError::NoRun { .. } | TrainError::EpochsDone { .. } => {
            Failure::new(USAGE, error)
        }
        e => Failure::new(FAILED, e),
    }
}

fn percent(fraction: f64) -> String {
    format!("{:.2}%", 100.0 * fraction)
}

/// Progress on stderr: a bar per epoch on a terminal, one line per finished epoch always.
struct Report {
    /// Hidden when stderr is not a terminal.
    bar: ProgressBar,
    epochs: u32,
}

impl Report {
    fn new(recipe: &Recipe) -> Report {
        let bar = if std::io::stderr().is_terminal() {
            let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
            // Redraws the ETA between batches, which take seconds on large models.
            bar.enable_steady_tick(Duration::from_millis(500));
            bar
        } else {
            ProgressBar::hidden()
        };
        bar.set_style(
            ProgressStyle::with_template("{prefix:>11} [{bar:30}] {pos}/{len} {msg} ETA {eta}")
                .expect("a valid template")
                .progress_chars("=> "),
        );
        Report {
            bar,
            epochs: recipe.epochs,
        }
    }
}

impl Observer for Report {
    fn epoch_start(&mut self, p: &Progress) {
        self.bar
            .set_prefix(format!("epoch {}/{}", p.epoch + 1, p.epochs));
        self.bar.set_length(p.batches as u64);
        self.bar.set_position(p.batch as u64);
        self.bar.set_message("");
        self.bar.reset_eta();
    }

    fn batch(&mut self, p: &Progress) {
        self.bar.set_position(p.batch as u64);
        self.bar.set_message(format!(
            "loss {:.4}  acc {}  {:.0} img/s",
            p.loss,
            percent(p.accuracy),
            p.images as f64 / p.seconds.max(1e-9)
        ));
    }

    fn evaluating(&mut self, done: usize, total: usize) {
        if done == 0 {
            self.bar.set_prefix("testing");
            self.bar.set_length(total as u64);
            self.bar.set_message("");
            self.bar.reset_eta();
        }
        self.bar.set_position(done as u64);
    }

    fn epoch_end(&mut self, m: &EpochMetrics, best: bool) {
        self.bar.suspend(|| {
            let validation = if m.val_accuracy.is_nan() {
                String::new()
            } else {
                format!(
                    "  val {}{}",
                    percent(m.val_accuracy),
                    if best { " (best)" } else { "" }
                )
            };
            output::stderr(&format!(
                "epoch {}/{}  loss {:.4}  train {}{validation}  test {}  lr {:.3e}  {:.1} s\n",
                m.epoch,
                self.epochs,
                m.loss,
                percent(m.train_accuracy),
                percent(m.test_accuracy),
                m.lr,
                m.seconds
            ))
        });
    }
}

impl Drop for Report {
    fn drop(&mut self) {
        self.bar.finish_and_clear();
    }
}
