//! The benchmark results file: `examples/bench.rs` writes it, `vggdsl plot bench` reads it
//! (docs/language.md, "Benchmark results files"):
//! `{"model": NAME, "machine": TEXT, "rows": [{"variant": NAME, "threads": N, "batch": N,
//! "images_per_second": X, "ratio": X, …}, …]}`. `machine` and the ratios may be absent, and other
//! keys are read past.

use serde::{Deserialize, Serialize};

use super::metrics::number_or_null;
use super::FormatError;

/// A benchmark run: the model measured and one row per measurement.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BenchResults {
    /// The model measured, for the figure's title.
    pub model: String,
    /// Free text about the machine and the conditions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub machine: Option<String>,
    pub rows: Vec<BenchRow>,
}

/// One variant measured at a thread count and a batch size.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BenchRow {
    pub variant: String,
    pub threads: i64,
    pub batch: i64,
    /// `null` (what serde_json writes for a NaN or an infinity) is read as NaN, and refused.
    #[serde(deserialize_with = "number_or_null")]
    pub images_per_second: f64,
    /// The median of per-iteration time ratios against eager PyTorch, and its quartiles.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ratio: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ratio_q1: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ratio_q3: Option<f64>,
}

impl BenchResults {
    /// The file's text, pretty-printed.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("results serialize") + "\n"
    }

    /// Reads a results file's text and checks its rows: at least one; positive thread counts and
    /// batch sizes; positive finite throughputs; each variant, thread count and batch size once.
    /// A broken rule is said as the rest of a sentence that begins with the file's name.
    pub fn from_json(text: &str) -> Result<BenchResults, FormatError> {
        let results: BenchResults = serde_json::from_str(text)?;
        results.check().map_err(FormatError::Invalid)?;
        Ok(results)
    }

    fn check(&self) -> Result<(), String> {
        if self.rows.is_empty() {
            return Err("holds no benchmark row".to_owned());
        }
        for (i, row) in self.rows.iter().enumerate() {
            let n = i + 1;
            if row.threads <= 0 {
                return Err(format!(
                    "row {n} has threads {}; a thread count is positive",
                    row.threads
                ));
            }
            if row.batch <= 0 {
                return Err(format!(
                    "row {n} has batch {}; a batch size is positive",
                    row.batch
                ));
            }
            let ips = row.images_per_second;
            if !(ips.is_finite() && ips > 0.0) {
                let shown = if ips.is_nan() {
                    "null".to_owned()
                } else {
                    ips.to_string()
                };
                return Err(format!(
                    "row {n} has images_per_second {shown}; a throughput is a positive finite \
                     number"
                ));
            }
            let same = |r: &BenchRow| {
                (&r.variant, r.threads, r.batch) == (&row.variant, row.threads, row.batch)
            };
            if let Some(first) = self.rows[..i].iter().position(same) {
                return Err(format!(
                    "row {n} measures {} at {} threads and batch {} again (row {} did)",
                    row.variant,
                    row.threads,
                    row.batch,
                    first + 1
                ));
            }
        }
        Ok(())
    }
}
