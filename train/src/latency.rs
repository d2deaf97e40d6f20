//! How long a network takes on this machine's `to_inference()` path, for the latency targets of
//! `vggdsl prune` and the latency column of `vggdsl sensitivity`.
//!
//! A network is its conv blocks (each fused conv + BatchNorm + ReLU with the max-pool after it,
//! if any) and the rest of a pass (the layout the batch enters in, the head, the classifier).
//! Each block is timed once per machine, thread count, batch size and shape, and kept in a
//! [`LatencyTable`] file beside the kernel tuner's; a network's latency is the sum of its
//! blocks plus the rest, measured once on the whole unpruned network ([`LatencyModel`]). A
//! search over widths then times only the blocks it has not met, and a network chosen for a
//! target is timed whole to check it.
//!
//! Times are medians of timed runs after untimed ones (the tuner's choices and oneDNN's packing
//! happen there), on a random batch and the model's seeded init weights: the time of a pass does
//! not depend on the values.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use tch::nn::VarStore;
use tch::{Device, Kind, Tensor};
use vggdsl::ir::LayerKind;
use vggdsl::Architecture;
use vggdsl_runtime::machine::MachineFile;
use vggdsl_runtime::{inference, Inference, Network};

/// The batch size and libtorch thread count a latency is measured at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct At {
    pub batch: i64,
    pub threads: i32,
}

/// A conv block as the inference model runs it: a fused conv + ReLU from `in_channels` to
/// `out_channels` on a `map`, and the 2×2 max-pool right after it when `pool`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Block {
    pub in_channels: i64,
    pub out_channels: i64,
    pub map: [i64; 2],
    pub pool: bool,
}

impl Block {
    /// The table's key: `threads 2, batch 1: conv 3→64 on 32×32, pool`.
    fn key(&self, at: At) -> String {
        format!(
            "threads {}, batch {}: conv {}→{} on {}×{}{}",
            at.threads,
            at.batch,
            self.in_channels,
            self.out_channels,
            self.map[0],
            self.map[1],
            if self.pool { ", pool" } else { "" }
        )
    }

    /// A model of this block alone (no BatchNorm: folded, it costs nothing at inference).
    fn model(&self) -> Architecture {
        let pool = if self.pool { "M, " } else { "" };
        let text = format!(
            "model Block {{ input = [{}, {}, {}] cfg = [{}, {pool}1] bn = false num_classes = 1 \
             init = pytorch }}",
            self.in_channels, self.map[0], self.map[1], self.out_channels
        );
        vggdsl::check_source(&text)
            .expect("a block of a checked model is a model")
            .remove(0)
    }
}

/// Every conv block of `net`, in order.
pub fn blocks(net: &Architecture) -> Vec<Block> {
    let f = &net.features;
    f.iter()
        .enumerate()
        .filter_map(|(i, l)| match l.kind {
            LayerKind::Conv2d {
                in_channels,
                out_channels,
                ..
            } => Some(Block {
                in_channels,
                out_channels,
                map: [l.in_shape[1], l.in_shape[2]],
                pool: f[i + 1..]
                    .iter()
                    .find(|n| !matches!(n.kind, LayerKind::BatchNorm2d { .. } | LayerKind::ReLU))
                    .is_some_and(|n| matches!(n.kind, LayerKind::MaxPool2d { .. })),
            }),
            _ => None,
        })
        .collect()
}

/// Measured blocks of one machine, and the file they are kept in.
#[derive(Debug)]
pub struct LatencyTable {
    /// Milliseconds per pass, by [`Block::key`].
    file: MachineFile<f64>,
    /// Blocks timed by this process, and the wall time that took.
    pub timed: usize,
    pub seconds: f64,
}

impl LatencyTable {
    /// The blocks kept in `path` for `machine` (none if `path` is `None`, missing, unreadable,
    /// or for another machine), to be kept there.
    pub fn open(path: Option<PathBuf>, machine: &str) -> Self {
        Self::of(MachineFile::open(path, machine))
    }

    /// This machine's table in the user's cache folder (`$XDG_CACHE_HOME/vggdsl/latency/`, else
    /// `~/.cache/vggdsl/latency/`), a file per machine.
    pub fn for_this_machine() -> Self {
        Self::of(MachineFile::for_this_machine("latency"))
    }

    fn of(file: MachineFile<f64>) -> Self {
        LatencyTable {
            file,
            timed: 0,
            seconds: 0.0,
        }
    }

    /// The machine the table holds blocks of.
    pub fn machine(&self) -> &str {
        self.file.machine()
    }

    /// The file the blocks are kept in, if any.
    pub fn path(&self) -> Option<&Path> {
        self.file.path()
    }

    /// Milliseconds of one pass of `block` at `at`: from the table, or timed now and kept.
    pub fn block(&mut self, block: Block, at: At) -> f64 {
        let key = block.key(at);
        if let Some(&ms) = self.file.get(&key) {
            return ms;
        }
        let start = Instant::now();
        let ms = time_features(&block.model(), at, BLOCK_TIMING);
        self.timed += 1;
        self.seconds += start.elapsed().as_secs_f64();
        // A table that cannot be written keeps the block in memory.
        self.file.insert(&key, ms);
        ms
    }

