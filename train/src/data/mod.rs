//! Image-classification data for training and evaluating vggdsl models: CIFAR-10/100 (binary
//! version) and MNIST-format IDX files (MNIST, Fashion-MNIST), held in memory as u8 and turned
//! into normalised, optionally augmented f32 batches on a background thread.
//!
//! Shuffling, crops and flips draw from a ChaCha8 generator seeded from `(seed, epoch)`, never
//! from libtorch's global generator: loading data does not change a model's init draws, two runs
//! with the same seed see the same batches, and a run resumed at epoch k sees exactly what an
//! uninterrupted run saw.
//!
//! ```no_run
//! use std::num::NonZeroUsize;
//! use vggdsl_train::data::{Dataset, ImageSet, Split};
//!
//! let dataset = Dataset::Cifar10;
//! dataset.check_model("Vgg16Bn", [3, 32, 32], 10)?;
//! let train = ImageSet::load(dataset, Split::Train, "data/cifar10".as_ref())?;
//! let batch = NonZeroUsize::new(128).unwrap();
//! for epoch in 0..3 {
//!     for b in train.epoch(batch, dataset.train_augment(), 42, epoch) {
//!         let (_images, _labels) = (b.images, b.labels); // f32 [B, 3, 32, 32], i64 [B]
//!     }
//! }
//! # Ok::<(), vggdsl_train::data::DataError>(())
//! ```

mod augment;
mod batches;
mod cifar;
mod idx;
pub mod split;

pub use augment::{render, Augment, Crop, Normalizer};
pub use batches::{Batch, Batches};
pub use split::{carve_validation, default_validation_size, VALIDATION_SEED};

use std::fmt;
use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;

use tch::Device;

/// Where Debian's `dataset-fashion-mnist` package installs the four gzipped IDX files.
const DEBIAN_FASHION_MNIST: &str = "/usr/share/datasets/fashion-mnist";

/// A dataset the loader knows: its files, classes, image shape and normalisation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Dataset {
    /// CIFAR-10, binary version: 50,000 + 10,000 3×32×32 images, 10 classes.
    Cifar10,
    /// CIFAR-100, binary version: 50,000 + 10,000 3×32×32 images, 100 fine classes.
    Cifar100,
    /// Fashion-MNIST IDX files: 60,000 + 10,000 1×28×28 images, 10 classes.
    FashionMnist,
    /// MNIST IDX files: 60,000 + 10,000 1×28×28 images, 10 classes.
    Mnist,
}

/// The training or the test part of a dataset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Split {
    Train,
    Test,
}

impl Dataset {
    pub const ALL: [Dataset; 4] = [
        Dataset::Cifar10,
        Dataset::Cifar100,
        Dataset::FashionMnist,
        Dataset::Mnist,
    ];

