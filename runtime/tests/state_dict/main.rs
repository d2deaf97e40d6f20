//! Weights moving between PyTorch and tch: files that PyTorch writes are loaded exactly, every
//! mismatch and damaged file is one clear error that leaves the model untouched, and what
//! `save_state_dict` writes passes PyTorch's `load_state_dict(strict=True)`.
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use tch::nn::VarStore;
use tch::{Device, Kind, Tensor};
use vggdsl_runtime::{
    load_state_dict, load_state_dict_with, read_state_dict, save_state_dict, LoadError, LoadMode,
    Mismatch,
};
use vggdsl_test_support::{pytorch, tempdir, TempDir};

/// The PyTorch side of every test: conv + batchnorm features and a two-layer classifier.
const MODEL_PY: &str = r#"
import collections, sys, torch, safetensors.torch
def model(num_classes):
    od = collections.OrderedDict
    return torch.nn.Sequential(od(
        features=torch.nn.Sequential(od(
            conv0=torch.nn.Conv2d(3, 4, 3, padding=1),
            norm0=torch.nn.BatchNorm2d(4),
            relu0=torch.nn.ReLU(),
        )),
        classifier=torch.nn.Sequential(od(
            linear1=torch.nn.Linear(4, 6),
            linear2=torch.nn.Linear(6, num_classes),
        )),
    ))
def dump(tensors, path):
    # key, dtype, shape and values (repr of a float64 round-trips exactly), tab-separated.
    with open(path, "w") as f:
        for k, t in tensors.items():
            values = " ".join(repr(float(v)) for v in t.flatten().tolist())
            shape = ",".join(map(str, t.shape))
            print(k, str(t.dtype).removeprefix("torch."), shape, values, sep="\t", file=f)
"#;

/// Writes every file the tests read, with expected values beside them.
const FIXTURES_PY: &str = r#"
out = sys.argv[1]
torch.manual_seed(0)
m = model(10)
with torch.no_grad():
    bn = m.features.norm0
    bn.weight.uniform_(0.5, 1.5); bn.bias.normal_()
    bn.running_mean.normal_(); bn.running_var.uniform_(0.5, 2.0)
    bn.num_batches_tracked.fill_(7)
sd = m.state_dict()
torch.save(sd, f"{out}/model.pt")
torch.save(dict(sd), f"{out}/plain.pth")
torch.save(m.state_dict(keep_vars=True), f"{out}/params.pt")
safetensors.torch.save_file(sd, f"{out}/model.safetensors")
dump(sd, f"{out}/model.txt")

# Views of one storage (transposed, offset, strided, 0-dim, empty) and every supported dtype.
base = torch.arange(24, dtype=torch.float32).reshape(4, 6) / 8
views = {
    "transposed": base.t(),
    "offset_rows": base[1:3],
    "strided_cols": base[:, 1::2],
    "scalar_view": base[2, 3],
    "empty": base[:, 6:],
    "float64": torch.linspace(-1, 1, 5, dtype=torch.float64),
    "float16": torch.tensor([0.5, -2.25, 65504.0], dtype=torch.float16),
    "bfloat16": torch.tensor([1.5, -3.0, 1e30], dtype=torch.bfloat16),
    "int64": torch.tensor([-(2**40), 0, 2**40]),
    "int32": torch.arange(10, dtype=torch.int32)[3:7],
    "int16": torch.tensor([-300, 300], dtype=torch.int16),
    "int8": torch.tensor([-128, 127], dtype=torch.int8),
    "uint8": torch.tensor([0, 7, 255], dtype=torch.uint8),
    "bool": torch.tensor([True, False, True]),
}
torch.save(views, f"{out}/views.pt")
safetensors.torch.save_file({k: v.contiguous().clone() for k, v in views.items()}, f"{out}/views.safetensors")
dump(views, f"{out}/views.txt")

torch.save(sd, f"{out}/legacy.pt", _use_new_zipfile_serialization=False)
torch.save({"state_dict": sd, "epoch": 3}, f"{out}/checkpoint.pt")
torch.save(sd, f"{out}/protocol4.pt", pickle_protocol=4)
torch.save({"huge": torch.zeros(1).expand(2**62)}, f"{out}/expanded.pt")

