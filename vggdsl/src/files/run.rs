//! A training run's folder, as `vggdsl train` writes it (and `examples/ddp_train.py` in part):
//! the names of its files.

/// The weights after the last epoch or stop.
pub const LAST: &str = "last.safetensors";
/// The weights of the epoch with the best test accuracy.
pub const BEST: &str = "best.safetensors";
/// The optimiser's momentum buffers.
pub const OPTIMIZER: &str = "optimizer.safetensors";
/// Where the run stands, so that it can continue exactly.
pub const STATE: &str = "state.json";
/// One line of figures per epoch ([`super::metrics`]).
pub const METRICS: &str = "metrics.jsonl";