    /// The name the command line uses (`cifar10`, `cifar100`, `fashion-mnist`, `mnist`).
    pub fn name(self) -> &'static str {
        match self {
            Dataset::Cifar10 => "cifar10",
            Dataset::Cifar100 => "cifar100",
            Dataset::FashionMnist => "fashion-mnist",
            Dataset::Mnist => "mnist",
        }
    }

    /// Number of classes, comparable with a generated model's `NUM_CLASSES`.
    pub fn num_classes(self) -> i64 {
        match self {
            Dataset::Cifar100 => 100,
            Dataset::Cifar10 | Dataset::FashionMnist | Dataset::Mnist => 10,
        }
    }

    /// Image shape `[C, H, W]`, comparable with a generated model's `INPUT_SHAPE`.
    pub fn image_shape(self) -> [i64; 3] {
        match self {
            Dataset::Cifar10 | Dataset::Cifar100 => [3, 32, 32],
            Dataset::FashionMnist | Dataset::Mnist => [1, 28, 28],
        }
    }

    /// Class names by label: the published names for CIFAR-10 and Fashion-MNIST, the label
    /// numbers otherwise.
    pub fn class_names(self) -> Vec<String> {
        let named: &[&str] = match self {
            Dataset::Cifar10 => &[
                "airplane",
                "automobile",
                "bird",
                "cat",
                "deer",
                "dog",
                "frog",
                "horse",
                "ship",
                "truck",
            ],
            Dataset::FashionMnist => &[
                "T-shirt/top",
                "Trouser",
                "Pullover",
                "Dress",
                "Coat",
                "Sandal",
                "Shirt",
                "Sneaker",
                "Bag",
                "Ankle boot",
            ],
            Dataset::Cifar100 | Dataset::Mnist => {
                return (0..self.num_classes()).map(|i| i.to_string()).collect()
            }
        };
        named.iter().map(|s| s.to_string()).collect()
    }

    /// Per-channel mean of pixel/255, for `Normalize(mean, std)`.
    ///
    /// CIFAR-10: HRank's values; CIFAR-100: the commonly published ones. Fashion-MNIST: computed
    /// from its 60,000 training images (0.28604, checked against the Debian package's files by
    /// `tests/data.rs`); MNIST: PyTorch's published 0.1307, likewise the training set's mean.
    /// [`ImageSet::channel_stats`] computes these from loaded data.
    pub fn mean(self) -> &'static [f32] {
        match self {
            Dataset::Cifar10 => &[0.4914, 0.4822, 0.4465],
            Dataset::Cifar100 => &[0.5071, 0.4865, 0.4409],
            Dataset::FashionMnist => &[0.2860],
            Dataset::Mnist => &[0.1307],
        }
    }

    /// Per-channel standard deviation of pixel/255 (population), from the same sources as
    /// [`Dataset::mean`] (Fashion-MNIST: 0.35302).
    pub fn std(self) -> &'static [f32] {
        match self {
            Dataset::Cifar10 => &[0.2023, 0.1994, 0.2010],
            Dataset::Cifar100 => &[0.2673, 0.2564, 0.2762],
            Dataset::FashionMnist => &[0.3530],
            Dataset::Mnist => &[0.3081],
        }
    }

    /// The training augmentation: HRank's (random 4-pixel-padded crop, horizontal flip), without
    /// the flip for MNIST, whose digits a mirror turns into non-digits.
    pub fn train_augment(self) -> Augment {
        match self {
            Dataset::Mnist => Augment {
                padding: 4,
                hflip: false,
            },
            Dataset::Cifar10 | Dataset::Cifar100 | Dataset::FashionMnist => Augment::HRANK,
        }
    }

    /// The folder a system package installed this dataset in, if it is there: Debian's
    /// `dataset-fashion-mnist` for Fashion-MNIST; none for the others.
    pub fn default_dir(self) -> Option<PathBuf> {
        match self {
            Dataset::FashionMnist => {
                Some(PathBuf::from(DEBIAN_FASHION_MNIST)).filter(|d| d.is_dir())
            }
            Dataset::Cifar10 | Dataset::Cifar100 | Dataset::Mnist => None,
        }
    }

    /// Checks that a model (its name, `INPUT_SHAPE` and `NUM_CLASSES`) can train on this dataset.
    pub fn check_model(
        self,
        model: &str,
        input: [i64; 3],
        num_classes: i64,
    ) -> Result<(), DataError> {
        if input != self.image_shape() {
            return Err(DataError::ShapeMismatch {
                dataset: self,
                model: model.to_string(),
                input,
            });
        }
        if num_classes != self.num_classes() {
            return Err(DataError::ClassMismatch {
                dataset: self,
                model: model.to_string(),
                num_classes,
            });
        }
        Ok(())
    }

    /// Folders under the user's folder where the usual archives or torchvision put the files.
    fn subfolders(self) -> &'static [&'static str] {
        match self {
            Dataset::Cifar10 => &["cifar-10-batches-bin"],
            Dataset::Cifar100 => &["cifar-100-binary"],
            Dataset::FashionMnist => &["FashionMNIST/raw"],
            Dataset::Mnist => &["MNIST/raw"],
        }
    }
}

impl fmt::Display for Dataset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Dataset {
    type Err = DataError;

    fn from_str(s: &str) -> Result<Self, DataError> {
        Dataset::ALL
            .into_iter()
            .find(|d| d.name() == s)
            .ok_or_else(|| DataError::UnknownDataset(s.to_string()))
    }
}

