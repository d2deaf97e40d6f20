//! Network Slimming's sparsity training (Liu et al., "Learning Efficient Convolutional Networks
//! through Network Slimming", ICCV 2017): an L1 penalty λ·Σ|γ| on the scale factors γ of every
//! BatchNorm2d, applied as its authors' code does (`updateBN` in Eric-mingjie/network-slimming's
//! `main.py`): after the backward pass and before the SGD step, `γ.grad += λ·sign(γ)`. The scales
//! then drift to zero where a channel is not needed, and `vggdsl prune --by bn` removes those.

use tch::nn::VarStore;
use tch::{TchError, Tensor};
use vggdsl::ir::LayerKind;
use vggdsl::{names, Architecture};

/// The penalty's weight λ and the BatchNorm2d scales it applies to.
#[derive(Debug)]
pub struct Sparsity {
    lambda: f64,
    scales: Vec<Tensor>,
}

/// Why sparsity training cannot apply to a model.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error(
    "model {model} has no BatchNorm2d, whose scale factors --sparsity penalises (its file sets \
     bn = false)"
)]
pub struct NoBatchNorm {
    pub model: String,
}

impl Sparsity {
    /// The penalty on the BatchNorm2d weights of `ir`, whose variables `vs` holds.
    pub fn new(vs: &VarStore, ir: &Architecture, lambda: f64) -> Result<Sparsity, NoBatchNorm> {
        let variables = vs.variables();
        let scales: Vec<Tensor> = ir
            .features
            .iter()
            .filter(|l| matches!(l.kind, LayerKind::BatchNorm2d { .. }))
            .map(|l| {
                let key = format!("{}.weight", names::module_path(names::FEATURES, &l.name));
                variables[&key].shallow_clone()
            })
            .collect();
        if scales.is_empty() {
            return Err(NoBatchNorm {
                model: ir.spec.name.clone(),
            });
        }
        Ok(Sparsity { lambda, scales })
    }

    pub fn lambda(&self) -> f64 {
        self.lambda
    }

    /// Adds the penalty's subgradient `λ·sign(γ)` to every scale's gradient, in the order and
    /// with the operations of the authors' `m.weight.grad.data.add_(s * torch.sign(m.weight.data))`.
    /// A scale without a gradient (none flowed to it) is left alone.
    pub fn apply(&self) -> Result<(), TchError> {
        tch::no_grad(|| {
            for gamma in &self.scales {
                let mut grad = gamma.grad();
                if grad.defined() {
                    let step = gamma.f_sign()?.f_mul_scalar(self.lambda)?;
                    let _ = grad.f_add_(&step)?;
                }
            }
            Ok(())
        })
    }
}
