//! A conv weight packed for oneDNN for each input shape it meets ([`super::Kernel::OneDnn`]).
//!
//! oneDNN's kernel picks its weight format from the whole problem: ISA, batch size, map size
//! (on AVX2, `Acdb24a` with 512 channels padded to 528 on 4×4 maps, `Acdb32a` on 2×2 maps). A
//! weight packed for another problem is reordered on every call, which can cost more than the
//! conv (105 ms for a 512×512×3×3 weight on AVX2). So a weight is packed for the exact input
//! shape of each batch, and packings whose bytes are identical (the same format) are kept once.

use std::cell::RefCell;

use tch::Tensor;

use crate::memory;
use crate::ops;

/// The packings of one conv weight, by input shape `[n, c, h, w]`.
#[derive(Debug, Default)]
pub(super) struct Packings {
    by_shape: RefCell<Vec<([i64; 4], Tensor)>>,
}

impl Packings {
    /// `weight` packed for inputs of `shape` (stride and padding `conv`), packed now if no
    /// earlier batch had that shape.
    pub fn get(&self, weight: &Tensor, conv: (i64, i64), shape: [i64; 4]) -> Tensor {
        if let Some((_, packed)) = self.by_shape.borrow().iter().find(|(s, _)| *s == shape) {
            return packed.shallow_clone();
        }
        let (s, p) = conv;
        let packed = super::no_grad_in_huge_pages(|| {
            weight.to_mkldnn().mkldnn_reorder_conv2d_weight(
                [p, p],
                [s, s],
                [1, 1],
                1,
                Some(shape.as_slice()),
            )
        });
        let mut by_shape = self.by_shape.borrow_mut();
        let shared = by_shape
            .iter()
            .map(|(_, t)| t)
            .find(|t| same_bytes(t, &packed))
            .map(Tensor::shallow_clone);
        let packed = shared.unwrap_or_else(|| {
            memory::huge_pages(&packed);
            packed
        });
        by_shape.push((shape, packed.shallow_clone()));
        packed
    }

    /// How many distinct packings are kept (each shared by the shapes whose bytes matched).
    pub fn distinct(&self) -> usize {
        let by_shape = self.by_shape.borrow();
        let mut seen: Vec<*mut std::ffi::c_void> = Vec::new();
        for (_, t) in by_shape.iter() {
            let data = ops::data_bytes(t).map_or(std::ptr::null_mut(), |(d, _)| d);
            if !seen.contains(&data) {
                seen.push(data);
            }
        }
        seen.len()
    }
}

/// Whether two packed weights hold the same bytes: the same format of the same weight.
fn same_bytes(a: &Tensor, b: &Tensor) -> bool {
    match (ops::data_bytes(a), ops::data_bytes(b)) {
        (Ok((pa, la)), Ok((pb, lb))) if la == lb => {
            // SAFETY: both ranges are the live buffers of tensors borrowed for this call, only read.
            unsafe {
                std::slice::from_raw_parts(pa as *const u8, la)
                    == std::slice::from_raw_parts(pb as *const u8, lb)
            }
        }
        _ => false,
    }
}
