//! `vggdsl study`: a pruning study as the commands a user would type, each run as a child
//! process of this binary in its own folder ([`plan`]), resumable and in parallel ([`run`]), its
//! results gathered into `results.json` and a Markdown table ([`report`]).

pub mod plan;
pub mod report;
mod rounds;
pub mod run;
mod targets;

use std::path::{Path, PathBuf};

use vggdsl::analysis;
use vggdsl::files::study::StudyFile;
use vggdsl::Architecture;

use crate::exit::{FAILED, USAGE};
use crate::failure::Failure;
use plan::{base_schedule, scratch_b_epochs, text, Arg, Common, Kind, Plan};
use targets::write_architecture;

/// A study read and laid out: the model, where things go, and every row's steps.
pub struct Study {
    pub file: StudyFile,
    /// The study's name (its file's stem), the model and its file.
    pub name: String,
    pub model: Architecture,
    pub model_file: PathBuf,
    pub out: PathBuf,
    pub plan: Plan,
    /// One per method, budget and seed.
    pub rows: Vec<RowSteps>,
    pub base: BaseSteps,
    pub budgets: Vec<BudgetInfo>,
}

pub struct BaseSteps {
    /// A training run, or an eval of given weights.
    pub accuracy: usize,
    pub latency: usize,
}

pub struct BudgetInfo {
    pub name: String,
    /// The budget's one architecture, for rates and `macs_removed` (what every criterion cuts
    /// to) and for MACs and parameter targets (the uniform strategy's widths, what the baselines
    /// train); `None` for a latency target, whose widths the machine decides.
    pub fixed: Option<Fixed>,
}

/// An architecture known when the study is laid out: its rates, itself, its latency step.
pub struct Fixed {
    pub compress_rate: String,
    pub architecture: Architecture,
    pub latency: usize,
}

/// A prune whose widths its own step chooses (a target): its folder and its latency step.
pub struct PrunedRef {
    pub folder: PathBuf,
    pub latency: usize,
}

/// The steps whose results make one row.
pub struct RowSteps {
    pub budget: usize,
    pub method: String,
    pub seed: u64,
    /// The eval after surgery (none for a baseline).
    pub surgery: Option<usize>,
    /// The fine-tuning, or the scratch training.
    pub train: usize,
    /// Where the row's architecture is, when its prune chose it; else the budget's.
    pub pruned: Option<PrunedRef>,
    /// Prune/fine-tune rounds (1 for a baseline): the row's epochs are this many fine-tunings'.
    pub rounds: u32,
}

