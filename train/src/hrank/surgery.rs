//! Cutting a network down to the filters each conv keeps: every tensor that follows a filter
//! loses that filter's slice.
//!
//! For conv `i` keeping filters `K_i` (and the conv before it `K_{i−1}`): its weight takes rows
//! `K_i` and input channels `K_{i−1}`, its bias rows `K_i`; its BatchNorm's weight, bias and
//! running statistics take `K_i` (`num_batches_tracked` is copied); `linear1` takes the input
//! features of the last conv's kept channels, channel `c` owning the flattened features
//! `c·H·W … (c+1)·H·W − 1` after the head. Everything else is copied whole. Each slice is an
//! `index_select`, so values are copied exactly.

use std::collections::HashMap;

use tch::nn::VarStore;
use tch::Tensor;
use vggdsl::ir::LayerKind;
use vggdsl::{names, Architecture};

/// What the pruned network inherits from the unpruned one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Inherit {
    /// Every tensor, sliced to the kept filters.
    #[default]
    All,
    /// Only the conv kernels (weights), as HRankPlus does; conv biases, BatchNorm parameters
    /// and statistics and the classifier keep the pruned network's fresh init.
    ConvOnly,
}

/// The index lists a tensor is sliced with: `(dimension, indices)`.
type Slices = Vec<(i64, Vec<i64>)>;

/// How each tensor of `full` is sliced for the kept filters `kept` (one list per conv), by
/// state_dict key; keys not listed are copied whole.
fn slices(full: &Architecture, kept: &[Vec<i64>]) -> HashMap<String, Slices> {
    let key =
        |section, layer: &str, tensor| format!("{}.{tensor}", names::module_path(section, layer));
    let mut out = HashMap::new();
    let mut kept = kept.iter();
    let mut previous: Option<&Vec<i64>> = None;
    for layer in &full.features {
        match layer.kind {
            LayerKind::Conv2d { .. } => {
                let rows = kept.next().expect("one kept list per conv");
                let mut weight = vec![(0, rows.clone())];
                weight.extend(previous.map(|p| (1, p.clone())));
                out.insert(key(names::FEATURES, &layer.name, "weight"), weight);
                out.insert(
                    key(names::FEATURES, &layer.name, "bias"),
                    vec![(0, rows.clone())],
                );
                previous = Some(rows);
            }
            LayerKind::BatchNorm2d { .. } => {
                let rows = previous.expect("a BatchNorm2d follows a conv");
                for tensor in ["weight", "bias", "running_mean", "running_var"] {
                    out.insert(
                        key(names::FEATURES, &layer.name, tensor),
                        vec![(0, rows.clone())],
                    );
                }
            }
            _ => {}
        }
    }
    let last = previous.expect("a network has a conv");
    let channels = full.features.last().map_or(1, |l| l.out_shape[0]);
    let per_channel = full.head.flat / channels;
    let features = last
        .iter()
        .flat_map(|&c| c * per_channel..(c + 1) * per_channel)
        .collect();
    out.insert(
        key(names::CLASSIFIER, names::LINEAR1, "weight"),
        vec![(1, features)],
    );
    out
}

/// Copies into `pruned` (the variables of the network `full` pruned to `kept`, one ascending
/// index list per conv) the tensors of `full_vars`, sliced to the kept filters; with
/// [`Inherit::ConvOnly`] only the conv kernels. Variables not copied keep their values.
///
/// Panics if `pruned` is not `full` with conv `i` `kept[i].len()` wide: the caller builds it so.
pub fn transplant(
    full: &Architecture,
    full_vars: &VarStore,
    kept: &[Vec<i64>],
    pruned: &VarStore,
    inherit: Inherit,
) {
    let slices = slices(full, kept);
    let source = full_vars.variables();
    let is_conv_weight = |key: &str| {
        full.features.iter().any(|l| {
            matches!(l.kind, LayerKind::Conv2d { .. })
                && key == format!("{}.weight", names::module_path(names::FEATURES, &l.name))
        })
    };
    tch::no_grad(|| {
        for (key, mut target) in pruned.variables() {
            if inherit == Inherit::ConvOnly && !is_conv_weight(&key) {
                continue;
            }
            let mut tensor = source[&key].shallow_clone();
            for (dim, indices) in slices.get(&key).into_iter().flatten() {
                let index = Tensor::from_slice(indices).to_device(tensor.device());
                tensor = tensor.index_select(*dim, &index);
            }
            assert_eq!(
                tensor.size(),
                target.size(),
                "{key}: the pruned network has the kept widths"
            );
            target.copy_(&tensor);
        }
    });
}
