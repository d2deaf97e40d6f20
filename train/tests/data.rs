//! The data layer on small files written here in the real CIFAR binary and IDX formats, and on
//! the real Fashion-MNIST when Debian's `dataset-fashion-mnist` is installed.

use std::io::Write;
use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};

use flate2::write::GzEncoder;
use tch::{Kind, Tensor};
use vggdsl_test_support::{tempdir, TempDir};
use vggdsl_train::data::{render, Augment, Crop, Dataset, ImageSet, Normalizer, Split};

#[path = "data/errors.rs"]
mod errors;

fn batch(n: usize) -> NonZeroUsize {
    NonZeroUsize::new(n).unwrap()
}

fn floats(t: &Tensor) -> Vec<f32> {
    Vec::<f32>::try_from(t.flatten(0, -1)).unwrap()
}

fn longs(t: &Tensor) -> Vec<i64> {
    Vec::<i64>::try_from(t).unwrap()
}

/// One CIFAR record: the label byte(s), then pixel (c, y, x) = `pixel(c, y, x)`.
fn cifar_record(labels: &[u8], pixel: impl Fn(usize, usize, usize) -> u8) -> Vec<u8> {
    let mut rec = labels.to_vec();
    for c in 0..3 {
        for y in 0..32 {
            for x in 0..32 {
                rec.push(pixel(c, y, x));
            }
        }
    }
    rec
}

/// CIFAR-10 in `dir/cifar-10-batches-bin`: data_batch_k holds two records, labels 2(k-1) and
/// 2(k-1)+1, pixel (c, y, x) = (100c + 3y + x + k) mod 256; test_batch holds one record whose
/// planes are 255, 0 and 51.
fn write_cifar10(dir: &Path) -> PathBuf {
    let folder = dir.join("cifar-10-batches-bin");
    std::fs::create_dir_all(&folder).unwrap();
    for k in 1..=5usize {
        let mut bytes = Vec::new();
        for j in 0..2 {
            let label = (2 * (k - 1) + j) as u8;
            bytes.extend(cifar_record(&[label], |c, y, x| {
                ((100 * c + 3 * y + x + k) % 256) as u8
            }));
        }
        std::fs::write(folder.join(format!("data_batch_{k}.bin")), bytes).unwrap();
    }
    let test = cifar_record(&[3], |c, _, _| [255, 0, 51][c]);
    std::fs::write(folder.join("test_batch.bin"), test).unwrap();
    folder
}

/// An IDX file of u8 data: magic 00 00 08 n, the sizes, the data; gzipped if `gz`.
fn write_idx(path: &Path, dims: &[u32], data: &[u8], gz: bool) {
    let mut bytes = vec![0, 0, 8, dims.len() as u8];
    for d in dims {
        bytes.extend(d.to_be_bytes());
    }
    bytes.extend(data);
    if gz {
        let mut enc = GzEncoder::new(Vec::new(), flate2::Compression::default());
        enc.write_all(&bytes).unwrap();
        bytes = enc.finish().unwrap();
    }
    std::fs::write(path, bytes).unwrap();
}

/// Fashion-MNIST: a gzipped training split of two images (all 51, all 102; labels 9, 0) and a
/// plain test split of three images, pixel (y, x) of image i = 28y + x + i mod 256, labels 1, 2, 3.
fn write_fashion(dir: &Path) {
    let train: Vec<u8> = [51u8, 102].iter().flat_map(|&v| [v; 784]).collect();
    write_idx(
        &dir.join("train-images-idx3-ubyte.gz"),
        &[2, 28, 28],
        &train,
        true,
    );
    write_idx(&dir.join("train-labels-idx1-ubyte.gz"), &[2], &[9, 0], true);
    let test: Vec<u8> = (0..3)
        .flat_map(|i| (0..784).map(move |p| ((p + i) % 256) as u8))
        .collect();
    write_idx(
        &dir.join("t10k-images-idx3-ubyte"),
        &[3, 28, 28],
        &test,
        false,
    );
    write_idx(&dir.join("t10k-labels-idx1-ubyte"), &[3], &[1, 2, 3], false);
}