impl Study {
    /// Reads the study file at `path` and lays out its steps under `out`.
    pub fn new(path: &Path, out: PathBuf, val_size: Option<u64>) -> Result<Study, Failure> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            Failure::new(USAGE, format_args!("cannot read {}: {e}", path.display()))
        })?;
        let file = StudyFile::from_toml(&text)
            .map_err(|e| Failure::new(FAILED, format_args!("{}: {e}", path.display())))?;
        if file.finetune.seed.is_some() {
            return Err(Failure::new(
                FAILED,
                format_args!(
                    "{}: `finetune.seed` is set, but the fine-tuning seeds are `seeds`",
                    path.display()
                ),
            ));
        }
        let dir = path.parent().unwrap_or(Path::new("."));
        let model_file = dir.join(&file.model);
        let source = std::fs::read_to_string(&model_file).map_err(|e| {
            Failure::new(
                USAGE,
                format_args!("cannot read {}: {e}", model_file.display()),
            )
        })?;
        let name = model_file.display().to_string();
        let nets = vggdsl::load(&source, &name).map_err(|d| Failure::invalid(&d))?;
        let model = crate::input::model(&nets, file.model_name.as_deref(), &name)?.clone();
        let stem = path
            .file_stem()
            .map_or("study".into(), |s| s.to_string_lossy().into_owned());
        let mut study = Study {
            name: stem,
            model,
            model_file,
            out,
            plan: Plan::default(),
            rows: Vec::new(),
            base: BaseSteps {
                accuracy: 0,
                latency: 0,
            },
            budgets: Vec::new(),
            file,
        };
        study.lay_out(&source, dir, val_size)?;
        Ok(study)
    }

    /// Every step, in an order in which each comes after the steps it needs.
    fn lay_out(&mut self, source: &str, dir: &Path, val_size: Option<u64>) -> Result<(), Failure> {
        let f = self.file.clone();
        let mut l = Layout {
            f: &f,
            common: Common::new(&f, val_size, dir),
            out: &self.out,
            model_path: self.model_file.display().to_string(),
            model_name: self.model.spec.name.clone(),
            plan: &mut self.plan,
        };
        let base = l.base(dir);
        self.base.accuracy = base.step;
        self.base.latency = l.latency("latency/base", &l.model_path.clone(), vec![]);
        let (base_epochs, milestones) = base_schedule(self.model.spec.train.clone(), &f.base.train);
        let base_macs = analysis::summarize(&self.model).macs;
        for (i, budget) in f.prune.budgets.iter().enumerate() {
            let folder = budget.folder(i);
            let mut rounds = Vec::new();
            let fixed = match targets::fixed_rates(&self.model, budget) {
                Some((rates, round_to)) => {
                    let arch_file = self.out.join(&folder).join("model.vgg");
                    let architecture =
                        write_architecture(source, &self.model, &rates, round_to, &arch_file)?;
                    let arch_path = arch_file.display().to_string();
                    let latency = l.latency(&format!("{folder}/latency"), &arch_path, vec![]);
                    if f.prune.steps > 1 {
                        let to = (&self.model, &architecture, round_to);
                        rounds =
                            rounds::models(source, to, f.prune.steps, &self.out.join(&folder))?;
                    }
                    Some((
                        arch_path,
                        Fixed {
                            compress_rate: rates,
                            architecture,
                            latency,
                        },
                    ))
                }
                None => None,
            };
            for method in targets::methods(&f, budget, &fixed) {
                let (rows, label) = match rounds.is_empty() {
                    true => (l.criterion(&base, &folder, &method), method.label.clone()),
                    false => (
                        l.rounds(&base, &folder, &method, &rounds),
                        format!("{} ×{}", method.label, rounds.len()),
                    ),
                };
                self.rows.extend(rows.into_iter().map(|r| RowSteps {
                    budget: i,
                    method: label.clone(),
                    seed: r.seed,
                    surgery: Some(r.surgery),
                    train: r.train,
                    pruned: r.pruned,
                    rounds: rounds.len().max(1) as u32,
                }));
            }
            if let Some((arch_path, fixed)) = &fixed {
                let b_epochs = scratch_b_epochs(
                    base_epochs,
                    base_macs,
                    analysis::summarize(&fixed.architecture).macs,
                );
                let rows = l.baselines(i, &folder, arch_path, (base_epochs, b_epochs), &milestones);
                self.rows.extend(rows);
            }
            self.budgets.push(BudgetInfo {
                name: budget.name(i),
                fixed: fixed.map(|(_, fixed)| fixed),
            });
        }
        Ok(())
    }
}

impl Layout<'_> {
    /// The baselines of budget `i` (in `folder`): its architecture `arch_path` trained from
    /// scratch, for the base's epochs (Scratch-E) or `epochs.1` (Scratch-B), per seed.
    fn baselines(
        &mut self,
        i: usize,
        folder: &str,
        arch_path: &str,
        epochs: (u32, u32),
        milestones: &Option<Vec<u32>>,
    ) -> Vec<RowSteps> {
        let (base_epochs, b_epochs) = epochs;
        let f = self.f;
        let mut rows = Vec::new();
        for baseline in &f.baselines {
            let (epochs, milestones) = match baseline.as_str() {
                "scratch-b" => {
                    let ratio = f64::from(b_epochs) / f64::from(base_epochs.max(1));
                    let scaled = milestones
                        .as_ref()
                        .map(|m| m.iter().map(|&x| (f64::from(x) * ratio) as u32).collect());
                    (b_epochs, scaled)
                }
                _ => (base_epochs, milestones.clone()),
            };
            for &seed in &f.seeds {
                let id = format!("{folder}/{baseline}/s{seed}/train");
                let mut flags = f.base.train.clone();
                (flags.seed, flags.epochs, flags.milestones) =
                    (Some(seed), Some(epochs), milestones.clone());
                let mut a = self.common.train(arch_path, &self.out.join(&id));
                a.extend(text(flags.flags()));
                let train = self.plan.add(id, Kind::Train, a, vec![]);
                rows.push(RowSteps {
                    budget: i,
                    method: baseline.clone(),
                    seed,
                    surgery: None,
                    train,
                    pruned: None,
                    rounds: 1,
                });
            }
        }
        rows
    }
}

/// Where the base's steps are: what prunes read.
struct BaseRefs {
    /// The base's accuracy: its training run, or the eval of given weights.
    step: usize,
    weights: Arg,
    /// Steps a prune of the base waits for.
    needs: Vec<usize>,
    ranks: Option<usize>,
    /// The sparsity-trained base that `bn` prunes, if the study trains one.
    sparse: Option<usize>,
}

/// Adds a study's steps to its plan.
struct Layout<'a> {
    f: &'a StudyFile,
    common: Common,
    out: &'a Path,
    model_path: String,
    /// The model's name, which its pruned files keep: the study's folders keep runs apart, and
    /// `--model NAME` then picks the pruned model too.
    model_name: String,
    plan: &'a mut Plan,
}

