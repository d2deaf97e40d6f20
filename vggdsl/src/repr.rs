//! PyTorch's module repr (`print(net)`) in the seed's format: the one home of that text.
//!
//! BatchNorm is printed without the `bias=True` that PyTorch releases newer than the seed add.

use crate::ir::{Architecture, Layer, LayerKind};
use crate::names;

/// A BatchNorm's options after its feature count, as the seed's PyTorch printed them (newer
/// releases insert `bias=True`). The PyTorch target prints its BatchNorm layers with this text too.
pub const NORM_OPTIONS: &str = "eps=1e-05, momentum=0.1, affine=True, track_running_stats=True";

/// One layer's repr, e.g. `Conv2d(3, 64, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1))`.
pub fn layer(kind: &LayerKind) -> String {
    match *kind {
        LayerKind::Conv2d {
            in_channels,
            out_channels,
            kernel,
            stride,
            padding,
        } => format!(
            "Conv2d({in_channels}, {out_channels}, kernel_size=({kernel}, {kernel}), \
             stride=({stride}, {stride}), padding=({padding}, {padding}))"
        ),
        LayerKind::BatchNorm2d { features } | LayerKind::BatchNorm1d { features } => {
            format!("{}({features}, {NORM_OPTIONS})", kind.class_name())
        }
        LayerKind::ReLU => "ReLU(inplace=True)".to_owned(),
        LayerKind::MaxPool2d { kernel, stride } => {
            format!("MaxPool2d(kernel_size={kernel}, stride={stride}, padding=0, dilation=1, ceil_mode=False)")
        }
        LayerKind::Linear {
            in_features,
            out_features,
        } => {
            format!("Linear(in_features={in_features}, out_features={out_features}, bias=True)")
        }
    }
}

/// The whole network's repr, as `print(net)` shows it.
pub fn network(net: &Architecture) -> String {
    let mut out = format!("{}(\n", names::TORCH_CLASS);
    section(&mut out, names::FEATURES, &net.features);
    section(&mut out, names::CLASSIFIER, &net.classifier);
    out.push(')');
    out
}

fn section(out: &mut String, name: &str, layers: &[Layer]) {
    out.push_str(&format!("  ({name}): Sequential(\n"));
    for l in layers {
        out.push_str(&format!("    ({}): {}\n", l.name, layer(&l.kind)));
    }
    out.push_str("  )\n");
}
