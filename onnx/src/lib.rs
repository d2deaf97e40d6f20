//! A checked vggdsl network and its weights written as an ONNX model, with no PyTorch involved:
//! the `.vgg` model and its state_dict are the whole network.
//!
//! The graph has the network's layers as ONNX operators — Conv, BatchNormalization, Relu, MaxPool,
//! the head's AveragePool, Flatten, Gemm — each node named by its PyTorch module path
//! (`features.conv0`, `classifier.linear1`; the head's `avgpool` and `flatten`), weights as
//! initializers named by their state_dict keys (`features.conv0.weight`), one float32 input
//! `input` of shape `[batch, C, H, W]` with a dynamic `batch`, and the output `logits` of shape
//! `[batch, num_classes]`. BatchNorm's `num_batches_tracked`, which inference never reads, is
//! left out. With [`Options::fold_bn`] each BatchNorm is folded into the conv or linear before it,
//! as the run-time `to_inference()` folds it (in f64, rounded once); the folded tensors keep the
//! conv's and linear's keys.
//!
//! ```no_run
//! # fn weights() -> vggdsl_onnx::Weights { unimplemented!() }
//! let nets = vggdsl::load("model Tiny { cfg = [8, M, 16] }", "tiny.vgg").unwrap();
//! let options = vggdsl_onnx::Options { fold_bn: true };
//! let bytes = vggdsl_onnx::export(&nets[0], &weights(), options).expect("the model's weights");
//! std::fs::write("tiny.onnx", bytes).unwrap();
//! ```

mod fold;
mod graph;
/// ONNX's messages (`onnx.proto` of ONNX 1.22.0), for reading what [`model`] builds.
// The schema's comments become the docs, indented as the schema indents them.
#[allow(clippy::doc_overindented_list_items)]
pub mod proto;
mod weights;

pub use weights::{Difference, Error, Tensor, Weights};

use prost::Message;
use proto::{
    tensor_proto::DataType, tensor_shape_proto::dimension, type_proto, ModelProto,
    OperatorSetIdProto, TensorShapeProto, TypeProto, ValueInfoProto,
};
use vggdsl::ir::Architecture;

/// ONNX's operator set 17 (ONNX 1.12, IR version 8). Every operator the graph uses has had its
/// present definition since opset 15 or earlier (later versions only add element types), so a
/// newer opset would change nothing in the file but shut out older consumers: ONNX Runtime
/// 1.15, the oldest on PyPI for Python 3.11, runs these files as 1.32 does.
pub const OPSET_VERSION: i64 = 17;

/// The IR version that came with opset 17 (ONNX 1.12).
pub const IR_VERSION: i64 = 8;

/// The graph's input: a float32 batch of images, `[batch, C, H, W]`.
pub const INPUT: &str = "input";

/// The graph's output: the classifier's logits, `[batch, num_classes]`.
pub const OUTPUT: &str = "logits";

/// The name of the dynamic batch dimension of [`INPUT`] and [`OUTPUT`].
pub const BATCH: &str = "batch";

/// What [`export`] writes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Options {
    /// Fold each BatchNorm into the conv or linear before it: the inference graph.
    pub fold_bn: bool,
}

/// The ONNX model of `net` with `weights`, as bytes of an `.onnx` file.
pub fn export(net: &Architecture, weights: &Weights, options: Options) -> Result<Vec<u8>, Error> {
    model(net, weights, options).map(|m| m.encode_to_vec())
}

/// The ONNX model of `net` with `weights`. The weights must be exactly the network's state_dict:
/// every key with its shape, every value finite and no running variance negative.
pub fn model(net: &Architecture, weights: &Weights, options: Options) -> Result<ModelProto, Error> {
    weights::check(net, weights)?;
    let mut graph = graph::build(net, weights, options)?;
    let [c, h, w] = net.spec.input;
    graph.input = vec![value_info(INPUT, &[c, h, w])];
    graph.output = vec![value_info(OUTPUT, &[net.spec.num_classes])];
    let folded = if options.fold_bn {
        ", BatchNorm folded into the convs and linears"
    } else {
        ""
    };
    Ok(ModelProto {
        ir_version: Some(IR_VERSION),
        opset_import: vec![OperatorSetIdProto {
            domain: Some(String::new()),
            version: Some(OPSET_VERSION),
        }],
        producer_name: Some("vggdsl".into()),
        producer_version: Some(env!("CARGO_PKG_VERSION").into()),
        doc_string: Some(format!("vggdsl model {}{folded}", net.spec.name)),
        graph: Some(graph),
        ..Default::default()
    })
}