impl Layout<'_> {
    fn path(&self, id: &str) -> String {
        self.out.join(id).display().to_string()
    }

    /// `vggdsl latency` of `model`, after the steps `needs` (the one that writes it, if any).
    fn latency(&mut self, id: &str, model: &str, needs: Vec<usize>) -> usize {
        let lat = self.f.latency;
        let mut a = text(["latency", model, "--json"]);
        a.extend(text([
            "--batch".to_owned(),
            lat.batch.to_string(),
            "--threads".into(),
            lat.threads.to_string(),
        ]));
        a.extend(self.common.model.iter().cloned());
        self.plan.add(id.into(), Kind::Latency, a, needs)
    }

    /// The base (trained, or its weights evaluated), its ranks and its sparsity-trained twin.
    fn base(&mut self, dir: &Path) -> BaseRefs {
        let f = self.f;
        let model = self.model_path.clone();
        let (weights, step, needs) = match &f.base.weights {
            Some(w) => {
                let w = Arg::Text(dir.join(w).display().to_string());
                let e = self.common.eval(&model, w.clone());
                (
                    w,
                    self.plan.add("base-eval".into(), Kind::Eval, e, vec![]),
                    vec![],
                )
            }
            None => {
                let mut a = self.common.train(&model, &self.out.join("base"));
                a.extend(text(f.base.train.flags()));
                let step = self.plan.add("base".into(), Kind::Train, a, vec![]);
                (Arg::Weights(self.out.join("base")), step, vec![step])
            }
        };
        let wants = |c: &str| f.prune.criteria.iter().any(|x| x == c);
        let ranks = wants("rank").then(|| self.rank("ranks", &model, &weights, needs.clone()));
        let sparse = match (wants("bn"), f.base.bn_sparsity) {
            (true, Some(lambda)) => {
                let mut a = self.common.train(&model, &self.out.join("base-sparse"));
                a.extend(text(f.base.train.flags()));
                a.extend(text(["--sparsity".to_owned(), lambda.to_string()]));
                Some(self.plan.add("base-sparse".into(), Kind::Train, a, vec![]))
            }
            _ => None,
        };
        BaseRefs {
            step,
            weights,
            needs,
            ranks,
            sparse,
        }
    }

    /// The weights a criterion prunes (the base's, or the sparsity-trained base's for `bn`) and
    /// the steps that must be done first (the base's, and the ranks for `rank`).
    fn pruned_weights(&self, base: &BaseRefs, criterion: &str) -> (Arg, Vec<usize>) {
        match (criterion, base.sparse) {
            ("bn", Some(step)) => (Arg::Weights(self.out.join("base-sparse")), vec![step]),
            ("rank", _) => (
                base.weights.clone(),
                base.needs.iter().copied().chain(base.ranks).collect(),
            ),
            _ => (base.weights.clone(), base.needs.clone()),
        }
    }

    /// `vggdsl rank MODEL --weights W` into folder `id`, after `needs`.
    fn rank(&mut self, id: &str, model: &str, weights: &Arg, needs: Vec<usize>) -> usize {
        let mut a = text(["rank", model, "--out", &self.path(id), "--weights"]);
        a.push(weights.clone());
        a.extend(self.common.reading());
        a.extend(prune_batches(self.f));
        self.plan.add(id.into(), Kind::Rank, a, needs)
    }

    /// The fine-tuning `id` of the prune in folder `cut` (step `prune`) with `seed`.
    fn finetune(&mut self, id: String, cut: &str, seed: u64, prune: usize) -> usize {
        let mut a = self
            .common
            .train(&format!("{cut}/model.vgg"), &self.out.join(&id));
        a.extend(text([
            "--init".to_owned(),
            format!("{cut}/model.safetensors"),
            "--seed".into(),
            seed.to_string(),
        ]));
        a.extend(text(self.f.finetune.flags()));
        self.plan.add(id, Kind::Train, a, vec![prune])
    }

    /// One method at one budget: its prune and the eval after surgery (once, or per seed for a
    /// choice that depends on it), a fine-tuning per seed, and when the prune chooses the widths,
    /// the pruned model's latency.
    fn criterion(&mut self, base: &BaseRefs, budget: &str, method: &Method) -> Vec<MethodRow> {
        let f = self.f;
        let criterion = method.by.as_str();
        let (weights, mut needs) = self.pruned_weights(base, criterion);
        let sensitivity = method
            .sweep
            .then(|| self.sensitivity(criterion, &weights, needs.clone()));
        needs.extend(sensitivity.as_ref().map(|(step, _)| *step));
        let mut flags = method.flags.clone();
        if let Some((_, file)) = sensitivity {
            flags.extend(text(["--sensitivity".to_owned(), file]));
        }
        let per_seed = criterion == "random" || f.prune.copy.as_deref() == Some("conv-only");
        let mut shared: Option<(usize, usize, String, Option<usize>)> = None;
        let mut rows = Vec::new();
        for &seed in &f.seeds {
            let (prune, surgery, cut, latency) = match &shared {
                Some(steps) => steps.clone(),
                None => {
                    let folder = match per_seed {
                        true => format!("{budget}/{}/s{seed}", method.label),
                        false => format!("{budget}/{}", method.label),
                    };
                    let cut = Cut {
                        folder: &folder,
                        model: &self.model_path.clone(),
                        criterion,
                        flags: &flags,
                        seed,
                        weights: &weights,
                        ranks: self.path("ranks/ranks.json"),
                    };
                    let (prune, surgery, dir) = self.cut(&cut, needs.clone());
                    let latency = method.chooses.then(|| {
                        let model = format!("{dir}/model.vgg");
                        self.latency(&format!("{folder}/latency"), &model, vec![prune])
                    });
                    let steps = (prune, surgery, dir, latency);
                    if !per_seed {
                        shared = Some(steps.clone());
                    }
                    steps
                }
            };
            let id = format!("{budget}/{}/s{seed}/finetune", method.label);
            let train = self.finetune(id, &cut, seed, prune);
            rows.push(MethodRow {
                seed,
                surgery,
                train,
                pruned: latency.map(|latency| PrunedRef {
                    folder: PathBuf::from(&cut),
                    latency,
                }),
            });
        }
        rows
    }
}