fn load_err(dataset: Dataset, split: Split, dir: &Path) -> String {
    ImageSet::load(dataset, split, dir).unwrap_err().to_string()
}

#[test]
fn cifar10_pixels_and_labels_round_trip() {
    let dir = tempdir();
    write_cifar10(dir.path());
    let train = ImageSet::load(Dataset::Cifar10, Split::Train, dir.path()).unwrap();
    assert_eq!(train.len(), 10);
    assert_eq!(
        (0..10).map(|i| train.label(i)).collect::<Vec<_>>(),
        (0..10).collect::<Vec<_>>()
    );
    // Image 7 is record 1 of data_batch_4: pixel (2, 5, 31) = 200 + 15 + 31 + 4 = 250.
    assert_eq!(train.image(7)[2 * 1024 + 5 * 32 + 31], 250);
    // Image 0, pixel (1, 31, 31) = 100 + 93 + 31 + 1 = 225; image 9, pixel (0, 0, 0) = 5.
    assert_eq!(train.image(0)[1024 + 31 * 32 + 31], 225);
    assert_eq!(train.image(9)[0], 5);
    let test = ImageSet::load(Dataset::Cifar10, Split::Test, dir.path()).unwrap();
    assert_eq!((test.len(), test.label(0)), (1, 3));
    assert_eq!(
        [test.image(0)[0], test.image(0)[1024], test.image(0)[3071]],
        [255, 0, 51]
    );
}

#[test]
fn cifar100_uses_the_fine_label_and_accepts_files_in_the_folder_itself() {
    let dir = tempdir();
    let mut bytes = cifar_record(&[3, 77], |_, y, _| y as u8);
    bytes.extend(cifar_record(&[19, 99], |c, _, _| c as u8));
    std::fs::write(dir.path().join("train.bin"), bytes).unwrap();
    let set = ImageSet::load(Dataset::Cifar100, Split::Train, dir.path()).unwrap();
    assert_eq!((set.len(), set.label(0), set.label(1)), (2, 77, 99));
    assert_eq!(set.image(0)[5 * 32 + 3], 5);
    assert_eq!(set.image(1)[2048], 2);
}

#[test]
fn idx_gzipped_and_plain_round_trip() {
    let dir = tempdir();
    write_fashion(dir.path());
    let train = ImageSet::load(Dataset::FashionMnist, Split::Train, dir.path()).unwrap();
    assert_eq!((train.len(), train.label(0), train.label(1)), (2, 9, 0));
    assert_eq!([train.image(0)[0], train.image(1)[783]], [51, 102]);
    let test = ImageSet::load(Dataset::FashionMnist, Split::Test, dir.path()).unwrap();
    assert_eq!(test.len(), 3);
    assert_eq!([test.label(0), test.label(1), test.label(2)], [1, 2, 3]);
    // Image 2, pixel (1, 5): 28 + 5 + 2 = 35; image 1, pixel (27, 27): 783 + 1 mod 256 = 16.
    assert_eq!(test.image(2)[28 + 5], 35);
    assert_eq!(test.image(1)[783], 16);
}

#[test]
fn idx_files_are_found_in_the_torchvision_subfolder() {
    let dir = tempdir();
    let raw = dir.path().join("MNIST/raw");
    std::fs::create_dir_all(&raw).unwrap();
    write_idx(
        &raw.join("t10k-images-idx3-ubyte"),
        &[1, 28, 28],
        &[7; 784],
        false,
    );
    write_idx(&raw.join("t10k-labels-idx1-ubyte.gz"), &[1], &[4], true);
    let set = ImageSet::load(Dataset::Mnist, Split::Test, dir.path()).unwrap();
    assert_eq!((set.len(), set.label(0), set.image(0)[100]), (1, 4, 7));
}

