//! Training and evaluating image classifiers: the loop of `vggdsl train` and `vggdsl eval`.
//!
//! [`Trainer`] runs a [`Recipe`] (SGD with momentum and weight decay, a learning-rate schedule)
//! on a model and its [`VarStore`], as the seed's PyTorch loop does: BatchNorm in train mode and
//! mean cross-entropy for the steps, eval mode for the test set after every epoch. It saves a
//! checkpoint in a [`RunDir`] after each epoch and when asked to stop, and continues one exactly:
//! training two epochs gives the same tensors, bit for bit, as training one and resuming for one,
//! also from the middle of an epoch, since the batches of an epoch depend only on the seed and
//! the epoch ([`crate::data`]) and the optimiser state is saved whole ([`Sgd`]).

use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use tch::nn::{ModuleT, VarStore};
use tch::{Device, Kind, Reduction, TchError, Tensor};
use vggdsl::check::check_batches;
use vggdsl::files::metrics::EpochMetrics;
use vggdsl::files::run::{LAST, OPTIMIZER};
use vggdsl::spec::{Recipe, Schedule};
use vggdsl_runtime::state_dict;

use crate::checkpoint::{Best, EpochSums, RunDir, RunState};
use crate::data::{Batch, ImageSet};
use crate::error::TrainError;
use crate::sgd::{Sgd, SgdConfig};
use crate::sparsity::Sparsity;

/// The batch size of evaluation passes: large enough to keep the cores busy, small enough for
/// the seed network's activations to stay in a few hundred MB.
pub const EVAL_BATCH: usize = 256;

/// One training step as PyTorch's loop takes it: zero the gradients, forward in train mode,
/// mean cross-entropy, backward, SGD step. Returns the loss and how many images it got right.
pub fn train_step(
    model: &dyn ModuleT,
    sgd: &mut Sgd,
    batch: &Batch,
    lr: f64,
) -> Result<(f64, u64), TchError> {
    sparse_train_step(model, sgd, None, batch, lr)
}

/// [`train_step`] with Network Slimming's penalty on the BatchNorm scales, if any, added to
/// their gradients between the backward pass and the step.
pub fn sparse_train_step(
    model: &dyn ModuleT,
    sgd: &mut Sgd,
    sparsity: Option<&Sparsity>,
    batch: &Batch,
    lr: f64,
) -> Result<(f64, u64), TchError> {
    sgd.zero_grad();
    let logits = model.forward_t(&batch.images, true);
    let loss =
        logits.f_cross_entropy_loss::<Tensor>(&batch.labels, None, Reduction::Mean, -100, 0.0)?;
    loss.f_backward()?;
    if let Some(sparsity) = sparsity {
        sparsity.apply()?;
    }
    sgd.step(lr)?;
    let correct = tch::no_grad(|| correct(&logits, &batch.labels))?;
    Ok((loss.f_double_value(&[])?, correct))
}

/// The cross-entropy of every image of a batch, summed.
pub fn summed_loss(logits: &Tensor, labels: &Tensor) -> Result<Tensor, TchError> {
    logits.f_cross_entropy_loss::<Tensor>(labels, None, Reduction::Sum, -100, 0.0)
}

fn correct(logits: &Tensor, labels: &Tensor) -> Result<u64, TchError> {
    let right = logits
        .f_argmax(-1, false)?
        .f_eq_tensor(labels)?
        .f_sum(Kind::Int64)?;
    Ok(right.f_int64_value(&[])? as u64)
}

/// A model's figures on a dataset split.
#[derive(Debug, Clone, PartialEq)]
pub struct Evaluation {
    /// Mean cross-entropy over all images.
    pub loss: f64,
    /// Per class (by label): images classified right, and images.
    pub correct: Vec<u64>,
    pub images: Vec<u64>,
}

impl Evaluation {
    /// No image yet, of `classes` classes.
    pub fn new(classes: usize) -> Evaluation {
        Evaluation {
            loss: 0.0,
            correct: vec![0; classes],
            images: vec![0; classes],
        }
    }

