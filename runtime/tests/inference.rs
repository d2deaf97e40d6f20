//! `to_inference()` works on every store the model itself runs on: where oneDNN
//! can't be used (a kind other than f32, a device other than the CPU, a libtorch without oneDNN)
//! the folded weights run on plain tensors and give the eval-mode outputs.
use vggdsl_runtime::inference::ConvReLU2d;
use vggdsl_runtime::tch::nn::{ModuleT, VarStore};
use vggdsl_runtime::tch::{self, Device, Kind, Tensor};

vggdsl_runtime::vgg!(Small<input = [3, 16, 16], cfg = [8, M, 16, M, 16], num_classes = 5>);

/// A model whose BatchNorms hold other statistics than the identity, in the store's kind.
fn model(kind: Kind) -> (VarStore, Small) {
    tch::manual_seed(0);
    let mut vs = VarStore::new(Device::Cpu);
    let net = Small::new(&vs.root());
    tch::no_grad(|| {
        for (name, mut t) in vs.variables() {
            if name.contains("norm") && t.is_floating_point() {
                let (lo, hi) = if name.ends_with("running_var") || name.ends_with("weight") {
                    (0.5, 1.5)
                } else {
                    (-0.5, 0.5)
                };
                let _ = t.uniform_(lo, hi);
            }
        }
    });
    match kind {
        Kind::Float => {}
        Kind::Double => vs.double(),
        Kind::Half => vs.half(),
        Kind::BFloat16 => vs.bfloat16(),
        other => panic!("{other:?}"),
    }
    (vs, net)
}

/// The largest difference between the inference and the eval-mode outputs, relative to the
/// largest eval-mode output, for a small and a large batch.
fn relative_difference(kind: Kind) -> f64 {
    let (_vs, net) = model(kind);
    let fast = net.to_inference();
    // Only f32 weights are prepacked for oneDNN (where libtorch has it).
    let packed = kind == Kind::Float && tch::utils::has_mkldnn();
    [1, 16]
        .into_iter()
        .map(|batch| {
            let xs = Tensor::randn([batch, 3, 16, 16], (kind, Device::Cpu));
            let entered = vggdsl_runtime::inference::enter(&xs);
            assert_eq!(
                fast.conv0.packed_weight(&entered).is_some(),
                packed,
                "{kind:?}"
            );
            let eval = tch::no_grad(|| net.forward_t(&xs, false));
            let out = fast.forward(&xs);
            assert_eq!((out.kind(), out.size()), (kind, vec![batch, 5]));
            let diff = (&out - &eval).abs().max().double_value(&[]);
            diff / eval.abs().max().double_value(&[])
        })
        .fold(0.0, f64::max)
}

#[test]
fn f32_models_match_eval_mode() {
    let diff = relative_difference(Kind::Float);
    assert!(diff < 1e-5, "relative difference {diff}");
}

#[test]
fn f64_models_match_eval_mode() {
    let diff = relative_difference(Kind::Double);
    assert!(diff < 1e-12, "relative difference {diff}");
}

#[test]
fn f16_and_bf16_models_match_eval_mode() {
    // Folding rounds the weights once more: within ten units in the last place (2^-11, 2^-8).
    for (kind, tolerance) in [(Kind::Half, 5e-3), (Kind::BFloat16, 4e-2)] {
        let diff = relative_difference(kind);
        assert!(diff < tolerance, "{kind:?}: relative difference {diff}");
    }
}