import numpy, shutil, struct, zipfile
def rewrite(src, dst, change, compression=zipfile.ZIP_STORED):
    """Copies an archive, each entry's bytes through change(name inside the archive's folder, bytes)."""
    with zipfile.ZipFile(src) as z:
        entries = [(info.filename, z.read(info)) for info in z.infolist()]
    with zipfile.ZipFile(dst, "w", compression) as z:
        for name, data in entries:
            z.writestr(name, change(name.split("/", 1)[1], data))
def declare_size(src, dst, entry, size):
    """Copies an archive, with another size for `entry` in its central directory (not its bytes)."""
    data = bytearray(open(src, "rb").read())
    at = data.rindex(entry.encode()) - 46
    assert data[at : at + 4] == b"PK\x01\x02", entry
    struct.pack_into("<I", data, at + 24, size)
    open(dst, "wb").write(data)

rewrite(f"{out}/model.pt", f"{out}/cut_pickle.pt", lambda name, data: data[: len(data) // 2] if name == "data.pkl" else data)
# torch.save names storages 0, 1, … in the order the dict first reaches them.
itemsize = list({t.untyped_storage().data_ptr(): t.element_size() for t in views.values()}.values())
def swap(name, data):
    if name == "byteorder":
        return b"big"
    if name.startswith("data/"):
        return numpy.frombuffer(data, f"u{itemsize[int(name[5:])]}").byteswap().tobytes()
    return data
rewrite(f"{out}/views.pt", f"{out}/big_endian.pt", swap)
assert all(torch.equal(t, views[k]) for k, t in torch.load(f"{out}/big_endian.pt").items())
torch.save({"weight": torch.zeros(1), "weighz": torch.ones(1)}, f"{out}/twice.pt")
rewrite(f"{out}/twice.pt", f"{out}/twice.pt", lambda name, data: data.replace(b"weighz", b"weight"))

# A million TUPLE1 opcodes, each wrapping the tuple before it.
deep = b"\x80\x02)" + b"\x85" * 1_000_000 + b"."
rewrite(f"{out}/model.pt", f"{out}/deep.pt", lambda name, data: deep if name == "data.pkl" else data)
# 64 MiB of zeros after the pickle's STOP, deflated to a few kB.
rewrite(f"{out}/model.pt", f"{out}/deflated.pt", lambda name, data: data + bytes(64 << 20) if name == "data.pkl" else data, zipfile.ZIP_DEFLATED)
pickle_len = len(zipfile.ZipFile(f"{out}/model.pt").read("model/data.pkl"))
declare_size(f"{out}/model.pt", f"{out}/huge_pickle.pt", "model/data.pkl", 300 << 20)
declare_size(f"{out}/model.pt", f"{out}/huge_byteorder.pt", "model/byteorder", 1 << 30)
declare_size(f"{out}/model.pt", f"{out}/short_pickle.pt", "model/data.pkl", pickle_len - 1)
# One byte of "little" changed without updating its CRC.
data = open(f"{out}/model.pt", "rb").read()
assert data.count(b"little") == 1
open(f"{out}/bad_byteorder.pt", "wb").write(data.replace(b"little", b"littlf"))
"#;

/// Runs `script` after [`MODEL_PY`] in PyTorch; its output. `None` without PyTorch.
fn python(script: &str, args: &[&Path]) -> Option<String> {
    let out = pytorch::run_code(&format!("{MODEL_PY}\n{script}"), args)?;
    Some(String::from_utf8(out).unwrap())
}

/// The folder of every file PyTorch writes for these tests, made once per run (Python takes
/// seconds to import torch); `None` without PyTorch.
fn fixtures() -> Option<&'static Path> {
    static DIR: OnceLock<Option<TempDir>> = OnceLock::new();
    let dir = DIR.get_or_init(|| {
        let dir = tempdir();
        python(FIXTURES_PY, &[dir.path()])?;
        Some(dir)
    });
    dir.as_ref().map(TempDir::path)
}

/// A file of [`fixtures`], which the test has checked are there.
fn fixture(name: &str) -> PathBuf {
    fixtures().expect("PyTorch wrote the fixtures").join(name)
}

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

#[test]
fn loads_torch_save_state_dict_exactly() {
    if fixtures().is_none() {
        return;
    }
    let expected = expected("model.txt");
    let mut vs = model(10);
    let report = load_state_dict(&mut vs, fixture("model.pt")).unwrap();
    assert_loaded_exactly(&vs, &expected);
    // File order, which is the module's order; the int64 counter keeps its dtype.
    assert_eq!(
        report.loaded,
        expected.iter().map(|(k, _)| k.clone()).collect::<Vec<_>>()
    );
    assert!(report.skipped.is_empty());
    assert_eq!(
        vs.variables()["features.norm0.num_batches_tracked"].int64_value(&[]),
        7
    );
    assert_eq!(
        vs.variables()["features.norm0.num_batches_tracked"].kind(),
        Kind::Int64
    );
}

#[test]
fn loads_plain_dicts_parameters_and_safetensors_exactly() {
    if fixtures().is_none() {
        return;
    }
    let expected = expected("model.txt");
    for file in ["plain.pth", "params.pt", "model.safetensors"] {
        let mut vs = model(10);
        let report = load_state_dict(&mut vs, fixture(file)).unwrap();
        assert_eq!(report.loaded.len(), 11, "{file}");
        assert_loaded_exactly(&vs, &expected);
    }
}

#[test]
fn tells_the_format_by_content_not_extension() {
    if fixtures().is_none() {
        return;
    }
    let dir = tempdir();
    let (pt, st) = (
        dir.path().join("weights.safetensors"),
        dir.path().join("weights.pt"),
    );
    std::fs::copy(fixture("model.pt"), &pt).unwrap();
    std::fs::copy(fixture("model.safetensors"), &st).unwrap();
    for path in [pt, st] {
        let mut vs = model(10);
        load_state_dict(&mut vs, &path).unwrap();
        assert_loaded_exactly(&vs, &expected("model.txt"));
    }
}

#[test]
fn reads_views_offsets_and_every_dtype() {
    if fixtures().is_none() {
        return;
    }
    let expected = expected("views.txt");
    for file in ["views.pt", "views.safetensors"] {
        let tensors: BTreeMap<_, _> = read_state_dict(fixture(file))
            .unwrap()
            .into_iter()
            .map(|(k, t)| (k, Values::of(&t)))
            .collect();
        assert_eq!(tensors, expected.iter().cloned().collect());
    }
    // A transposed view also loads into a plain contiguous variable.
    let mut vs = store(&[("transposed".into(), vec![6, 4], Kind::Float)]);
    load_state_dict_with(&mut vs, fixture("views.pt"), LoadMode::Partial).unwrap();
    assert_eq!(value(&vs, "transposed"), expected[0].1);
}

#[test]
fn missing_key_is_an_error_and_loads_nothing() {
    if fixtures().is_none() {
        return;
    }
    let mut specs = specs(10);
    specs.push((
        "features.conv1.weight".into(),
        vec![4, 4, 3, 3],
        Kind::Float,
    ));
    let path = fixture("model.pt");
    let message = load_error(&mut store(&specs), &path);
    assert_eq!(
        message,
        format!(
            "{} does not match the model, so nothing was loaded:\n  missing key \
             features.conv1.weight: the model's float32 [4, 4, 3, 3] is not in the file",
            path.display()
        )
    );
}

#[test]
fn unexpected_key_is_an_error_and_loads_nothing() {
    if fixtures().is_none() {
        return;
    }
    let specs: Vec<_> = specs(10)
        .into_iter()
        .filter(|s| s.0 != "classifier.linear2.bias")
        .collect();
    let path = fixture("model.safetensors");
    let message = load_error(&mut store(&specs), &path);
    assert_eq!(
        message,
        format!(
            "{} does not match the model, so nothing was loaded:\n  unexpected key \
             classifier.linear2.bias: the file's float32 [10] is not in the model",
            path.display()
        )
    );
}

#[test]
fn wrong_shape_is_an_error_and_loads_nothing() {
    if fixtures().is_none() {
        return;
    }
    let path = fixture("model.pt");
    let message = load_error(&mut model(3), &path);
    assert_eq!(
        message,
        format!(
            "{} does not match the model, so nothing was loaded:\n  \
             shape mismatch for classifier.linear2.weight: the model expects [3, 6], the file has [10, 6]\n  \
             shape mismatch for classifier.linear2.bias: the model expects [3], the file has [10]",
            path.display()
        )
    );
}

#[test]
fn wrong_dtype_is_an_error_and_loads_nothing() {
    if fixtures().is_none() {
        return;
    }
    let mut specs = specs(10);
    specs[6].2 = Kind::Float; // num_batches_tracked
    specs[0].2 = Kind::Double;
    let path = fixture("model.pt");
    let message = load_error(&mut store(&specs), &path);
    assert_eq!(
        message,
        format!(
            "{} does not match the model, so nothing was loaded:\n  \
             dtype mismatch for features.conv0.weight: the model expects float64, the file has float32\n  \
             dtype mismatch for features.norm0.num_batches_tracked: the model expects float32, the file has int64",
            path.display()
        )
    );
}

#[test]
fn all_problems_are_reported_at_once() {
    if fixtures().is_none() {
        return;
    }
    let mut specs: Vec<_> = specs(3)
        .into_iter()
        .filter(|s| s.0 != "features.conv0.bias")
        .collect();
    specs[5].2 = Kind::Int; // num_batches_tracked
    specs.push((
        "features.conv1.weight".into(),
        vec![4, 4, 3, 3],
        Kind::Float,
    ));
    let mut vs = store(&specs);
    let before = snapshot(&vs);
    let Err(LoadError::Mismatch { path, mismatches }) =
        load_state_dict(&mut vs, fixture("model.pt"))
    else {
        panic!("expected a mismatch error")
    };
    assert_eq!(path, fixture("model.pt"));
    let keys: Vec<_> = mismatches.iter().map(|m| m.key()).collect();
    assert_eq!(
        keys,
        [
            "features.conv1.weight",
            "features.conv0.bias",
            "features.norm0.num_batches_tracked",
            "classifier.linear2.weight",
            "classifier.linear2.bias"
        ]
    );
    assert!(matches!(mismatches[0], Mismatch::Missing { .. }));
    assert!(matches!(mismatches[1], Mismatch::Unexpected { .. }));
    assert!(matches!(
        mismatches[2],
        Mismatch::Dtype {
            model: Kind::Int,
            file: Kind::Int64,
            ..
        }
    ));
    assert!(matches!(mismatches[3], Mismatch::Shape { .. }));
    assert_eq!(snapshot(&vs), before);
}

#[test]
fn partial_load_takes_the_backbone_and_reports_the_rest() {
    if fixtures().is_none() {
        return;
    }
    let expected = expected("model.txt");
    let mut vs = model(3);
    let report = load_state_dict_with(&mut vs, fixture("model.pt"), LoadMode::Partial).unwrap();
    assert_eq!(report.loaded.len(), 9);
    assert_eq!(
        report.skipped,
        [
            Mismatch::Shape {
                key: "classifier.linear2.weight".into(),
                model: vec![3, 6],
                file: vec![10, 6]
            },
            Mismatch::Shape {
                key: "classifier.linear2.bias".into(),
                model: vec![3],
                file: vec![10]
            },
        ]
    );
    assert_eq!(
        report.to_string(),
        "loaded 9 tensors, skipped 2\n  \
         shape mismatch for classifier.linear2.weight: the model expects [3, 6], the file has [10, 6]\n  \
         shape mismatch for classifier.linear2.bias: the model expects [3], the file has [10]"
    );
    for (key, values) in &expected {
        if key.starts_with("classifier.linear2") {
            assert!(
                value(&vs, key).values.iter().all(|&v| v == 0.0),
                "{key} changed"
            );
        } else {
            assert_eq!(&value(&vs, key), values, "{key}");
        }
    }
}

#[test]
fn partial_load_skips_dtype_mismatches_missing_and_unexpected_keys() {
    if fixtures().is_none() {
        return;
    }
    let mut specs: Vec<_> = specs(10)
        .into_iter()
        .filter(|s| s.0 != "classifier.linear1.bias")
        .collect();
    specs[0].2 = Kind::Half;
    specs.push(("extra.weight".into(), vec![2], Kind::Float));
    let mut vs = store(&specs);
    let report =
        load_state_dict_with(&mut vs, fixture("model.safetensors"), LoadMode::Partial).unwrap();
    assert_eq!(report.loaded.len(), 9);
    assert_eq!(
        report.skipped,
        [
            Mismatch::Missing {
                key: "extra.weight".into(),
                kind: Kind::Float,
                shape: vec![2]
            },
            // Safetensors entries come sorted by name.
            Mismatch::Unexpected {
                key: "classifier.linear1.bias".into(),
                kind: Kind::Float,
                shape: vec![6]
            },
            Mismatch::Dtype {
                key: "features.conv0.weight".into(),
                model: Kind::Half,
                file: Kind::Float
            },
        ]
    );
    assert_eq!(
        Values::of(&vs.variables()["features.conv0.weight"]).values,
        vec![0.0; 108]
    );
    assert_eq!(vs.variables()["features.conv0.weight"].kind(), Kind::Half);
    assert_eq!(
        value(&vs, "features.norm0.running_var"),
        expected("model.txt")[5].1
    );
}

#[test]
fn truncated_files_are_errors() {
    if fixtures().is_none() {
        return;
    }
    let dir = tempdir();
    let pt = std::fs::read(fixture("model.pt")).unwrap();
    let st = std::fs::read(fixture("model.safetensors")).unwrap();
    for (name, bytes, reason) in [
        (
            "half.pt",
            &pt[..pt.len() / 2],
            "the zip archive's central directory, at its end, is missing",
        ),
        (
            "tail.safetensors",
            &st[..st.len() - 16],
            "the tensor data is shorter or longer than the header says",
        ),
        ("head.safetensors", &st[..20], "the header is cut off"),
    ] {
        let path = dir.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        let message = load_error(&mut model(10), &path);
        assert_eq!(
            message,
            format!("{} is truncated or corrupt: {reason}", path.display())
        );
    }
    let path = fixture("cut_pickle.pt");
    let message = load_error(&mut model(10), &path);
    // The archive keeps the name of the file it was copied from.
    let prefix = format!(
        "{} is truncated or corrupt: model/data.pkl: the pickle ends early",
        path.display()
    );
    assert!(message.starts_with(&prefix), "{message}");
}

#[test]
fn files_that_hold_no_tensors_are_errors() {
    let dir = tempdir();
    // Deterministic noise from a linear congruential generator.
    let mut x = 12345u32;
    let noise: Vec<u8> = (0..4096)
        .map(|_| {
            x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            (x >> 24) as u8
        })
        .collect();
    for (name, bytes, reason) in [
        (
            "notes.pt",
            &b"{\n  \"weights\": [1, 2, 3]\n}\n"[..],
            "it starts with neither a zip nor a safetensors header",
        ),
        (
            "noise.safetensors",
            &noise[..],
            "it starts with neither a zip nor a safetensors header",
        ),
        ("empty.pth", &[][..], "the file is empty"),
    ] {
        let path = dir.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        let message = load_error(&mut model(10), &path);
        assert_eq!(
            message,
            format!(
                "{} is not a tensor file: {reason}; expected a .safetensors file or a torch.save archive (.pt, .pth)",
                path.display()
            )
        );
    }
}

#[test]
fn a_missing_file_is_an_error() {
    let path = std::env::temp_dir().join("vggdsl-state-dict-no-such-file.pt");
    let message = load_error(&mut model(10), &path);
    assert_eq!(
        message,
        format!(
            "cannot read {}: No such file or directory (os error 2)",
            path.display()
        )
    );
}

#[test]
fn legacy_files_and_checkpoints_are_refused_with_a_hint() {
    if fixtures().is_none() {
        return;
    }
    let path = fixture("legacy.pt");
    let message = load_error(&mut model(10), &path);
    assert!(
        message.starts_with(&format!(
            "{} is not supported: it is a bare pickle",
            path.display()
        )),
        "{message}"
    );
    let path = fixture("checkpoint.pt");
    let message = load_error(&mut model(10), &path);
    assert_eq!(
        message,
        format!(
            "{} is not supported: checkpoint/data.pkl: entry state_dict holds a dict, not a tensor \
             (a training checkpoint? save its model state_dict on its own)",
            path.display()
        )
    );
}

#[test]
fn saved_files_load_into_pytorch_strictly() {
    if fixtures().is_none() {
        return;
    }
    let dir = tempdir();
    let mut vs = model(10);
    load_state_dict(&mut vs, fixture("model.pt")).unwrap();
    tch::no_grad(|| {
        for (_, mut t) in vs.variables() {
            if t.is_floating_point() {
                let _ = t.g_mul_scalar_(-2);
            } else {
                let _ = t.g_add_scalar_(5);
            }
        }
    });
    let path = dir.path().join("model.safetensors");
    save_state_dict(&vs, &path).unwrap();
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["model.safetensors"], "no temporary file is left");
    let script = r#"
m = model(10)
ref = torch.load(sys.argv[1])
sd = safetensors.torch.load_file(sys.argv[2])
assert sorted(sd) == sorted(ref), (list(sd), list(ref))
for k, v in sd.items():
    assert v.dtype == ref[k].dtype and v.shape == ref[k].shape and v.is_contiguous(), k
m.load_state_dict(sd, strict=True)
for k, v in m.state_dict().items():
    want = ref[k] * -2 if ref[k].is_floating_point() else ref[k] + 5
    assert torch.equal(v, want), (k, v, want)
print(sd["features.norm0.num_batches_tracked"].item())
"#;
    let printed = python(script, &[&fixture("model.pt"), &path]).expect("PyTorch is there");
    assert_eq!(printed.trim(), "12");
    // And back into tch.
    let mut again = model(10);
    load_state_dict(&mut again, &path).unwrap();
    assert_eq!(snapshot(&again), snapshot(&vs));
}

