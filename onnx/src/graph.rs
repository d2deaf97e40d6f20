//! The network's layers as ONNX nodes and its weights as initializers, in module order: the
//! features, the head (AvgPool2d, then flatten), the classifier. Each node's output is named
//! after the node; the last one's is [`crate::OUTPUT`].

use std::borrow::Cow;

use vggdsl::ir::{self, Architecture, Layer, LayerKind, BATCH_NORM_EPS};
use vggdsl::names;

use crate::fold::{self, Norm};
use crate::proto::{
    attribute_proto::AttributeType, tensor_proto::DataType, AttributeProto, GraphProto, NodeProto,
    TensorProto,
};
use crate::{Error, Options, Weights, INPUT, OUTPUT};

pub(crate) fn build(
    net: &Architecture,
    weights: &Weights,
    options: Options,
) -> Result<GraphProto, Error> {
    let mut graph = Graph {
        weights,
        fold_bn: options.fold_bn,
        last: INPUT.to_owned(),
        proto: GraphProto {
            name: Some(net.spec.name.clone()),
            ..Default::default()
        },
    };
    graph.section(names::FEATURES, &net.features)?;
    let (k, s) = (net.head.kernel, net.head.stride);
    graph.node("AveragePool", "avgpool", &[], pool_attributes(k, s));
    graph.node("Flatten", "flatten", &[], vec![int("axis", 1)]);
    graph.section(names::CLASSIFIER, &net.classifier)?;
    let mut proto = graph.proto;
    if let Some(last) = proto.node.last_mut() {
        last.output = vec![OUTPUT.to_owned()];
    }
    Ok(proto)
}

/// The graph as it grows: each node reads the output of the one before.
struct Graph<'a> {
    weights: &'a Weights,
    fold_bn: bool,
    /// The name of the latest output.
    last: String,
    proto: GraphProto,
}