/// The fused kernel that small batches run: present in this libtorch (built with oneDNN), and
/// equal to `relu(conv2d(…))` for dense and prepacked weights, plain and channels-last inputs,
/// strides 1 and 2.
#[test]
fn fused_conv_relu_matches_conv2d_then_relu() {
    use vggdsl_runtime::ops;
    assert_eq!(ops::has_conv2d_relu(), tch::utils::has_mkldnn());
    if !ops::has_conv2d_relu() {
        return;
    }
    tch::manual_seed(1);
    let opts = (Kind::Float, Device::Cpu);
    let xs = Tensor::randn([3, 5, 9, 9], opts);
    let weight = Tensor::randn([7, 5, 3, 3], opts);
    let bias = Tensor::randn([7], opts);
    for (stride, padding) in [(1, 1), (2, 0)] {
        let want = xs
            .conv2d(&weight, Some(&bias), [stride; 2], [padding; 2], [1, 1], 1)
            .relu();
        let packed = weight.to_mkldnn().mkldnn_reorder_conv2d_weight(
            [padding; 2],
            [stride; 2],
            [1, 1],
            1,
            None::<i64>,
        );
        let channels_last = xs.permute([0, 2, 3, 1]).contiguous().permute([0, 3, 1, 2]);
        for (input, w) in [(&xs, &weight), (&xs, &packed), (&channels_last, &packed)] {
            let got = ops::conv2d_relu(input, w, &bias, stride, padding).unwrap();
            assert_eq!(got.size(), want.size());
            // With prepacked weights the kernel writes channels-last, the layout `enter` gives
            // small batches; with dense ones, the layout of the input.
            assert_eq!(got.stride()[1] == 1, w.is_mkldnn());
            let diff = (&got - &want).abs().max().double_value(&[]);
            assert!(diff < 1e-5, "stride {stride}: difference {diff}");
            assert!(got.min().double_value(&[]) >= 0.0);
        }
    }
    // A refused input is an error, not a crash.
    let wrong = Tensor::randn([3, 4, 9, 9], opts);
    assert!(ops::conv2d_relu(&wrong, &weight, &bias, 1, 1).is_err());
}

/// The matrix form of a conv on a map of a few positions applies to 2×2 and 1×1 maps (padding
/// 1), a 3×3 map without padding and stride 2, not to larger maps; where it applies it equals
/// `relu(conv2d(…))` for plain and channels-last inputs and writes channels-last, as oneDNN's
/// kernel does (which gives the same numbers there too).
#[test]
fn convs_on_small_maps_as_a_matrix_product_match_conv2d() {
    use vggdsl_runtime::inference::{enter, Kernel};
    use vggdsl_runtime::nn::Conv2d;
    tch::manual_seed(2);
    let opts = (Kind::Float, Device::Cpu);
    let vs = VarStore::new(Device::Cpu);
    // (map, stride, padding, whether the matrix form applies)
    let cases = [
        (2, 1, 1, true),
        (1, 1, 1, true),
        (3, 1, 0, true),
        (2, 2, 1, true),
        (4, 1, 1, false),
    ];
    for (map, stride, padding, dense) in cases {
        let path = vs.root() / format!("conv{map}_{stride}_{padding}");
        let conv = Conv2d::new(path, 6, 5, 3, stride, padding);
        let layer = ConvReLU2d::new(&conv, None);
        for batch in [1, 8, 17] {
            let xs = Tensor::randn([batch, 6, map, map], opts);
            let want = tch::no_grad(|| {
                xs.conv2d(
                    &conv.weight,
                    Some(&conv.bias),
                    [stride; 2],
                    [padding; 2],
                    [1, 1],
                    1,
                )
                .relu()
            });
            let scale = want.abs().max().double_value(&[]);
            for input in [xs.shallow_clone(), enter(&xs)] {
                let matrix = layer.forward_with(Kernel::Matrix, &input);
                assert_eq!(
                    matrix.is_some(),
                    dense && tch::utils::has_mkldnn(),
                    "map {map}, stride {stride}"
                );
                let onednn = layer.forward_with(Kernel::OneDnn, &input);
                for got in matrix.into_iter().chain(onednn) {
                    // Channels-last out: the layout every kernel keeps.
                    let out = got.size();
                    assert_eq!(got.stride()[1], 1, "map {map}, batch {batch}");
                    assert_eq!(out, want.size(), "map {map}, batch {batch}");
                    let diff = (&got - &want).abs().max().double_value(&[]);
                    assert!(
                        diff <= 1e-5 * scale,
                        "map {map}, stride {stride}, padding {padding}, batch {batch}: {diff}"
                    );
                }
            }
        }
    }
    // A kernel larger than the padded map is refused by every kernel, as conv2d refuses it
    // (integer division would give such a map one output position).
    let conv = Conv2d::new(vs.root() / "too_small", 6, 5, 3, 2, 0);
    let layer = ConvReLU2d::new(&conv, None);
    for batch in [1, 8, 16] {
        let xs = enter(&Tensor::randn([batch, 6, 2, 2], opts));
        assert!(!layer.applies(Kernel::Matrix, &xs));
        let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| layer.forward(&xs)));
        assert!(run.is_err(), "batch {batch}: a 3×3 kernel on a 2×2 map ran");
    }
}

