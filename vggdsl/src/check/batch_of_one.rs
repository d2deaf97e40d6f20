//! A training batch of one image, refused before the first epoch. Every vggdsl network has a
//! BatchNorm1d in its classifier, and train-mode BatchNorm of one value per channel divides by a
//! variance of zero images' spread: PyTorch raises "Expected more than 1 value per channel when
//! training" on such a batch, and without the check libtorch's kernels turn the running variance
//! into NaN for good. A batch of one comes from a batch size of 1, or from a training set one
//! image longer than a multiple of the batch size (the last batch holds the remainder, as with
//! PyTorch's `drop_last=False`).

use crate::analysis::thousands;

/// A batch size that leaves a batch of one image; the message says which sizes work.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{}, and BatchNorm cannot train on one image (PyTorch refuses such a batch too); {}",
    what(*images, *batch_size),
    fix(*images, *batch_size)
)]
pub struct BatchOfOne {
    pub images: usize,
    pub batch_size: u32,
}

/// Checks that no batch of an epoch of `images` training images in batches of `batch_size` is a
/// single image.
pub fn check_batches(images: usize, batch_size: u32) -> Result<(), BatchOfOne> {
    if leaves_one(images, batch_size as usize) {
        Err(BatchOfOne { images, batch_size })
    } else {
        Ok(())
    }
}

fn leaves_one(images: usize, batch: usize) -> bool {
    batch == 1 || images % batch == 1
}

fn what(images: usize, batch_size: u32) -> String {
    match (images, batch_size) {
        (1, _) => "the training set holds 1 image".to_owned(),
        (_, 1) => "batch size 1 makes batches of one image".to_owned(),
        _ => format!(
            "with batch size {batch_size}, the {} training images end in a batch of one image",
            thousands(images as u64)
        ),
    }
}

/// The batch sizes nearest `batch_size` that work, below and above.
fn fix(images: usize, batch_size: u32) -> String {
    if images < 2 {
        return "train on a set of at least 2 images".to_owned();
    }
    let b = batch_size as usize;
    let works = |c: &usize| !leaves_one(images, *c);
    let below = (2..b).rev().find(works);
    // `images` itself always works: one batch of all.
    let above = (b + 1..=images.max(b + 1)).find(works);
    match (below, above) {
        (Some(lo), Some(hi)) => format!("batch sizes such as {lo} or {hi} leave none"),
        (Some(n), None) | (None, Some(n)) => format!("a batch size such as {n} leaves none"),
        (None, None) => "any batch size from 2 up leaves none".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_that_leave_one_image_are_refused_with_ones_that_work() {
        assert_eq!(check_batches(70, 16), Ok(()));
        assert_eq!(check_batches(70, 70), Ok(()));
        assert_eq!(check_batches(70, 128), Ok(()));
        assert_eq!(
            check_batches(70, 69).unwrap_err().to_string(),
            "with batch size 69, the 70 training images end in a batch of one image, and \
             BatchNorm cannot train on one image (PyTorch refuses such a batch too); batch sizes \
             such as 68 or 70 leave none"
        );
        assert_eq!(
            check_batches(60_033, 128).unwrap_err().to_string(),
            "with batch size 128, the 60,033 training images end in a batch of one image, and \
             BatchNorm cannot train on one image (PyTorch refuses such a batch too); batch sizes \
             such as 127 or 129 leave none"
        );
        assert_eq!(
            check_batches(70, 1).unwrap_err().to_string(),
            "batch size 1 makes batches of one image, and BatchNorm cannot train on one image \
             (PyTorch refuses such a batch too); a batch size such as 2 leaves none"
        );
        assert!(check_batches(1, 16)
            .unwrap_err()
            .to_string()
            .ends_with("train on a set of at least 2 images"));
    }
}
