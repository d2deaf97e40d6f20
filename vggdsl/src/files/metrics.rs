//! `metrics.jsonl`, one JSON object per epoch, in epoch order:
//! `{"epoch": 1, "loss": …, "train_accuracy": …, "test_accuracy": …, "test_loss": …,
//! "val_accuracy": …, "val_loss": …, "lr": …, "seconds": …}`, the accuracies as fractions.
//! `vggdsl train` writes every field (the validation figures only when it has a validation
//! split); `examples/ddp_train.py` writes the same line without them.

use serde::{Deserialize, Deserializer, Serialize};

use super::FormatError;

/// One epoch's figures. A reader takes lines from other tools that record only `epoch` and
/// `loss`: any other figure a line lacks (or gives as `null`) reads as NaN, which no plot draws.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochMetrics {
    /// Counted from 1.
    pub epoch: u32,
    /// Mean training loss over the epoch's images (each batch's mean loss, weighted by its size).
    pub loss: f64,
    #[serde(default = "nan", deserialize_with = "number_or_null")]
    pub train_accuracy: f64,
    #[serde(default = "nan", deserialize_with = "number_or_null")]
    pub test_accuracy: f64,
    #[serde(default = "nan", deserialize_with = "number_or_null")]
    pub test_loss: f64,
    /// On the validation images carved from the training set; absent (NaN) without them.
    #[serde(
        default = "nan",
        deserialize_with = "number_or_null",
        skip_serializing_if = "is_nan"
    )]
    pub val_accuracy: f64,
    #[serde(
        default = "nan",
        deserialize_with = "number_or_null",
        skip_serializing_if = "is_nan"
    )]
    pub val_loss: f64,
    /// The learning rate of the epoch.
    #[serde(default = "nan", deserialize_with = "number_or_null")]
    pub lr: f64,
    /// Wall time of the epoch, its evaluation included.
    #[serde(default = "nan", deserialize_with = "number_or_null")]
    pub seconds: f64,
}

fn nan() -> f64 {
    f64::NAN
}

fn is_nan(x: &f64) -> bool {
    x.is_nan()
}

/// A number, or `null` (what JSON writers put for a NaN) as NaN.
pub(crate) fn number_or_null<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    Ok(Option::<f64>::deserialize(d)?.unwrap_or(f64::NAN))
}

impl EpochMetrics {
    /// The line's text, without its newline.
    pub fn to_line(&self) -> String {
        serde_json::to_string(self).expect("metrics serialize")
    }

    /// Reads one line.
    pub fn from_line(line: &str) -> Result<EpochMetrics, FormatError> {
        Ok(serde_json::from_str(line)?)
    }
}
