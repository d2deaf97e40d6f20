//! How a stored u8 image becomes a normalised f32 image of a batch: HRank's CIFAR training
//! transform (`RandomCrop(32, padding=4)`, `RandomHorizontalFlip()`, `ToTensor()`,
//! `Normalize(mean, std)`) in one pass, and the seeded draws that choose each image's crop.

use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Training augmentation: torchvision's `RandomCrop(size, padding)` then, if `hflip`,
/// `RandomHorizontalFlip(0.5)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Augment {
    /// Pixels of padding on each side before cropping back to the image size; 0 = no crop.
    pub padding: usize,
    /// Mirror left-right with probability 0.5.
    pub hflip: bool,
}

impl Augment {
    /// No augmentation: the image as stored.
    pub const NONE: Augment = Augment {
        padding: 0,
        hflip: false,
    };
    /// HRank's CIFAR augmentation: crop with 4 pixels of padding, horizontal flip.
    pub const HRANK: Augment = Augment {
        padding: 4,
        hflip: true,
    };
}

/// One image's crop window and mirror: output pixel `(y, x)` before the flip is stored pixel
/// `(y + dy, x + dx)`, black where that is outside the image. In torchvision's terms the window's
/// top-left corner in the padded image is `(padding + dy, padding + dx)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Crop {
    pub dy: isize,
    pub dx: isize,
    /// Mirror the cropped image left-right.
    pub flip: bool,
}

/// Per-channel tables from pixel byte to `(byte / 255 - mean) / std`, computed in f32 with the
/// operations of `ToTensor` + `Normalize`, so values match torchvision's bit for bit.
#[derive(Debug, Clone)]
pub struct Normalizer {
    tables: Vec<[f32; 256]>,
}

impl Normalizer {
    /// One channel per `(mean, std)` pair, for pixel values scaled to 0..=1.
    pub fn new(mean: &[f32], std: &[f32]) -> Normalizer {
        let tables = mean
            .iter()
            .zip(std)
            .map(|(&m, &s)| std::array::from_fn(|v| (v as f32 / 255.0 - m) / s))
            .collect();
        Normalizer { tables }
    }
}

/// Writes `image` (u8 `[C, H, W]` with `shape`) cropped, mirrored and normalised into `out`
/// (C·H·W floats, every one written).
///
/// Padding is black: pixel value 0, as torchvision pads the PIL image before `ToTensor`, so it
/// becomes `-mean / std` of its channel after normalisation, not 0.0.
///
/// Panics if `image`, `out` or the normalizer's channel count do not match `shape`.
pub fn render(image: &[u8], shape: [usize; 3], crop: Crop, norm: &Normalizer, out: &mut [f32]) {
    let [c, h, w] = shape;
    assert!(
        image.len() == c * h * w && out.len() == c * h * w && norm.tables.len() == c,
        "render: image of {} bytes, output of {} floats and {} channel tables for shape {shape:?}",
        image.len(),
        out.len(),
        norm.tables.len(),
    );
    let (width, dx) = (w as isize, crop.dx);
    // Output columns whose source column x + dx lies inside the image: lo..hi.
    let lo = (-dx).clamp(0, width) as usize;
    let hi = (width - dx).clamp(0, width) as usize;
    let planes = image.chunks_exact(h * w).zip(out.chunks_exact_mut(h * w));
    for (table, (src_plane, out_plane)) in norm.tables.iter().zip(planes) {
        let black = table[0];
        for (y, row) in (0isize..).zip(out_plane.chunks_exact_mut(w)) {
            let sy = y + crop.dy;
            if sy < 0 || sy >= h as isize || lo >= hi {
                row.fill(black);
                continue;
            }
            let src_row = &src_plane[sy as usize * w..][..w];
            let src = &src_row[(lo as isize + dx) as usize..(hi as isize + dx) as usize];
            row[..lo].fill(black);
            row[hi..].fill(black);
            for (o, &v) in row[lo..hi].iter_mut().zip(src) {
                *o = table[usize::from(v)];
            }
            if crop.flip {
                row.reverse();
            }
        }
    }
}

/// The order and crops of one training epoch of `n` images, drawn from ChaCha8 seeded with
/// `seed` on stream `epoch`: independent streams per epoch, so an epoch needs no earlier ones.
pub(super) fn plan(n: usize, augment: Augment, seed: u64, epoch: u64) -> (Vec<usize>, Vec<Crop>) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(epoch);
    let mut order: Vec<usize> = (0..n).collect();
    order.shuffle(&mut rng);
    // Drawn as i32 so the sequence is the same on 32- and 64-bit targets.
    let p = augment.padding.min(i32::MAX as usize) as i32;
    let crops = (0..n)
        .map(|_| {
            let (dy, dx) = if p > 0 {
                (rng.gen_range(-p..=p), rng.gen_range(-p..=p))
            } else {
                (0, 0)
            };
            Crop {
                dy: dy as isize,
                dx: dx as isize,
                flip: augment.hflip && rng.gen_bool(0.5),
            }
        })
        .collect();
    (order, crops)
}
