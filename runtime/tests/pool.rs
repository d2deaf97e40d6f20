//! The 2×2 max-pooling kernel (`ops::max_pool2x2`, what `MaxPool2d(2, 2)` runs) against aten's
//! `max_pool2d_with_indices`: bit-identical outputs and gradients, ties and NaNs included, and
//! aten's operator for what the kernel does not take.

use std::sync::{Mutex, MutexGuard};

use vggdsl_runtime::nn::MaxPool2d;
use vggdsl_runtime::ops;
use vggdsl_runtime::tch::{self, Device, Kind, Tensor};

/// libtorch's thread count, which decides what the kernel takes, is global; one test changes it,
/// so the tests take turns.
static TURN: Mutex<()> = Mutex::new(());

/// A test's turn, at 2 threads (libtorch's default on a larger machine may be more than the
/// kernel takes); the thread count comes back when the turn ends.
struct Turn {
    _lock: MutexGuard<'static, ()>,
    threads: i32,
}

fn turn() -> Turn {
    let lock = TURN.lock().unwrap_or_else(|e| e.into_inner());
    let threads = tch::get_num_threads();
    tch::set_num_threads(2);
    Turn {
        _lock: lock,
        threads,
    }
}

impl Drop for Turn {
    fn drop(&mut self) {
        tch::set_num_threads(self.threads);
    }
}

/// Equal elementwise, NaN equal to NaN, -0.0 and 0.0 told apart (bit patterns).
fn assert_bits_equal(a: &Tensor, b: &Tensor, what: &str) {
    assert_eq!(a.size(), b.size(), "{what}: shapes");
    assert_eq!(a.kind(), b.kind(), "{what}: kinds");
    let (a, b) = (a.flatten(0, -1), b.flatten(0, -1));
    let bits = |t: &Tensor| -> Vec<u64> {
        match t.kind() {
            Kind::Float => Vec::<f32>::try_from(t)
                .unwrap()
                .into_iter()
                .map(|v| u64::from(v.to_bits()))
                .collect(),
            _ => Vec::<f64>::try_from(t)
                .unwrap()
                .into_iter()
                .map(f64::to_bits)
                .collect(),
        }
    };
    assert!(bits(&a) == bits(&b), "{what}: values differ");
}

/// The kernel's output and input gradient, and aten's, for `xs` and one random upstream gradient.
fn both(xs: &Tensor) -> [(Tensor, Tensor); 2] {
    let &[n, c, h, w] = &xs.size()[..] else {
        panic!("a 4-d input")
    };
    let upstream = Tensor::randn([n, c, h / 2, w / 2], (xs.kind(), Device::Cpu));
    let run = |pool: &dyn Fn(&Tensor) -> Tensor| {
        let x = xs.detach().set_requires_grad(true);
        let y = pool(&x);
        let loss = (&y * &upstream).sum(xs.kind());
        let grad = Tensor::run_backward(&[&loss], &[&x], false, false).remove(0);
        (y.detach(), grad)
    };
    [
        run(&|x| ops::max_pool2x2(x).unwrap()),
        run(&|x| x.max_pool2d([2, 2], [2, 2], [0, 0], [1, 1], false)),
    ]
}

/// The kernel against aten on `xs`, which the kernel takes.
fn check(xs: &Tensor, what: &str) {
    assert!(ops::max_pool2x2_takes(xs), "{what}: the kernel takes it");
    compare(xs, what);
}

fn compare(xs: &Tensor, what: &str) {
    let [(y, grad), (y_aten, grad_aten)] = both(xs);
    assert_bits_equal(&y, &y_aten, &format!("{what}, output"));
    assert_bits_equal(&grad, &grad_aten, &format!("{what}, gradient"));
}

#[test]
fn matches_aten_bit_for_bit() {
    let _turn = turn();
    tch::manual_seed(0);
    for kind in [Kind::Float, Kind::Double] {
        // Odd sizes too: the last row or column is dropped, as aten does.
        for (n, c, h, w) in [
            (2, 3, 16, 16),
            (1, 1, 2, 16),
            (3, 5, 7, 17),
            (2, 64, 32, 32),
            (1, 2, 5, 33),
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
    let _turn = turn();
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
    let _turn = turn();
    tch::manual_seed(1);
    let xs = Tensor::randn([2, 4, 16, 16], (Kind::Float, Device::Cpu));
    assert!(ops::max_pool2x2_takes(&xs));
    let half = xs.to_kind(Kind::Half);
    // NCHW sizes over NHWC memory (PyTorch's channels_last).
    let channels_last = xs.permute([0, 2, 3, 1]).contiguous().permute([0, 3, 1, 2]);
    let narrow = Tensor::randn([2, 4, 8, 8], (Kind::Float, Device::Cpu));
    for (other, what) in [
        (xs.transpose(2, 3), "non-contiguous"),
        (channels_last, "channels-last"),
        (half, "f16"),
        (narrow, "maps narrower than 16"),
    ] {
        assert!(!ops::max_pool2x2_takes(&other), "{what}: aten's");
        compare(&other, what);
    }
    // Too many threads for the one-thread kernel to win (the turn restores the count).
    tch::set_num_threads(9);
    assert!(!ops::max_pool2x2_takes(&xs), "9 threads: aten's");
    tch::set_num_threads(2);
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