/// Why data could not be loaded or used; each message is one sentence naming the file.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[error("unknown dataset `{0}`; expected one of cifar10, cifar100, fashion-mnist, mnist")]
    UnknownDataset(String),
    #[error("cannot find {file} ({dataset}) in {searched}")]
    MissingFile {
        dataset: Dataset,
        /// The file name, or the alternatives, looked for.
        file: String,
        /// The folders searched, as a phrase.
        searched: String,
    },
    #[error("cannot read {}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{} is not valid gzip: {source}", path.display())]
    Gzip {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{} holds no images", path.display())]
    Empty { path: PathBuf },
    #[error(
        "{} is {len} bytes, not a whole number of {record}-byte {dataset} records; \
         it is truncated or from another dataset",
        path.display()
    )]
    RecordSize {
        path: PathBuf,
        dataset: Dataset,
        len: usize,
        record: usize,
    },
    #[error(
        "record {record} (counting from 0) of {} has label {label}, but {dataset} labels are 0 to {}",
        path.display(),
        dataset.num_classes() - 1
    )]
    Label {
        path: PathBuf,
        dataset: Dataset,
        record: usize,
        label: u8,
    },
    #[error(
        "{} is not an IDX {kind} file: it starts with {found:#010x}, not {expected:#010x}",
        path.display()
    )]
    IdxMagic {
        path: PathBuf,
        /// `images` or `labels`.
        kind: &'static str,
        found: u32,
        expected: u32,
    },
    #[error("{} ends inside its IDX header", path.display())]
    IdxHeader { path: PathBuf },
    #[error(
        "{} holds {height}×{width} images, but {dataset} images are {}×{}",
        path.display(),
        dataset.image_shape()[1],
        dataset.image_shape()[2]
    )]
    IdxDims {
        path: PathBuf,
        dataset: Dataset,
        height: u32,
        width: u32,
    },
    #[error(
        "the header of {} announces {count} {kind} ({expected} bytes){follows}",
        path.display()
    )]
    IdxSize {
        path: PathBuf,
        /// `images` or `labels`.
        kind: &'static str,
        count: u32,
        expected: u64,
        follows: Follows,
    },
    #[error(
        "the images of {} look like {other}'s, not {dataset}'s: their mean pixel is {mean:.3}, \
         {other}'s is {:.3} and {dataset}'s {:.3} (the two datasets' files differ only in their \
         pictures); pass --dataset {other} if they are {other}",
        path.display(),
        other.mean()[0],
        dataset.mean()[0]
    )]
    OtherDataset {
        path: PathBuf,
        dataset: Dataset,
        other: Dataset,
        mean: f64,
    },
    #[error(
        "{} holds {images} images but {} holds {labels} labels",
        images_path.display(),
        labels_path.display()
    )]
    CountMismatch {
        images_path: PathBuf,
        images: u32,
        labels_path: PathBuf,
        labels: u32,
    },
    #[error(
        "{dataset} images are {}×{}×{} but model {model} takes {}×{}×{}",
        dataset.image_shape()[0],
        dataset.image_shape()[1],
        dataset.image_shape()[2],
        input[0],
        input[1],
        input[2]
    )]
    ShapeMismatch {
        dataset: Dataset,
        model: String,
        input: [i64; 3],
    },
    #[error(
        "{dataset} has {} classes but model {model} has {num_classes} outputs",
        dataset.num_classes()
    )]
    ClassMismatch {
        dataset: Dataset,
        model: String,
        num_classes: i64,
    },
    #[error(
        "a validation split of {size} images leaves none to train on: the training set has \
         {images}; choose a smaller --val-size (0 for none)"
    )]
    ValidationSize { size: usize, images: usize },
}

/// What follows an IDX header that announces another size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Follows {
    /// This many bytes.
    Exactly(u64),
    /// More than this many: reading stopped there.
    MoreThan(u64),
    /// A gzip file of this many bytes, which cannot expand to what the header announces.
    Gzip(u64),
}

impl fmt::Display for Follows {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Follows::Exactly(n) => write!(f, " but {n} bytes follow it"),
            Follows::MoreThan(n) => write!(f, " but more than {n} bytes follow it"),
            Follows::Gzip(n) => write!(f, ", more than its {n} bytes of gzip can hold"),
        }
    }
}

impl DataError {
    fn io(path: &Path) -> impl FnOnce(std::io::Error) -> DataError + '_ {
        |source| DataError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

/// A dataset split in memory: u8 images `[N, C, H, W]` in file order and their labels.
///
/// Cloning shares the bytes, so batch producers on other threads read them without copying.
#[derive(Debug, Clone)]
pub struct ImageSet {
    dataset: Dataset,
    pixels: Arc<Vec<u8>>,
    labels: Arc<Vec<u8>>,
    /// Where its batches are handed out ([`ImageSet::on`]).
    device: Device,
}

/// What a reader returns: pixels `[N, C, H, W]` and labels, already checked against the dataset.
struct Raw {
    pixels: Vec<u8>,
    labels: Vec<u8>,
}

impl ImageSet {
    /// Reads a split from `dir` or its usual subfolder (`cifar-10-batches-bin/`,
    /// `cifar-100-binary/`, `FashionMNIST/raw/`, `MNIST/raw/`); IDX files may be gzipped.
    pub fn load(dataset: Dataset, split: Split, dir: &Path) -> Result<ImageSet, DataError> {
        let raw = match dataset {
            Dataset::Cifar10 | Dataset::Cifar100 => cifar::read(dataset, split, dir)?,
            Dataset::FashionMnist | Dataset::Mnist => idx::read(dataset, split, dir)?,
        };
        Ok(ImageSet {
            dataset,
            pixels: Arc::new(raw.pixels),
            labels: Arc::new(raw.labels),
            device: Device::Cpu,
        })
    }

    /// The same images, their batches handed out on `device` (the CPU unless asked): the one
    /// place where data moves to a GPU, so that every pass over the set (training, evaluation,
    /// ranking, criteria) runs where the network is. The images stay in host memory, and each
    /// batch is copied when the consumer takes it.
    pub fn on(mut self, device: Device) -> ImageSet {
        self.device = device;
        self
    }