#[test]
fn batches_are_normalised_as_torchvision_does() {
    let dir = tempdir();
    write_cifar10(dir.path());
    let test = ImageSet::load(Dataset::Cifar10, Split::Test, dir.path()).unwrap();
    let batches: Vec<_> = test.in_order(batch(8), usize::MAX).collect();
    assert_eq!(batches.len(), 1);
    let b = &batches[0];
    assert_eq!(b.images.size(), [1, 3, 32, 32]);
    assert_eq!(
        (b.images.kind(), b.labels.kind()),
        (Kind::Float, Kind::Int64)
    );
    assert_eq!(longs(&b.labels), [3]);
    // (255/255 - 0.4914) / 0.2023, (0 - 0.4822) / 0.1994, (51/255 - 0.4465) / 0.2010.
    let expected = [2.514088, -2.418255, -1.226368];
    for (c, e) in expected.iter().enumerate() {
        for (y, x) in [(0, 0), (13, 7), (31, 31)] {
            let v = b.images.double_value(&[0, c as i64, y, x]);
            assert!((v - e).abs() < 1e-5, "channel {c} ({y}, {x}): {v} vs {e}");
        }
    }
}

#[test]
fn channel_stats_by_hand() {
    let dir = tempdir();
    write_fashion(dir.path());
    let train = ImageSet::load(Dataset::FashionMnist, Split::Train, dir.path()).unwrap();
    // Half the pixels 51/255 = 0.2, half 102/255 = 0.4: mean 0.3, population std 0.1.
    let stats = train.channel_stats();
    assert_eq!(stats.len(), 1);
    assert!(
        (stats[0].0 - 0.3).abs() < 1e-12 && (stats[0].1 - 0.1).abs() < 1e-12,
        "{stats:?}"
    );
}

#[test]
fn in_order_takes_the_first_images_unaugmented() {
    let dir = tempdir();
    write_cifar10(dir.path());
    let train = ImageSet::load(Dataset::Cifar10, Split::Train, dir.path()).unwrap();
    let batches = train.in_order(batch(2), 3);
    assert_eq!(batches.len(), 2);
    let batches: Vec<_> = batches.collect();
    assert_eq!(batches[0].images.size(), [2, 3, 32, 32]);
    assert_eq!(batches[1].images.size(), [1, 3, 32, 32]);
    assert_eq!(longs(&batches[0].labels), [0, 1]);
    assert_eq!(longs(&batches[1].labels), [2]);
    // Image 2 (data_batch_2, k = 2), pixel (0, 0, 0) = 2: (2/255 - 0.4914) / 0.2023.
    let v = batches[1].images.double_value(&[0, 0, 0, 0]);
    assert!((v - (2.0 / 255.0 - 0.4914) / 0.2023).abs() < 1e-5);
    assert_eq!(train.in_order(batch(4), 1000).len(), 3);
}

/// A CIFAR-10 training set of `n` images with distinct, irregular content.
fn noisy_cifar10(n: usize) -> (TempDir, ImageSet) {
    let dir = tempdir();
    let mut bytes = Vec::new();
    for r in 0..n {
        bytes.extend(cifar_record(&[(r % 10) as u8], |c, y, x| {
            ((r * 131 + c * 71 + y * 37 + x * x * 13) % 256) as u8
        }));
    }
    std::fs::write(dir.path().join("data_batch_1.bin"), bytes).unwrap();
    for k in 2..=5 {
        std::fs::write(
            dir.path().join(format!("data_batch_{k}.bin")),
            cifar_record(&[0], |_, _, _| 0),
        )
        .unwrap();
    }
    let set = ImageSet::load(Dataset::Cifar10, Split::Train, dir.path()).unwrap();
    (dir, set)
}

fn epoch_tensors(set: &ImageSet, seed: u64, epoch: u64) -> Vec<(Tensor, Tensor)> {
    set.epoch(batch(4), Augment::HRANK, seed, epoch)
        .map(|b| (b.images, b.labels))
        .collect()
}

fn same(a: &[(Tensor, Tensor)], b: &[(Tensor, Tensor)]) -> bool {
    a.len() == b.len()
        && a.iter()
            .zip(b)
            .all(|(x, y)| x.0.equal(&y.0) && x.1.equal(&y.1))
}

