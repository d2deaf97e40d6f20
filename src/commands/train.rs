//! `vggdsl train FILE`: trains a model of FILE with SGD under the file's `train { … }` recipe (or
//! the seed's), flags overriding it; checkpoints in `--out`; Ctrl-C saves one and stops.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use vggdsl::check::{check_recipe, Milestones, MAX_BATCH, MAX_EPOCHS};
use vggdsl::files::metrics::EpochMetrics;
use vggdsl::files::run::{BEST, LAST, STATE};
use vggdsl::spec::{Recipe, Schedule};
use vggdsl_runtime::tch::nn::VarStore;
use vggdsl_runtime::tch::{self, Device};
use vggdsl_runtime::{device, Network};
use vggdsl_train::checkpoint::{RunDir, RunState};
use vggdsl_train::error::SaveStage;
use vggdsl_train::sparsity::Sparsity;
use vggdsl_train::trainer::{Observer, Outcome, Progress};
use vggdsl_train::{weights, TrainError, Trainer};

use super::setup::{load_failure, weights_failure, Model, ModelArgs};
use super::split::{self, SplitArgs};
use crate::exit::{FAILED, INTERRUPTED, USAGE};
use crate::failure::Failure;
use crate::{numbers, output, FileArg};

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    model: ModelArgs,
    /// The run's folder: checkpoints, optimizer state, metrics.jsonl; new or empty for a new run,
    /// and locked while training [default: runs/<model>]
    #[arg(long, value_name = "RUN_DIR")]
    out: Option<PathBuf>,
    /// Continue the run in the --out folder exactly where its last checkpoint stopped (recipe
    /// flags may repeat the run's values).
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
#[command(
    next_help_heading = "Recipe (overrides FILE's train block; with --resume only --epochs may change)"
)]
struct RecipeArgs {
    /// Start from a named recipe instead of FILE's: seed (SGD lr 0.01, momentum 0.9, weight
    /// decay 5e-4, batch 128, 150 epochs, ×0.1 at 50 and 100) or hrankplus (the same, batch 256)
    #[arg(long, value_name = "NAME", value_parser = Recipe::NAMES)]
    recipe: Option<String>,
    /// Epochs to train in all (with --resume: the new total; a cosine schedule's cannot change).
    #[arg(
        long,
        value_name = "N",
        value_parser = numbers::count::<u32>(MAX_EPOCHS as usize),
        allow_negative_numbers = true
    )]
    epochs: Option<u32>,
    #[arg(
        long,
        value_name = "N",
        value_parser = numbers::count::<u32>(MAX_BATCH as usize),
        allow_negative_numbers = true
    )]
    batch_size: Option<u32>,
    /// The initial learning rate.
    #[arg(long, value_name = "LR", allow_negative_numbers = true)]
    lr: Option<f64>,
    #[arg(long, value_name = "M", allow_negative_numbers = true)]
    momentum: Option<f64>,
    #[arg(long, value_name = "WD", allow_negative_numbers = true)]
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
    #[arg(long, value_name = "G", allow_negative_numbers = true)]
    gamma: Option<f64>,
    /// Seeds the model's init draws, the shuffling and the augmentation.
    #[arg(long, value_name = "N")]
    seed: Option<u64>,
}

