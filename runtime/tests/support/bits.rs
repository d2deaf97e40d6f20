//! Bit-for-bit comparison of tensors, for the tests of kernels that must give aten's numbers.

use vggdsl_runtime::tch::{Kind, Tensor};

/// Equal elementwise, NaN equal to NaN, -0.0 and 0.0 told apart (bit patterns); f32 or f64.
pub fn assert_bits_equal(a: &Tensor, b: &Tensor, what: &str) {
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