    /// Counts a batch's `logits` against its `labels`; `loss` sums the cross-entropy until
    /// [`Evaluation::finish`] takes the mean.
    pub fn add(&mut self, logits: &Tensor, labels: &Tensor) -> Result<(), TchError> {
        tch::no_grad(|| {
            self.loss += summed_loss(logits, labels)?.f_double_value(&[])?;
            let predicted = Vec::<i64>::try_from(logits.f_argmax(-1, false)?)?;
            for (p, l) in predicted.into_iter().zip(Vec::<i64>::try_from(labels)?) {
                let l = l as usize;
                self.images[l] += 1;
                self.correct[l] += u64::from(p as usize == l);
            }
            Ok(())
        })
    }

    /// The summed loss made the mean over the images counted.
    pub fn finish(mut self) -> Evaluation {
        self.loss /= self.images.iter().sum::<u64>().max(1) as f64;
        self
    }

    /// The fraction of all images classified right.
    pub fn accuracy(&self) -> f64 {
        self.correct.iter().sum::<u64>() as f64 / self.images.iter().sum::<u64>().max(1) as f64
    }

    /// The fraction of class `label`'s images classified right, `None` if it has none.
    pub fn class_accuracy(&self, label: usize) -> Option<f64> {
        let n = self.images[label];
        (n > 0).then(|| self.correct[label] as f64 / n as f64)
    }
}

/// Evaluates `model` in eval mode on every image of `set`, `batch_size` at a time, on the set's
/// device ([`ImageSet::on`]: the model's); `progress` is told the batches done (from 0) and their
/// number. Returns `None` if `stop` is raised before the end.
pub fn evaluate(
    model: &dyn ModuleT,
    set: &ImageSet,
    batch_size: NonZeroUsize,
    stop: &AtomicBool,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<Option<Evaluation>, TchError> {
    let mut evaluation = Evaluation::new(set.dataset().num_classes() as usize);
    let batches = set.in_order(batch_size, set.len());
    let total = batches.len();
    progress(0, total);
    for (i, batch) in batches.enumerate() {
        if stop.load(Ordering::Relaxed) {
            return Ok(None);
        }
        let logits = tch::no_grad(|| model.forward_t(&batch.images, false));
        evaluation.add(&logits, &batch.labels)?;
        progress(i + 1, total);
    }
    Ok(Some(evaluation.finish()))
}

/// Where training stands after a batch.
#[derive(Debug, Clone, Copy)]
pub struct Progress {
    /// Counted from 0.
    pub epoch: u32,
    pub epochs: u32,
    /// Batches of the epoch done, and their number.
    pub batch: usize,
    pub batches: usize,
    /// The epoch's running mean loss and accuracy.
    pub loss: f64,
    pub accuracy: f64,
    /// Images trained on in this process during this epoch, and the seconds that took.
    pub images: u64,
    pub seconds: f64,
}

/// What a training loop reports as it goes; every method does nothing by default.
pub trait Observer {
    /// Epoch `epoch` (from 0) starts, or resumes after `progress.batch` batches.
    fn epoch_start(&mut self, _progress: &Progress) {}
    fn batch(&mut self, _progress: &Progress) {}
    /// The validation or test pass has done `done` of `total` batches.
    fn evaluating(&mut self, _done: usize, _total: usize) {}
    fn epoch_end(&mut self, _metrics: &EpochMetrics, _best: bool) {}
}

/// The silent observer.
impl Observer for () {}

/// How [`Trainer::run`] ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// All epochs of the recipe are done.
    Finished,
    /// Stopped on request, with a checkpoint saved at epoch `epoch` (from 0) after `batch` of its
    /// `batches` batches.
    Stopped {
        epoch: u32,
        batch: usize,
        batches: usize,
    },
}