impl RecipeArgs {
    /// The first flag other than `--epochs` whose value makes `asked` differ from `saved`, by
    /// name: `--recipe` when no flag of that setting was given.
    fn change(&self, asked: &Recipe, saved: &Recipe) -> Option<&'static str> {
        let steps = |r: &Recipe| match &r.schedule {
            Schedule::MultiStep { milestones, gamma } => (false, milestones.clone(), *gamma),
            Schedule::Cosine => (true, Vec::new(), 0.0),
        };
        let (a, b) = (steps(asked), steps(saved));
        [
            (
                "--batch-size",
                self.batch_size.is_some(),
                asked.batch_size != saved.batch_size,
            ),
            ("--lr", self.lr.is_some(), asked.lr != saved.lr),
            (
                "--momentum",
                self.momentum.is_some(),
                asked.momentum != saved.momentum,
            ),
            (
                "--weight-decay",
                self.weight_decay.is_some(),
                asked.weight_decay != saved.weight_decay,
            ),
            (
                "--nesterov",
                self.nesterov.is_some(),
                asked.nesterov != saved.nesterov,
            ),
            ("--schedule", self.schedule.is_some(), a.0 != b.0),
            ("--milestones", self.milestones.is_some(), a.1 != b.1),
            ("--gamma", self.gamma.is_some(), a.2 != b.2),
            ("--seed", self.seed.is_some(), asked.seed != saved.seed),
        ]
        .into_iter()
        .find(|&(.., differs)| differs)
        .map(|(flag, given, _)| if given { flag } else { "--recipe" })
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

/// Raised by Ctrl-C (SIGINT), SIGTERM or SIGHUP: during set-up the command stops before training;
/// during training the trainer finishes its batch, saves a checkpoint and stops.
static STOP: AtomicBool = AtomicBool::new(false);
/// Set once training starts.
static TRAINING: AtomicBool = AtomicBool::new(false);

pub fn run(args: Args) -> Result<(), Failure> {
    catch_stops()?;
    let model = args.model.model()?;
    let spec = &model.ir.spec;
    let name = spec.name.as_str();
    let mut dir = RunDir::new(
        args.out
            .clone()
            .unwrap_or_else(|| Path::new("runs").join(&spec.name)),
    );
    let resume = resume_command(&args.model, &args.split, &model.file_name, dir.path());
    if !args.resume {
        refuse_inputs_inside(&args, dir.path())?;
    }
    // Before any long work: the folder created, locked, recovered, checked writable.
    let saved = dir.open().map_err(|e| train_failure(e, name, &resume))?;
    let recipe = recipe(
        &args,
        &dir,
        saved.as_ref(),
        spec.train.clone(),
        name,
        &resume,
    )?;
    let data_dir = args.model.data_dir(model.dataset)?;
    let validation = saved.as_ref().map(|s| s.validation_images);
    let data = args.split.load(model.dataset, &data_dir, validation)?;
    let images = split::describe(&data);
    let lambda = match &saved {
        Some(state) => state.sparsity,
        None => args.sparsity.unwrap_or(0.0),
    };

    let (mut vs, net) = network(&model, recipe.seed, args.init.as_deref())?;
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
    let mut trainer = trainer.map_err(|e| train_failure(e, name, &resume))?;
    if let Some(sparsity) = sparsity {
        trainer = trainer.with_sparsity(sparsity);
    }
    if STOP.load(Ordering::Relaxed) {
        output::stderr("interrupted before training started; nothing was saved\n");
        return Err(Failure::exit(INTERRUPTED));
    }
    TRAINING.store(true, Ordering::Relaxed);

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
    let what = if args.resume { "resuming" } else { "training" };
    output::stderr(&format!(
        "{what} {name} on {} ({images}){}: {recipe}{}; checkpoints in {}\n",
        model.dataset,
        on_device(model.device),
        sparsity_note(lambda),
        dir.display()
    ));
    let mut report = Report::new(&recipe);
    let outcome = trainer.run(&STOP, &mut report);
    // The bar goes before anything else is said.
    drop(report);
    let outcome = outcome.map_err(|e| train_failure(e, name, &resume))?;
    ended(outcome, &trainer, &resume)
}

/// The model on its device, its weights drawn after `seed` (on the CPU, then moved: a seed gives
/// the same initial weights on every device), or `init`'s.
fn network(model: &Model, seed: u64, init: Option<&Path>) -> Result<(VarStore, Network), Failure> {
    tch::manual_seed(seed as i64);
    let mut vs = VarStore::new(Device::Cpu);
    let net = Network::new(&vs.root(), &model.ir);
    vs.set_device(model.device);
    if let Some(init) = init {
        weights::load(&mut vs, init).map_err(|e| weights_failure(&e, &model.ir.spec.name))?;
    }
    Ok((vs, net))
}

/// Raises [`STOP`] on Ctrl-C, SIGTERM (a job scheduler's stop) or SIGHUP (a closed terminal).
/// First of all, so that a stop during set-up (reading FILE, loading the data) is kept, even in a
/// background job whose shell ignores SIGINT for it, and ends the command before training.
fn catch_stops() -> Result<(), Failure> {
    ctrlc::set_handler(|| {
        if !STOP.swap(true, Ordering::Relaxed) {
            output::stderr(if TRAINING.load(Ordering::Relaxed) {
                "\nstopping: saving a checkpoint after this batch\n"
            } else {
                "\nstopping before training starts\n"
            });
        }
    })
    .map_err(|e| Failure::new(FAILED, format_args!("cannot catch Ctrl-C: {e}")))
}

/// A new run's folder must hold nothing, so no input may lie in it: the run would refuse the
/// folder, and `--init` weights there are what a user loses first.
fn refuse_inputs_inside(args: &Args, dir: &Path) -> Result<(), Failure> {
    let out = match dir.canonicalize() {
        Ok(out) if out.is_dir() => out,
        // A folder still to be made holds nothing; a file is refused as the run's folder.
        _ => return Ok(()),
    };
    let file = match &args.model.file {
        FileArg::Path(path) => Some(path),
        FileArg::Std => None,
    };
    let inputs = [
        ("FILE", file),
        ("--init", args.init.as_ref()),
        ("--data", args.model.data.as_ref()),
    ];
    for (what, path) in inputs {
        let Some(path) = path else { continue };
        if path.canonicalize().is_ok_and(|p| p.starts_with(&out)) {
            return Err(Failure::new(
                USAGE,
                format_args!(
                    "{what} {} is inside {}, the folder of the new run, which must hold nothing \
                     else; choose another --out",
                    path.display(),
                    dir.display()
                ),
            ));
        }
    }
    Ok(())
}

/// The recipe of a new run (FILE's `train` block, or the seed's, under the flags), or of the run
/// to resume (its own; flags may repeat its values, and only `--epochs` may change, which the
/// trainer applies).
fn recipe(
    args: &Args,
    dir: &RunDir,
    saved: Option<&RunState>,
    written: Option<Recipe>,
    model: &str,
    resume: &str,
) -> Result<Recipe, Failure> {
    let here = dir.path().display();
    match (saved, args.resume) {
        (Some(state), false) if state.model != model => Err(Failure::new(
            USAGE,
            format_args!(
                "{here} already holds a training run of model {}; choose another --out",
                state.model
            ),
        )),
        (Some(_), false) => Err(Failure::new(
            USAGE,
            format_args!(
                "{here} already holds a training run; continue it with `{resume}`, or choose \
                 another --out"
            ),
        )),
        (None, true) => Err(Failure::new(
            USAGE,
            format_args!(
                "{here} holds no training run to resume (no {STATE}); a run stopped before its \
                 first checkpoint starts again without --resume"
            ),
        )),
        (Some(state), true) => {
            let mut asked = args.recipe.apply(state.recipe.clone())?;
            asked.epochs = state.recipe.epochs;
            match args.recipe.change(&asked, &state.recipe) {
                Some(flag) => Err(Failure::new(
                    USAGE,
                    format_args!(
                        "{flag} cannot change when resuming: the run keeps the recipe in {} \
                         (only --epochs can change)",
                        dir.file(STATE).display()
                    ),
                )),
                None => Ok(state.recipe.clone()),
            }
        }
        (None, false) => args.recipe.apply(written.unwrap_or_default()),
    }
}

/// What is said when the run ends: where the weights are, or how to continue it.
fn ended(outcome: Outcome, trainer: &Trainer, resume: &str) -> Result<(), Failure> {
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
                 continue with `{resume}`\n",
                dir.display(),
                epoch + 1,
                trainer.state().recipe.epochs,
            ));
            Err(Failure::exit(INTERRUPTED))
        }
    }
}

