//! Generated models run: their activations are the relu_cfg points, and `to_inference()` gives
//! the eval-mode outputs. (Their variables, outputs and training steps against PyTorch's are
//! `tests/fidelity.rs`.)
mod common;

use common::models::*;
use common::models::{self, build};
use vggdsl_runtime::load_state_dict;
use vggdsl_runtime::tch::{self, nn, nn::ModuleT, Device, Kind, Tensor};
use vggdsl_test_support::pytorch::{cmd, reference};
use vggdsl_test_support::{file_in, tempdir};

#[test]
fn activations_are_the_relu_cfg_points() {
    let vs = nn::VarStore::new(Device::Cpu);
    let net = Vgg16Bn::new(&vs.root());
    let xs = Tensor::randn([2, 3, 32, 32], (Kind::Float, Device::Cpu));
    let (out, acts) = net.forward_with_activations(&xs, false);
    assert_eq!(out.size(), [2, 10]);
    assert!(out.allclose(&net.forward_t(&xs, false), 0.0, 0.0, false));
    assert_eq!(acts.relu0.size(), [2, 64, 32, 32]);
    assert_eq!(acts.pool2.size(), [2, 64, 16, 16]);
    assert_eq!(acts.relu15.size(), [2, 512, 2, 2]);
    // Every tap is post-ReLU (or a pool of it): no negative values.
    assert_eq!(
        acts.pool9.min().double_value(&[]),
        acts.pool9.relu().min().double_value(&[])
    );
}

/// `to_inference()` (each BatchNorm folded into the conv or linear before it, ReLU fused, each
/// conv's kernel chosen per batch-size class) gives `forward_t(xs, false)`'s outputs: with
/// weights trained by PyTorch, every BatchNorm's statistics and affine redrawn per channel
/// (`train --randomize-bn`), on seeded batches of several size classes, for the seed,
/// HRank's pruned VGG-16 (odd widths), a model without BatchNorm2d and a non-square input.
///
/// Folding reorders float operations, so the outputs agree to a relative tolerance, against
/// logits large enough that an output of zeros cannot pass.
#[test]
fn inference_model_matches_eval_mode_with_trained_weights() {
    const REL_TOL: f64 = 1e-4;
    let b = 16;
    let batches = [1, b - 1, b, b + 1, 64];
    let models = [
        models::seed(),
        models::hrank(),
        models::no_bn(),
        models::non_square(),
    ];
    let dir = tempdir();
    let commands: Vec<_> = models
        .iter()
        .map(|m| {
            cmd(&[
                "train",
                "--config",
                &m.config,
                "--seed",
                "11",
                "--steps",
                "2",
                "--randomize-bn",
                "12",
                "--out-prefix",
                &file_in(&dir, m.name),
            ])
        })
        .collect();
    if reference(&commands).is_none() {
        return;
    }

    for m in &models {
        let (mut vs, net) = build(m, 0);
        let weights = file_in(&dir, &format!("{}.safetensors", m.name));
        load_state_dict(&mut vs, &weights).unwrap_or_else(|e| panic!("{e}"));
        // The loaded statistics are PyTorch's redrawn ones, not the defaults (0 and 1).
        let stats = vs.variables();
        let mean = stats["classifier.norm1.running_mean"].abs().max();
        let var = &stats["classifier.norm1.running_var"];
        assert!(
            mean.double_value(&[]) > 0.1 && var.min().double_value(&[]) < 0.9,
            "{}: the BatchNorm statistics are not the redrawn ones",
            m.name
        );
        let fast = net.inference();
        for (i, &n) in batches.iter().enumerate() {
            let (xs, _) = models::batch(m, n, 500 + i as i64);
            let (want, got) = tch::no_grad(|| (net.forward_t(&xs, false), fast.forward(&xs)));
            assert_eq!(got.size(), [n, m.classes], "{}: batch {n}", m.name);
            let scale = want.abs().max().double_value(&[]);
            let diff = (&got - &want).abs().max().double_value(&[]);
            println!(
                "{}: batch {n}: max |logit| {scale:.3e}, max |diff| {diff:.3e}",
                m.name
            );
            assert!(
                scale > 1e-2,
                "{}: batch {n}: the logits are tiny (max |logit| {scale:e})",
                m.name
            );
            if n > 1 {
                // They depend on the image: a layout that mixed up the batch could not pass.
                let spread = want.std_dim(0, true, false).max().double_value(&[]);
                assert!(
                    spread > 0.05 * scale,
                    "{}: batch {n}: the logits hardly depend on the input (spread {spread:e})",
                    m.name
                );
            }
            assert!(
                diff <= REL_TOL * scale,
                "{}: batch {n}: to_inference() differs from eval mode: max |diff| {diff:e} > \
                 {REL_TOL:e} * max |logit| {scale:e}",
                m.name
            );
        }
    }
}