/// The training and test sets of a run, and the validation images carved from the training set
/// ([`crate::data::carve_validation`]) that choose `best.safetensors`, if any.
#[derive(Debug, Clone)]
pub struct Data {
    pub train: ImageSet,
    pub validation: Option<ImageSet>,
    pub test: ImageSet,
}

impl Data {
    /// Every set's batches handed out on `device` ([`ImageSet::on`]).
    pub fn on(self, device: Device) -> Data {
        Data {
            train: self.train.on(device),
            validation: self.validation.map(|v| v.on(device)),
            test: self.test.on(device),
        }
    }

    fn validation_images(&self) -> usize {
        self.validation.as_ref().map_or(0, ImageSet::len)
    }
}

/// A run of a recipe on a model, saving its checkpoints in a [`RunDir`]. It runs where the
/// model's [`VarStore`] is: the batches are handed out on its device, and checkpoints are written
/// from CPU copies ([`state_dict::safetensors_bytes`]), so a run trained on a GPU loads anywhere.
pub struct Trainer<'a> {
    model: &'a dyn ModuleT,
    vs: &'a VarStore,
    sgd: Sgd,
    data: Data,
    dir: RunDir,
    state: RunState,
    metrics: Vec<String>,
    sparsity: Option<Sparsity>,
}

