//! HRank's filter scores: the matrix rank of each filter's feature map, per image, averaged.
//!
//! HRank hooks one conv block output per forward pass (12 passes over the data) and calls
//! `matrix_rank` once per image and channel. Here one forward pass taps every block output
//! ([`Network::forward_tapped`]: the ReLU, or the max-pool right after it, as HRank's `relucfg`),
//! the last conv's included so that a rate list of full length can prune it, and one batched
//! [`map_ranks`] call ranks all channels of all images of a batch.

use tch::{Kind, TchError, Tensor};
use vggdsl::files::ranks::RanksFile;
use vggdsl::Architecture;
use vggdsl_runtime::Network;

use crate::error::torch_sentence;

/// The rank of every channel's H×W map of every image: `maps` `[B, C, H, W]` gives int64
/// `[B, C]`. This is `torch.linalg.matrix_rank` with its default tolerance (singular values
/// above σ_max · max(H, W) · ε count), the rule of the old `torch.matrix_rank` that HRank calls
/// per image and channel, in one batched call. A map with an infinity or a NaN has no rank:
/// libtorch's error.
pub fn map_ranks(maps: &Tensor) -> Result<Tensor, TchError> {
    maps.f_linalg_matrix_rank_atol_rtol_float(None, None, false)
}

/// Why a batch could not be ranked: one sentence.
#[derive(Debug, thiserror::Error)]
pub enum RankError {
    #[error(
        "the feature maps of {conv} hold infinite or NaN values (the weights make the activations \
         overflow float32), and such maps have no rank"
    )]
    NonFinite { conv: String },
    #[error("libtorch failed: {}", torch_sentence(.0))]
    Torch(#[from] TchError),
}

/// Running sums of every conv's per-image filter ranks.
#[derive(Debug)]
pub struct RankSums {
    model: String,
    convs: Vec<String>,
    /// int64 `[C]` per conv, in conv order: exact, so the means do not depend on batching.
    sums: Vec<Tensor>,
    images: i64,
}

impl RankSums {
    pub fn new(net: &Network) -> Self {
        let ir = net.ir();
        RankSums {
            model: net.spec().name.clone(),
            convs: ir.convs().map(|(_, name, _)| name.to_owned()).collect(),
            sums: ir
                .convs()
                .map(|(.., c)| Tensor::zeros([c], (Kind::Int64, tch::Device::Cpu)))
                .collect(),
            images: 0,
        }
    }

    /// One forward pass of `images` `[B, C, H, W]` (eval-mode BatchNorm, no gradients), adding
    /// each image's rank of every filter's map at every conv block's output.
    pub fn add(&mut self, net: &Network, images: &Tensor) -> Result<(), RankError> {
        let _no_grad = tch::no_grad_guard();
        let mut sums = self.sums.iter_mut().zip(&self.convs);
        let mut failed = None;
        let _logits = net.forward_tapped(images, false, |_, map| {
            let (sum, conv) = sums.next().expect("one block output per conv");
            if failed.is_none() {
                failed = add_ranks(sum, map, conv).err();
            }
        });
        if let Some(error) = failed {
            return Err(error);
        }
        self.images += images.size()[0];
        Ok(())
    }

    /// Images ranked so far.
    pub fn images(&self) -> i64 {
        self.images
    }

    /// Mean rank per filter, each the exact sum divided once by the number of images: what
    /// `ranks.json` holds.
    pub fn means(&self) -> RanksFile {
        let n = self.images.max(1) as f64;
        let convs = self
            .convs
            .iter()
            .zip(&self.sums)
            .map(|(name, sum)| {
                let sum = Vec::<i64>::try_from(sum).expect("an int64 vector");
                (name.clone(), sum.iter().map(|&s| s as f64 / n).collect())
            })
            .collect();
        RanksFile {
            model: self.model.clone(),
            images: self.images,
            convs,
        }
    }
}

/// Adds the per-image ranks of `maps` (conv `conv`'s block output) to `sum`.
fn add_ranks(sum: &mut Tensor, maps: &Tensor, conv: &str) -> Result<(), RankError> {
    let finite = maps.f_isfinite()?.f_all()?.f_int64_value(&[])? != 0;
    if !finite {
        return Err(RankError::NonFinite { conv: conv.into() });
    }
    let ranks = map_ranks(maps)?
        .f_sum_dim_intlist(0, false, Kind::Int64)?
        .f_to_device(sum.device())?;
    let _ = sum.f_add_(&ranks)?;
    Ok(())
}

/// Why a [`RanksFile`] does not fit a network: one sentence naming the conv.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RanksMismatch {
    #[error("it ranks model {ranked}, whose convs are {found}, but {model}'s are {expected}")]
    Convs {
        ranked: String,
        model: String,
        found: String,
        expected: String,
    },
    #[error("it ranks model {ranked}, whose {conv} has {found} filters, but {model}'s {conv} has {expected}")]
    Width {
        ranked: String,
        model: String,
        conv: String,
        found: usize,
        expected: i64,
    },
}

/// The mean ranks per conv of `ir`, checked to be one per filter of each of its convs.
pub fn scores_for<'a>(
    ranks: &'a RanksFile,
    ir: &Architecture,
) -> Result<Vec<&'a [f64]>, RanksMismatch> {
    let convs: Vec<(usize, &str, i64)> = ir.convs().collect();
    let names = |it: &mut dyn Iterator<Item = &str>| it.collect::<Vec<_>>().join(", ");
    if ranks.convs.len() != convs.len()
        || ranks
            .convs
            .iter()
            .zip(&convs)
            .any(|((a, _), (_, b, _))| a != b)
    {
        return Err(RanksMismatch::Convs {
            ranked: ranks.model.clone(),
            model: ir.spec.name.clone(),
            found: names(&mut ranks.convs.iter().map(|(n, _)| n.as_str())),
            expected: names(&mut convs.iter().map(|&(_, n, _)| n)),
        });
    }
    ranks
        .convs
        .iter()
        .zip(&convs)
        .map(|((conv, scores), &(.., width))| {
            if scores.len() as i64 == width {
                Ok(scores.as_slice())
            } else {
                Err(RanksMismatch::Width {
                    ranked: ranks.model.clone(),
                    model: ir.spec.name.clone(),
                    conv: conv.clone(),
                    found: scores.len(),
                    expected: width,
                })
            }
        })
        .collect()
}
