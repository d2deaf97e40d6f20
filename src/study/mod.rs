//! `vggdsl study`: a pruning study as the commands a user would type, each run as a child
//! process of this binary in its own folder ([`plan`]), resumable and in parallel ([`run`]), its
//! results gathered into `results.json` and a Markdown table ([`report`]).

pub mod plan;
pub mod report;
pub mod run;

use std::path::{Path, PathBuf};

use vggdsl::analysis;
use vggdsl::files::study::{Budget, StudyFile};
use vggdsl::Architecture;

use crate::exit::{FAILED, USAGE};
use crate::failure::Failure;
use plan::{base_schedule, scratch_b_epochs, text, Arg, Common, Kind, Plan};

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
    pub compress_rate: String,
    pub architecture: Architecture,
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
            plan: &mut self.plan,
        };
        let base = l.base(dir);
        self.base.accuracy = base.step;
        self.base.latency = l.latency("latency/base", &l.model_path.clone());
        let (base_epochs, milestones) = base_schedule(self.model.spec.train.clone(), &f.base.train);
        let base_macs = analysis::summarize(&self.model).macs;
        for (i, budget) in f.prune.budgets.iter().enumerate() {
            let name = budget.name(i);
            let rates = rates_for(&self.model, budget);
            let arch_file = self.out.join(&name).join("model.vgg");
            let architecture = write_architecture(source, &self.model, &rates, &arch_file)?;
            let arch_path = arch_file.display().to_string();
            let latency = l.latency(&format!("{name}/latency"), &arch_path);
            for criterion in &f.prune.criteria {
                let seeds = l.criterion(&base, &name, &rates, criterion);
                self.rows
                    .extend(seeds.into_iter().map(|(seed, surgery, train)| RowSteps {
                        budget: i,
                        method: criterion.clone(),
                        seed,
                        surgery: Some(surgery),
                        train,
                    }));
            }
            let b_epochs = scratch_b_epochs(
                base_epochs,
                base_macs,
                analysis::summarize(&architecture).macs,
            );
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
                    let id = format!("{name}/{baseline}/s{seed}/train");
                    let mut flags = f.base.train.clone();
                    (flags.seed, flags.epochs, flags.milestones) =
                        (Some(seed), Some(epochs), milestones.clone());
                    let mut a = l.common.train(&arch_path, &l.out.join(&id));
                    a.extend(text(flags.flags()));
                    let train = l.plan.add(id, Kind::Train, a, vec![]);
                    self.rows.push(RowSteps {
                        budget: i,
                        method: baseline.clone(),
                        seed,
                        surgery: None,
                        train,
                    });
                }
            }
            self.budgets.push(BudgetInfo {
                name,
                compress_rate: rates,
                architecture,
                latency,
            });
        }
        Ok(())
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
    plan: &'a mut Plan,
}

impl Layout<'_> {
    fn path(&self, id: &str) -> String {
        self.out.join(id).display().to_string()
    }

    fn latency(&mut self, id: &str, model: &str) -> usize {
        let lat = self.f.latency;
        let mut a = text(["latency", model, "--json"]);
        a.extend(text([
            "--batch".to_owned(),
            lat.batch.to_string(),
            "--threads".into(),
            lat.threads.to_string(),
        ]));
        a.extend(self.common.model.iter().cloned());
        self.plan.add(id.into(), Kind::Latency, a, vec![])
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
        let ranks = wants("rank").then(|| {
            let mut a = text([
                "rank".to_owned(),
                model.clone(),
                "--out".into(),
                self.path("ranks"),
                "--weights".into(),
            ]);
            a.push(weights.clone());
            for flags in [&self.common.model, &self.common.data, &self.common.threads] {
                a.extend(flags.iter().cloned());
            }
            a.extend(prune_batches(f));
            self.plan.add("ranks".into(), Kind::Rank, a, needs.clone())
        });
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

    /// One criterion at one budget: its prune and the eval after surgery (once, or per seed for
    /// a choice that depends on it), and a fine-tuning per seed: `(seed, surgery, fine-tuning)`.
    fn criterion(
        &mut self,
        base: &BaseRefs,
        budget: &str,
        rates: &str,
        criterion: &str,
    ) -> Vec<(u64, usize, usize)> {
        let f = self.f;
        let (weights, needs) = match (criterion, base.sparse) {
            ("bn", Some(step)) => (Arg::Weights(self.out.join("base-sparse")), vec![step]),
            ("rank", _) => (
                base.weights.clone(),
                base.needs.iter().copied().chain(base.ranks).collect(),
            ),
            _ => (base.weights.clone(), base.needs.clone()),
        };
        let per_seed = criterion == "random" || f.prune.copy.as_deref() == Some("conv-only");
        let mut shared: Option<(usize, usize, String)> = None;
        let mut rows = Vec::new();
        for &seed in &f.seeds {
            let (prune, surgery, cut) = match &shared {
                Some(steps) => steps.clone(),
                None => {
                    let folder = match per_seed {
                        true => format!("{budget}/{criterion}/s{seed}"),
                        false => format!("{budget}/{criterion}"),
                    };
                    let cut = Cut {
                        folder: &folder,
                        criterion,
                        rates,
                        seed,
                        weights: &weights,
                    };
                    let steps = self.cut(&cut, needs.clone());
                    if !per_seed {
                        shared = Some(steps.clone());
                    }
                    steps
                }
            };
            let id = format!("{budget}/{criterion}/s{seed}/finetune");
            let mut a = self
                .common
                .train(&format!("{cut}/model.vgg"), &self.out.join(&id));
            a.extend(text([
                "--init".to_owned(),
                format!("{cut}/model.safetensors"),
                "--seed".into(),
                seed.to_string(),
            ]));
            a.extend(text(f.finetune.flags()));
            let t = self.plan.add(id, Kind::Train, a, vec![prune]);
            rows.push((seed, surgery, t));
        }
        rows
    }
}