/// `relu(conv2d(x, w, b, padding=1))` in f64, the reference for the Winograd form.
fn conv_relu_f64(xs: &Tensor, weight: &Tensor, bias: &Tensor) -> Tensor {
    let d = |t: &Tensor| t.to_kind(Kind::Double);
    d(xs)
        .conv2d(&d(weight), Some(&d(bias)), [1, 1], [1, 1], [1, 1], 1)
        .relu()
}

/// The largest magnitude in `t`; 0 for an empty tensor.
fn max_abs(t: &Tensor) -> f64 {
    if t.numel() == 0 {
        0.0
    } else {
        t.abs().max().double_value(&[])
    }
}

/// Winograd's F(2×2, 3×3) gives `relu(conv2d(…))` to within f32 rounding, its products by GEMM
/// or in registers: square, rectangular and non-power-of-two maps, odd channel counts (and so
/// blocks of fewer than 4 tiles or 32 outputs), plain, channels-last and strided inputs, batches
/// that run in several parts, no input channel and no image; maps of odd size are refused with
/// an error.
#[test]
fn winograd_conv_matches_conv2d() {
    use vggdsl_runtime::inference::winograd_weight;
    use vggdsl_runtime::ops::{winograd_conv_relu, winograd_panels, WinogradProducts};
    tch::manual_seed(3);
    let opts = (Kind::Float, Device::Cpu);
    // (batch, in, out, height, width). Parts of 2 MiB (see csrc/winograd.cpp): 5 images of 4
    // tiles run as 4 + 1, 17 of one tile as 8 × 2 + 1. No image gives nothing.
    let cases = [
        (1, 3, 5, 2, 2),
        (2, 7, 4, 4, 6),
        (3, 16, 9, 8, 8),
        (2, 33, 17, 6, 10),
        (5, 3, 2048, 4, 4),
        (17, 3, 16384, 2, 2),
        (0, 3, 4, 2, 2),
    ];
    for (n, c, k, h, w) in cases {
        let weight = Tensor::randn([k, c, 3, 3], opts);
        let bias = Tensor::randn([k], opts);
        let u = winograd_weight(&weight);
        assert_eq!(u.size(), [16, c, k]);
        let xs = Tensor::randn([n, c, h, 2 * w], opts).narrow(3, 0, w); // strided
        let want = conv_relu_f64(&xs, &weight, &bias);
        let scale = max_abs(&want);
        let inputs = [
            xs.shallow_clone(),
            xs.contiguous(),
            xs.permute([0, 2, 3, 1]).contiguous().permute([0, 3, 1, 2]), // channels-last
        ];
        for (input, products) in inputs.iter().flat_map(|input| {
            [WinogradProducts::Gemm, WinogradProducts::InRegisters].map(|p| (input, p))
        }) {
            let got = winograd_conv_relu(input, &form(&u, products), &bias, products).unwrap();
            assert_eq!(got.size(), [n, k, h, w]);
            let diff = max_abs(&(got.to_kind(Kind::Double) - &want));
            assert!(
                diff <= 2e-6 * scale,
                "{n}×{c}→{k} on {h}×{w}, {products:?}: difference {diff} of {scale}"
            );
        }
    }
    for products in [WinogradProducts::Gemm, WinogradProducts::InRegisters] {
        // No input channel (libtorch's conv2d has no answer for that): relu(bias) everywhere.
        let bias = Tensor::randn([3], opts);
        let u = winograd_weight(&Tensor::zeros([3, 0, 3, 3], opts));
        let none = Tensor::zeros([2, 0, 2, 2], opts);
        let got = winograd_conv_relu(&none, &form(&u, products), &bias, products).unwrap();
        let want = bias.relu().view([1, 3, 1, 1]).expand([2, 3, 2, 2], false);
        assert!(got.equal(&want.contiguous()), "{got}");

        let u = form(
            &winograd_weight(&Tensor::randn([4, 3, 3, 3], opts)),
            products,
        );
        let odd = Tensor::randn([1, 3, 5, 4], opts);
        let bias = Tensor::zeros([4], opts);
        let error = winograd_conv_relu(&odd, &u, &bias, products)
            .unwrap_err()
            .to_string();
        assert!(error.contains("even map sizes"), "{error}");
        let wrong_channels = Tensor::randn([1, 5, 4, 4], opts);
        assert!(winograd_conv_relu(&wrong_channels, &u, &bias, products).is_err());
        let other = match products {
            WinogradProducts::Gemm => winograd_panels(&u).unwrap(),
            WinogradProducts::InRegisters => winograd_weight(&Tensor::randn([4, 3, 3, 3], opts)),
        };
        let error = winograd_conv_relu(&Tensor::randn([1, 3, 4, 4], opts), &other, &bias, products)
            .unwrap_err()
            .to_string();
        assert!(error.contains("weights"), "{products:?}: {error}");
    }
}

