//! Stochastic gradient descent as PyTorch's `torch.optim.SGD` computes it on CPU tensors (the
//! single-tensor path, which CPU parameters take), step for step and bit for bit, with momentum
//! buffers that can be saved and restored, which tch's own optimiser keeps out of reach.

use std::collections::HashMap;

use tch::nn::VarStore;
use tch::{TchError, Tensor};

use vggdsl_runtime::ops::{grad_to_none, sgd_step};
use vggdsl_runtime::state_dict::Mismatch;

/// The hyper-parameters that stay fixed during a run (the learning rate follows a schedule and
/// is passed to each [`Sgd::step`]). Dampening is PyTorch's default, 0.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SgdConfig {
    pub momentum: f64,
    pub weight_decay: f64,
    pub nesterov: bool,
}

/// SGD over the trainable variables of a [`VarStore`], keyed by their state_dict names.
#[derive(Debug)]
pub struct Sgd {
    config: SgdConfig,
    /// Sorted by name: the order of the saved state (updates are independent of it).
    params: Vec<(String, Tensor)>,
    /// PyTorch's `momentum_buffer`: none until a parameter's first step.
    buffers: Vec<Option<Tensor>>,
}

impl Sgd {
    pub fn new(vs: &VarStore, config: SgdConfig) -> Sgd {
        let mut params: Vec<_> = vs
            .variables()
            .into_iter()
            .filter(|(_, t)| t.requires_grad())
            .collect();
        params.sort_by(|a, b| a.0.cmp(&b.0));
        let buffers = params.iter().map(|_| None).collect();
        Sgd {
            config,
            params,
            buffers,
        }
    }

    pub fn config(&self) -> SgdConfig {
        self.config
    }

    /// Drops the gradients before a backward pass, as PyTorch's `zero_grad()` does (it sets them
    /// to `None`): backward then stores each new gradient rather than adding it to zeros, which
    /// saves two passes over the parameters' memory per step.
    pub fn zero_grad(&mut self) {
        for (_, p) in &mut self.params {
            grad_to_none(p);
        }
    }

    /// One step with learning rate `lr`, PyTorch's `_single_tensor_sgd` (see [`sgd_step`]).
    /// Parameters without a gradient are skipped, as there.
    pub fn step(&mut self, lr: f64) -> Result<(), TchError> {
        let SgdConfig {
            momentum,
            weight_decay,
            nesterov,
        } = self.config;
        for ((_, p), buffer) in self.params.iter_mut().zip(&mut self.buffers) {
            sgd_step(p, buffer, lr, momentum, weight_decay, nesterov)?;
        }
        Ok(())
    }

    /// The momentum buffers that exist, named by their parameter's key.
    pub fn state(&self) -> Vec<(String, Tensor)> {
        self.params
            .iter()
            .zip(&self.buffers)
            .filter_map(|((key, _), buf)| Some((key.clone(), buf.as_ref()?.shallow_clone())))
            .collect()
    }

    /// Restores buffers saved by [`Sgd::state`]; parameters not among them start without one.
    /// Every tensor must name a parameter and match its shape and dtype, else nothing changes.
    pub fn load_state(&mut self, tensors: Vec<(String, Tensor)>) -> Result<(), Vec<Mismatch>> {
        let index: HashMap<&str, usize> = self
            .params
            .iter()
            .enumerate()
            .map(|(i, (key, _))| (key.as_str(), i))
            .collect();
        let mut buffers: Vec<Option<Tensor>> = self.params.iter().map(|_| None).collect();
        let mut mismatches = Vec::new();
        for (key, tensor) in tensors {
            let Some(&i) = index.get(key.as_str()) else {
                mismatches.push(Mismatch::Unexpected {
                    kind: tensor.kind(),
                    shape: tensor.size(),
                    key,
                });
                continue;
            };
            let param = &self.params[i].1;
            if param.size() != tensor.size() {
                mismatches.push(Mismatch::Shape {
                    key,
                    model: param.size(),
                    file: tensor.size(),
                });
            } else if param.kind() != tensor.kind() {
                mismatches.push(Mismatch::Dtype {
                    key,
                    model: param.kind(),
                    file: tensor.kind(),
                });
            } else {
                buffers[i] = Some(tensor.to_device(param.device()));
            }
        }
        if !mismatches.is_empty() {
            return Err(mismatches);
        }
        self.buffers = buffers;
        Ok(())
    }
}