    /// The sum of `net`'s blocks, in milliseconds.
    pub fn blocks(&mut self, net: &Architecture, at: At) -> f64 {
        blocks(net).into_iter().map(|b| self.block(b, at)).sum()
    }
}

/// A network's latency as its blocks' sum plus the rest of a pass, which is measured once on the
/// whole network the widths are cut from and corrected by each network timed whole since.
#[derive(Debug)]
pub struct LatencyModel<'a> {
    table: &'a mut LatencyTable,
    net: Architecture,
    at: At,
    /// Milliseconds of a pass besides the blocks.
    rest: f64,
    /// Milliseconds of `net` timed whole.
    unpruned: f64,
}

impl<'a> LatencyModel<'a> {
    /// The model of networks cut from `net` (unpruned), timing `net` whole for the rest.
    pub fn new(table: &'a mut LatencyTable, net: &Architecture, at: At) -> Self {
        let whole = measure(net, at);
        let rest = whole - table.blocks(net, at);
        LatencyModel {
            table,
            net: net.clone(),
            at,
            rest,
            unpruned: whole,
        }
    }

    /// Milliseconds of the unpruned network, timed whole.
    pub fn unpruned(&self) -> f64 {
        self.unpruned
    }

    /// Milliseconds of `net` with its convs `widths` wide, as the table and the rest predict (the
    /// unpruned widths: the time taken whole).
    pub fn predict(&mut self, widths: &[i64]) -> f64 {
        let pruned = vggdsl::ir::lower(&vggdsl::budget::with_widths(&self.net, widths))
            .expect("narrower convs lower too");
        if pruned.features == self.net.features {
            return self.unpruned;
        }
        self.table.blocks(&pruned, self.at) + self.rest
    }

    /// Times the network of `widths` whole (the unpruned widths: its time already taken): its
    /// milliseconds, after which the rest is what this network left besides its blocks (so the
    /// next prediction for it is the measurement).
    pub fn measure(&mut self, widths: &[i64]) -> f64 {
        let pruned = vggdsl::ir::lower(&vggdsl::budget::with_widths(&self.net, widths))
            .expect("narrower convs lower too");
        let whole = if pruned.features == self.net.features {
            self.unpruned
        } else {
            measure(&pruned, self.at)
        };
        self.rest = whole - self.table.blocks(&pruned, self.at);
        whole
    }
}

/// How long timing goes on: at least `runs.0` timed runs, then until `budget` has passed or
/// `runs.1` runs are done; after `warmup` untimed ones.
#[derive(Debug, Clone, Copy)]
struct Timing {
    warmup: usize,
    runs: (usize, usize),
    budget: Duration,
}

const BLOCK_TIMING: Timing = Timing {
    warmup: 3,
    runs: (5, 50),
    budget: Duration::from_millis(100),
};

const NETWORK_TIMING: Timing = Timing {
    warmup: 3,
    runs: (10, 100),
    budget: Duration::from_millis(500),
};

/// Milliseconds of one pass of `net`'s `to_inference()` at `at`: the median of timed runs.
pub fn measure(net: &Architecture, at: At) -> f64 {
    time_with(net, at, NETWORK_TIMING, |inference, xs| {
        drop(inference.forward(xs));
    })
}

/// Milliseconds of one pass of `net`'s `to_inference()` at `at`: the median of exactly `runs`
/// timed runs after `warmup` untimed ones (what `vggdsl latency` reports).
pub fn measure_runs(net: &Architecture, at: At, warmup: usize, runs: usize) -> f64 {
    let timing = Timing {
        warmup,
        runs: (runs, runs),
        budget: Duration::ZERO,
    };
    time_with(net, at, timing, |inference, xs| {
        drop(inference.forward(xs));
    })
}

/// Milliseconds of the feature layers of `net` alone (a block's model).
fn time_features(net: &Architecture, at: At, timing: Timing) -> f64 {
    time_with(net, at, timing, |inference, xs| {
        let entered = inference::enter(xs);
        drop(inference.features_between(0..inference.feature_layers(), &entered));
    })
}

/// The median milliseconds of `run` on `net`'s inference form and a random batch, at `at`'s
/// thread count (restored after).
fn time_with(net: &Architecture, at: At, timing: Timing, run: impl Fn(&Inference, &Tensor)) -> f64 {
    let threads = tch::get_num_threads();
    tch::set_num_threads(at.threads);
    let vs = VarStore::new(Device::Cpu);
    let inference = Network::new(&vs.root(), net).to_inference();
    let [c, h, w] = net.spec.input;
    let xs = Tensor::randn([at.batch, c, h, w], (Kind::Float, Device::Cpu));
    for _ in 0..timing.warmup {
        run(&inference, &xs);
    }
    let start = Instant::now();
    let mut times = Vec::new();
    while times.len() < timing.runs.0
        || (times.len() < timing.runs.1 && start.elapsed() < timing.budget)
    {
        let t = Instant::now();
        run(&inference, &xs);
        times.push(t.elapsed().as_secs_f64() * 1e3);
    }
    tch::set_num_threads(threads);
    times.sort_by(f64::total_cmp);
    times[times.len() / 2]
}