#[test]
fn epochs_are_a_function_of_seed_and_epoch() {
    let (_dir, set) = noisy_cifar10(20);
    let first = epoch_tensors(&set, 7, 3);
    assert_eq!(first.len(), 6); // 24 images in batches of 4
    assert!(same(&first, &epoch_tensors(&set, 7, 3)));
    assert!(!same(&first, &epoch_tensors(&set, 7, 4)));
    assert!(!same(&first, &epoch_tensors(&set, 8, 3)));
    // Resuming: epoch 2 after epochs 0 and 1 is epoch 2 on its own.
    let fresh = epoch_tensors(&set, 7, 2);
    let _ = (epoch_tensors(&set, 7, 0), epoch_tensors(&set, 7, 1));
    assert!(same(&fresh, &epoch_tensors(&set, 7, 2)));
    // Every image exactly once.
    let mut labels: Vec<i64> = first.iter().flat_map(|(_, l)| longs(l)).collect();
    labels.sort();
    let mut all: Vec<i64> = (0..set.len()).map(|i| set.label(i)).collect();
    all.sort();
    assert_eq!(labels, all);
}

#[test]
fn loading_does_not_touch_libtorchs_generator() {
    let (_dir, set) = noisy_cifar10(8);
    tch::manual_seed(0);
    let before = Tensor::randn([4], (Kind::Float, tch::Device::Cpu));
    tch::manual_seed(0);
    let _ = epoch_tensors(&set, 1, 0);
    assert!(before.equal(&Tensor::randn([4], (Kind::Float, tch::Device::Cpu))));
}

#[test]
fn augmented_images_are_hrank_crops_and_flips_of_the_stored_ones() {
    let (_dir, set) = noisy_cifar10(12);
    let norm = Normalizer::new(Dataset::Cifar10.mean(), Dataset::Cifar10.std());
    let crops: Vec<Crop> = (-4..=4)
        .flat_map(|dy| (-4..=4).flat_map(move |dx| [false, true].map(|flip| Crop { dy, dx, flip })))
        .collect();
    let mut seen = Vec::new();
    for b in set.epoch(batch(5), Augment::HRANK, 11, 0) {
        for (k, label) in longs(&b.labels).into_iter().enumerate() {
            let got = floats(&b.images.get(k as i64));
            // The stored images are told apart by content; label r % 10 narrows the search.
            let found = (0..set.len())
                .filter(|&i| set.label(i) == label)
                .find_map(|i| {
                    crops.iter().find(|&&crop| {
                        let mut out = vec![0f32; 3072];
                        render(set.image(i), [3, 32, 32], crop, &norm, &mut out);
                        out == got
                    })
                });
            seen.push(*found.expect("every augmented image is a ±4 crop, maybe flipped"));
        }
    }
    assert!(seen.iter().any(|c| c.flip) && seen.iter().any(|c| !c.flip));
    assert!(seen.iter().any(|c| c.dy != 0 || c.dx != 0));
}

/// A 2×3×4 image: channel 0 holds 1..=12 row by row, channel 1 holds 101..=112.
fn tiny() -> Vec<u8> {
    (1..=12).chain(101..=112).collect()
}

fn tiny_render(crop: Crop, mean: f32, std: f32) -> Vec<f32> {
    let mut out = vec![f32::NAN; 24];
    render(
        &tiny(),
        [2, 3, 4],
        crop,
        &Normalizer::new(&[mean; 2], &[std; 2]),
        &mut out,
    );
    out
}

/// Pixel values (v/255 normalised with mean 0, std 1) back as bytes for readable expectations.
fn as_bytes(values: &[f32]) -> Vec<u8> {
    values.iter().map(|v| (v * 255.0).round() as u8).collect()
}

