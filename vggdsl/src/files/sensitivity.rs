//! The sensitivity file: `vggdsl sensitivity` writes it, `vggdsl prune --strategy sensitivity`
//! and `vggdsl plot sensitivity` read it (docs/language.md, "Sensitivity files"). Every conv
//! pruned alone at every rate, without fine-tuning, measured on the validation images:
//!
//! ```json
//! {"model": "FashionVgg", "weights": "base/last.safetensors", "by": "l1", "round_to": 1,
//!  "validation": {"dataset": "fashion-mnist", "images": 1000},
//!  "latency": {"batch": 1, "threads": 1, "machine": "AMD EPYC; oneDNN max all"},
//!  "unpruned": {"accuracy": 0.93, "loss": 0.2, "params": 537994, "macs": 14973952, "latency_ms": 1.9},
//!  "convs": [{"name": "conv0", "width": 32, "points": [
//!     {"rate": 0.1, "filters": 28, "accuracy": 0.93, "loss": 0.2, "params": …, "macs": …, "latency_ms": …},
//!     …]}, …],
//!  "seconds": {"cache": 0.4, "prune": 2.1, "evaluate": 20.5, "latency": 3.0, "total": 26.3}}
//! ```

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::{FormatError, ReadError};

/// The most bytes a sensitivity file is read to: a sweep of a thousand convs at a hundred rates
/// takes a few MiB; the limit refuses `/dev/zero` at once.
pub const MAX_BYTES: u64 = 16 << 20;

/// A sensitivity sweep of a model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SensitivityFile {
    /// The model swept (unpruned), and the weights it was measured with.
    pub model: String,
    pub weights: String,
    /// The criterion that chose each conv's surviving filters (`vggdsl prune --by`).
    pub by: String,
    /// The multiple the pruned widths were rounded up to (1: none).
    pub round_to: i64,
    pub validation: Validation,
    pub latency: LatencyConditions,
    /// The figures of the unpruned model.
    pub unpruned: Figures,
    /// Every conv of the model, in order.
    pub convs: Vec<Conv>,
    /// Where the sweep's time went.
    pub seconds: Seconds,
}

/// The images every point was measured on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Validation {
    pub dataset: String,
    pub images: u64,
}

/// Where the latencies were measured: one batch of `batch` images at `threads` libtorch threads.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LatencyConditions {
    pub batch: i64,
    pub threads: i32,
    pub machine: String,
}

/// A network's figures: accuracy (a fraction) and mean loss on the validation images, its
/// Conv2d + Linear parameters and MACs, and the milliseconds of one batch of `to_inference()`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Figures {
    pub accuracy: f64,
    pub loss: f64,
    pub params: u64,
    pub macs: u64,
    pub latency_ms: f64,
}

/// One conv pruned alone at each rate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Conv {
    pub name: String,
    /// Its unpruned width.
    pub width: i64,
    pub points: Vec<Point>,
}

/// The network with one conv pruned at `rate` to `filters` filters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Point {
    pub rate: f64,
    pub filters: i64,
    pub accuracy: f64,
    pub loss: f64,
    pub params: u64,
    pub macs: u64,
    pub latency_ms: f64,
}

/// Seconds spent: the maps before each conv kept once (`cache`), cutting the networks
/// (`prune`), running the validation images (`evaluate`), timing blocks (`latency`), in all.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Seconds {
    pub cache: f64,
    pub prune: f64,
    pub evaluate: f64,
    pub latency: f64,
    pub total: f64,
}

impl SensitivityFile {
    /// The file's text, pretty-printed.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a sweep serializes") + "\n"
    }

    /// Reads a sensitivity file's text: at least one conv, rates in [0, 1), each point 1 to its
    /// conv's width filters. A conv may have no point: the sweep skips a rate that leaves a conv
    /// no filter, so a narrow conv swept at high rates only has none (and is never moved by the
    /// sensitivity strategy).
    pub fn from_json(text: &str) -> Result<SensitivityFile, FormatError> {
        let file: SensitivityFile = serde_json::from_str(text)?;
        if file.convs.is_empty() {
            return Err(FormatError::Invalid("it has no conv".into()));
        }
        for conv in &file.convs {
            let bad = conv
                .points
                .iter()
                .any(|p| !(0.0..1.0).contains(&p.rate) || !(1..=conv.width).contains(&p.filters));
            if bad {
                return Err(FormatError::Invalid(format!(
                    "{} has a point outside rates [0, 1) and 1 to {} filters",
                    conv.name, conv.width
                )));
            }
        }
        Ok(file)
    }

    /// Reads the sensitivity file at `path`, refusing one of more than [`MAX_BYTES`].
    pub fn read(path: &Path) -> Result<SensitivityFile, ReadError> {
        super::read(
            path,
            "a sensitivity file of `vggdsl sensitivity`",
            MAX_BYTES,
            SensitivityFile::from_json,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A file of one conv of 8 filters with `points`.
    fn file(points: &str) -> String {
        format!(
            r#"{{"model": "M", "weights": "w", "by": "l1", "round_to": 1,
              "validation": {{"dataset": "cifar10", "images": 10}},
              "latency": {{"batch": 1, "threads": 1, "machine": "m"}},
              "unpruned": {{"accuracy": 0.9, "loss": 0.3, "params": 10, "macs": 20, "latency_ms": 1.0}},
              "convs": [{{"name": "conv0", "width": 8, "points": [{points}]}}],
              "seconds": {{"cache": 0, "prune": 0, "evaluate": 0, "latency": 0, "total": 0}}}}"#
        )
    }

    const POINT: &str = r#"{"rate": 0.5, "filters": 4, "accuracy": 0.8, "loss": 0.5,
        "params": 6, "macs": 12, "latency_ms": 0.7}"#;

    #[test]
    fn a_conv_without_points_is_read() {
        // What the sweep writes for a conv every rate leaves no filter (8 filters at 0.9).
        let read = SensitivityFile::from_json(&file("")).unwrap();
        assert!(read.convs[0].points.is_empty());
        let read = SensitivityFile::from_json(&file(POINT)).unwrap();
        assert_eq!(read.convs[0].points[0].filters, 4);
        assert_eq!(SensitivityFile::from_json(&read.to_json()).unwrap(), read);
    }

    #[test]
    fn a_point_outside_its_conv_is_refused() {
        for bad in [
            POINT.replace("0.5,", "1.0,"),
            POINT.replace("4,", "9,"),
            POINT.replace("4,", "0,"),
        ] {
            let error = SensitivityFile::from_json(&file(&bad)).unwrap_err();
            assert!(
                error.to_string().contains("conv0 has a point outside"),
                "{error}"
            );
        }
    }
}