    /// Where its batches are handed out.
    pub fn device(&self) -> Device {
        self.device
    }

    pub fn dataset(&self) -> Dataset {
        self.dataset
    }

    /// Number of images.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Always false for a loaded set (an empty file is an error); here for the `len` convention.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Image `i` as stored: C·H·W bytes, channel-major. Panics if `i >= len()`.
    pub fn image(&self, i: usize) -> &[u8] {
        let size = self.image_size();
        &self.pixels[i * size..(i + 1) * size]
    }

    /// Label of image `i`, in `0..num_classes`. Panics if `i >= len()`.
    pub fn label(&self, i: usize) -> i64 {
        i64::from(self.labels[i])
    }

    /// Per-channel `(mean, std)` of pixel/255 over all images (population std, exact sums): how
    /// the Fashion-MNIST and MNIST constants of [`Dataset::mean`] are computed from a training set.
    pub fn channel_stats(&self) -> Vec<(f64, f64)> {
        let [c, h, w] = self.shape();
        let mut histograms = vec![[0u64; 256]; c];
        for image in self.pixels.chunks_exact(c * h * w) {
            for (plane, histogram) in image.chunks_exact(h * w).zip(&mut histograms) {
                for &v in plane {
                    histogram[usize::from(v)] += 1;
                }
            }
        }
        histograms
            .iter()
            .map(|histogram| {
                let (mut n, mut sum, mut sum_sq) = (0u64, 0u64, 0u64);
                for (v, &count) in (0u64..).zip(histogram) {
                    n += count;
                    sum += v * count;
                    sum_sq += v * v * count;
                }
                let mean = sum as f64 / n as f64;
                let var = sum_sq as f64 / n as f64 - mean * mean;
                (mean / 255.0, var.max(0.0).sqrt() / 255.0)
            })
            .collect()
    }

    /// The batches of training epoch `epoch`: every image once, shuffled and augmented with
    /// draws that depend only on `(seed, epoch)` and the set's size. The last batch holds the
    /// remainder (PyTorch's `drop_last=False`). Pass [`Augment::NONE`] to only shuffle.
    pub fn epoch(
        &self,
        batch_size: NonZeroUsize,
        augment: Augment,
        seed: u64,
        epoch: u64,
    ) -> Batches {
        self.epoch_from(batch_size, augment, seed, epoch, 0)
    }

    /// The batches of [`ImageSet::epoch`] after the first `skip`, which are never rendered: a
    /// run resumed in the middle of an epoch sees exactly the batches it had not trained on.
    pub fn epoch_from(
        &self,
        batch_size: NonZeroUsize,
        augment: Augment,
        seed: u64,
        epoch: u64,
        skip: usize,
    ) -> Batches {
        let (mut order, mut crops) = augment::plan(self.len(), augment, seed, epoch);
        let skipped = skip.saturating_mul(batch_size.get()).min(order.len());
        order.drain(..skipped);
        crops.drain(..skipped);
        Batches::spawn(self.clone(), order, crops, batch_size)
    }

    /// The first `limit` images (all if fewer) in file order, unaugmented: evaluation, and
    /// HRank's rank generation on the first batches of the training set.
    pub fn in_order(&self, batch_size: NonZeroUsize, limit: usize) -> Batches {
        let n = limit.min(self.len());
        Batches::spawn(
            self.clone(),
            (0..n).collect(),
            vec![Crop::default(); n],
            batch_size,
        )
    }

    fn shape(&self) -> [usize; 3] {
        self.dataset.image_shape().map(|d| d as usize)
    }

    fn image_size(&self) -> usize {
        self.shape().iter().product()
    }
}

/// The first of `names` that exists in `dir` or one of the dataset's subfolders of it.
fn find(dataset: Dataset, dir: &Path, names: &[&str]) -> Result<PathBuf, DataError> {
    let folders: Vec<PathBuf> = std::iter::once(dir.to_path_buf())
        .chain(dataset.subfolders().iter().map(|s| dir.join(s)))
        .collect();
    folders
        .iter()
        .flat_map(|folder| names.iter().map(move |name| folder.join(name)))
        .find(|path| path.is_file())
        .ok_or_else(|| DataError::MissingFile {
            dataset,
            file: names.join(" or "),
            searched: folders
                .iter()
                .map(|f| f.display().to_string())
                .collect::<Vec<_>>()
                .join(" or "),
        })
}

/// Checks that every label of `path` is below the dataset's class count.
fn check_labels(dataset: Dataset, path: &Path, labels: &[u8]) -> Result<(), DataError> {
    match labels
        .iter()
        .position(|&l| i64::from(l) >= dataset.num_classes())
    {
        Some(record) => Err(DataError::Label {
            path: path.to_path_buf(),
            dataset,
            record,
            label: labels[record],
        }),
        None => Ok(()),
    }
}