/// Winograd's form as `products` reads it: as it is, or in panels.
fn form(u: &Tensor, products: vggdsl_runtime::ops::WinogradProducts) -> Tensor {
    use vggdsl_runtime::ops::{winograd_panels, WinogradProducts};
    match products {
        WinogradProducts::Gemm => u.shallow_clone(),
        WinogradProducts::InRegisters => winograd_panels(u).unwrap(),
    }
}

/// The panels hold Winograd's form, the outputs in groups of two vector registers of the build
/// that runs (one group per `width` outputs), zeros past the last output.
#[test]
fn winograd_panels_hold_the_form() {
    use vggdsl_runtime::ops::{kernel_isa, winograd_panels};
    let width = match kernel_isa() {
        "avx512" => 32,
        "avx2" => 16,
        _ => 8,
    };
    let opts = (Kind::Float, Device::Cpu);
    for (c, k) in [(3, 5), (7, 32), (2, 33), (0, 4), (4, 0)] {
        let u = Tensor::randn([16, c, k], opts);
        let panels = winograd_panels(&u).unwrap();
        let groups = (k + width - 1) / width;
        assert_eq!(panels.size(), [16, groups, c, width], "{c}→{k}");
        let flat = panels
            .permute([0, 2, 1, 3])
            .reshape([16, c, groups * width]);
        assert!(flat.narrow(2, 0, k).equal(&u), "{c}→{k}");
        let padding = flat.narrow(2, k, groups * width - k);
        assert!(padding.eq(0.0).all().int64_value(&[]) == 1, "{c}→{k}");
    }
    let error = winograd_panels(&Tensor::randn([16, 3], opts))
        .unwrap_err()
        .to_string();
    assert!(error.contains("[16, in, out]"), "{error}");
}

