//! A network built at run time from a checked model, for programs that read `.vgg` files rather
//! than compile them: what the generated struct does (PyTorch's names, init draws, forward pass,
//! repr, inference model), done by walking the compiler's IR with the same runtime layers and
//! calls, so the two hold and compute the same tensors.

use std::fmt;
use std::path::{Path as FsPath, PathBuf};

use tch::nn::{Module, ModuleT, Path};
use tch::Tensor;
use vggdsl::init::Op;
use vggdsl::ir::{self, LayerKind};
use vggdsl::names;
use vggdsl::spec::ModelSpec;
use vggdsl::PickError;

use crate::inference::{self, ConvReLU2d, FusedLinear};
use crate::memory::Arena;
use crate::nn::{AvgPool2d, BatchNorm, Conv2d, Linear, MaxPool2d, ReLU};

/// One layer of a Sequential: the runtime type the generated struct's field has.
#[derive(Debug)]
pub enum Layer {
    Conv2d(Conv2d),
    BatchNorm(BatchNorm),
    ReLU(ReLU),
    MaxPool2d(MaxPool2d),
    Linear(Linear),
}

impl Layer {
    /// Creates the layer's variables under `p`, drawing PyTorch's defaults as generated `new` does.
    fn new(p: Path, kind: &LayerKind) -> Self {
        match *kind {
            LayerKind::Conv2d {
                in_channels,
                out_channels,
                kernel,
                stride,
                padding,
            } => Layer::Conv2d(Conv2d::new(
                p,
                in_channels,
                out_channels,
                kernel,
                stride,
                padding,
            )),
            LayerKind::BatchNorm2d { features } | LayerKind::BatchNorm1d { features } => {
                Layer::BatchNorm(BatchNorm::new(p, features))
            }
            LayerKind::ReLU => Layer::ReLU(ReLU),
            LayerKind::MaxPool2d { kernel, stride } => {
                Layer::MaxPool2d(MaxPool2d::new(kernel, stride))
            }
            LayerKind::Linear {
                in_features,
                out_features,
            } => Layer::Linear(Linear::new(p, in_features, out_features)),
        }
    }

    /// The call the generated forward makes for this layer (ReLU rectifies its input in place).
    #[inline]
    fn forward(&self, xs: Tensor, train: bool) -> Tensor {
        match self {
            Layer::Conv2d(l) => l.forward(&xs),
            Layer::BatchNorm(l) => l.forward_t(&xs, train),
            Layer::ReLU(l) => l.forward(xs),
            Layer::MaxPool2d(l) => l.forward(&xs),
            Layer::Linear(l) => l.forward(&xs),
        }
    }

    /// The learnable tensor an init rule sets (`weight` or `bias`).
    fn tensor_mut(&mut self, name: &str) -> Option<&mut Tensor> {
        let (weight, bias) = match self {
            Layer::Conv2d(l) => (&mut l.weight, &mut l.bias),
            Layer::BatchNorm(l) => (&mut l.weight, &mut l.bias),
            Layer::Linear(l) => (&mut l.weight, &mut l.bias),
            Layer::ReLU(_) | Layer::MaxPool2d(_) => return None,
        };
        match name {
            "weight" => Some(weight),
            "bias" => Some(bias),
            _ => None,
        }
    }
}

/// A VGG network built from a checked model at run time. Its variables carry PyTorch's
/// `state_dict` keys, so [`crate::load_state_dict`] and [`crate::save_state_dict`] work on its
/// `VarStore` as on a generated model's.
#[derive(Debug)]
pub struct Network {
    ir: vggdsl::Architecture,
    /// The features, then the classifier, in module order (`ir.layers()` order).
    layers: Vec<Layer>,
}

impl Network {
    /// Creates every variable under `p` with its PyTorch `state_dict` name, drawing PyTorch's
    /// default initialisation in construction order, then applies the model's init rules: the
    /// same draws as the generated struct's `new` (and PyTorch) after the same seed.
    pub fn new(p: &Path, net: &vggdsl::Architecture) -> Self {
        let layers = net
            .layers()
            .map(|(section, l)| Layer::new(p / section / &l.name, &l.kind))
            .collect();
        let mut network = Self {
            ir: net.clone(),
            layers,
        };
        network.init();
        network
    }

    /// Reads and checks a `.vgg` file and builds its model `name`, or its only model when `name` is
    /// `None` ([`vggdsl::pick`]).
    pub fn from_file(
        p: &Path,
        path: impl AsRef<FsPath>,
        name: Option<&str>,
    ) -> Result<Self, ModelError> {
        let path = path.as_ref();
        let models = load_models(path)?;
        let net = vggdsl::pick(&models, name, &path.display().to_string())?;
        Ok(Self::new(p, net))
    }

    /// The model's init rules as the seed's `_initialize_weights` applies them, in
    /// [`vggdsl::init::plan`]'s order, which is what makes the draws match.
    fn init(&mut self) {
        for step in vggdsl::init::plan(&self.ir) {
            let path = names::module_path(step.section, &step.layer);
            let tensor = self
                .layer_mut(&path)
                .and_then(|l| l.tensor_mut(step.tensor))
                .expect("init::plan names learnable tensors of this network's layers");
            match step.op {
                Op::Normal { mean, std } => crate::init::normal(tensor, mean, std),
                Op::Uniform { low, high } => crate::init::uniform(tensor, low, high),
                Op::Constant(v) => crate::init::constant(tensor, v),
            }
        }
    }

