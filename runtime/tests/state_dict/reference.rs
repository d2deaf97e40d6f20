//! The PyTorch side: the model, the fixture files it writes once per run, and scripts run
//! after it.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use vggdsl_test_support::{pytorch, tempdir, TempDir};

/// The PyTorch side of every test: conv + batchnorm features and a two-layer classifier.
pub const MODEL_PY: &str = r#"
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
pub fn python(script: &str, args: &[&Path]) -> Option<String> {
    let out = pytorch::run_code(&format!("{MODEL_PY}\n{script}"), args)?;
    Some(String::from_utf8(out).unwrap())
}

/// The folder of every file PyTorch writes for these tests, made once per run (Python takes
/// seconds to import torch); `None` without PyTorch.
pub fn fixtures() -> Option<&'static Path> {
    static DIR: OnceLock<Option<TempDir>> = OnceLock::new();
    let dir = DIR.get_or_init(|| {
        let dir = tempdir();
        python(FIXTURES_PY, &[dir.path()])?;
        Some(dir)
    });
    dir.as_ref().map(TempDir::path)
}

/// A file of [`fixtures`], which the test has checked are there.
pub fn fixture(name: &str) -> PathBuf {
    fixtures().expect("PyTorch wrote the fixtures").join(name)
}
