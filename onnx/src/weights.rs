//! The weights an export reads: float32 tensors under PyTorch's state_dict keys, checked against
//! the network before anything is written.

use std::collections::BTreeMap;
use std::fmt;

use vggdsl::ir::Architecture;
use vggdsl::names;

/// One tensor of a state_dict: its shape and its elements in row-major order.
#[derive(Clone, Debug, PartialEq)]
pub struct Tensor {
    shape: Vec<i64>,
    data: Vec<f32>,
}

impl Tensor {
    /// `None` unless `data` holds exactly as many elements as `shape` says.
    pub fn new(shape: Vec<i64>, data: Vec<f32>) -> Option<Self> {
        let len = shape
            .iter()
            .try_fold(1usize, |n, &d| n.checked_mul(usize::try_from(d).ok()?))?;
        (len == data.len()).then_some(Self { shape, data })
    }

    /// A tensor of little-endian float32 `bytes`, as safetensors files and `raw_data` hold them.
    pub fn from_le_bytes(shape: Vec<i64>, bytes: &[u8]) -> Option<Self> {
        if !bytes.len().is_multiple_of(4) {
            return None;
        }
        let data = bytes
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        Self::new(shape, data)
    }

    pub fn shape(&self) -> &[i64] {
        &self.shape
    }

    pub fn data(&self) -> &[f32] {
        &self.data
    }
}

/// A state_dict: `features.conv0.weight`, `features.norm0.running_var`, … to their tensors.
/// Integer tensors (BatchNorm's `num_batches_tracked`) come converted to float32; an export
/// checks that they are there and never reads them.
pub type Weights = BTreeMap<String, Tensor>;

/// One way the weights differ from what the network holds.
#[derive(Clone, Debug, PartialEq)]
pub enum Difference {
    /// The network has this tensor; the weights lack it.
    Missing { key: String, shape: Vec<i64> },
    /// The weights have this tensor; the network has no such key.
    Unexpected { key: String, shape: Vec<i64> },
    Shape {
        key: String,
        model: Vec<i64>,
        weights: Vec<i64>,
    },
}

impl fmt::Display for Difference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Difference::Missing { key, shape } => {
                write!(
                    f,
                    "missing key {key}: the model's {shape:?} is not in the weights"
                )
            }
            Difference::Unexpected { key, shape } => {
                write!(
                    f,
                    "unexpected key {key}: the weights' {shape:?} is not in the model"
                )
            }
            Difference::Shape {
                key,
                model,
                weights,
            } => write!(
                f,
                "shape mismatch for {key}: the model expects {model:?}, the weights have \
                 {weights:?}"
            ),
        }
    }
}

/// Why a network and its weights give no ONNX model.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum Error {
    /// The weights are another network's: every difference, the network's keys in module order
    /// first, then the keys it lacks.
    #[error("the weights are not the model's: {}", .0[0])]
    Mismatch(Vec<Difference>),
    /// Refused rather than warned about: one NaN or infinity spreads through every later layer,
    /// so the model would answer NaN for every input.
    #[error(
        "{key} holds {value} at index {index}: a NaN or infinite weight makes every output NaN, \
         so the model is not exported"
    )]
    NotFinite {
        key: String,
        index: usize,
        value: f32,
    },
    /// Would make the BatchNorm's output NaN, folded or not.
    #[error("{key} holds {value} at index {index}: a variance cannot be negative")]
    NegativeVariance {
        key: String,
        index: usize,
        value: f32,
    },
    /// Folding scaled a weight past float32's largest value.
    #[error("folding {norm} into {layer} gives weights beyond float32's range")]
    FoldOverflow { layer: String, norm: String },
}

/// The tensor that BatchNorm keeps only for training, which inference never reads.
const COUNTER: &str = "num_batches_tracked";

/// Checks that `weights` holds exactly the network's tensors, each of its shape (the first
/// difference is what is reported), then that every value is finite and no running variance
/// negative.
pub(crate) fn check(net: &Architecture, weights: &Weights) -> Result<(), Error> {
    let expected: Vec<(String, &str, Vec<i64>)> = net
        .layers()
        .flat_map(|(section, layer)| {
            let path = names::module_path(section, &layer.name);
            let tensors = layer.kind.tensors().into_iter();
            tensors.map(move |(name, shape)| (format!("{path}.{name}"), name, shape))
        })
        .collect();
    let mut differences = Vec::new();
    for (key, _, shape) in &expected {
        match weights.get(key) {
            None => differences.push(Difference::Missing {
                key: key.clone(),
                shape: shape.clone(),
            }),
            Some(t) if &t.shape != shape => differences.push(Difference::Shape {
                key: key.clone(),
                model: shape.clone(),
                weights: t.shape.clone(),
            }),
            Some(_) => {}
        }
    }
    for (key, t) in weights {
        if !expected.iter().any(|(k, ..)| k == key) {
            differences.push(Difference::Unexpected {
                key: key.clone(),
                shape: t.shape.clone(),
            });
        }
    }
    if !differences.is_empty() {
        return Err(Error::Mismatch(differences));
    }
    expected
        .iter()
        .filter(|(_, name, _)| *name != COUNTER)
        .try_for_each(|(key, name, _)| check_values(key, name, &weights[key].data))
}