/// Winograd's form applies to 3×3 convs with stride and padding 1 on maps of even sides (with
/// its products in registers, to batches of at most `FEW_TILES` 2×2 blocks); the guess (the
/// tuner's starting point) runs it from `WINOGRAD_FROM_BATCH` images on for maps of at most 64
/// positions whose channels in and out have a harmonic mean of 160 or more. Run by the layer,
/// its output is exactly the Winograd op's, and it equals `relu(conv2d(…))`.
#[test]
fn winograd_runs_where_it_applies() {
    use vggdsl_runtime::inference::{
        enter, winograd_weight, Kernel, FEW_TILES, WINOGRAD_FROM_BATCH,
    };
    use vggdsl_runtime::nn::Conv2d;
    use vggdsl_runtime::ops::{winograd_conv_relu, WinogradProducts};
    tch::manual_seed(4);
    let opts = (Kind::Float, Device::Cpu);
    let vs = VarStore::new(Device::Cpu);
    // (in, out, map, whether the guess runs Winograd's form from WINOGRAD_FROM_BATCH)
    let cases = [
        (256, 256, 4, true),
        (256, 512, 8, true),
        (256, 256, 6, true),
        (128, 256, 8, true),
        (160, 160, 4, true),
        (159, 160, 4, false),
        (128, 128, 8, false),
        (64, 512, 4, false),
        (256, 256, 16, false),
    ];
    for (c, k, map, guessed) in cases {
        let conv = Conv2d::new(vs.root() / format!("conv{c}_{k}_{map}"), c, k, 3, 1, 1);
        let layer = ConvReLU2d::new(&conv, None);
        let u = winograd_weight(&conv.weight);
        for batch in [1, WINOGRAD_FROM_BATCH, 16] {
            let xs = Tensor::randn([batch, c, map, map], opts);
            let want = conv_relu_f64(&xs, &conv.weight, &conv.bias);
            let scale = want.abs().max().double_value(&[]);
            let input = enter(&xs);
            if !tch::utils::has_mkldnn() {
                continue;
            }
            assert_eq!(
                layer.guess(&input) == Kernel::Winograd,
                guessed && batch >= WINOGRAD_FROM_BATCH,
                "{c}→{k} on {map}×{map}, batch {batch}: the guess"
            );
            let few = batch * (map / 2) * (map / 2) <= FEW_TILES;
            for (kernel, products, applies) in [
                (Kernel::Winograd, WinogradProducts::Gemm, true),
                (Kernel::WinogradFew, WinogradProducts::InRegisters, few),
            ] {
                let context = format!("{c}→{k} on {map}×{map}, batch {batch}, {kernel:?}");
                let got = layer.forward_with(kernel, &input);
                assert_eq!(got.is_some(), applies, "{context}");
                let Some(got) = got else { continue };
                let winograd =
                    winograd_conv_relu(&xs, &form(&u, products), &conv.bias, products).unwrap();
                assert!(got.equal(&winograd), "{context}");
                let diff = (got.to_kind(Kind::Double) - &want)
                    .abs()
                    .max()
                    .double_value(&[]);
                assert!(
                    diff <= 1e-5 * scale,
                    "{context}: difference {diff} of {scale}"
                );
            }
        }
    }
    // Odd maps, other kernel sizes, strides and paddings: not Winograd's F(2×2, 3×3).
    let xs = Tensor::randn([2, 8, 5, 6], opts);
    for (size, stride, padding) in [(3, 1, 1), (3, 2, 1), (3, 1, 0), (1, 1, 0)] {
        let conv = Conv2d::new(
            vs.root() / format!("k{size}s{stride}p{padding}"),
            8,
            8,
            size,
            stride,
            padding,
        );
        let layer = ConvReLU2d::new(&conv, None);
        let even = xs.narrow(2, 0, 4);
        let applies = (size, stride, padding) == (3, 1, 1);
        for kernel in [Kernel::Winograd, Kernel::WinogradFew] {
            assert!(!layer.applies(kernel, &xs));
            assert_eq!(
                layer.applies(kernel, &even),
                applies && tch::utils::has_mkldnn()
            );
        }
    }
}

/// vggdsl's channels-last copy (what `enter` runs on a single image) gives aten's
/// `contiguous(memory_format=torch.channels_last)` bit for bit, from plain, strided and permuted
/// inputs; a channels-last input comes back as it is; other inputs are refused.
#[test]
fn channels_last_copy_is_atens() {
    use vggdsl_runtime::inference::enter;
    use vggdsl_runtime::ops::channels_last;
    tch::manual_seed(5);
    let opts = (Kind::Float, Device::Cpu);
    let aten = |t: &Tensor| t.permute([0, 2, 3, 1]).contiguous().permute([0, 3, 1, 2]);
    for (n, c, h, w) in [
        (1, 3, 32, 32),
        (2, 5, 3, 7),
        (1, 1, 1, 1),
        (3, 4, 2, 1),
        (0, 3, 4, 4),
        (1, 0, 4, 4),
        (1, 3, 4, 0),
    ] {
        let plain = Tensor::randn([n, c, h, w], opts);
        let strided = Tensor::randn([n, c, h, 2 * w], opts).narrow(3, 0, w);
        let transposed = Tensor::randn([n, c, w, h], opts).transpose(2, 3);
        for xs in [plain, strided, transposed] {
            let got = channels_last(&xs).unwrap();
            let want = aten(&xs);
            assert_eq!(got.size(), want.size());
            if got.numel() > 0 {
                assert_eq!(got.stride(), want.stride(), "{n}×{c}×{h}×{w}");
            }
            assert!(got.equal(&want), "{n}×{c}×{h}×{w}");
            assert!(enter(&xs).equal(&want));
        }
    }
    let already = aten(&Tensor::randn([1, 3, 4, 4], opts));
    assert_eq!(
        channels_last(&already).unwrap().data_ptr(),
        already.data_ptr()
    );
    for wrong in [
        Tensor::randn([3, 4, 4], opts),
        Tensor::randn([1, 3, 4, 4], (Kind::Double, Device::Cpu)),
    ] {
        let error = channels_last(&wrong).unwrap_err().to_string();
        assert!(error.contains("4-d f32 CPU"), "{error}");
    }
}