/// One method's row of one seed: its steps.
struct MethodRow {
    seed: u64,
    surgery: usize,
    train: usize,
    pruned: Option<PrunedRef>,
}

/// How a budget is cut by one criterion: the flags that say to what (rates or a target and a
/// strategy), its name in folders and tables, whether it needs a sensitivity sweep, and whether
/// its prune chooses the widths.
pub struct Method {
    pub by: String,
    pub label: String,
    pub flags: Vec<Arg>,
    pub sweep: bool,
    pub chooses: bool,
}

/// One prune: where, of which model file, by what, to what, with which seed, from which
/// weights, and the ranks file `rank` reads.
struct Cut<'a> {
    folder: &'a str,
    model: &'a str,
    criterion: &'a str,
    flags: &'a [Arg],
    seed: u64,
    weights: &'a Arg,
    ranks: String,
}

impl Layout<'_> {
    /// The prune `cut` and the eval after its surgery, in `FOLDER/prune` and
    /// `FOLDER/surgery-eval`: `(prune, eval, the prune's folder)`.
    fn cut(&mut self, cut: &Cut, needs: Vec<usize>) -> (usize, usize, String) {
        let f = self.f;
        let (id, dir) = (
            format!("{}/prune", cut.folder),
            self.path(&format!("{}/prune", cut.folder)),
        );
        let seed = cut.seed.to_string();
        let mut a = text([
            "prune",
            cut.model,
            "--by",
            cut.criterion,
            "--seed",
            &seed,
            "--out",
            &dir,
            "--name",
            &self.model_name,
            "--weights",
        ]);
        a.push(cut.weights.clone());
        a.extend(cut.flags.iter().cloned());
        a.extend(self.common.model.iter().cloned());
        if cut.criterion == "rank" {
            a.extend(text(["--ranks", &cut.ranks]));
        }
        if cut.criterion == "taylor" {
            a.extend(self.common.data.iter().cloned());
            a.extend(self.common.validation.iter().cloned());
            a.extend(prune_batches(f));
        }
        for (flag, value) in [("--rule", &f.prune.rule), ("--copy", &f.prune.copy)] {
            if let Some(v) = value {
                a.extend(text([flag, v]));
            }
        }
        let prune = self.plan.add(id, Kind::Prune, a, needs);
        let weights = Arg::Text(format!("{dir}/model.safetensors"));
        let e = self.common.eval(&format!("{dir}/model.vgg"), weights);
        let eval = self.plan.add(
            format!("{}/surgery-eval", cut.folder),
            Kind::Eval,
            e,
            vec![prune],
        );
        (prune, eval, dir)
    }
}

/// `--limit` and `--batch-size` of `rank` and of `prune --by taylor`.
fn prune_batches(f: &StudyFile) -> Vec<Arg> {
    let mut a = Vec::new();
    if let Some(l) = f.prune.limit {
        a.extend(text(["--limit".to_owned(), l.to_string()]));
    }
    if let Some(b) = f.prune.batch_size {
        a.extend(text(["--batch-size".to_owned(), b.to_string()]));
    }
    a
}
