//! Sensitivity analysis: every conv pruned alone at every rate, without fine-tuning, evaluated on
//! validation images on the fused inference path, what `vggdsl sensitivity` runs.
//!
//! Pruning conv `i` changes nothing before it, so the maps that enter conv `i` are computed once
//! for all the validation images (from the maps that entered conv `i − 1`, one conv's layers
//! further: the unpruned network runs once in all) and each pruned network runs from conv `i`
//! on. A pass split there runs the same ops as a whole one ([`Inference::features_between`]), so
//! the figures are those of the whole pruned network: at rate 0, the unpruned network's exactly.

use std::num::NonZeroUsize;
use std::time::Instant;

use tch::nn::VarStore;
use tch::{Device, Tensor};
use vggdsl::files::sensitivity::{
    Conv, Figures, LatencyConditions, Point, Seconds, SensitivityFile, Validation,
};
use vggdsl::ir;
use vggdsl::Architecture;
use vggdsl_runtime::{inference, Inference, Network};

use crate::data::ImageSet;
use crate::hrank::{self, Inherit};
use crate::latency::{At, LatencyModel, LatencyTable};
use crate::prune::{self, Loaded, PruneError, Request};
use crate::trainer::Evaluation;

/// What to sweep: the model, its weights and criterion (`request`, whose rates are not used),
/// the rates to try, the validation images (the networks are evaluated on their device,
/// [`ImageSet::on`]) and where latency is measured (on the CPU whatever that device: the table is
/// this machine's).
pub struct Sweep<'a> {
    pub request: &'a Request<'a>,
    /// The criterion as `vggdsl prune --by` names it, for the file.
    pub by: &'a str,
    pub rates: &'a [f64],
    pub validation: &'a ImageSet,
    pub batch_size: NonZeroUsize,
    pub latency: At,
}

/// Where a sweep stands: `done` of `total` pruned networks measured, the last `conv` at `rate`.
#[derive(Debug, Clone, Copy)]
pub struct Progress<'a> {
    pub done: usize,
    pub total: usize,
    pub conv: &'a str,
    pub rate: f64,
}

/// Sweeps `sweep.request.model`: the figures of the unpruned network and of each conv pruned
/// alone at each rate (widths by the language's rule and the request's `round_to`; a rate that
/// leaves a conv no filter is skipped), blocks timed with `table`.
pub fn sweep(
    sweep: &Sweep,
    table: &mut LatencyTable,
    progress: &mut dyn FnMut(Progress),
) -> Result<SensitivityFile, PruneError> {
    let request = sweep.request;
    let machine = table.machine().to_owned();
    prune::load(request, |full| {
        let started = Instant::now();
        let mut run = Run::new(sweep, &full, table)?;
        let unpruned = run.unpruned.clone();
        let round_to = prune::round_to(request);
        let starts = conv_layers(full.ir);
        let total = starts.len() * sweep.rates.len();
        let mut convs = Vec::new();
        for (i, (_, name, width)) in full.ir.convs().enumerate() {
            let mut points = Vec::new();
            for (j, &rate) in sweep.rates.iter().enumerate() {
                let mut keep = full.widths();
                keep[i] = request.rule.kept(width, rate, round_to);
                if keep[i] >= 1 {
                    points.push(run.point(&keep, i, starts[i], rate)?);
                }
                let done = i * sweep.rates.len() + j + 1;
                progress(Progress {
                    done,
                    total,
                    conv: name,
                    rate,
                });
            }
            convs.push(Conv {
                name: name.to_owned(),
                width,
                points,
            });
            run.advance(starts[i]..starts.get(i + 1).copied().unwrap_or(run.layers));
        }
        run.seconds.total = started.elapsed().as_secs_f64();
        Ok(SensitivityFile {
            model: request.model.spec.name.clone(),
            weights: request.weights.display().to_string(),
            by: sweep.by.to_owned(),
            round_to,
            validation: Validation {
                dataset: sweep.validation.dataset().name().to_owned(),
                images: sweep.validation.len() as u64,
            },
            latency: LatencyConditions {
                batch: sweep.latency.batch,
                threads: sweep.latency.threads,
                machine,
            },
            unpruned,
            convs,
            seconds: run.seconds,
        })
    })
}

/// A sweep under way: the unpruned network, the maps that enter the conv being pruned (one
/// tensor per batch of validation images), and where the time went.
struct Run<'a, 'b> {
    full: &'a Loaded<'a>,
    device: Device,
    latency: LatencyModel<'b>,
    batches: Batches,
    inference: Inference,
    layers: usize,
    maps: Vec<Tensor>,
    unpruned: Figures,
    seconds: Seconds,
}