/// vggdsl's linear layer (what a single row runs) gives `relu?(x·Wᵀ + b)` to within f32
/// rounding of the f64 product: outputs in blocks of 4 and a block of fewer, several rows,
/// strided inputs, no input feature; wrong shapes are refused. The inference model's linear
/// layer runs it on a single row, aten's `linear` on more.
#[test]
fn linear_rows_match_the_product() {
    use vggdsl_runtime::inference::FusedLinear;
    use vggdsl_runtime::nn::Linear;
    use vggdsl_runtime::ops::linear_relu;
    tch::manual_seed(6);
    let opts = (Kind::Float, Device::Cpu);
    for (rows, inputs, outputs) in [
        (1, 102, 512),
        (1, 512, 10),
        (3, 7, 5),
        (2, 33, 1),
        (1, 0, 3),
    ] {
        let weight = Tensor::randn([outputs, inputs], opts);
        let bias = Tensor::randn([outputs], opts);
        let xs = Tensor::randn([rows, 2 * inputs], opts).narrow(1, 0, inputs);
        let want = xs.to_kind(Kind::Double).linear(
            &weight.to_kind(Kind::Double),
            Some(&bias.to_kind(Kind::Double)),
        );
        for relu in [false, true] {
            let want = if relu {
                want.relu()
            } else {
                want.shallow_clone()
            };
            let got = linear_relu(&xs, &weight, &bias, relu).unwrap();
            assert_eq!(got.size(), [rows, outputs]);
            let diff = max_abs(&(got.to_kind(Kind::Double) - &want));
            let scale = max_abs(&want).max(1.0);
            assert!(
                diff <= 1e-6 * scale * (inputs as f64).sqrt().max(1.0),
                "{rows}×{inputs}→{outputs}, relu {relu}: difference {diff} of {scale}"
            );
        }
    }
    let weight = Tensor::randn([4, 3], opts);
    let bias = Tensor::randn([4], opts);
    let error = linear_relu(&Tensor::randn([1, 5], opts), &weight, &bias, true)
        .unwrap_err()
        .to_string();
    assert!(error.contains("weight [out, in]"), "{error}");
    let error = linear_relu(
        &Tensor::randn([1, 3], opts),
        &weight,
        &bias.narrow(0, 0, 3),
        true,
    )
    .unwrap_err()
    .to_string();
    assert!(error.contains("bias per output"), "{error}");

    let vs = VarStore::new(Device::Cpu);
    let linear = Linear::new(vs.root() / "fc", 6, 9);
    let layer = FusedLinear::new(&linear, None, true);
    let one = Tensor::randn([1, 6], opts);
    let own = linear_relu(&one, &layer.weight, &layer.bias, true).unwrap();
    assert!(layer.forward(&one).equal(&own));
    let two = Tensor::randn([2, 6], opts);
    let aten = two.linear(&layer.weight, Some(&layer.bias)).relu();
    assert!(layer.forward(&two).equal(&aten));
    // Fields set by hand to what aten takes and the kernel doesn't: aten runs them.
    let by_hand = FusedLinear {
        weight: layer.weight.tr().contiguous().tr(),
        bias: layer.bias.view([1, 9]),
        relu: true,
    };
    let aten = one.linear(&by_hand.weight, Some(&by_hand.bias)).relu();
    assert!(by_hand.forward(&one).equal(&aten));
}

