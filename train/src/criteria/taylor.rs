//! First-order Taylor importance (Molchanov et al., "Pruning Convolutional Neural Networks for
//! Resource Efficient Inference", ICLR 2017, the criterion Θ_TE): removing a feature map z changes
//! the loss by about |∂C/∂z · z|. Per image n and channel k of a conv block's output (where HRank
//! reads its maps: the ReLU, or the max-pool right after it, which passes the same products),
//!
//! ```text
//! Θ(k) = 1/N Σ_n | 1/(H·W) Σ_{y,x} a[n,k,y,x] · g[n,k,y,x] |,   g = ∂C_n/∂a[n]
//! ```
//!
//! with C_n image n's cross-entropy: the batch's summed loss in eval mode (BatchNorm's running
//! statistics, so images do not interact and nothing is updated), over the first `limit` images of
//! the training set in file order, unaugmented. The 2017 criterion rather than the 2019 paper's
//! per-filter (Σ w·∂L/∂w)²: it scores the filter's output as every other criterion here does, and
//! needs no gates. The paper's per-layer normalisation does not change which filters of a conv
//! survive, so it is left out.

use std::num::NonZeroUsize;

use tch::{Kind, TchError, Tensor};
use vggdsl_runtime::Network;

use crate::data::ImageSet;
use crate::trainer::summed_loss;

/// Θ of every filter of every conv of `net`, convs in order, over the first `limit` images of
/// `set` in batches of `batch_size`; `progress` is told the images done.
pub fn scores(
    net: &Network,
    set: &ImageSet,
    batch_size: NonZeroUsize,
    limit: usize,
    progress: &mut dyn FnMut(usize),
) -> Result<Vec<Vec<f64>>, TchError> {
    let mut sums: Vec<Tensor> = net
        .ir()
        .convs()
        .map(|(.., c)| Tensor::zeros([c], (Kind::Double, set.device())))
        .collect();
    let mut images = 0;
    for batch in set.in_order(batch_size, limit) {
        let mut maps = Vec::new();
        let logits = net.forward_tapped(&batch.images, false, |_, map| {
            maps.push(map.shallow_clone())
        });
        let loss = summed_loss(&logits, &batch.labels)?;
        let grads = Tensor::f_run_backward(&[loss], &maps, false, false)?;
        tch::no_grad(|| -> Result<(), TchError> {
            for ((sum, a), g) in sums.iter_mut().zip(&maps).zip(&grads) {
                let per_image = a
                    .f_mul(g)?
                    .f_mean_dim([2, 3].as_slice(), false, Kind::Float)?
                    .f_abs()?;
                *sum +=
                    per_image
                        .f_to_kind(Kind::Double)?
                        .f_sum_dim_intlist(0, false, Kind::Double)?;
            }
            Ok(())
        })?;
        images += batch.labels.size()[0] as usize;
        progress(images);
    }
    let n = images.max(1) as f64;
    Ok(sums
        .iter()
        .map(|s| super::values(s).into_iter().map(|v| v / n).collect())
        .collect())
}