impl<'a, 'b> Run<'a, 'b> {
    /// The unpruned network timed whole and run on the validation images.
    fn new(
        sweep: &Sweep,
        full: &'a Loaded<'a>,
        table: &'b mut LatencyTable,
    ) -> Result<Self, PruneError> {
        let mut seconds = Seconds::default();
        let t = Instant::now();
        let latency = LatencyModel::new(table, full.ir, sweep.latency);
        seconds.latency += t.elapsed().as_secs_f64();
        let t = Instant::now();
        let device = sweep.validation.device();
        let inference = cut(full, &full.widths(), device);
        let layers = inference.feature_layers();
        let batches = Batches::new(sweep.validation, sweep.batch_size);
        let maps: Vec<Tensor> = batches.images.iter().map(inference::enter).collect();
        let evaluation = batches.evaluate(&inference, 0..layers, &maps)?;
        seconds.evaluate += t.elapsed().as_secs_f64();
        let (params, macs) = vggdsl::budget::figures(full.ir, &full.widths());
        let unpruned = Figures {
            accuracy: evaluation.accuracy(),
            loss: evaluation.loss,
            params,
            macs,
            latency_ms: latency.unpruned(),
        };
        Ok(Run {
            full,
            device,
            latency,
            batches,
            inference,
            layers,
            maps,
            unpruned,
            seconds,
        })
    }

    /// The figures of the network cut to `keep`, whose conv `conv` (inference layer `start`) is
    /// pruned at `rate`.
    fn point(
        &mut self,
        keep: &[i64],
        conv: usize,
        start: usize,
        rate: f64,
    ) -> Result<Point, PruneError> {
        let t = Instant::now();
        let pruned = cut(self.full, keep, self.device);
        self.seconds.prune += t.elapsed().as_secs_f64();
        let t = Instant::now();
        let evaluation = self
            .batches
            .evaluate(&pruned, start..self.layers, &self.maps)?;
        self.seconds.evaluate += t.elapsed().as_secs_f64();
        let t = Instant::now();
        let latency_ms = self.latency.predict(keep);
        self.seconds.latency += t.elapsed().as_secs_f64();
        let (params, macs) = vggdsl::budget::figures(self.full.ir, keep);
        Ok(Point {
            rate,
            filters: keep[conv],
            accuracy: evaluation.accuracy(),
            loss: evaluation.loss,
            params,
            macs,
            latency_ms,
        })
    }

    /// The maps that enter the next conv (inference layer `layers.end`), from those that entered
    /// this one (`layers.start`).
    fn advance(&mut self, layers: std::ops::Range<usize>) {
        let t = Instant::now();
        let inference = &self.inference;
        self.maps = self
            .maps
            .iter()
            .map(|m| inference.features_between(layers.clone(), m))
            .collect();
        self.seconds.cache += t.elapsed().as_secs_f64();
    }
}

/// The index of each conv's inference layer ([`ir::fusions`] of the features), in conv order.
fn conv_layers(net: &Architecture) -> Vec<usize> {
    let fusions = ir::fusions(&net.features);
    net.convs()
        .map(|(position, ..)| {
            fusions
                .iter()
                .position(|f| f.layer == position)
                .expect("every conv heads an inference layer")
        })
        .collect()
}

/// `full` cut to `keep` filters per conv (its criterion's choice, every tensor copied; all of
/// them at full widths), in its inference form on `device`. The cut is made on the CPU, where the
/// criterion's network is.
fn cut(full: &Loaded, keep: &[i64], device: Device) -> Inference {
    let kept = hrank::choose(full.net, keep, full.criterion);
    let architecture =
        ir::lower(&vggdsl::budget::with_widths(full.ir, keep)).expect("narrower convs lower too");
    let mut vars = VarStore::new(Device::Cpu);
    let net = Network::new(&vars.root(), &architecture);
    hrank::transplant(full.ir, full.vars, &kept, &vars, Inherit::All);
    // Moves the network's own tensors too: they share the variables' storage.
    vars.set_device(device);
    net.to_inference()
}

/// The validation images in batches, in file order, with their labels.
struct Batches {
    images: Vec<Tensor>,
    labels: Vec<Tensor>,
    classes: usize,
}

impl Batches {
    fn new(set: &ImageSet, batch_size: NonZeroUsize) -> Batches {
        let (images, labels) = set
            .in_order(batch_size, set.len())
            .map(|b| (b.images, b.labels))
            .unzip();
        Batches {
            images,
            labels,
            classes: set.dataset().num_classes() as usize,
        }
    }

    /// `net`'s feature layers `layers` and classifier on `maps` (one per batch: what enters the
    /// first of `layers`), against the labels.
    fn evaluate(
        &self,
        net: &Inference,
        layers: std::ops::Range<usize>,
        maps: &[Tensor],
    ) -> Result<Evaluation, tch::TchError> {
        let mut evaluation = Evaluation::new(self.classes);
        for (m, labels) in maps.iter().zip(&self.labels) {
            let logits = net.classify(&net.features_between(layers.clone(), m));
            evaluation.add(&logits, labels)?;
        }
        Ok(evaluation.finish())
    }
}
