//! Moves weights between PyTorch and a [`VarStore`] whose variable names are PyTorch's state_dict
//! keys (`features.conv0.weight`, `features.norm0.num_batches_tracked`, …).
//!
//! [`load_state_dict`] reads `.safetensors` files and the zip archives that
//! `torch.save(model.state_dict(), f)` writes; [`save_state_dict`] writes `.safetensors`, which
//! PyTorch loads with `load_state_dict(strict=True)`. `VarStore::load` is not used: it can't read
//! `torch.save`'s `OrderedDict`, broadcasts wrongly shaped tensors and takes on the file's dtype.
//! The archives' reader is [`torch_zip`], over the restricted pickle reader of `crate::pickle`.

mod torch_zip;

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;
use std::fs::File;
use std::io::{self, Read, Seek};
use std::path::{Path, PathBuf};

use safetensors::tensor::{Dtype, SafeTensorError, SafeTensors, View};
use tch::nn::VarStore;
use tch::{Device, Kind, TchError, Tensor};

/// How [`load_state_dict_with`] treats keys, shapes and dtypes that differ between file and store.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LoadMode {
    /// Any difference is an error and nothing is loaded, as PyTorch's `strict=True`.
    #[default]
    Strict,
    /// Loads every tensor whose key, shape and dtype match and reports the rest, e.g. to reuse a
    /// backbone under a classifier with another number of classes.
    Partial,
}

/// One difference between a file and a [`VarStore`].
#[derive(Clone, Debug, PartialEq)]
pub enum Mismatch {
    /// The store has this variable, the file has no tensor for it.
    Missing {
        key: String,
        kind: Kind,
        shape: Vec<i64>,
    },
    /// The file has this tensor, the store has no variable for it.
    Unexpected {
        key: String,
        kind: Kind,
        shape: Vec<i64>,
    },
    Shape {
        key: String,
        model: Vec<i64>,
        file: Vec<i64>,
    },
    /// Never converted: a silent cast would hide a model built with the wrong dtype.
    Dtype {
        key: String,
        model: Kind,
        file: Kind,
    },
}

impl Mismatch {
    pub fn key(&self) -> &str {
        match self {
            Mismatch::Missing { key, .. }
            | Mismatch::Unexpected { key, .. }
            | Mismatch::Shape { key, .. }
            | Mismatch::Dtype { key, .. } => key,
        }
    }
}

impl fmt::Display for Mismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Mismatch::Missing { key, kind, shape } => {
                write!(
                    f,
                    "missing key {key}: the model's {} {shape:?} is not in the file",
                    dtype_name(*kind)
                )
            }
            Mismatch::Unexpected { key, kind, shape } => {
                write!(
                    f,
                    "unexpected key {key}: the file's {} {shape:?} is not in the model",
                    dtype_name(*kind)
                )
            }
            Mismatch::Shape { key, model, file } => {
                write!(
                    f,
                    "shape mismatch for {key}: the model expects {model:?}, the file has {file:?}"
                )
            }
            Mismatch::Dtype { key, model, file } => write!(
                f,
                "dtype mismatch for {key}: the model expects {}, the file has {}",
                dtype_name(*model),
                dtype_name(*file)
            ),
        }
    }
}

/// What a successful load did.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LoadReport {
    /// Keys copied into the store, in file order.
    pub loaded: Vec<String>,
    /// What [`LoadMode::Partial`] left alone (always empty after a strict load); skipped
    /// variables keep their values.
    pub skipped: Vec<Mismatch>,
}

impl fmt::Display for LoadReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "loaded {} tensors, skipped {}",
            self.loaded.len(),
            self.skipped.len()
        )?;
        self.skipped.iter().try_for_each(|m| write!(f, "\n  {m}"))
    }
}