/// ` on cuda:0` for a GPU; nothing for the CPU, the default.
fn on_device(device: Device) -> String {
    match device {
        Device::Cpu => String::new(),
        gpu => format!(" on {}", device::name(gpu)),
    }
}

/// `, sparsity λ` when the run penalises the BatchNorm scales.
fn sparsity_note(lambda: f64) -> String {
    if lambda > 0.0 {
        format!(", sparsity {lambda:e}")
    } else {
        String::new()
    }
}

/// The command that continues this run.
fn resume_command(m: &ModelArgs, split: &SplitArgs, file: &str, dir: &Path) -> String {
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
    if m.device.device != Device::Cpu {
        command += &format!(" --device {}", device::name(m.device.device));
    }
    // A resume refuses another training set, and should evaluate on the same test images.
    if let Some(n) = split.limit_train {
        command += &format!(" --limit-train {n}");
    }
    if let Some(n) = split.limit_test {
        command += &format!(" --limit-test {n}");
    }
    command + &format!(" --out {} --resume", dir.display())
}

/// A trainer's error as one sentence; weights of another model name their first difference, and
/// a save that is whole but not yet in place names the command that completes it.
fn train_failure(error: TrainError, model: &str, resume: &str) -> Failure {
    match error {
        TrainError::Load(e) => load_failure(&e, model),
        TrainError::RunExists { .. }
        | TrainError::NoRun { .. }
        | TrainError::EpochsDone { .. }
        | TrainError::CosineEpochs { .. }
        | TrainError::BatchOfOne(_) => Failure::new(USAGE, error),
        TrainError::Save {
            stage: SaveStage::Committed,
            ..
        } => Failure::new(FAILED, format_args!("{error}: `{resume}`")),
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