fn check_values(key: &str, name: &str, data: &[f32]) -> Result<(), Error> {
    if let Some((index, &value)) = data.iter().enumerate().find(|(_, v)| !v.is_finite()) {
        return Err(Error::NotFinite {
            key: key.to_owned(),
            index,
            value,
        });
    }
    if name == "running_var" {
        if let Some((index, &value)) = data.iter().enumerate().find(|(_, &v)| v < 0.0) {
            return Err(Error::NegativeVariance {
                key: key.to_owned(),
                index,
                value,
            });
        }
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Weights for every tensor of `net`: ones, and running variances of 2.
    pub(crate) fn weights_of(net: &Architecture) -> Weights {
        let mut weights = Weights::new();
        for (section, layer) in net.layers() {
            for (name, shape) in layer.kind.tensors() {
                let len = shape.iter().product::<i64>() as usize;
                let value = if name == "running_var" { 2.0 } else { 1.0 };
                let tensor = Tensor::new(shape, vec![value; len]).unwrap();
                let key = format!("{}.{name}", names::module_path(section, &layer.name));
                weights.insert(key, tensor);
            }
        }
        weights
    }

    pub(crate) fn tiny() -> Architecture {
        let source = "model Tiny { input = [1, 8, 6]  cfg = [4, M, 6, 5]  num_classes = 3 }";
        vggdsl::check_source(source).unwrap().remove(0)
    }

    #[test]
    fn tensors_hold_as_many_elements_as_their_shape() {
        assert!(Tensor::new(vec![2, 3], vec![0.0; 6]).is_some());
        assert!(Tensor::new(vec![], vec![0.0]).is_some());
        assert!(Tensor::new(vec![2, 3], vec![0.0; 5]).is_none());
        assert!(Tensor::new(vec![-1], vec![]).is_none());
        let bytes = [0, 0, 0x80, 0x3f, 0, 0, 0, 0xc0];
        let t = Tensor::from_le_bytes(vec![2], &bytes).unwrap();
        assert_eq!(t.data(), [1.0, -2.0]);
        assert!(Tensor::from_le_bytes(vec![2], &bytes[..7]).is_none());
    }

    #[test]
    fn accepts_the_networks_own_state_dict() {
        let net = tiny();
        assert_eq!(check(&net, &weights_of(&net)), Ok(()));
    }

    #[test]
    fn names_every_difference_model_keys_first() {
        let net = tiny();
        let mut weights = weights_of(&net);
        weights.remove("features.norm0.running_mean");
        weights.insert(
            "features.conv0.bias".into(),
            Tensor::new(vec![5], vec![0.0; 5]).unwrap(),
        );
        weights.insert(
            "features.conv9.weight".into(),
            Tensor::new(vec![1], vec![0.0]).unwrap(),
        );
        let Err(Error::Mismatch(differences)) = check(&net, &weights) else {
            panic!("not a mismatch");
        };
        let text: Vec<String> = differences.iter().map(|d| d.to_string()).collect();
        assert_eq!(
            text,
            [
                "shape mismatch for features.conv0.bias: the model expects [4], the weights have [5]",
                "missing key features.norm0.running_mean: the model's [4] is not in the weights",
                "unexpected key features.conv9.weight: the weights' [1] is not in the model",
            ]
        );
    }

    #[test]
    fn refuses_nan_infinity_and_negative_variances() {
        let net = tiny();
        let with = |key: &str, index: usize, value: f32| {
            let mut weights = weights_of(&net);
            let t = weights.get_mut(key).unwrap();
            t.data[index] = value;
            check(&net, &weights).unwrap_err().to_string()
        };
        assert_eq!(
            with("classifier.linear1.weight", 7, f32::NAN),
            "classifier.linear1.weight holds NaN at index 7: a NaN or infinite weight makes \
             every output NaN, so the model is not exported"
        );
        assert!(with("features.norm2.bias", 0, f32::NEG_INFINITY)
            .starts_with("features.norm2.bias holds -inf at index 0"));
        assert_eq!(
            with("classifier.norm1.running_var", 2, -0.5),
            "classifier.norm1.running_var holds -0.5 at index 2: a variance cannot be negative"
        );
        // Inference never reads the counter.
        assert_eq!(
            check(&net, &{
                let mut weights = weights_of(&net);
                weights
                    .get_mut("features.norm0.num_batches_tracked")
                    .unwrap()
                    .data[0] = f32::NAN;
                weights
            }),
            Ok(())
        );
    }
}