    /// The checked network this was built from: layers, shapes, `relu_cfg`, `conv_cfg`, head.
    pub fn ir(&self) -> &vggdsl::Architecture {
        &self.ir
    }

    /// The model as written, settings resolved.
    pub fn spec(&self) -> &ModelSpec {
        &self.ir.spec
    }

    /// The `features` layers; index `i` is `ir().features[i]`.
    pub fn features(&self) -> &[Layer] {
        &self.layers[..self.ir.features.len()]
    }

    /// The `classifier` layers; index `i` is `ir().classifier[i]`.
    pub fn classifier(&self) -> &[Layer] {
        &self.layers[self.ir.features.len()..]
    }

    /// The layer with PyTorch module name `path`, e.g. `features.conv0` or `classifier.linear1`.
    pub fn layer(&self, path: &str) -> Option<&Layer> {
        self.index(path).map(|i| &self.layers[i])
    }

    fn layer_mut(&mut self, path: &str) -> Option<&mut Layer> {
        self.index(path).map(|i| &mut self.layers[i])
    }

    fn index(&self, path: &str) -> Option<usize> {
        self.ir
            .layers()
            .position(|(section, l)| names::module_path(section, &l.name) == path)
    }

    /// Positions in `features` where each conv block's output is read, for every conv including
    /// the last: its ReLU, or the pool that directly follows it. All but the last are
    /// `ir().relu_cfg`; the last is where ranking the last conv's filters reads.
    pub fn block_outputs(&self) -> &[usize] {
        &self.ir.block_outputs
    }

    /// The forward pass, handing `tap` each conv block's output with its position (see
    /// [`Network::block_outputs`]). Nothing modifies these maps afterwards, so `shallow_clone`
    /// keeps them.
    pub fn forward_tapped(
        &self,
        xs: &Tensor,
        train: bool,
        mut tap: impl FnMut(usize, &Tensor),
    ) -> Tensor {
        self.run(xs, train, Some(&mut tap))
    }

    /// The forward pass. Without `tap`, a ReLU and the max-pool right after it run as one
    /// ([`MaxPool2d::forward_rectified`]): the same numbers, without the full-size rectified map
    /// that only a tap would read.
    fn run(&self, xs: &Tensor, train: bool, mut tap: Option<Tap<'_>>) -> Tensor {
        let (features, classifier) = self.layers.split_at(self.ir.features.len());
        let mut outputs = self.ir.block_outputs.iter().peekable();
        // A handle on the caller's tensor; the checker never puts the in-place ReLU first.
        let mut xs = xs.shallow_clone();
        let mut layers = features.iter().enumerate().peekable();
        while let Some((position, layer)) = layers.next() {
            if let (None, Layer::ReLU(_), Some((_, Layer::MaxPool2d(pool)))) =
                (&tap, layer, layers.peek())
            {
                xs = pool.forward_rectified(xs);
                layers.next();
                continue;
            }
            xs = layer.forward(xs, train);
            if let Some(tap) = tap.as_mut() {
                if outputs.next_if(|&&p| p == position).is_some() {
                    tap(position, &xs);
                }
            }
        }
        let mut xs = head(&self.ir).forward(&xs).flatten(1, -1);
        for layer in classifier {
            xs = layer.forward(xs, train);
        }
        xs
    }

    /// The forward pass that also returns the feature maps at `ir().relu_cfg`, with their layer
    /// names (the generated `…Activations` fields).
    pub fn forward_with_activations(
        &self,
        xs: &Tensor,
        train: bool,
    ) -> (Tensor, Vec<(&str, Tensor)>) {
        let relu_cfg = &self.ir.relu_cfg;
        let mut maps = Vec::with_capacity(relu_cfg.len());
        let ys = self.forward_tapped(xs, train, |position, map| {
            if relu_cfg.contains(&position) {
                let name = self.ir.features[position].name.as_str();
                maps.push((name, map.shallow_clone()));
            }
        });
        (ys, maps)
    }

    /// The inference model from the current weights and running statistics, fused as the
    /// generated `to_inference` fuses: each conv with its BatchNorm2d and ReLU, linear1 with
    /// norm1 and relu1.
    pub fn to_inference(&self) -> Inference {
        Inference {
            features: fuse(self.features(), &self.ir.features),
            head: head(&self.ir),
            classifier: fuse(self.classifier(), &self.ir.classifier),
            activations: Arena::new(),
        }
    }
}

/// What [`Network::forward_tapped`] hands each conv block's output to, with its position.
type Tap<'a> = &'a mut dyn FnMut(usize, &Tensor);

/// The seed's `nn.AvgPool2d` head between the Sequentials (flattening follows).
fn head(net: &vggdsl::Architecture) -> AvgPool2d {
    AvgPool2d::new(net.head.kernel, net.head.stride)
}