#[test]
fn saves_non_contiguous_variables_of_every_dtype() {
    let dir = tempdir();
    let vs = VarStore::new(Device::Cpu);
    let root = vs.root();
    let _ = root.add(
        "t",
        Tensor::arange(6, (Kind::Float, Device::Cpu))
            .view([2, 3])
            .transpose(0, 1),
        false,
    );
    for (name, kind) in [
        ("f64", Kind::Double),
        ("f16", Kind::Half),
        ("bf16", Kind::BFloat16),
        ("i64", Kind::Int64),
        ("i32", Kind::Int),
        ("u8", Kind::Uint8),
        ("b", Kind::Bool),
    ] {
        let _ = root.add(
            name,
            Tensor::arange(3, (Kind::Int64, Device::Cpu)).to_kind(kind),
            false,
        );
    }
    let path = dir.path().join("dtypes.bin");
    save_state_dict(&vs, &path).unwrap();
    let script = r#"
sd = safetensors.torch.load_file(sys.argv[1])
assert torch.equal(sd.pop("t"), torch.arange(6.).view(2, 3).t())
want = dict(f64=torch.float64, f16=torch.float16, bf16=torch.bfloat16, i64=torch.int64, i32=torch.int32, u8=torch.uint8, b=torch.bool)
assert {k: v.dtype for k, v in sd.items()} == want, sd
for k, v in sd.items():
    assert torch.equal(v, torch.arange(3).to(want[k])), (k, v)
"#;
    python(script, &[&path]);
}

