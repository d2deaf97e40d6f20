//! What `train`, `eval` and `rank` share: the model of a FILE, the dataset and its folder, the
//! thread count, the device, loading trained weights, and how their errors read.

use std::path::PathBuf;

use vggdsl_runtime::tch::{self, nn::VarStore, Device};
use vggdsl_runtime::{LoadError, Network};
use vggdsl_train::data::{DataError, Dataset, ImageSet, Split};
use vggdsl_train::weights::{self, WeightsError};

use super::device::DeviceArgs;
use crate::exit::{FAILED, UNREADABLE, USAGE};
use crate::failure::Failure;
use crate::{input, numbers, FileArg};

/// The model, data, threads and device arguments of `train`, `eval` and `rank`.
#[derive(clap::Args)]
pub struct ModelArgs {
    /// The .vgg file (`-` reads standard input).
    #[arg(value_name = "FILE")]
    pub file: FileArg,
    /// The model to use when FILE declares several.
    #[arg(long, value_name = "NAME")]
    pub model: Option<String>,
    /// The dataset: cifar10, cifar100, fashion-mnist or mnist [default: the one whose images
    /// and classes the model takes; fashion-mnist for 1×28×28]
    #[arg(long, value_name = "NAME", value_parser = parse_dataset)]
    pub dataset: Option<Dataset>,
    /// The folder holding the dataset's files (or its usual subfolder, e.g.
    /// cifar-10-batches-bin/) [default for fashion-mnist: /usr/share/datasets/fashion-mnist,
    /// Debian's dataset-fashion-mnist]
    #[arg(long, value_name = "DIR")]
    pub data: Option<PathBuf>,
    /// libtorch's intra-op threads [default: libtorch's, one per core]
    #[arg(
        long,
        value_name = "N",
        value_parser = numbers::count::<i64>(1024),
        allow_negative_numbers = true
    )]
    pub threads: Option<i64>,
    #[command(flatten)]
    pub device: DeviceArgs,
}

pub fn parse_dataset(name: &str) -> Result<Dataset, DataError> {
    name.parse()
}

/// A checked model of FILE, the dataset it runs on, the name FILE goes by and the device (one
/// libtorch sees) it runs on.
pub struct Model {
    pub ir: vggdsl::Architecture,
    pub dataset: Dataset,
    pub file_name: String,
    pub device: Device,
}

impl ModelArgs {
    /// Checks `--device`, reads FILE, picks the model, settles the dataset and applies
    /// `--threads`.
    pub fn model(&self) -> Result<Model, Failure> {
        let device = self.device.checked()?;
        let source = input::read(&self.file)?;
        let nets = vggdsl::load(&source.text, &source.name).map_err(|d| Failure::invalid(&d))?;
        let ir = input::model(&nets, self.model.as_deref(), &source.name)?.clone();
        let spec = &ir.spec;
        let dataset = match self.dataset {
            Some(dataset) => dataset,
            None => infer_dataset(spec.input, spec.num_classes).ok_or_else(|| {
                Failure::new(
                    USAGE,
                    format_args!(
                        "no dataset vggdsl knows has {}×{}×{} images in {} classes, as model {} \
                         takes; name one with --dataset",
                        spec.input[0], spec.input[1], spec.input[2], spec.num_classes, spec.name
                    ),
                )
            })?,
        };
        dataset
            .check_model(&spec.name, spec.input, spec.num_classes)
            .map_err(|e| Failure::new(FAILED, e))?;
        if let Some(threads) = self.threads {
            tch::set_num_threads(threads as i32);
        }
        Ok(Model {
            ir,
            dataset,
            file_name: source.name,
            device,
        })
    }

    /// The folder of the dataset's files: `--data`, else where a system package installed it.
    pub fn data_dir(&self, dataset: Dataset) -> Result<PathBuf, Failure> {
        data_dir(self.data.as_ref(), dataset)
    }
}

/// The folder of a dataset's files: `given` (checked to be a folder), else where a system
/// package installed it.
pub fn data_dir(given: Option<&PathBuf>, dataset: Dataset) -> Result<PathBuf, Failure> {
    if let Some(dir) = given {
        return match std::fs::metadata(dir) {
            Ok(meta) if meta.is_dir() => Ok(dir.clone()),
            Ok(_) => Err(Failure::new(
                USAGE,
                format_args!(
                    "--data {} is a file, not a folder of {dataset} data",
                    dir.display()
                ),
            )),
            Err(e) => Err(Failure::new(
                UNREADABLE,
                format_args!("cannot read --data {}: {e}", dir.display()),
            )),
        };
    }
    dataset.default_dir().ok_or_else(|| {
        let why = match dataset {
            Dataset::FashionMnist => {
                "Fashion-MNIST is not installed where Debian's dataset-fashion-mnist puts it \
                     (/usr/share/datasets/fashion-mnist)"
            }
            _ => "vggdsl knows no place where it is installed",
        };
        Failure::new(
            USAGE,
            format_args!("--data DIR is needed for {dataset}: {why}"),
        )
    })
}

/// The dataset whose images and classes a model takes; Fashion-MNIST before MNIST.
pub fn infer_dataset(input: [i64; 3], num_classes: i64) -> Option<Dataset> {
    Dataset::ALL
        .into_iter()
        .find(|d| d.image_shape() == input && d.num_classes() == num_classes)
}

/// A model with its trained weights, and one split of its dataset: where `eval` and `rank` start.
pub struct Trained {
    pub model: Model,
    pub net: Network,
    pub data: ImageSet,
}

/// A model and its trained weights: the arguments of `eval` and `rank`.
#[derive(clap::Args)]
pub struct TrainedArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// The weights: a .safetensors file (e.g. a run's best.safetensors) or a torch.save archive,
    /// loaded strictly.
    #[arg(long, value_name = "W")]
    pub weights: PathBuf,
}

impl TrainedArgs {
    /// The model on its device, its weights loaded strictly, and `split` of its dataset, its
    /// batches handed out on that device.
    pub fn load(&self, split: Split) -> Result<Trained, Failure> {
        let model = self.model.model()?;
        let mut vs = VarStore::new(model.device);
        let net = Network::new(&vs.root(), &model.ir);
        weights::load(&mut vs, &self.weights)
            .map_err(|e| weights_failure(&e, &model.ir.spec.name))?;
        let data = load_split(model.dataset, split, &self.model.data_dir(model.dataset)?)?;
        Ok(Trained {
            data: data.on(model.device),
            model,
            net,
        })
    }
}

/// One split of the dataset; a missing or malformed file is one sentence.
pub fn load_split(
    dataset: Dataset,
    split: Split,
    dir: &std::path::Path,
) -> Result<ImageSet, Failure> {
    ImageSet::load(dataset, split, dir).map_err(|e| Failure::new(FAILED, e))
}

/// A weights file that cannot be loaded into `model`: unreadable is exit 2, for another model
/// (its first difference named) or not a weights file exit 1.
pub fn load_failure(error: &LoadError, model: &str) -> Failure {
    match error {
        LoadError::Io { .. } => Failure::new(UNREADABLE, error),
        LoadError::Mismatch { path, mismatches } => {
            Failure::another_model(path.display(), model, &mismatches[0], mismatches.len())
        }
        _ => Failure::new(FAILED, error),
    }
}

/// Weights that cannot be used: [`load_failure`]'s codes, and exit 1 for NaN or infinite values.
pub fn weights_failure(error: &WeightsError, model: &str) -> Failure {
    match error {
        WeightsError::Load(e) => load_failure(e, model),
        e => Failure::new(FAILED, e),
    }
}