impl ModuleT for Network {
    fn forward_t(&self, xs: &Tensor, train: bool) -> Tensor {
        self.run(xs, train, None)
    }
}

/// PyTorch's `print(net)`, the generated struct's `REPR`.
impl fmt::Display for Network {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&vggdsl::repr::network(&self.ir))
    }
}

/// One layer of an [`Inference`] model.
#[derive(Debug)]
enum Fused {
    ConvReLU2d(Box<ConvReLU2d>),
    MaxPool2d(MaxPool2d),
    Linear(FusedLinear),
}

/// The inference layers of one Sequential, grouped as the generated `to_inference` groups them
/// ([`ir::fusions`]): each BatchNorm folded into the conv or linear before it, the ReLU fused.
fn fuse(layers: &[Layer], ir_layers: &[ir::Layer]) -> Vec<Fused> {
    let norm = |f: &ir::Fusion| match f.norm.map(|n| &layers[n]) {
        Some(Layer::BatchNorm(norm)) => Some(norm),
        _ => None,
    };
    ir::fusions(ir_layers)
        .iter()
        .map(|f| match &layers[f.layer] {
            Layer::Conv2d(conv) => Fused::ConvReLU2d(Box::new(ConvReLU2d::new(conv, norm(f)))),
            Layer::Linear(linear) => Fused::Linear(FusedLinear::new(linear, norm(f), f.relu)),
            Layer::MaxPool2d(pool) => Fused::MaxPool2d(*pool),
            Layer::BatchNorm(_) | Layer::ReLU(_) => {
                unreachable!("ir::fusions folds BatchNorm and ReLU into the layer before them")
            }
        })
        .collect()
}

impl Fused {
    #[inline]
    fn forward(&self, xs: &Tensor) -> Tensor {
        match self {
            Fused::ConvReLU2d(l) => l.forward(xs),
            Fused::MaxPool2d(l) => l.forward(xs),
            Fused::Linear(l) => l.forward(xs),
        }
    }
}

/// A [`Network`] for inference, the run-time form of the generated `…Inference` struct: built
/// from the same [`crate::inference`] layers, it computes the same numbers.
#[derive(Debug)]
pub struct Inference {
    features: Vec<Fused>,
    head: AvgPool2d,
    classifier: Vec<Fused>,
    activations: Arena,
}

impl Inference {
    /// Inference forward pass; no gradients are recorded.
    pub fn forward(&self, xs: &Tensor) -> Tensor {
        let _pass = self.activations.pass();
        let xs = self.features_between(0..self.features.len(), &inference::enter(xs));
        self.classify(&xs)
    }

    /// The arena its passes take their large maps from: what it holds between passes.
    pub fn activations(&self) -> &Arena {
        &self.activations
    }

    /// How many inference layers the features are: one per [`ir::fusions`] entry of the
    /// model's features (a conv with its BatchNorm and ReLU is one).
    pub fn feature_layers(&self) -> usize {
        self.features.len()
    }

    /// The feature layers `layers` (indices as [`Inference::feature_layers`] counts) on `xs`: the
    /// batch as [`inference::enter`] lays it out for the first layer, or what the layers before
    /// `layers` returned. A pass split in two runs the same ops as [`Inference::forward`]: the
    /// maps before a layer can be kept and the rest run again on them alone.
    pub fn features_between(&self, layers: std::ops::Range<usize>, xs: &Tensor) -> Tensor {
        let _guard = tch::no_grad_guard();
        let _pass = self.activations.pass();
        let mut xs = xs.shallow_clone();
        for layer in &self.features[layers] {
            xs = layer.forward(&xs);
        }
        xs
    }

    /// The head and the classifier on the features' output: the logits.
    pub fn classify(&self, xs: &Tensor) -> Tensor {
        let _guard = tch::no_grad_guard();
        let _pass = self.activations.pass();
        let mut xs = inference::leave(self.head.forward(xs)).flatten(1, -1);
        for layer in &self.classifier {
            xs = layer.forward(&xs);
        }
        xs
    }
}

impl Module for Inference {
    fn forward(&self, xs: &Tensor) -> Tensor {
        Inference::forward(self, xs)
    }
}

/// Why a `.vgg` file gives no network.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The checker's diagnostics, rendered rustc-style by `Display`.
    #[error("{0}")]
    Invalid(vggdsl::Diagnostics),
    /// No model of the file has the name asked for, or it has several and none was named.
    #[error("{pick}{}", match pick {
        PickError::Several { .. } => "; name the one to build",
        PickError::NoSuchModel { .. } => "",
    })]
    Pick {
        #[from]
        pick: PickError,
    },
}

/// Reads and checks a `.vgg` file: its checked models, in file order.
pub fn load_models(path: impl AsRef<FsPath>) -> Result<Vec<vggdsl::Architecture>, ModelError> {
    let path = path.as_ref();
    let source = std::fs::read_to_string(path).map_err(|source| ModelError::Read {
        path: path.to_owned(),
        source,
    })?;
    vggdsl::load(&source, &path.display().to_string()).map_err(ModelError::Invalid)
}
