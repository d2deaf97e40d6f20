//! Every name the generated code and its users see: PyTorch module names, state_dict keys and
//! Rust type names. HRank's tools index layers by these names, so they live in one place.

/// The feature layer for cfg entry `index` (the index in `cfg[:-1]`, as the seed's `make_layers`).
pub fn conv(index: usize) -> String {
    format!("conv{index}")
}

pub fn norm(index: usize) -> String {
    format!("norm{index}")
}

pub fn relu(index: usize) -> String {
    format!("relu{index}")
}

pub fn pool(index: usize) -> String {
    format!("pool{index}")
}

/// The two Sequentials of the seed's `VGG`.
pub const FEATURES: &str = "features";
pub const CLASSIFIER: &str = "classifier";

/// The classifier's fixed names (the seed's `OrderedDict`).
pub const LINEAR1: &str = "linear1";
pub const CLASSIFIER_NORM: &str = "norm1";
pub const CLASSIFIER_RELU: &str = "relu1";
pub const LINEAR2: &str = "linear2";

/// The class name PyTorch prints at the top of the repr.
pub const TORCH_CLASS: &str = "VGG";

/// The generated struct holding the `features` layers of model `model`.
pub fn features_type(model: &str) -> String {
    format!("{model}Features")
}

pub fn classifier_type(model: &str) -> String {
    format!("{model}Classifier")
}

/// The generated struct of feature maps at the `relu_cfg` points.
pub fn activations_type(model: &str) -> String {
    format!("{model}Activations")
}

/// The generated BatchNorm-folded inference model.
pub fn inference_type(model: &str) -> String {
    format!("{model}Inference")
}

/// A module's full dotted path, as in PyTorch's `named_modules()`.
pub fn module_path(section: &str, layer: &str) -> String {
    format!("{section}.{layer}")
}