/// Why a file could not be loaded; every variant names the file. On any error but
/// [`LoadError::Copy`] the store is untouched.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// Opening or reading failed, e.g. no such file.
    #[error("cannot read {}: {source}", .path.display())]
    Io { path: PathBuf, source: io::Error },
    #[error(
        "{} is not a tensor file: {reason}; expected a .safetensors file or a torch.save \
         archive (.pt, .pth)",
        .path.display()
    )]
    /// Neither safetensors nor a `torch.save` zip archive, told by the first bytes.
    NotTensorFile { path: PathBuf, reason: String },
    /// The format was recognised but its content is cut off or inconsistent.
    #[error("{} is truncated or corrupt: {reason}", .path.display())]
    Corrupt { path: PathBuf, reason: String },
    /// Well-formed, but holding something other than a flat map of names to plain tensors.
    #[error("{} is not supported: {reason}", .path.display())]
    Unsupported { path: PathBuf, reason: String },
    /// A strict load found differences; all of them are listed.
    #[error(
        "{} does not match the model, so nothing was loaded:{}",
        .path.display(), .mismatches.iter().map(|m| format!("\n  {m}")).collect::<String>()
    )]
    Mismatch {
        path: PathBuf,
        mismatches: Vec<Mismatch>,
    },
    /// libtorch failed to copy an already validated tensor (e.g. out of device memory); the
    /// tensors before `key` are loaded.
    #[error("copying {key} from {} into the model failed: {source}", .path.display())]
    Copy {
        path: PathBuf,
        key: String,
        source: TchError,
    },
}

/// Why [`save_state_dict`] failed; the file at `path`, if any, is unchanged.
#[derive(Debug, thiserror::Error)]
pub enum SaveError {
    #[error("cannot save {key}: safetensors has no {} dtype", dtype_name(*.kind))]
    UnsupportedKind { key: String, kind: Kind },
    #[error("cannot copy {key} to the CPU: {source}")]
    Tensor { key: String, source: TchError },
    #[error("cannot write {}: {source}", .path.display())]
    Io { path: PathBuf, source: io::Error },
    /// safetensors refused the tensors (a bug: they are checked before).
    #[error("cannot serialize the tensors: {0}")]
    Serialize(String),
}

/// Loads `path` into `vs` strictly: see [`load_state_dict_with`] and [`LoadMode::Strict`].
pub fn load_state_dict(vs: &mut VarStore, path: impl AsRef<Path>) -> Result<LoadReport, LoadError> {
    load_state_dict_with(vs, path, LoadMode::Strict)
}

/// Loads a `.safetensors` file or a `torch.save(model.state_dict())` archive into `vs`, matching
/// keys to variable names. The file is read and checked whole before any variable changes, and
/// values are copied into the store's own tensors, so they keep their dtype and device.
pub fn load_state_dict_with(
    vs: &mut VarStore,
    path: impl AsRef<Path>,
    mode: LoadMode,
) -> Result<LoadReport, LoadError> {
    let path = path.as_ref();
    let mut variables = vs.variables();
    let mut to_copy = Vec::new();
    let mut differences = Vec::new();
    for (key, tensor) in read_state_dict(path)? {
        let Some(var) = variables.remove(&key) else {
            differences.push(Mismatch::Unexpected {
                key,
                kind: tensor.kind(),
                shape: tensor.size(),
            });
            continue;
        };
        let found = differences.len();
        if var.size() != tensor.size() {
            differences.push(Mismatch::Shape {
                key: key.clone(),
                model: var.size(),
                file: tensor.size(),
            });
        }
        if var.kind() != tensor.kind() {
            differences.push(Mismatch::Dtype {
                key: key.clone(),
                model: var.kind(),
                file: tensor.kind(),
            });
        }
        if differences.len() == found {
            to_copy.push((key, var, tensor));
        }
    }
    let mut missing: Vec<_> = variables
        .into_iter()
        .map(|(key, var)| Mismatch::Missing {
            key,
            kind: var.kind(),
            shape: var.size(),
        })
        .collect();
    missing.sort_by(|a, b| a.key().cmp(b.key()));
    missing.append(&mut differences);
    if mode == LoadMode::Strict && !missing.is_empty() {
        return Err(LoadError::Mismatch {
            path: path.into(),
            mismatches: missing,
        });
    }
    tch::no_grad(|| {
        to_copy.iter_mut().try_for_each(|(key, var, tensor)| {
            var.f_copy_(tensor).map_err(|source| LoadError::Copy {
                path: path.into(),
                key: key.clone(),
                source,
            })
        })
    })?;
    Ok(LoadReport {
        loaded: to_copy.into_iter().map(|(key, ..)| key).collect(),
        skipped: missing,
    })
}