/// A float32 tensor of shape `[batch, dims…]`.
fn value_info(name: &str, dims: &[i64]) -> ValueInfoProto {
    let batch = dimension::Value::DimParam(BATCH.into());
    let dims = std::iter::once(batch).chain(dims.iter().map(|&d| dimension::Value::DimValue(d)));
    let tensor = type_proto::Tensor {
        elem_type: Some(DataType::Float as i32),
        shape: Some(TensorShapeProto {
            dim: dims
                .map(|value| proto::tensor_shape_proto::Dimension {
                    value: Some(value),
                    ..Default::default()
                })
                .collect(),
        }),
    };
    ValueInfoProto {
        name: Some(name.into()),
        r#type: Some(TypeProto {
            value: Some(type_proto::Value::TensorType(tensor)),
            ..Default::default()
        }),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::weights::tests::{tiny, weights_of};
    use proto::tensor_shape_proto::Dimension;

    fn nodes(model: &ModelProto) -> Vec<(String, String)> {
        let graph = model.graph.as_ref().unwrap();
        let names = |n: &proto::NodeProto| (n.op_type().to_owned(), n.name().to_owned());
        graph.node.iter().map(names).collect()
    }

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|&(op, name)| (op.to_owned(), name.to_owned()))
            .collect()
    }

    #[test]
    fn layers_become_nodes_named_by_module_path() {
        let net = tiny();
        let model = model(&net, &weights_of(&net), Options::default()).unwrap();
        let expected = pairs(&[
            ("Conv", "features.conv0"),
            ("BatchNormalization", "features.norm0"),
            ("Relu", "features.relu0"),
            ("MaxPool", "features.pool1"),
            ("Conv", "features.conv2"),
            ("BatchNormalization", "features.norm2"),
            ("Relu", "features.relu2"),
            ("AveragePool", "avgpool"),
            ("Flatten", "flatten"),
            ("Gemm", "classifier.linear1"),
            ("BatchNormalization", "classifier.norm1"),
            ("Relu", "classifier.relu1"),
            ("Gemm", "classifier.linear2"),
        ]);
        assert_eq!(nodes(&model), expected);
        let graph = model.graph.unwrap();
        let last = graph.node.last().unwrap();
        assert_eq!(last.output, [OUTPUT]);
        assert_eq!(graph.node[0].input[0], INPUT);
        // Initializers: the state_dict's keys in its order, without the counters.
        let keys: Vec<&str> = graph.initializer.iter().map(|t| t.name()).collect();
        let expected: Vec<String> = net
            .layers()
            .flat_map(|(section, layer)| {
                let path = format!("{section}.{}", layer.name);
                let names = layer.kind.tensors().into_iter().map(|(name, _)| name);
                names
                    .filter(|&name| name != "num_batches_tracked")
                    .map(move |name| format!("{path}.{name}"))
            })
            .collect();
        assert_eq!(keys, expected);
        assert_eq!(keys.len(), 4 * 2 + 3 * 4);
    }

    #[test]
    fn folding_removes_the_batch_norms() {
        let net = tiny();
        let model = model(&net, &weights_of(&net), Options { fold_bn: true }).unwrap();
        let ops: Vec<String> = nodes(&model).into_iter().map(|(op, _)| op).collect();
        assert_eq!(
            ops,
            [
                "Conv",
                "Relu",
                "MaxPool",
                "Conv",
                "Relu",
                "AveragePool",
                "Flatten",
                "Gemm",
                "Relu",
                "Gemm"
            ]
        );
        let graph = model.graph.unwrap();
        let keys: Vec<&str> = graph.initializer.iter().map(|t| t.name()).collect();
        assert_eq!(
            keys,
            [
                "features.conv0.weight",
                "features.conv0.bias",
                "features.conv2.weight",
                "features.conv2.bias",
                "classifier.linear1.weight",
                "classifier.linear1.bias",
                "classifier.linear2.weight",
                "classifier.linear2.bias"
            ]
        );
        // Ones with a variance of 2: scale 1 / √(2 + 1e-5), shift 1 − scale, bias 1 · scale + shift = 1.
        let bias = &graph.initializer[1];
        let scale = (1.0 / (2.0f64 + 1e-5).sqrt()) as f32;
        assert_eq!(&bias.raw_data()[..4], 1.0f32.to_le_bytes());
        assert_eq!(&graph.initializer[0].raw_data()[..4], scale.to_le_bytes());
    }

    #[test]
    fn input_and_output_have_a_dynamic_batch() {
        let net = tiny();
        let model = model(&net, &weights_of(&net), Options::default()).unwrap();
        let graph = model.graph.unwrap();
        let dims = |v: &ValueInfoProto| -> Vec<Option<dimension::Value>> {
            let Some(type_proto::Value::TensorType(t)) = &v.r#type.as_ref().unwrap().value else {
                panic!("not a tensor");
            };
            t.shape
                .as_ref()
                .unwrap()
                .dim
                .iter()
                .map(|d: &Dimension| d.value.clone())
                .collect()
        };
        let batch = Some(dimension::Value::DimParam(BATCH.into()));
        let fixed = |d| Some(dimension::Value::DimValue(d));
        assert_eq!(
            dims(&graph.input[0]),
            [batch.clone(), fixed(1), fixed(8), fixed(6)]
        );
        assert_eq!(dims(&graph.output[0]), [batch, fixed(3)]);
        assert_eq!(model.opset_import[0].version, Some(OPSET_VERSION));
    }

    #[test]
    fn the_bytes_decode_to_the_model() {
        let net = tiny();
        let weights = weights_of(&net);
        let bytes = export(&net, &weights, Options::default()).unwrap();
        let decoded = ModelProto::decode(bytes.as_slice()).unwrap();
        assert_eq!(decoded, model(&net, &weights, Options::default()).unwrap());
    }
}
