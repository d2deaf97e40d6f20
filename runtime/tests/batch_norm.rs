//! `ops::batch_norm_train` (what `BatchNorm` runs in train mode) against aten's `batch_norm`:
//! the same outputs, running statistics and gradients, bit for bit.

use vggdsl_runtime::ops;
use vggdsl_runtime::tch::{self, Device, Kind, Tensor};

#[path = "support/bits.rs"]
mod bits;
use bits::assert_bits_equal;
use vggdsl_test_support::rng;

/// Output, running mean and variance after, and the gradients of input, weight and bias for one
/// random upstream gradient: from `ops::batch_norm_train` (`ours`) or aten's `batch_norm`.
fn run(xs: &Tensor, ours: bool) -> [Tensor; 6] {
    let c = xs.size()[1];
    tch::manual_seed(9);
    let options = (xs.kind(), Device::Cpu);
    let weight = Tensor::randn([c], options).set_requires_grad(true);
    let bias = Tensor::randn([c], options).set_requires_grad(true);
    let mut running_mean = Tensor::randn([c], options);
    let mut running_var = Tensor::rand([c], options) + 0.5;
    let upstream = xs.randn_like();
    let x = xs.detach().set_requires_grad(true);
    let (momentum, eps) = (0.1, 1e-5);
    let y = if ours {
        ops::batch_norm_train(
            &x,
            &weight,
            &bias,
            &mut running_mean,
            &mut running_var,
            momentum,
            eps,
        )
        .unwrap()
    } else {
        Tensor::batch_norm(
            &x,
            Some(&weight),
            Some(&bias),
            Some(&running_mean),
            Some(&running_var),
            true,
            momentum,
            eps,
            false,
        )
    };
    let loss = (&y * &upstream).sum(xs.kind());
    let grads = Tensor::run_backward(&[&loss], &[&x, &weight, &bias], false, false);
    let [gx, gw, gb] = <[Tensor; 3]>::try_from(grads).unwrap();
    [y.detach(), running_mean, running_var, gx, gw, gb]
}

fn compare(xs: &Tensor, what: &str) {
    let names = [
        "output",
        "running mean",
        "running var",
        "input grad",
        "weight grad",
        "bias grad",
    ];
    for ((a, b), name) in run(xs, true).iter().zip(run(xs, false).iter()).zip(names) {
        assert_bits_equal(a, b, &format!("{what}: {name}"));
    }
}

#[test]
fn train_mode_matches_aten_bit_for_bit() {
    let _rng = rng();
    tch::set_num_threads(2);
    tch::manual_seed(0);
    // Planes of 35 (a partial vector), channel counts that fill blocks of 8 or not, the seed's
    // shapes, 1×1 maps (aten's), a batch of one.
    for (n, c, h, w) in [
        (8, 6, 5, 7),
        (4, 13, 3, 3),
        (16, 64, 32, 32),
        (4, 512, 2, 2),
        (64, 17, 1, 1),
        (3, 4, 1, 1),
        (1, 9, 4, 4),
    ] {
        let xs = Tensor::randn([n, c, h, w], (Kind::Float, Device::Cpu)) * 3.0 + 1.7;
        compare(&xs, &format!("{n}×{c}×{h}×{w}"));
    }
    // A constant channel (variance 0) and a channel of huge values.
    let xs = Tensor::randn([4, 3, 6, 6], (Kind::Float, Device::Cpu));
    let _ = xs.get(0).get(1).fill_(2.5);
    let _ = xs.narrow(1, 1, 1).fill_(2.5);
    let _ = xs.narrow(1, 2, 1).g_mul_scalar_(1e30);
    compare(&xs, "constant and huge channels");
}

#[test]
fn aten_takes_what_the_kernel_does_not() {
    let _rng = rng();
    tch::set_num_threads(2);
    tch::manual_seed(1);
    let xs = Tensor::randn([4, 8, 5, 5], (Kind::Float, Device::Cpu));
    compare(&xs.to_kind(Kind::Double), "f64");
    compare(&xs.transpose(2, 3), "non-contiguous");
    compare(&xs.flatten(2, 3).select(2, 0), "2-d (BatchNorm1d)");
}