/// Reads every tensor of a `.safetensors` file or `torch.save` archive, on the CPU, keeping the
/// file's dtypes. The format is told by the content, not the extension. Safetensors entries come
/// sorted by name, `torch.save` ones in their saved order.
pub fn read_state_dict(path: impl AsRef<Path>) -> Result<Vec<(String, Tensor)>, LoadError> {
    let path = path.as_ref();
    let io_error = |source| LoadError::Io {
        path: path.into(),
        source,
    };
    let mut file = File::open(path).map_err(io_error)?;
    let mut head = Vec::new();
    (&mut file)
        .take(9)
        .read_to_end(&mut head)
        .map_err(io_error)?;
    file.rewind().map_err(io_error)?;
    let not_tensor_file = |reason: &str| {
        Err(LoadError::NotTensorFile {
            path: path.into(),
            reason: reason.into(),
        })
    };
    match head.as_slice() {
        [b'P', b'K', 3, 4, ..] => torch_zip::read(path, file),
        // A little-endian header length (safetensors caps it at 100 MB), then the JSON header.
        [len @ .., b'{']
            if <[u8; 8]>::try_from(len).is_ok_and(|len| u64::from_le_bytes(len) <= 100_000_000) =>
        {
            read_safetensors(path, file)
        }
        [0x80, ..] => Err(LoadError::Unsupported {
            path: path.into(),
            reason: "it is a bare pickle, as torch.save wrote before PyTorch 1.6 or with \
                     _use_new_zipfile_serialization=False; save it again with a current torch.save \
                     or as .safetensors"
                .into(),
        }),
        [] => not_tensor_file("the file is empty"),
        _ => not_tensor_file("it starts with neither a zip nor a safetensors header"),
    }
}

fn read_safetensors(path: &Path, mut file: File) -> Result<Vec<(String, Tensor)>, LoadError> {
    let corrupt = |reason: String| LoadError::Corrupt {
        path: path.into(),
        reason,
    };
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)
        .map_err(|source| LoadError::Io {
            path: path.into(),
            source,
        })?;
    let safetensors = SafeTensors::deserialize(&bytes).map_err(|e| {
        corrupt(match e {
            SafeTensorError::InvalidHeaderLength => "the header is cut off".into(),
            SafeTensorError::MetadataIncompleteBuffer => {
                "the tensor data is shorter or longer than the header says".into()
            }
            e => format!("bad safetensors header ({e:?})"),
        })
    })?;
    let mut tensors = safetensors
        .tensors()
        .into_iter()
        .map(|(key, view)| {
            let Some(&(kind, _)) = DTYPES.iter().find(|(_, d)| *d == view.dtype()) else {
                return Err(LoadError::Unsupported {
                    path: path.into(),
                    reason: format!(
                        "{key} has dtype {:?}, which tch has no kind for",
                        view.dtype()
                    ),
                });
            };
            let shape: Vec<i64> = view.shape().iter().map(|&n| n as i64).collect();
            let tensor = tensor_from_bytes(view.data(), &shape, kind)
                .ok_or_else(|| corrupt(format!("{key}'s data")))?;
            Ok((key, tensor))
        })
        .collect::<Result<Vec<_>, _>>()?;
    tensors.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(tensors)
}

/// A CPU tensor holding a copy of `bytes`, or `None` if their length doesn't fit shape and kind
/// (libtorch would read past them).
fn tensor_from_bytes(bytes: &[u8], shape: &[i64], kind: Kind) -> Option<Tensor> {
    let numel = shape.iter().try_fold(1i64, |n, &d| n.checked_mul(d))?;
    let len = usize::try_from(numel)
        .ok()?
        .checked_mul(kind.elt_size_in_bytes())?;
    if len != bytes.len() {
        return None;
    }
    Tensor::f_from_data_size(bytes, shape, kind).ok()
}

/// Writes every variable of `vs` to a `.safetensors` file, named by its variable name and with
/// its own dtype, which PyTorch reads with `safetensors.torch.load_file`. The file is written
/// whole ([`vggdsl::atomic`]), so a failed save never leaves half a file.
pub fn save_state_dict(vs: &VarStore, path: impl AsRef<Path>) -> Result<(), SaveError> {
    let path = path.as_ref();
    let bytes = safetensors_bytes(vs.variables())?;
    vggdsl::atomic::write(path, &bytes).map_err(|source| SaveError::Io {
        path: path.into(),
        source,
    })
}