#[test]
fn saving_a_dtype_safetensors_lacks_is_an_error() {
    let dir = tempdir();
    let vs = VarStore::new(Device::Cpu);
    let _ = vs.root().add(
        "z",
        Tensor::zeros([2], (Kind::ComplexFloat, Device::Cpu)),
        false,
    );
    let path = dir.path().join("z.safetensors");
    let err = save_state_dict(&vs, &path).unwrap_err();
    assert_eq!(
        err.to_string(),
        "cannot save z: safetensors has no complex64 dtype"
    );
    assert!(!path.exists());
}

#[test]
fn loads_protocol_4_pickles() {
    if fixtures().is_none() {
        return;
    }
    let mut vs = model(10);
    load_state_dict(&mut vs, fixture("protocol4.pt")).unwrap();
    assert_loaded_exactly(&vs, &expected("model.txt"));
}

#[test]
fn reads_big_endian_files() {
    if fixtures().is_none() {
        return;
    }
    // Every dtype (1, 2, 4 and 8 bytes), with views sharing a storage.
    let tensors: BTreeMap<_, _> = read_state_dict(fixture("big_endian.pt"))
        .unwrap()
        .into_iter()
        .map(|(k, t)| (k, Values::of(&t)))
        .collect();
    assert_eq!(tensors, expected("views.txt").into_iter().collect());
}