/// One prune: where, by what, to which rates, with which seed, from which weights.
struct Cut<'a> {
    folder: &'a str,
    criterion: &'a str,
    rates: &'a str,
    seed: u64,
    weights: &'a Arg,
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
            &self.model_path,
            "--by",
            cut.criterion,
            "--compress-rate",
            cut.rates,
            "--seed",
            &seed,
            "--out",
            &dir,
            "--weights",
        ]);
        a.push(cut.weights.clone());
        a.extend(self.common.model.iter().cloned());
        if cut.criterion == "rank" {
            a.extend(text(["--ranks".to_owned(), self.path("ranks/ranks.json")]));
        }
        if cut.criterion == "taylor" {
            a.extend(self.common.data.iter().cloned());
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

/// A budget's rates as the language's list: the rates given, or one rate for every conv, the
/// smallest multiple of 0.001 that removes at least the share of the MACs asked for.
pub fn rates_for(model: &Architecture, budget: &Budget) -> String {
    if let Some(rates) = &budget.compress_rate {
        return rates.clone();
    }
    let share = budget
        .macs_removed
        .expect("a checked budget has one of the two");
    let convs = model.convs().count();
    let base = analysis::summarize(model).macs as f64;
    let mut spec = model.spec.unpruned();
    for step in 1..1000 {
        let rate = f64::from(step) / 1000.0;
        spec.compress_rate = Some(vec![rate; convs]);
        let Ok(pruned) = vggdsl::ir::lower(&spec) else {
            break; // a conv would keep no filter
        };
        if 1.0 - analysis::summarize(&pruned).macs as f64 / base >= share {
            return format!("[{rate}] * {convs}");
        }
    }
    format!("[0.999] * {convs}")
}

/// The pruned architecture of a budget as its own `.vgg` file (what the scratch baselines
/// train, and `latency` times), written only if it changed.
fn write_architecture(
    source: &str,
    model: &Architecture,
    rates: &str,
    path: &Path,
) -> Result<Architecture, Failure> {
    let comment = format!(
        "{} at the rates {rates}, written by `vggdsl study`.",
        model.spec.name
    );
    let (text, _) = vggdsl::rewrite::with_compress_rate(source, &model.spec.name, rates, &comment)
        .expect("the source parsed and has the model");
    let nets =
        vggdsl::load(&text, &path.display().to_string()).map_err(|d| Failure::invalid(&d))?;
    let dir = path.parent().expect("a folder");
    std::fs::create_dir_all(dir).map_err(|e| Failure::write(dir.display(), e))?;
    if std::fs::read_to_string(path).ok().as_deref() != Some(text.as_str()) {
        vggdsl::atomic::write(path, text.as_bytes())
            .map_err(|e| Failure::write(path.display(), e))?;
    }
    Ok(nets.into_iter().next().expect("one model"))
}