/// The bytes of a `.safetensors` file holding `tensors`, as [`save_state_dict`] writes them, for
/// callers that write several files together (checkpoints, a pruned model's files).
pub fn safetensors_bytes(
    tensors: impl IntoIterator<Item = (String, Tensor)>,
) -> Result<Vec<u8>, SaveError> {
    safetensors::tensor::serialize(cpu_views(tensors)?, &pt_metadata())
        .map_err(|e| SaveError::Serialize(format!("{e:?}")))
}

/// `format: pt` is what safetensors.torch writes; Hugging Face loaders look for it.
fn pt_metadata() -> Option<HashMap<String, String>> {
    Some(HashMap::from([("format".to_string(), "pt".to_string())]))
}

/// Each tensor detached, on the CPU and contiguous, for safetensors to read in place.
fn cpu_views(
    tensors: impl IntoIterator<Item = (String, Tensor)>,
) -> Result<Vec<(String, CpuTensor)>, SaveError> {
    tensors
        .into_iter()
        .map(|(key, var)| {
            let Some(&(_, dtype)) = DTYPES.iter().find(|(k, _)| *k == var.kind()) else {
                return Err(SaveError::UnsupportedKind {
                    key,
                    kind: var.kind(),
                });
            };
            let tensor = var
                .f_detach()
                .and_then(|t| t.f_to_device(Device::Cpu))
                .and_then(|t| t.f_contiguous());
            let tensor = tensor.map_err(|source| SaveError::Tensor {
                key: key.clone(),
                source,
            })?;
            let shape = tensor.size().iter().map(|&n| n as usize).collect();
            Ok((
                key,
                CpuTensor {
                    tensor,
                    dtype,
                    shape,
                },
            ))
        })
        .collect()
}

/// A contiguous CPU tensor that safetensors reads in place.
struct CpuTensor {
    tensor: Tensor,
    dtype: Dtype,
    shape: Vec<usize>,
}

impl View for CpuTensor {
    fn dtype(&self) -> Dtype {
        self.dtype
    }

    fn shape(&self) -> &[usize] {
        &self.shape
    }

    fn data(&self) -> Cow<'_, [u8]> {
        let len = self.data_len();
        if len == 0 {
            return Cow::Borrowed(&[]);
        }
        // SAFETY: `tensor` is a contiguous CPU tensor of `len` bytes, alive as long as `self`.
        Cow::Borrowed(unsafe {
            std::slice::from_raw_parts(self.tensor.data_ptr() as *const u8, len)
        })
    }

    fn data_len(&self) -> usize {
        self.tensor.numel() * self.tensor.kind().elt_size_in_bytes()
    }
}

/// The dtypes both tch and safetensors have.
const DTYPES: [(Kind, Dtype); 10] = [
    (Kind::Float, Dtype::F32),
    (Kind::Double, Dtype::F64),
    (Kind::Half, Dtype::F16),
    (Kind::BFloat16, Dtype::BF16),
    (Kind::Int64, Dtype::I64),
    (Kind::Int, Dtype::I32),
    (Kind::Int16, Dtype::I16),
    (Kind::Int8, Dtype::I8),
    (Kind::Uint8, Dtype::U8),
    (Kind::Bool, Dtype::BOOL),
];

/// PyTorch's name for a dtype, as users see it there.
fn dtype_name(kind: Kind) -> &'static str {
    match kind {
        Kind::Uint8 => "uint8",
        Kind::Int8 => "int8",
        Kind::Int16 => "int16",
        Kind::Int => "int32",
        Kind::Int64 => "int64",
        Kind::Half => "float16",
        Kind::Float => "float32",
        Kind::Double => "float64",
        Kind::ComplexHalf => "complex32",
        Kind::ComplexFloat => "complex64",
        Kind::ComplexDouble => "complex128",
        Kind::Bool => "bool",
        Kind::QInt8 => "qint8",
        Kind::QUInt8 => "quint8",
        Kind::QInt32 => "qint32",
        Kind::BFloat16 => "bfloat16",
        Kind::Float8e5m2 => "float8_e5m2",
        Kind::Float8e4m3fn => "float8_e4m3fn",
        Kind::Float8e5m2fnuz => "float8_e5m2fnuz",
        Kind::Float8e4m3fnuz => "float8_e4m3fnuz",
    }
}
