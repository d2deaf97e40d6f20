//! The 2×2 max-pooling kernel (`ops::max_pool2x2`, what `MaxPool2d(2, 2)` runs) against aten's
//! `max_pool2d_with_indices`: bit-identical outputs and gradients, ties and NaNs included, and
//! aten's operator for what the kernel does not take.

use vggdsl_runtime::nn::MaxPool2d;
use vggdsl_runtime::ops;
use vggdsl_runtime::tch::{self, Device, Kind, Tensor};

#[path = "support/bits.rs"]
mod bits;
use bits::assert_bits_equal;

/// Two threads, whatever the machine's default, so that the kernel splits the planes (libtorch's
/// thread count is global; every test sets the same).
fn two_threads() {
    tch::set_num_threads(2);
}

/// The kernel's output and input gradient, and aten's, for `xs` and one random upstream gradient;
/// with `relu`, of `max_pool2d(relu_(xs))` (`ops::relu_max_pool2x2`, which must leave `xs` as it
/// is where the kernel takes it, against aten's in-place ReLU and pooling).
fn both(xs: &Tensor, relu: bool) -> [(Tensor, Tensor); 2] {
    let &[n, c, h, w] = &xs.size()[..] else {
        panic!("a 4-d input")
    };
    let upstream = Tensor::randn([n, c, h / 2, w / 2], (xs.kind(), Device::Cpu));
    let run = |ours: bool| {
        let x = xs.detach().set_requires_grad(true);
        // A non-leaf, as a BatchNorm's output is, so that the ReLU may work in place.
        let mut input = &x * 1.0;
        let y = match (ours, relu) {
            (true, false) => ops::max_pool2x2(&input).unwrap(),
            (true, true) => {
                let y = ops::relu_max_pool2x2(&mut input).unwrap();
                if ops::max_pool2x2_takes(xs) {
                    assert_bits_equal(&input, xs, "the fused ReLU's input, after");
                }
                y
            }
            (false, false) => input.max_pool2d([2, 2], [2, 2], [0, 0], [1, 1], false),
            (false, true) => input
                .relu_()
                .max_pool2d([2, 2], [2, 2], [0, 0], [1, 1], false),
        };
        let loss = (&y * &upstream).sum(xs.kind());
        let grad = Tensor::run_backward(&[&loss], &[&x], false, false).remove(0);
        (y.detach(), grad)
    };
    [run(true), run(false)]
}

/// The kernel against aten on `xs`, which the kernel takes: pooling alone, and after a ReLU.
fn check(xs: &Tensor, what: &str) {
    assert!(ops::max_pool2x2_takes(xs), "{what}: the kernel takes it");
    compare(xs, what);
}

fn compare(xs: &Tensor, what: &str) {
    let [(y, grad), (y_aten, grad_aten)] = both(xs, false);
    assert_bits_equal(&y, &y_aten, &format!("{what}, output"));
    assert_bits_equal(&grad, &grad_aten, &format!("{what}, gradient"));
    let [(y, grad), (y_aten, grad_aten)] = both(xs, true);
    assert_bits_equal(&y, &y_aten, &format!("{what}, after a ReLU, output"));
    assert_bits_equal(
        &grad,
        &grad_aten,
        &format!("{what}, after a ReLU, gradient"),
    );
}

#[test]
fn matches_aten_bit_for_bit() {
    two_threads();
    tch::manual_seed(0);
    for kind in [Kind::Float, Kind::Double] {
        // Odd sizes too: the last row or column is dropped, as aten does.
        for (n, c, h, w) in [
            (2, 3, 16, 16),
            (1, 1, 2, 16),
            (3, 5, 7, 17),
            (2, 64, 32, 32),
            (1, 2, 5, 33),
            // Rows of 4 to 7 windows, unrolled.
            (2, 3, 8, 8),
            (1, 3, 9, 9),
            (2, 3, 6, 13),
            (1, 2, 14, 15),
            // Maps 2 wide: one loop over all windows.
            (2, 3, 2, 2),
            (1, 2, 6, 2),
        ] {
            let xs = Tensor::randn([n, c, h, w], (kind, Device::Cpu));
            check(&xs, &format!("random {kind:?} {n}×{c}×{h}×{w}"));
            // After a ReLU: windows of tied zeros, where the first one takes the gradient.
            check(&xs.relu(), &format!("after ReLU {kind:?} {n}×{c}×{h}×{w}"));
            // Few distinct values: ties between nonzero maxima too.
            check(
                &(&xs * 2.0).round().clamp(-1.0, 1.0),
                &format!("ties {kind:?}"),
            );
        }
    }
}

#[test]
fn nan_infinity_and_signed_zero_as_aten() {
    two_threads();
    let (nan, inf) = (f64::NAN, f64::INFINITY);
    // One 2×2 window per case, in reading order (top left, top right, bottom left, bottom right).
    let windows: [[f64; 4]; 8] = [
        [nan, 1.0, 2.0, 3.0],
        [1.0, nan, 2.0, nan],
        [nan, nan, nan, nan],
        [-inf, -inf, -inf, -inf],
        [-inf, -inf, -inf, -1.0],
        [0.0, -0.0, 0.0, -0.0],
        [-0.0, 0.0, -0.0, 0.0],
        [inf, inf, 1.0, inf],
    ];
    // Side by side in one 2×16 map: window k in columns 2k and 2k + 1.
    let rows: Vec<f64> = (0..2)
        .flat_map(|r| windows.iter().flat_map(move |w| [w[2 * r], w[2 * r + 1]]))
        .collect();
    for kind in [Kind::Float, Kind::Double] {
        let xs = Tensor::from_slice(&rows).view([1, 1, 2, 16]).to_kind(kind);
        check(&xs, &format!("special values {kind:?}"));
    }
}

