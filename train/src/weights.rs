//! Weights a command runs or trains from, loaded strictly and checked usable: a NaN or an
//! infinity in any tensor, or a negative running variance, would make every output NaN (and
//! HRank's ranks fail), so such weights are refused up front with the tensor's name.

use std::path::{Path, PathBuf};

use tch::nn::VarStore;
use tch::{Kind, TchError, Tensor};
use vggdsl_runtime::state_dict::{load_state_dict, LoadError};

use crate::error::torch_sentence;

/// Why weights cannot be used; each message is one sentence naming the file.
#[derive(Debug, thiserror::Error)]
pub enum WeightsError {
    #[error(transparent)]
    Load(#[from] LoadError),
    #[error(
        "{} holds {what} in {tensor}: such weights give NaN outputs, so vggdsl does not use them",
        path.display()
    )]
    Unusable {
        path: PathBuf,
        tensor: String,
        /// `NaN`, `an infinite value` or `a negative variance`.
        what: &'static str,
    },
    #[error("libtorch failed: {}", torch_sentence(.0))]
    Torch(#[from] TchError),
}

/// Loads `path` into `vs` strictly and checks every tensor.
pub fn load(vs: &mut VarStore, path: &Path) -> Result<(), WeightsError> {
    load_state_dict(vs, path)?;
    match first_unusable(vs)? {
        Some((tensor, what)) => Err(WeightsError::Unusable {
            path: path.into(),
            tensor,
            what,
        }),
        None => Ok(()),
    }
}

/// The first tensor of `vs` by name that holds a NaN, an infinity or, for a running variance, a
/// negative value; with what it holds.
pub fn first_unusable(vs: &VarStore) -> Result<Option<(String, &'static str)>, TchError> {
    let mut tensors: Vec<(String, Tensor)> = vs.variables().into_iter().collect();
    tensors.sort_by(|a, b| a.0.cmp(&b.0));
    let any = |t: Tensor| -> Result<bool, TchError> {
        Ok(t.f_any()?.f_to_kind(Kind::Int64)?.f_int64_value(&[])? != 0)
    };
    for (name, t) in tensors {
        if !t.f_is_floating_point()? {
            continue;
        }
        let what = if any(t.f_isnan()?)? {
            "NaN"
        } else if any(t.f_isinf()?)? {
            "an infinite value"
        } else if name.ends_with(".running_var") && any(t.f_lt(0.0)?)? {
            "a negative variance"
        } else {
            continue;
        };
        return Ok(Some((name, what)));
    }
    Ok(None)
}
