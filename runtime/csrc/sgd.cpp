// PyTorch's SGD step for one parameter (`torch.optim.SGD`'s single-tensor path) bit for bit, in
// one pass over its memory where PyTorch's op sequence makes up to seven; and `grad = None`, as
// `zero_grad()` leaves a gradient. tch binds neither (its `add` drops the `alpha` the step needs).
#include "common.h"

#include <ATen/core/grad_mode.h>
#include <ATen/ops/empty_like.h>

#include <cmath>
#include <utility>

namespace {
using vggdsl::aten_fuses_multiply_add;
using vggdsl::grain;

// One parameter's step of PyTorch's `_single_tensor_sgd` in one pass over its memory, where the
// op sequence (grad.add(p, alpha=wd); buf.mul_(m).add_(d_p); d_p.add(buf, alpha=m) for
// nesterov; p.add_(d_p, alpha=-lr)) makes seven. The numbers are aten's: its `add` with `alpha`
// is one fused multiply-add in vector and scalar code alike (checked against PyTorch,
// runtime/tests/train.rs), `mul_` rounds the product once, and the hyper-parameters are rounded
// to T as aten rounds its scalars. `momentum` is 0 (no buffer), 1 (the first step: the buffer
// starts as d_p) or 2.
template <typename T>
[[gnu::always_inline]] inline void sgd_step(T* p, const T* g, T* buf, int64_t begin, int64_t end,
                                            bool decay, T wd, int momentum, T m, bool nesterov,
                                            T neg_lr) {
#pragma omp simd
  for (int64_t i = begin; i < end; ++i) {
    T d = decay ? std::fma(p[i], wd, g[i]) : g[i];
    if (momentum != 0) {
      T b = d;
      if (momentum == 2) {
        b = buf[i] * m;
        b = b + d;
      }
      buf[i] = b;
      d = nesterov ? std::fma(b, m, d) : b;
    }
    p[i] = std::fma(d, neg_lr, p[i]);
  }
}

VGGDSL_ISA_BUILDS(sgd_step_f32,
                  (float* p, const float* g, float* buf, int64_t begin, int64_t end, bool decay,
                   float wd, int momentum, float m, bool nesterov, float neg_lr),
                  (p, g, buf, begin, end, decay, wd, momentum, m, nesterov, neg_lr), sgd_step)

VGGDSL_ISA_BUILDS(sgd_step_f64,
                  (double* p, const double* g, double* buf, int64_t begin, int64_t end,
                   bool decay, double wd, int momentum, double m, bool nesterov, double neg_lr),
                  (p, g, buf, begin, end, decay, wd, momentum, m, nesterov, neg_lr), sgd_step)

// Whether `sgd_step` can update `param` from `grad` and `buf` (undefined before the first step):
// dense contiguous f32/f64 host tensors of one shape and dtype. Others take aten's ops.
bool sgd_step_takes(const at::Tensor& param, const at::Tensor& grad, const at::Tensor& buf) {
  const auto plain = [&](const at::Tensor& t) {
    return t.layout() == at::kStrided && t.device().is_cpu() && t.is_contiguous() &&
           t.scalar_type() == param.scalar_type() && t.sizes() == param.sizes();
  };
  return aten_fuses_multiply_add() &&
         (param.scalar_type() == at::kFloat || param.scalar_type() == at::kDouble) &&
         plain(param) && plain(grad) && (!buf.defined() || plain(buf));
}

// PyTorch's step for one parameter (see `sgd_step`), through aten's ops where `sgd_step_takes`
// refuses.
void sgd(at::Tensor& param, at::Tensor& buf, double lr, double momentum, double weight_decay,
         bool nesterov) {
  const at::Tensor grad = param.grad();
  if (!grad.defined()) {
    return;  // as PyTorch skips a parameter without a gradient
  }
  if (!sgd_step_takes(param, grad, buf)) {
    at::Tensor d_p = weight_decay != 0 ? grad.add(param, weight_decay) : grad;
    if (momentum != 0) {
      if (buf.defined()) {
        buf.mul_(momentum).add_(d_p);
      } else {
        buf = d_p.clone().detach();
      }
      d_p = nesterov ? d_p.add(buf, momentum) : buf;
    }
    param.add_(d_p, -lr);
    return;
  }
  const int kind = momentum == 0 ? 0 : buf.defined() ? 2 : 1;
  if (kind == 1) {
    buf = at::empty_like(param, at::MemoryFormat::Contiguous);
  }
  at::parallel_for(0, param.numel(), grain(1), [&](int64_t begin, int64_t end) {
    if (param.scalar_type() == at::kFloat) {
      sgd_step_f32(param.mutable_data_ptr<float>(), grad.const_data_ptr<float>(),
                   kind == 0 ? nullptr : buf.mutable_data_ptr<float>(), begin, end,
                   weight_decay != 0, static_cast<float>(weight_decay), kind,
                   static_cast<float>(momentum), nesterov, static_cast<float>(-lr));
    } else {
      sgd_step_f64(param.mutable_data_ptr<double>(), grad.const_data_ptr<double>(),
                   kind == 0 ? nullptr : buf.mutable_data_ptr<double>(), begin, end,
                   weight_decay != 0, weight_decay, kind, momentum, nesterov, -lr);
    }
  });
  // As aten's in-place ops do, so that autograd sees the parameter changed.
  param.unsafeGetTensorImpl()->bump_version();
  if (kind == 2) {
    buf.unsafeGetTensorImpl()->bump_version();
  }
}
}  // namespace

extern "C" {

// One SGD step for `param` from its gradient (`sgd`, above). `buf` is its momentum buffer, or
// null before the first step, when a new buffer is stored in `*new_buf` (momentum ≠ 0). False
// on failure (see vggdsl_last_error).
bool vggdsl_sgd_step(at::Tensor* param, at::Tensor* buf, at::Tensor** new_buf, double lr,
                     double momentum, double weight_decay, bool nesterov) {
  return vggdsl::guarded(false, [&] {
    const at::NoGradGuard no_grad;  // the step itself is not differentiated
    at::Tensor b = buf ? *buf : at::Tensor();
    sgd(*param, b, lr, momentum, weight_decay, nesterov);
    *new_buf = !buf && b.defined() ? new at::Tensor(std::move(b)) : nullptr;
    return true;
  });
}

// `self.grad = None`: the next backward pass stores its gradient instead of adding it to zeros.
void vggdsl_grad_to_none(at::Tensor* self) { self->mutable_grad() = at::Tensor(); }
}