#[test]
fn duplicate_keys_are_an_error() {
    if fixtures().is_none() {
        return;
    }
    let path = fixture("twice.pt");
    let mut vs = store(&[("weight".into(), vec![1], Kind::Float)]);
    assert_eq!(
        load_error(&mut vs, &path),
        format!(
            "{} is truncated or corrupt: twice/data.pkl: key weight appears twice",
            path.display()
        )
    );
}

#[test]
fn deeply_nested_pickles_are_an_error() {
    if fixtures().is_none() {
        return;
    }
    let path = fixture("deep.pt");
    assert_eq!(
        load_error(&mut model(10), &path),
        format!(
            "{} is not supported: model/data.pkl: the pickle nests deeper than 1000 levels \
             (pickle byte 1002)",
            path.display()
        )
    );
}

#[test]
fn compressed_and_oversized_entries_are_refused() {
    if fixtures().is_none() {
        return;
    }
    for (name, reason) in [
        (
            "deflated.pt",
            "is not supported: model/data.pkl is compressed (Deflated); torch.save stores its \
             entries uncompressed",
        ),
        (
            "huge_pickle.pt",
            "is not supported: model/data.pkl is 314572800 bytes, more than the 268435456 this \
             reader accepts",
        ),
        (
            "huge_byteorder.pt",
            "is not supported: model/byteorder is 1073741824 bytes, more than the 16 this reader \
             accepts",
        ),
    ] {
        let path = fixture(name);
        let message = load_error(&mut model(10), &path);
        assert_eq!(message, format!("{} {reason}", path.display()));
    }
    // Read no further than the declared size: here one byte short of the real pickle.
    let path = fixture("short_pickle.pt");
    let message = load_error(&mut model(10), &path);
    let prefix = format!(
        "{} is truncated or corrupt: model/data.pkl does not hold the ",
        path.display()
    );
    assert!(
        message.starts_with(&prefix) && message.ends_with(" bytes its zip entry declares"),
        "{message}"
    );
}

#[test]
fn expanded_views_are_refused_by_every_reader() {
    if fixtures().is_none() {
        return;
    }
    // `torch.zeros(1).expand(2**62)`: one stored element, 2^62 in the view.
    let path = fixture("expanded.pt");
    let prefix = format!(
        "{} is not supported: expanded/data.pkl: tensor with size [4611686018427387904], stride \
         [0] has more elements than its storage of 1",
        path.display()
    );
    let message = read_state_dict(&path).unwrap_err().to_string();
    assert!(message.starts_with(&prefix), "{message}");
    let mut vs = store(&[("huge".into(), vec![4], Kind::Float)]);
    let message = load_error(&mut vs, &path);
    assert!(message.starts_with(&prefix), "{message}");
    let err = load_state_dict_with(&mut vs, &path, LoadMode::Partial).unwrap_err();
    assert!(err.to_string().starts_with(&prefix), "{err}");
}

#[test]
fn an_unreadable_byteorder_is_an_error() {
    if fixtures().is_none() {
        return;
    }
    let path = fixture("bad_byteorder.pt");
    assert_eq!(
        load_error(&mut model(10), &path),
        format!(
            "{} is truncated or corrupt: model/byteorder: Invalid checksum",
            path.display()
        )
    );
}
