//! Reading a weights file for `vggdsl export` as float32 tensors: a `.safetensors` file in every
//! build (so a build without libtorch exports too), a `torch.save` archive (`.pt`, `.pth`)
//! through the runtime's reader when built with libtorch. The format is told by the content.

use std::io::Read;
use std::path::Path;

use safetensors::tensor::{SafeTensorError, SafeTensors};
use vggdsl_onnx::{Tensor, Weights};

use crate::exit::{FAILED, UNREADABLE};
use crate::failure::Failure;

/// How every zip archive, and so every `torch.save` file, begins.
const ZIP_MAGIC: &[u8] = b"PK\x03\x04";

/// The weights in `path`, refused when it holds more than `max_bytes` (no state_dict of the
/// model can be larger, and a device such as `/dev/zero` never ends).
pub fn read(path: &Path, max_bytes: u64) -> Result<Weights, Failure> {
    let name = path.display();
    let cannot = |why: &dyn std::fmt::Display| {
        Failure::new(UNREADABLE, format_args!("cannot read {name}: {why}"))
    };
    let mut file = std::fs::File::open(path).map_err(|e| cannot(&e))?;
    let mut bytes = Vec::new();
    (&mut file)
        .take(ZIP_MAGIC.len() as u64)
        .read_to_end(&mut bytes)
        .map_err(|e| cannot(&e))?;
    if bytes == ZIP_MAGIC {
        return torch_archive(path);
    }
    file.take(max_bytes + 1 - bytes.len() as u64)
        .read_to_end(&mut bytes)
        .map_err(|e| cannot(&e))?;
    if bytes.len() as u64 > max_bytes {
        return Err(cannot(&format_args!(
            "it is larger than any weights of the model can be ({} MiB)",
            max_bytes >> 20
        )));
    }
    let invalid = |why: &dyn std::fmt::Display| {
        Failure::new(
            FAILED,
            format_args!(
                "{name} is neither a safetensors file nor a torch.save archive ({why}); export \
                 reads .safetensors and .pt files"
            ),
        )
    };
    let file = SafeTensors::deserialize(&bytes).map_err(|e| invalid(&why(&e, bytes.len())))?;
    let mut weights = Weights::new();
    for (key, view) in file.tensors() {
        let shape: Vec<i64> = view.shape().iter().map(|&d| d as i64).collect();
        let tensor = match view.dtype() {
            safetensors::Dtype::F32 => Tensor::from_le_bytes(shape, view.data()),
            // BatchNorm's counters, which export checks for and never reads.
            safetensors::Dtype::I64 => {
                let counts = view.data().chunks_exact(8);
                let data = counts.map(|b| i64::from_le_bytes(b.try_into().expect("8 bytes")));
                Tensor::new(shape, data.map(|n| n as f32).collect())
            }
            other => return Err(dtype_failure(path, &key, &format!("{other:?}"))),
        };
        weights.insert(key, tensor.ok_or_else(|| invalid(&"a tensor's size"))?);
    }
    Ok(weights)
}

/// Why safetensors refused a file, in words.
fn why(error: &SafeTensorError, len: usize) -> String {
    match error {
        _ if len == 0 => "it is empty".into(),
        SafeTensorError::HeaderTooSmall | SafeTensorError::InvalidHeaderLength => {
            "its header is cut off".into()
        }
        SafeTensorError::HeaderTooLarge
        | SafeTensorError::InvalidHeader
        | SafeTensorError::InvalidHeaderStart => "it starts with no safetensors header".into(),
        SafeTensorError::MetadataIncompleteBuffer => {
            "its tensor data is shorter or longer than its header says".into()
        }
        e => format!("{e:?}"),
    }
}

fn dtype_failure(path: &Path, key: &str, dtype: &str) -> Failure {
    Failure::new(
        FAILED,
        format_args!(
            "{key} in {} has dtype {dtype}; export reads float32 weights (and int64 counters)",
            path.display()
        ),
    )
}

#[cfg(feature = "torch")]
fn torch_archive(path: &Path) -> Result<Weights, Failure> {
    use vggdsl_runtime::tch::Kind;
    use vggdsl_runtime::LoadError;
    let tensors = vggdsl_runtime::read_state_dict(path).map_err(|e| match e {
        LoadError::Io { .. } => Failure::new(UNREADABLE, e),
        e => Failure::new(FAILED, e),
    })?;
    let mut weights = Weights::new();
    for (key, tensor) in tensors {
        let kind = tensor.kind();
        if !matches!(kind, Kind::Float | Kind::Int64) {
            return Err(dtype_failure(path, &key, &format!("{kind:?}")));
        }
        let flat = tensor.to_kind(Kind::Float).flatten(0, -1);
        let data = Vec::<f32>::try_from(&flat)
            .map_err(|e| Failure::new(FAILED, format_args!("{key} in {}: {e}", path.display())))?;
        let tensor = Tensor::new(tensor.size(), data).expect("libtorch's sizes fit its elements");
        weights.insert(key, tensor);
    }
    Ok(weights)
}

#[cfg(not(feature = "torch"))]
fn torch_archive(path: &Path) -> Result<Weights, Failure> {
    Err(Failure::new(
        FAILED,
        format_args!(
            "{} is a torch.save archive, which this vggdsl, built without libtorch, cannot read; \
             save the weights as .safetensors",
            path.display()
        ),
    ))
}
