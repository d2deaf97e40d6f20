// A batch copied into the channels-last memory the inference layers run on (NCHW sizes over NHWC
// memory). aten's `contiguous(ChannelsLast)` gets there through TensorIterator, whose code a pass
// at batch 1 fetches from memory afresh every time (the rest of the pass has pushed it out of the
// caches): 70 µs of a 1.4 ms pass. This loop is a few hundred bytes.
#include "common.h"

#include <ATen/core/grad_mode.h>
#include <ATen/ops/empty.h>

namespace {
using vggdsl::grain;

at::Tensor channels_last(const at::Tensor& x) {
  const at::NoGradGuard no_grad;  // a copy for inference: no graph
  TORCH_CHECK(x.dim() == 4 && x.scalar_type() == at::kFloat && x.device().is_cpu() &&
                  x.layout() == at::kStrided,
              "channels-last copy: a 4-d f32 CPU tensor");
  if (x.is_contiguous(at::MemoryFormat::ChannelsLast)) {
    return x;
  }
  if (x.numel() == 0) {
    return at::empty(x.sizes(), x.options().memory_format(at::MemoryFormat::ChannelsLast));
  }
  const int64_t n = x.size(0), c = x.size(1), h = x.size(2), w = x.size(3);
  const int64_t sn = x.stride(0), sc = x.stride(1), sh = x.stride(2), sw = x.stride(3);
  at::Tensor y = at::empty({n, c, h, w}, x.options().memory_format(at::MemoryFormat::ChannelsLast));
  const float* xp = x.const_data_ptr<float>();
  float* yp = y.mutable_data_ptr<float>();
  // One output row (an image's row of positions, each with its channels) per item.
  at::parallel_for(0, n * h, grain(w * c), [&](int64_t begin, int64_t end) {
    for (int64_t row = begin; row < end; ++row) {
      const float* in = xp + row / h * sn + row % h * sh;
      float* out = yp + row * w * c;
      for (int64_t col = 0; col < w; ++col) {
        for (int64_t ch = 0; ch < c; ++ch) {
          out[col * c + ch] = in[col * sw + ch * sc];
        }
      }
    }
  });
  return y;
}
}  // namespace

extern "C" {

// `x` (4-d, f32, CPU, any strides) as a channels-last tensor: `x` itself if it is one, else a new
// copy; null on failure (see vggdsl_last_error).
at::Tensor* vggdsl_channels_last(const at::Tensor* x) {
  return vggdsl::guarded<at::Tensor*>(nullptr, [&] { return new at::Tensor(channels_last(*x)); });
}
}