/// The direct conv gives `relu(conv2d(…))` to within f32 rounding of the f64 conv: 3×3, 1×1 and
/// 5×5 kernels, strides 1 and 2, paddings 0 to 2, rows of positions not a multiple of 4, outputs
/// not a multiple of a panel's width, plain, strided and channels-last inputs, no image; its
/// panels hold the weight; a map smaller than the kernel is refused. A layer runs it on convs
/// of at most `DIRECT_TAPS` taps × input channels, and gives exactly the op's output.
#[test]
fn direct_conv_matches_conv2d() {
    use vggdsl_runtime::inference::{enter, Kernel, DIRECT_TAPS};
    use vggdsl_runtime::nn::Conv2d;
    use vggdsl_runtime::ops::{direct_conv_relu, direct_panels, kernel_isa};
    tch::manual_seed(7);
    let opts = (Kind::Float, Device::Cpu);
    let width = match kernel_isa() {
        "avx512" => 32,
        "avx2" => 16,
        _ => 8,
    };
    // (batch, in, out, kernel, stride, padding, height, width)
    let cases = [
        (1, 3, 3, 3, 1, 1, 32, 32),
        (1, 3, 32, 3, 1, 1, 8, 8),
        (2, 5, 17, 3, 2, 1, 7, 9),
        (1, 2, 40, 1, 1, 0, 3, 5),
        (3, 4, 9, 5, 1, 2, 6, 6),
        (1, 7, 33, 3, 1, 0, 3, 4),
        (0, 3, 4, 3, 1, 1, 4, 4),
    ];
    for (n, c, k, kernel, stride, padding, h, w) in cases {
        let weight = Tensor::randn([k, c, kernel, kernel], opts);
        let bias = Tensor::randn([k], opts);
        let panels = direct_panels(&weight).unwrap();
        let groups = (k + width - 1) / width;
        assert_eq!(panels.size(), [groups, kernel, kernel, c, width]);
        let flat = panels
            .permute([0, 4, 3, 1, 2])
            .reshape([groups * width, c, kernel, kernel]);
        assert!(flat.narrow(0, 0, k).equal(&weight));
        assert!(
            flat.narrow(0, k, groups * width - k)
                .eq(0.0)
                .all()
                .int64_value(&[])
                == 1
        );
        let d = |t: &Tensor| t.to_kind(Kind::Double);
        let xs = Tensor::randn([n, c, h, 2 * w], opts).narrow(3, 0, w);
        let want = d(&xs)
            .conv2d(
                &d(&weight),
                Some(&d(&bias)),
                [stride, stride],
                [padding, padding],
                [1, 1],
                1,
            )
            .relu();
        let scale = max_abs(&want);
        let context =
            format!("{n}×{c}→{k}, {kernel}×{kernel} stride {stride} padding {padding} on {h}×{w}");
        for input in [xs.shallow_clone(), xs.contiguous(), enter(&xs)] {
            let got = direct_conv_relu(&input, &panels, &bias, stride, padding).unwrap();
            assert_eq!(got.size(), want.size(), "{context}");
            let diff = max_abs(&(got.to_kind(Kind::Double) - &want));
            assert!(
                diff <= 2e-6 * scale * (c * kernel * kernel) as f64,
                "{context}: difference {diff} of {scale}"
            );
        }
    }
    let panels = direct_panels(&Tensor::randn([4, 3, 5, 5], opts)).unwrap();
    let no_taps = direct_panels(&Tensor::randn([4, 3, 0, 0], opts)).unwrap();
    let bias = Tensor::zeros([4], opts);
    for (xs, panels, padding, says) in [
        ([1, 3, 2, 2], &panels, 1, "no smaller than the kernel"),
        ([1, 2, 8, 8], &panels, 1, "panels"),
        (
            [1, 3, 8, 8],
            &panels,
            i64::MAX,
            "no smaller than the kernel",
        ),
        ([1, 3, 8, 8], &no_taps, 1, "one tap or more"),
    ] {
        let xs = Tensor::randn(xs, opts);
        let error = direct_conv_relu(&xs, panels, &bias, 1, padding)
            .unwrap_err()
            .to_string();
        assert!(error.contains(says), "{error}");
    }

    let vs = VarStore::new(Device::Cpu);
    for (c, applies) in [(32, true), (33, false)] {
        let conv = Conv2d::new(vs.root() / format!("direct{c}"), c, 8, 3, 1, 1);
        let layer = ConvReLU2d::new(&conv, None);
        let xs = enter(&Tensor::randn([2, c, 6, 6], opts));
        assert_eq!(9 * c <= DIRECT_TAPS, applies);
        let got = layer.forward_with(Kernel::Direct, &xs);
        assert_eq!(
            got.is_some(),
            applies && tch::utils::has_mkldnn(),
            "{c} channels"
        );
        if let Some(got) = got {
            let panels = direct_panels(&layer.weight).unwrap();
            assert!(got.equal(&direct_conv_relu(&xs, &panels, &layer.bias, 1, 1).unwrap()));
        }
    }
}