impl Graph<'_> {
    /// One Sequential, grouped as inference groups it ([`ir::fusions`]): a conv or linear, then
    /// the BatchNorm after it (a node of its own, or folded in), then its ReLU.
    fn section(&mut self, section: &str, layers: &[Layer]) -> Result<(), Error> {
        for fusion in ir::fusions(layers) {
            let layer = &layers[fusion.layer];
            let path = names::module_path(section, &layer.name);
            let norm = fusion
                .norm
                .map(|n| names::module_path(section, &layers[n].name));
            match layer.kind {
                LayerKind::Conv2d { .. } | LayerKind::Linear { .. } => {
                    let folded = norm.as_deref().filter(|_| self.fold_bn);
                    self.weighted(&path, &layer.kind, folded)?;
                    if let (Some(norm), false) = (&norm, self.fold_bn) {
                        self.batch_norm(norm);
                    }
                }
                LayerKind::BatchNorm2d { .. } | LayerKind::BatchNorm1d { .. } => {
                    self.batch_norm(&path)
                }
                LayerKind::ReLU => self.node("Relu", &path, &[], vec![]),
                LayerKind::MaxPool2d { kernel, stride } => {
                    let attributes = pool_attributes(kernel, stride);
                    self.node("MaxPool", &path, &[], attributes);
                }
            }
            if fusion.relu {
                let relu = &layers[fusion.norm.unwrap_or(fusion.layer) + 1];
                self.node(
                    "Relu",
                    &names::module_path(section, &relu.name),
                    &[],
                    vec![],
                );
            }
        }
        Ok(())
    }

    /// A Conv or Gemm node at `path`, with the BatchNorm at `folded` folded into its weights.
    fn weighted(
        &mut self,
        path: &str,
        kind: &LayerKind,
        folded: Option<&str>,
    ) -> Result<(), Error> {
        let (weight_key, bias_key) = (format!("{path}.weight"), format!("{path}.bias"));
        let (weight, bias) = (&self.weights[&weight_key], &self.weights[&bias_key]);
        let (weight_data, bias_data) = match folded {
            None => (Cow::Borrowed(weight.data()), Cow::Borrowed(bias.data())),
            Some(norm) => {
                let tensor = |name: &str| self.weights[&format!("{norm}.{name}")].data();
                let norm_tensors = Norm {
                    weight: tensor("weight"),
                    bias: tensor("bias"),
                    running_mean: tensor("running_mean"),
                    running_var: tensor("running_var"),
                    eps: BATCH_NORM_EPS,
                };
                let (w, b) =
                    fold::fold(weight.data(), bias.data(), &norm_tensors).ok_or_else(|| {
                        Error::FoldOverflow {
                            layer: path.to_owned(),
                            norm: norm.to_owned(),
                        }
                    })?;
                (Cow::Owned(w), Cow::Owned(b))
            }
        };
        let (weight_shape, bias_shape) = (weight.shape().to_vec(), bias.shape().to_vec());
        self.initializer(&weight_key, weight_shape, &weight_data);
        self.initializer(&bias_key, bias_shape, &bias_data);
        let inputs = [weight_key, bias_key];
        match *kind {
            LayerKind::Conv2d {
                kernel,
                stride,
                padding,
                ..
            } => {
                let attributes = vec![
                    ints("kernel_shape", &[kernel, kernel]),
                    ints("strides", &[stride, stride]),
                    ints("pads", &[padding; 4]),
                ];
                self.node("Conv", path, &inputs, attributes);
            }
            // PyTorch's `x @ weight.T + bias`.
            _ => self.node("Gemm", path, &inputs, vec![int("transB", 1)]),
        }
        Ok(())
    }

    /// An eval-mode BatchNormalization node at `path`, with its four tensors.
    fn batch_norm(&mut self, path: &str) {
        let keys: Vec<String> = ["weight", "bias", "running_mean", "running_var"]
            .iter()
            .map(|name| format!("{path}.{name}"))
            .collect();
        for key in &keys {
            let t = &self.weights[key];
            self.initializer(key, t.shape().to_vec(), t.data());
        }
        let epsilon = AttributeProto {
            name: Some("epsilon".into()),
            r#type: Some(AttributeType::Float as i32),
            f: Some(BATCH_NORM_EPS as f32),
            ..Default::default()
        };
        self.node("BatchNormalization", path, &keys, vec![epsilon]);
    }

    /// A float32 initializer, its elements little-endian in `raw_data`.
    fn initializer(&mut self, key: &str, dims: Vec<i64>, data: &[f32]) {
        self.proto.initializer.push(TensorProto {
            dims,
            data_type: Some(DataType::Float as i32),
            name: Some(key.to_owned()),
            raw_data: Some(data.iter().flat_map(|v| v.to_le_bytes()).collect()),
            ..Default::default()
        });
    }

    /// A node named `name` reading the latest output, then `inputs`; its output is `name`.
    fn node(&mut self, op: &str, name: &str, inputs: &[String], attribute: Vec<AttributeProto>) {
        let input = std::iter::once(self.last.clone())
            .chain(inputs.iter().cloned())
            .collect();
        self.proto.node.push(NodeProto {
            input,
            output: vec![name.to_owned()],
            name: Some(name.to_owned()),
            op_type: Some(op.to_owned()),
            attribute,
            ..Default::default()
        });
        self.last = name.to_owned();
    }
}

/// A square pool without padding (floor mode, as PyTorch's default).
fn pool_attributes(kernel: i64, stride: i64) -> Vec<AttributeProto> {
    vec![
        ints("kernel_shape", &[kernel, kernel]),
        ints("strides", &[stride, stride]),
    ]
}

fn int(name: &str, value: i64) -> AttributeProto {
    AttributeProto {
        name: Some(name.into()),
        r#type: Some(AttributeType::Int as i32),
        i: Some(value),
        ..Default::default()
    }
}

fn ints(name: &str, values: &[i64]) -> AttributeProto {
    AttributeProto {
        name: Some(name.into()),
        r#type: Some(AttributeType::Ints as i32),
        ints: values.to_vec(),
        ..Default::default()
    }
}
