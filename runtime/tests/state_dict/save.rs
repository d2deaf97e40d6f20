//! `save_state_dict`: files PyTorch loads strictly, every dtype, and the dtypes it cannot save.

use super::*;

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
