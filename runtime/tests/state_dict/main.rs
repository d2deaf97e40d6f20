//! Weights moving between PyTorch and tch: files that PyTorch writes are loaded exactly, every
//! mismatch and damaged file is one clear error that leaves the model untouched, and what
//! `save_state_dict` writes passes PyTorch's `load_state_dict(strict=True)`.
use std::collections::BTreeMap;
use std::path::Path;

use tch::nn::VarStore;
use tch::{Device, Kind, Tensor};
use vggdsl_runtime::{
    load_state_dict, load_state_dict_with, read_state_dict, save_state_dict, LoadError, LoadMode,
    Mismatch,
};
use vggdsl_test_support::tempdir;

mod damaged;
mod load;
mod mismatch;
mod reference;
mod save;

use reference::{fixture, fixtures, python};

/// A tensor's dtype, shape and values as `dump` in `MODEL_PY` wrote them.
#[derive(Clone, Debug, PartialEq)]
struct Values {
    dtype: String,
    shape: Vec<i64>,
    values: Vec<f64>,
}

impl Values {
    fn of(t: &Tensor) -> Self {
        let dtype = match t.kind() {
            Kind::Float => "float32",
            Kind::Double => "float64",
            Kind::Half => "float16",
            Kind::BFloat16 => "bfloat16",
            Kind::Int64 => "int64",
            Kind::Int => "int32",
            Kind::Int16 => "int16",
            Kind::Int8 => "int8",
            Kind::Uint8 => "uint8",
            Kind::Bool => "bool",
            other => panic!("{other:?}"),
        };
        let values = Vec::<f64>::try_from(t.to_kind(Kind::Double).reshape([-1])).unwrap();
        Self {
            dtype: dtype.into(),
            shape: t.size(),
            values,
        }
    }
}

fn expected(name: &str) -> Vec<(String, Values)> {
    let text = std::fs::read_to_string(fixture(name)).unwrap();
    text.lines()
        .map(|line| {
            let [key, dtype, shape, values] = line.split('\t').collect::<Vec<_>>()[..] else {
                panic!("{line}")
            };
            let shape = shape
                .split(',')
                .filter(|s| !s.is_empty())
                .map(|s| s.parse().unwrap());
            let values = values
                .split(' ')
                .filter(|s| !s.is_empty())
                .map(|s| s.parse().unwrap());
            let values = Values {
                dtype: dtype.into(),
                shape: shape.collect(),
                values: values.collect(),
            };
            (key.to_string(), values)
        })
        .collect()
}

/// Variables named and typed as PyTorch's state_dict of `model(num_classes)`, all zero.
fn specs(num_classes: i64) -> Vec<(String, Vec<i64>, Kind)> {
    let f = Kind::Float;
    [
        ("features.conv0.weight", vec![4, 3, 3, 3], f),
        ("features.conv0.bias", vec![4], f),
        ("features.norm0.weight", vec![4], f),
        ("features.norm0.bias", vec![4], f),
        ("features.norm0.running_mean", vec![4], f),
        ("features.norm0.running_var", vec![4], f),
        ("features.norm0.num_batches_tracked", vec![], Kind::Int64),
        ("classifier.linear1.weight", vec![6, 4], f),
        ("classifier.linear1.bias", vec![6], f),
        ("classifier.linear2.weight", vec![num_classes, 6], f),
        ("classifier.linear2.bias", vec![num_classes], f),
    ]
    .into_iter()
    .map(|(key, shape, kind)| (key.to_string(), shape, kind))
    .collect()
}

fn store(specs: &[(String, Vec<i64>, Kind)]) -> VarStore {
    let vs = VarStore::new(Device::Cpu);
    for (key, shape, kind) in specs {
        let (dir, name) = key.rsplit_once('.').unwrap_or(("", key));
        let path = dir
            .split('.')
            .filter(|c| !c.is_empty())
            .fold(vs.root(), |p, c| p.sub(c));
        let trainable = name == "weight" || name == "bias";
        let _ = path.add(
            name,
            Tensor::zeros(shape.as_slice(), (*kind, Device::Cpu)),
            trainable,
        );
    }
    vs
}

fn model(num_classes: i64) -> VarStore {
    store(&specs(num_classes))
}

fn snapshot(vs: &VarStore) -> BTreeMap<String, Values> {
    vs.variables()
        .iter()
        .map(|(k, t)| (k.clone(), Values::of(t)))
        .collect()
}

fn value(vs: &VarStore, key: &str) -> Values {
    Values::of(&vs.variables()[key])
}

/// The message of a failed strict load, after checking the store did not change.
fn load_error(vs: &mut VarStore, path: &Path) -> String {
    let before = snapshot(vs);
    let err = load_state_dict(vs, path).expect_err("the load should fail");
    assert_eq!(snapshot(vs), before, "a failed load changed the store");
    err.to_string()
}

fn assert_loaded_exactly(vs: &VarStore, expected: &[(String, Values)]) {
    assert_eq!(vs.len(), expected.len());
    for (key, values) in expected {
        assert_eq!(&value(vs, key), values, "{key}");
    }
}