#[test]
fn crop_shifts_pixels_and_pads_with_black() {
    let same = tiny_render(Crop::default(), 0.0, 1.0);
    assert_eq!(as_bytes(&same), tiny());
    // Output (y, x) = stored (y + 1, x - 1).
    let shifted = tiny_render(
        Crop {
            dy: 1,
            dx: -1,
            flip: false,
        },
        0.0,
        1.0,
    );
    #[rustfmt::skip]
    assert_eq!(as_bytes(&shifted), [
        0, 5, 6, 7,   0, 9, 10, 11,   0, 0, 0, 0,
        0, 105, 106, 107,   0, 109, 110, 111,   0, 0, 0, 0,
    ]);
    // Output (y, x) = stored (y - 1, x + 2), then mirrored.
    let flipped = tiny_render(
        Crop {
            dy: -1,
            dx: 2,
            flip: true,
        },
        0.0,
        1.0,
    );
    #[rustfmt::skip]
    assert_eq!(as_bytes(&flipped), [
        0, 0, 0, 0,   0, 0, 4, 3,   0, 0, 8, 7,
        0, 0, 0, 0,   0, 0, 104, 103,   0, 0, 108, 107,
    ]);
    let mirrored = tiny_render(
        Crop {
            dy: 0,
            dx: 0,
            flip: true,
        },
        0.0,
        1.0,
    );
    assert_eq!(&as_bytes(&mirrored)[..4], [4, 3, 2, 1]);
    // Shifted past the edge: all padding.
    assert_eq!(
        as_bytes(&tiny_render(
            Crop {
                dy: 0,
                dx: 4,
                flip: false
            },
            0.0,
            1.0
        )),
        [0; 24]
    );
    assert_eq!(
        as_bytes(&tiny_render(
            Crop {
                dy: -3,
                dx: 0,
                flip: true
            },
            0.0,
            1.0
        )),
        [0; 24]
    );
}

#[test]
fn padding_is_a_black_pixel_after_normalisation() {
    // Mean 0.5, std 0.5: black (0) becomes -1, not 0.
    let out = tiny_render(
        Crop {
            dy: 0,
            dx: -1,
            flip: false,
        },
        0.5,
        0.5,
    );
    assert_eq!(out[0], -1.0);
    assert!((out[1] - (1.0 / 255.0 - 0.5) / 0.5).abs() < 1e-7);
}

/// The real Fashion-MNIST from Debian's `dataset-fashion-mnist`: required when CI is set.
#[test]
fn real_fashion_mnist() {
    let Some(dir) = Dataset::FashionMnist.default_dir() else {
        vggdsl_test_support::skip(
            "Debian's dataset-fashion-mnist is not installed (/usr/share/datasets/fashion-mnist)",
        );
        return;
    };
    let train = ImageSet::load(Dataset::FashionMnist, Split::Train, &dir).unwrap();
    let test = ImageSet::load(Dataset::FashionMnist, Split::Test, &dir).unwrap();
    assert_eq!((train.len(), test.len()), (60_000, 10_000));
    assert!((0..train.len()).all(|i| (0..10).contains(&train.label(i))));
    assert!((0..test.len()).all(|i| (0..10).contains(&test.label(i))));
    // Read with `zcat train-labels-idx1-ubyte.gz | od -A d -t u1`: byte 8 (the first label) is 9
    // (Ankle boot), then 0, 0, 3; the test labels start 9, 2, 1.
    assert_eq!([0, 1, 2, 3].map(|i| train.label(i)), [9, 0, 0, 3]);
    assert_eq!([0, 1, 2].map(|i| test.label(i)), [9, 2, 1]);
    // Dataset::mean/std are the training set's statistics (numpy: 0.286041, 0.353024).
    let (mean, std) = train.channel_stats()[0];
    assert!(
        (mean - 0.286041).abs() < 1e-6 && (std - 0.353024).abs() < 1e-6,
        "{mean} {std}"
    );
    assert!((f64::from(Dataset::FashionMnist.mean()[0]) - mean).abs() < 5e-5);
    assert!((f64::from(Dataset::FashionMnist.std()[0]) - std).abs() < 5e-5);
    let first = train.in_order(batch(64), usize::MAX).next().unwrap();
    assert_eq!(first.images.size(), [64, 1, 28, 28]);
}