impl<'a> Trainer<'a> {
    /// A new run of `recipe` in `dir`, which must hold nothing ([`RunDir::open`]; it stays
    /// locked while the trainer lives). A batch size that leaves a batch of one image is refused
    /// ([`check_batches`]). The model's weights are where training starts: seed libtorch with
    /// `recipe.seed` before building it, as PyTorch's `torch.manual_seed(seed)` before the model
    /// does.
    pub fn new(
        model: &'a dyn ModuleT,
        vs: &'a VarStore,
        name: &str,
        data: Data,
        recipe: Recipe,
        mut dir: RunDir,
    ) -> Result<Trainer<'a>, TrainError> {
        if dir.open()?.is_some() {
            return Err(TrainError::RunExists {
                dir: dir.path().into(),
            });
        }
        check_batches(data.train.len(), recipe.batch_size)?;
        let data = data.on(vs.device());
        let dataset = data.train.dataset();
        let mut state = RunState::new(name, dataset.name(), data.train.len(), recipe);
        state.validation_images = data.validation_images();
        Ok(Trainer {
            model,
            sgd: Sgd::new(vs, sgd_config(&state.recipe)),
            vs,
            data,
            dir,
            state,
            metrics: Vec::new(),
            sparsity: None,
        })
    }

    /// Continues the run saved in `dir` from its checkpoint: weights, momentum buffers,
    /// position and figures. `epochs`, if given, replaces the recipe's number of epochs (to
    /// train longer, or stop sooner) unless the schedule is cosine, whose length it is; the rest
    /// of the recipe is the saved one.
    pub fn resume(
        model: &'a dyn ModuleT,
        vs: &'a mut VarStore,
        name: &str,
        data: Data,
        mut dir: RunDir,
        epochs: Option<u32>,
    ) -> Result<Trainer<'a>, TrainError> {
        let mut state = dir.open()?.ok_or_else(|| TrainError::NoRun {
            dir: dir.path().into(),
        })?;
        if state.model != name {
            return Err(TrainError::OtherModel {
                dir: dir.path().into(),
                saved: state.model,
                model: name.into(),
            });
        }
        let dataset = data.train.dataset();
        if state.dataset != dataset.name()
            || state.train_images != data.train.len()
            || state.validation_images != data.validation_images()
        {
            return Err(TrainError::OtherData {
                dir: dir.path().into(),
                saved: state.dataset,
                saved_images: state.train_images,
                dataset,
                images: data.train.len(),
            });
        }
        if let Some(epochs) = epochs {
            // The cosine schedule's length is the run's epochs: every later epoch's rate hangs
            // on it.
            if matches!(state.recipe.schedule, Schedule::Cosine) && epochs != state.recipe.epochs {
                return Err(TrainError::CosineEpochs {
                    epochs: state.recipe.epochs,
                    asked: epochs,
                });
            }
            if epochs < state.epoch {
                return Err(TrainError::EpochsDone {
                    done: state.epoch,
                    epochs,
                });
            }
            state.recipe.epochs = epochs;
        }
        dir.check(LAST, state.files.last)?;
        dir.check(OPTIMIZER, state.files.optimizer)?;
        state_dict::load_state_dict(vs, dir.file(LAST))?;
        let mut sgd = Sgd::new(vs, sgd_config(&state.recipe));
        let path = dir.file(OPTIMIZER);
        let buffers = state_dict::read_state_dict(&path)?;
        sgd.load_state(buffers)
            .map_err(|mismatches| TrainError::OptimizerState { path, mismatches })?;
        let metrics = dir.metrics(state.epoch)?;
        let data = data.on(vs.device());
        Ok(Trainer {
            model,
            vs,
            sgd,
            data,
            dir,
            state,
            metrics,
            sparsity: None,
        })
    }

    /// Trains with Network Slimming's penalty ([`Sparsity`]); a new run records its λ in
    /// `state.json`, and a resumed one must be given the λ it recorded.
    pub fn with_sparsity(mut self, sparsity: Sparsity) -> Trainer<'a> {
        if self.state.step == 0 {
            self.state.sparsity = sparsity.lambda();
        }
        self.sparsity = Some(sparsity);
        self
    }

    pub fn state(&self) -> &RunState {
        &self.state
    }

    pub fn dir(&self) -> &RunDir {
        &self.dir
    }

    /// Batches per epoch.
    pub fn batches(&self) -> usize {
        self.data.train.len().div_ceil(self.batch_size().get())
    }

    fn batch_size(&self) -> NonZeroUsize {
        NonZeroUsize::new(self.state.recipe.batch_size as usize).expect("checked recipes")
    }

    /// Trains to the end of the recipe, saving a checkpoint after every epoch. When `stop` is
    /// raised it finishes the current batch, saves a checkpoint there and returns
    /// [`Outcome::Stopped`].
    pub fn run(
        &mut self,
        stop: &AtomicBool,
        observer: &mut dyn Observer,
    ) -> Result<Outcome, TrainError> {
        while self.state.epoch < self.state.recipe.epochs {
            let started = Instant::now();
            if !self.train_epoch(stop, observer, started)? || stop.load(Ordering::Relaxed) {
                return self.stop(started);
            }
            let validation = match &self.data.validation {
                Some(set) => match self.evaluate(set, stop, observer)? {
                    Some(figures) => Some(figures),
                    None => return self.stop(started),
                },
                None => None,
            };
            let Some(test) = self.evaluate(&self.data.test, stop, observer)? else {
                return self.stop(started);
            };
            self.end_epoch(validation.as_ref(), &test, started, observer)?;
        }
        Ok(Outcome::Finished)
    }

    /// One evaluation pass over `set`; `None` if `stop` is raised before its end.
    fn evaluate(
        &self,
        set: &ImageSet,
        stop: &AtomicBool,
        observer: &mut dyn Observer,
    ) -> Result<Option<Evaluation>, TchError> {
        let batch = NonZeroUsize::new(EVAL_BATCH).expect("positive");
        evaluate(self.model, set, batch, stop, &mut |done, total| {
            observer.evaluating(done, total)
        })
    }

    /// Trains the batches of the current epoch that are left; `false` when `stop` is raised
    /// before its last batch.
    fn train_epoch(
        &mut self,
        stop: &AtomicBool,
        observer: &mut dyn Observer,
        started: Instant,
    ) -> Result<bool, TrainError> {
        let recipe = &self.state.recipe;
        let (epoch, epochs, seed) = (self.state.epoch, recipe.epochs, recipe.seed);
        let lr = recipe.lr_at(epoch);
        let batches = self.batches();
        let mut images = 0u64;
        let progress = |state: &RunState, images: u64| Progress {
            epoch,
            epochs,
            batch: state.batch,
            batches,
            loss: state.sums.loss / state.sums.images.max(1) as f64,
            accuracy: state.sums.correct as f64 / state.sums.images.max(1) as f64,
            images,
            seconds: started.elapsed().as_secs_f64(),
        };
        observer.epoch_start(&progress(&self.state, 0));
        let augment = self.data.train.dataset().train_augment();
        let loader = self.data.train.epoch_from(
            self.batch_size(),
            augment,
            seed,
            u64::from(epoch),
            self.state.batch,
        );
        for batch in loader {
            if stop.load(Ordering::Relaxed) {
                return Ok(false);
            }
            let sparsity = self.sparsity.as_ref();
            let (loss, right) = sparse_train_step(self.model, &mut self.sgd, sparsity, &batch, lr)?;
            if !loss.is_finite() {
                return Err(TrainError::Diverged {
                    epoch: epoch + 1,
                    batch: self.state.batch + 1,
                    loss,
                });
            }
            let n = batch.labels.size()[0] as u64;
            let sums = &mut self.state.sums;
            sums.loss += loss * n as f64;
            sums.correct += right;
            sums.images += n;
            self.state.batch += 1;
            self.state.step += 1;
            images += n;
            observer.batch(&progress(&self.state, images));
        }
        Ok(true)
    }

    /// After the evaluation passes: the epoch's figures, whether it is the best so far (by
    /// validation accuracy; without validation images no epoch is), its checkpoint.
    fn end_epoch(
        &mut self,
        validation: Option<&Evaluation>,
        test: &Evaluation,
        started: Instant,
        observer: &mut dyn Observer,
    ) -> Result<(), TrainError> {
        let epoch = self.state.epoch;
        let sums = self.state.sums;
        let metrics = EpochMetrics {
            epoch: epoch + 1,
            loss: sums.loss / sums.images.max(1) as f64,
            train_accuracy: sums.correct as f64 / sums.images.max(1) as f64,
            test_accuracy: test.accuracy(),
            test_loss: test.loss,
            val_accuracy: validation.map_or(f64::NAN, Evaluation::accuracy),
            val_loss: validation.map_or(f64::NAN, |v| v.loss),
            lr: self.state.recipe.lr_at(epoch),
            seconds: sums.seconds + started.elapsed().as_secs_f64(),
        };
        let best = validation.is_some_and(|v| {
            self.state
                .best
                .is_none_or(|b| v.accuracy() > b.val_accuracy.unwrap_or(f64::NEG_INFINITY))
        });
        if best {
            self.state.best = Some(Best {
                epoch: epoch + 1,
                test_accuracy: metrics.test_accuracy,
                val_accuracy: Some(metrics.val_accuracy),
            });
        }
        self.metrics.push(metrics.to_line());
        self.state.epoch += 1;
        self.state.batch = 0;
        self.state.sums = EpochSums::default();
        self.save(best, true)?;
        observer.epoch_end(&metrics, best);
        Ok(())
    }

    /// Saves a checkpoint where the run stands and reports it stopped.
    fn stop(&mut self, started: Instant) -> Result<Outcome, TrainError> {
        self.state.sums.seconds += started.elapsed().as_secs_f64();
        self.save(false, false)?;
        Ok(Outcome::Stopped {
            epoch: self.state.epoch,
            batch: self.state.batch,
            batches: self.batches(),
        })
    }

    fn save(&mut self, best: bool, epoch_end: bool) -> Result<(), TrainError> {
        let last = state_dict::safetensors_bytes(self.vs.variables())?;
        let optimizer = state_dict::safetensors_bytes(self.sgd.state())?;
        let metrics = epoch_end.then_some(self.metrics.as_slice());
        self.dir
            .save(&mut self.state, &last, &optimizer, best, metrics)
    }
}

fn sgd_config(recipe: &Recipe) -> SgdConfig {
    SgdConfig {
        momentum: recipe.momentum,
        weight_decay: recipe.weight_decay,
        nesterov: recipe.nesterov,
    }
}