#[test]
fn what_the_kernel_does_not_take_goes_to_aten() {
    two_threads();
    tch::manual_seed(1);
    let xs = Tensor::randn([2, 4, 16, 16], (Kind::Float, Device::Cpu));
    assert!(ops::max_pool2x2_takes(&xs));
    let half = xs.to_kind(Kind::Half);
    // NCHW sizes over NHWC memory (PyTorch's channels_last).
    let channels_last = xs.permute([0, 2, 3, 1]).contiguous().permute([0, 3, 1, 2]);
    let narrow = Tensor::randn([2, 4, 4, 4], (Kind::Float, Device::Cpu));
    let two_wide_odd = Tensor::randn([2, 4, 5, 2], (Kind::Float, Device::Cpu));
    for (other, what) in [
        (xs.transpose(2, 3), "non-contiguous"),
        (channels_last, "channels-last"),
        (half, "f16"),
        (narrow, "maps 4 wide"),
        (two_wide_odd, "maps 2 wide of odd height"),
    ] {
        assert!(!ops::max_pool2x2_takes(&other), "{what}: aten's");
        compare(&other, what);
    }
    // A 3-d (unbatched) input and a map too small to pool are aten's to take or refuse.
    let unbatched = Tensor::randn([4, 16, 16], (Kind::Float, Device::Cpu));
    assert!(!ops::max_pool2x2_takes(&unbatched));
    assert!(ops::max_pool2x2(&unbatched)
        .unwrap()
        .equal(&unbatched.max_pool2d([2, 2], [2, 2], [0, 0], [1, 1], false)));
    let one_row = Tensor::randn([1, 1, 1, 16], (Kind::Float, Device::Cpu));
    assert!(ops::max_pool2x2(&one_row).is_err());
    // The layer runs the kernel for 2×2, stride 2.
    let layer = MaxPool2d::new(2, 2);
    assert!(layer
        .forward(&xs)
        .equal(&xs.max_pool2d([2, 2], [2, 2], [0, 0], [1, 1], false)));
}

#[test]
fn a_negative_zero_gradient_comes_back_as_aten_adds_it() {
    two_threads();
    tch::manual_seed(2);
    for kind in [Kind::Float, Kind::Double] {
        let xs = Tensor::randn([1, 2, 4, 16], (kind, Device::Cpu));
        let upstream = Tensor::from_slice(&[-0.0f64, 0.0, -1.5, f64::NAN])
            .repeat([8])
            .view([1, 2, 2, 8])
            .to_kind(kind);
        let grads = [true, false].map(|ours| {
            let x = xs.detach().set_requires_grad(true);
            let y = if ours {
                ops::max_pool2x2(&x).unwrap()
            } else {
                x.max_pool2d([2, 2], [2, 2], [0, 0], [1, 1], false)
            };
            // The product's gradient is `upstream` itself, -0 and NaN included.
            let loss = (&y * &upstream).sum(kind);
            Tensor::run_backward(&[&loss], &[&x], false, false).remove(0)
        });
        assert_bits_equal(&grads[0], &grads[1], &format!("{kind:?}"));
    }
}

#[test]
fn second_derivatives_are_aten_s() {
    two_threads();
    tch::manual_seed(3);
    let xs = Tensor::randn([2, 3, 4, 16], (Kind::Double, Device::Cpu));
    let upstream = Tensor::randn([2, 3, 2, 8], (Kind::Double, Device::Cpu));
    let second = |pool: &dyn Fn(Tensor) -> Tensor| {
        let x = xs.detach().set_requires_grad(true);
        let y = pool(&x * 1.0);
        let loss = (&y * &y * &upstream).sum(Kind::Double);
        let grad = Tensor::run_backward(&[&loss], &[&x], true, true).remove(0);
        let again = Tensor::run_backward(&[&grad.square().sum(Kind::Double)], &[&x], false, false);
        (grad.detach(), again[0].shallow_clone())
    };
    let aten = |x: &Tensor| x.max_pool2d([2, 2], [2, 2], [0, 0], [1, 1], false);
    for (what, ours, theirs) in [
        (
            "pooling",
            &(|x: Tensor| ops::max_pool2x2(&x).unwrap()) as &dyn Fn(Tensor) -> Tensor,
            &(|x: Tensor| aten(&x)) as &dyn Fn(Tensor) -> Tensor,
        ),
        (
            "after a ReLU",
            &|mut x: Tensor| ops::relu_max_pool2x2(&mut x).unwrap(),
            &|mut x: Tensor| aten(&x.relu_()),
        ),
    ] {
        let (grad, again) = second(ours);
        let (grad_aten, again_aten) = second(theirs);
        assert_bits_equal(&grad, &grad_aten, &format!("{what}: first derivative"));
        assert_bits_equal(&again, &again_aten, &format!("{what}: second derivative"));
    }
}
