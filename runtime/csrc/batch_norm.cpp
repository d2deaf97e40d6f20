// BatchNorm in train mode with aten's numbers (outputs, saved and running statistics,
// gradients): aten collects each channel's statistics as one dependent chain of double
// additions; this kernel runs the same chains for several channels side by side.
#include "common.h"

#include <ATen/ops/batch_norm.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/native_batch_norm_backward.h>
#include <torch/csrc/autograd/custom_function.h>

#include <cmath>

namespace {
using vggdsl::aten_fuses_multiply_add;
using vggdsl::grain;

// Per-channel statistics of a contiguous f32 NCHW batch for `channels` [begin, end), as aten's
// `batch_norm_cpu_collect_stats_contiguous_impl` computes them: the sum, then the sum of squared
// deviations, each one sequence of double additions per channel in memory order, the mean
// (sum / N) rounded to float before the deviations. aten runs one channel's chain at a time,
// each addition waiting for the last; here `kChains` channels' chains interleave, so that the
// additions overlap, and every channel's sums are the same bits.
template <int kChains>
[[gnu::always_inline]] inline void channel_stats(const float* x, float* mean, float* var_sum,
                                                 int64_t first, int64_t batch, int64_t channels,
                                                 int64_t plane) {
  const double count = static_cast<double>(batch * plane);
  double sum[kChains] = {};
  for (int64_t n = 0; n < batch; ++n) {
    const float* at = x + (n * channels + first) * plane;
    for (int64_t i = 0; i < plane; ++i) {
      for (int k = 0; k < kChains; ++k) {
        sum[k] += at[k * plane + i];
      }
    }
  }
  float m[kChains];
  for (int k = 0; k < kChains; ++k) {
    m[k] = static_cast<float>(sum[k] / count);
    mean[first + k] = m[k];
  }
  double squares[kChains] = {};
  for (int64_t n = 0; n < batch; ++n) {
    const float* at = x + (n * channels + first) * plane;
    for (int64_t i = 0; i < plane; ++i) {
      for (int k = 0; k < kChains; ++k) {
        const float d = at[k * plane + i] - m[k];
        squares[k] += d * d;
      }
    }
  }
  for (int k = 0; k < kChains; ++k) {
    var_sum[first + k] = static_cast<float>(squares[k]);
  }
}

// `y = x·α + β` per channel for planes [begin, end) (plane p is channel p % channels), one
// rounding each (aten's kernel computes both with fused multiply-adds).
[[gnu::always_inline]] inline void batch_norm_apply(const float* x, float* y, const float* alpha, const float* beta,
                      int64_t begin, int64_t end, int64_t channels, int64_t plane) {
  for (int64_t p = begin; p < end; ++p) {
    const float a = alpha[p % channels], b = beta[p % channels];
    const float* in = x + p * plane;
    float* out = y + p * plane;
#pragma omp simd
    for (int64_t i = 0; i < plane; ++i) {
      out[i] = std::fma(in[i], a, b);
    }
  }
}

VGGDSL_ISA_BUILDS(batch_norm_apply_f32,
                  (const float* x, float* y, const float* alpha, const float* beta, int64_t begin,
                   int64_t end, int64_t channels, int64_t plane),
                  (x, y, alpha, beta, begin, end, channels, plane), batch_norm_apply)

// Whether `BatchNormTrain` takes a batch: contiguous f32 NCHW maps of more than one pixel (aten
// treats 1×1 maps as channels-last, with other sums) and f32 parameters on the host, where aten's
// kernels fuse multiply-adds; aten's `batch_norm` takes the rest.
bool batch_norm_train_takes(const at::Tensor& x, const at::Tensor& weight,
                            const at::Tensor& bias, const at::Tensor& running_mean,
                            const at::Tensor& running_var) {
  const auto vector = [&](const at::Tensor& t) {
    return t.defined() && t.layout() == at::kStrided && t.device().is_cpu() &&
           t.scalar_type() == at::kFloat && t.dim() == 1 && t.size(0) == x.size(1) &&
           t.is_contiguous();
  };
  return aten_fuses_multiply_add() && x.layout() == at::kStrided && x.device().is_cpu() &&
         x.scalar_type() == at::kFloat && x.dim() == 4 && x.numel() > 0 &&
         x.size(2) * x.size(3) > 1 && x.suggest_memory_format() == at::MemoryFormat::Contiguous &&
         x.is_contiguous() &&
         vector(weight) && vector(bias) && vector(running_mean) && vector(running_var);
}

// `batch_norm(x, weight, bias, running_mean, running_var, training=true)` with aten's numbers
// (outputs, saved statistics, running statistics, gradients), the statistics from
// `channel_stats`. The backward pass is aten's own (`native_batch_norm_backward`, from the same
// saved statistics).
struct BatchNormTrain : torch::autograd::Function<BatchNormTrain> {
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& x,
                            const at::Tensor& weight, const at::Tensor& bias,
                            at::Tensor running_mean, at::Tensor running_var, double momentum,
                            double eps) {
    const int64_t batch = x.size(0), channels = x.size(1), plane = x.size(2) * x.size(3);
    const int64_t count = batch * plane;
    at::Tensor mean = at::empty({channels}, x.options());
    at::Tensor var_sum = at::empty({channels}, x.options());
    const float* in = x.const_data_ptr<float>();
    float* m = mean.mutable_data_ptr<float>();
    float* v = var_sum.mutable_data_ptr<float>();
    constexpr int kChains = 8;
    const int64_t blocks = (channels + kChains - 1) / kChains;
    at::parallel_for(0, blocks, 1, [&](int64_t begin, int64_t end) {
      for (int64_t block = begin; block < end; ++block) {
        const int64_t first = block * kChains;
        if (first + kChains <= channels) {
          channel_stats<kChains>(in, m, v, first, batch, channels, plane);
        } else {
          for (int64_t c = first; c < channels; ++c) {
            channel_stats<1>(in, m, v, c, batch, channels, plane);
          }
        }
      }
    });
    // aten's `batch_norm_cpu_update_stats_template` and `..._collect_linear_and_constant_terms`,
    // rounding for rounding (float where it computes in float, double where in double). The
    // mean is also the saved mean the backward pass reads.
    at::Tensor invstd = at::empty({channels}, x.options());
    at::Tensor alpha = at::empty({channels}, x.options());
    at::Tensor beta = at::empty({channels}, x.options());
    float* is = invstd.mutable_data_ptr<float>();
    float* a = alpha.mutable_data_ptr<float>();
    float* be = beta.mutable_data_ptr<float>();
    const float m_ = static_cast<float>(momentum);
    const float* w = weight.const_data_ptr<float>();
    const float* b = bias.const_data_ptr<float>();
    float* rm = running_mean.mutable_data_ptr<float>();
    float* rv = running_var.mutable_data_ptr<float>();
    for (int64_t c = 0; c < channels; ++c) {
      const double var = v[c] / static_cast<float>(count);
      is[c] = static_cast<float>(var != 0 || eps != 0 ? 1 / std::sqrt(var + eps) : 0);
      rm[c] = m_ * m[c] + (1 - m_) * rm[c];
      const double unbiased = v[c] / static_cast<float>(count - 1);
      rv[c] = static_cast<float>(m_ * unbiased + (1 - m_) * rv[c]);
      a[c] = is[c] * w[c];
      be[c] = std::fma(-m[c], a[c], b[c]);
    }
    running_mean.unsafeGetTensorImpl()->bump_version();
    running_var.unsafeGetTensorImpl()->bump_version();
    at::Tensor y = at::empty_like(x);
    float* out = y.mutable_data_ptr<float>();
    at::parallel_for(0, batch * channels, grain(plane), [&](int64_t begin, int64_t end) {
      batch_norm_apply_f32(in, out, a, be, begin, end, channels, plane);
    });
    ctx->save_for_backward({x, weight, mean, invstd});
    ctx->saved_data["eps"] = eps;
    return y;
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const auto [gx, gw, gb] = at::native_batch_norm_backward(
        grads[0], saved[0], saved[1], at::Tensor(), at::Tensor(), saved[2], saved[3], true,
        ctx->saved_data["eps"].toDouble(),
        {ctx->needs_input_grad(0), ctx->needs_input_grad(1), ctx->needs_input_grad(2)});
    return {gx, gw, gb, at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor()};
  }
};
}  // namespace

extern "C" {

// `batch_norm(x, weight, bias, running_mean, running_var, training=true, momentum, eps)`, the
// running statistics updated in place, as a new tensor, or null on failure (see
// vggdsl_last_error).
at::Tensor* vggdsl_batch_norm_train(const at::Tensor* x, const at::Tensor* weight,
                                    const at::Tensor* bias, at::Tensor* running_mean,
                                    at::Tensor* running_var, double momentum, double eps) {
  return vggdsl::guarded<at::Tensor*>(nullptr, [&] {
    if (batch_norm_train_takes(*x, *weight, *bias, *running_mean, *running_var)) {
      return new at::Tensor(BatchNormTrain::apply(*x, *weight, *bias, *running_mean,
                                                  *running_var, momentum, eps));
    }
    return new at::Tensor(at::batch_norm(*x, *weight, *bias, *running_mean, *running_var, true,
                                         momentum, eps, false));
  });
}
}
