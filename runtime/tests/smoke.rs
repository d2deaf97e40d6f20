//! Proof that libtorch links and loads: a 3×3 convolution checked against a value computed by hand.
use tch::{Kind, Tensor};

#[test]
fn conv3x3_matches_hand_computed_value() {
    // Input 1×1×3×3 holding 1..=9, kernel of ones, bias 0.5, no padding: one output = 45 + 0.5.
    let xs = Tensor::arange(9, (Kind::Float, tch::Device::Cpu)).view([1, 1, 3, 3]) + 1.0;
    let ws = Tensor::ones([1, 1, 3, 3], (Kind::Float, tch::Device::Cpu));
    let bs = Tensor::from_slice(&[0.5f32]);
    let out = xs.conv2d(&ws, Some(&bs), [1, 1], [0, 0], [1, 1], 1);
    assert_eq!(out.size(), [1, 1, 1, 1]);
    assert_eq!(out.double_value(&[0, 0, 0, 0]), 45.5);
    // With padding 1 the corner sees 1 + 2 + 4 + 5 = 12.
    let padded = xs.conv2d(&ws, Some(&bs), [1, 1], [1, 1], [1, 1], 1);
    assert_eq!(padded.double_value(&[0, 0, 0, 0]), 12.5);
}
