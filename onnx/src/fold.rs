//! An eval-mode BatchNorm folded into the conv or linear before it, as the run-time
//! `to_inference()` folds it: `scale = γ / √(var + ε)`, `shift = β − mean · scale`, each output
//! channel's weights times `scale`, its bias `bias · scale + shift`.
//!
//! Computed in f64 and rounded to f32 once per value, so a folded weight is the exact fold to
//! within f32's last bit, whatever order an f32 computation would take.

/// A BatchNorm's tensors, one value per channel.
pub(crate) struct Norm<'a> {
    pub weight: &'a [f32],
    pub bias: &'a [f32],
    pub running_mean: &'a [f32],
    pub running_var: &'a [f32],
    pub eps: f64,
}

/// `(weight, bias)` with `norm` folded in; `weight` holds `bias.len()` output channels of equal
/// size, first dimension outermost, as conv and linear weights do. `None` when a value overflows
/// f32.
pub(crate) fn fold(weight: &[f32], bias: &[f32], norm: &Norm) -> Option<(Vec<f32>, Vec<f32>)> {
    let per_channel = weight.len() / bias.len();
    let mut folded_weight = Vec::with_capacity(weight.len());
    let mut folded_bias = Vec::with_capacity(bias.len());
    for (c, (filter, &b)) in weight.chunks_exact(per_channel).zip(bias).enumerate() {
        let scale = f64::from(norm.weight[c]) / (f64::from(norm.running_var[c]) + norm.eps).sqrt();
        let shift = f64::from(norm.bias[c]) - f64::from(norm.running_mean[c]) * scale;
        folded_weight.extend(filter.iter().map(|&w| (f64::from(w) * scale) as f32));
        folded_bias.push((f64::from(b) * scale + shift) as f32);
    }
    let finite = |v: &[f32]| v.iter().all(|x| x.is_finite());
    (finite(&folded_weight) && finite(&folded_bias)).then_some((folded_weight, folded_bias))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two channels of a 1×2 conv, by hand: channel 0 has scale 2 / √(3 + 1) = 1 and shift
    /// 1 − 2 · 1 = −1; channel 1 has scale 3 / √(8 + 1) = 1 and shift 0.5 − 1 · 1 = −0.5
    /// (ε = 1 keeps the figures round).
    #[test]
    fn folds_per_output_channel() {
        let norm = Norm {
            weight: &[2.0, 3.0],
            bias: &[1.0, 0.5],
            running_mean: &[2.0, 1.0],
            running_var: &[3.0, 8.0],
            eps: 1.0,
        };
        let (w, b) = fold(&[1.0, -2.0, 4.0, 0.25], &[10.0, -1.0], &norm).unwrap();
        assert_eq!(w, [1.0, -2.0, 4.0, 0.25]);
        assert_eq!(b, [10.0 - 1.0, -1.0 - 0.5]);
    }

    /// Scale 4 / √(0 + 1) = 4 and shift 0 − 0.5 · 4 = −2.
    #[test]
    fn scales_weights_and_bias() {
        let norm = Norm {
            weight: &[4.0],
            bias: &[0.0],
            running_mean: &[0.5],
            running_var: &[0.0],
            eps: 1.0,
        };
        let (w, b) = fold(&[0.5, -1.5, 3.0], &[1.0], &norm).unwrap();
        assert_eq!(w, [2.0, -6.0, 12.0]);
        assert_eq!(b, [1.0 * 4.0 - 2.0]);
    }

    /// One rounding: γ = 1, var = 2.9 and w = 0.1 fold to 0.058721922 (the f32 nearest the exact
    /// 0.1f32 / √(2.9f32 + 1e-5)); the same steps in f32 arithmetic round to 0.05872192.
    #[test]
    fn rounds_once_from_f64() {
        let norm = Norm {
            weight: &[1.0],
            bias: &[0.0],
            running_mean: &[0.0],
            running_var: &[2.9],
            eps: 1e-5,
        };
        let (w, _) = fold(&[0.1], &[0.0], &norm).unwrap();
        assert_eq!(w, [0.058721922]);
        let in_f32 = 0.1f32 * (1.0f32 / (2.9f32 + 1e-5f32).sqrt());
        assert_ne!(w[0], in_f32);
    }

    #[test]
    fn overflow_is_none() {
        let norm = Norm {
            weight: &[1e30],
            bias: &[0.0],
            running_mean: &[0.0],
            running_var: &[0.0],
            eps: 1e-5,
        };
        assert_eq!(fold(&[1e30], &[0.0], &norm), None);
    }
}
