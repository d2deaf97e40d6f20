//! A conv on a map of a few positions as the matrix product it is ([`super::Kernel::Matrix`]).

use tch::{IndexOp, Tensor};

use crate::memory;

/// A conv on an `h × w` map as one matrix: `weight` is `(output positions × out channels) ×
/// (h × w × in channels)`, zero where a kernel tap falls in the padding. Rows and columns run
/// position-major, so that the product reads and writes channels-last maps as they lie.
#[derive(Debug)]
pub(super) struct Dense {
    pub map: (i64, i64),
    out: [i64; 3],
    weight: Tensor,
    bias: Tensor,
}

impl Dense {
    /// Worth keeping when the matrix has at most twice the kernel's elements: then every output
    /// position sees (nearly) the whole map, and the product wastes little on padding. `out` is
    /// the output map; a kernel larger than the padded map has none (libtorch refuses it).
    pub fn fits(kernel: (i64, i64), map: (i64, i64), out: (i64, i64)) -> bool {
        let budget = 2 * kernel.0 * kernel.1;
        out.0 >= 1 && out.1 >= 1 && map.0 * map.1 <= budget && out.0 * out.1 <= budget && {
            map.0 * map.1 * out.0 * out.1 <= budget
        }
    }

    /// Places each kernel tap of `weight` (`[out, in, kh, kw]`) where it meets the map: entry
    /// `(oy, ox, o; iy, ix, c)` is `weight[o, c, iy - oy·stride + padding, ix - ox·stride +
    /// padding]` (a copy: exact).
    pub fn new(weight: &Tensor, bias: &Tensor, conv: (i64, i64), map: (i64, i64)) -> Self {
        let [o, c, kh, kw] = weight.size()[..] else {
            unreachable!("conv weights are 4-d")
        };
        let (s, p) = conv;
        let out = ((map.0 + 2 * p - kh) / s + 1, (map.1 + 2 * p - kw) / s + 1);
        let matrix = Tensor::zeros(
            [out.0, out.1, o, map.0, map.1, c],
            (weight.kind(), weight.device()),
        );
        for (oy, ox, iy, ix) in positions(out, map) {
            let (ky, kx) = (iy - oy * s + p, ix - ox * s + p);
            if (0..kh).contains(&ky) && (0..kw).contains(&kx) {
                matrix
                    .i((oy, ox, .., iy, ix, ..))
                    .copy_(&weight.i((.., .., ky, kx)));
            }
        }
        let positions = out.0 * out.1;
        let matrix = matrix.reshape([positions * o, map.0 * map.1 * c]);
        memory::huge_pages(&matrix);
        Dense {
            map,
            out: [o, out.0, out.1],
            weight: matrix,
            bias: bias.repeat([positions]),
        }
    }

    /// `relu(conv2d(xs))` for a batch of this map, channels-last in and out.
    pub fn forward(&self, xs: &Tensor) -> Tensor {
        let batch = xs.size()[0];
        let [o, oh, ow] = self.out;
        // NHWC memory, whatever the strides were: a no-op for channels-last input.
        xs.permute([0, 2, 3, 1])
            .contiguous()
            .view([batch, -1])
            .linear(&self.weight, Some(&self.bias))
            .relu_()
            .view([batch, oh, ow, o])
            .permute([0, 3, 1, 2])
    }
}

/// Every `(oy, ox, iy, ix)` of an `out` map and an input `map`.
fn positions(out: (i64, i64), map: (i64, i64)) -> impl Iterator<Item = (i64, i64, i64, i64)> {
    (0..out.0).flat_map(move |oy| {
        (0..out.1).flat_map(move |ox| {
            (0..map.0).flat_map(move |iy| (0..map.1).map(move |ix| (oy, ox, iy, ix)))
        })
    })
}
