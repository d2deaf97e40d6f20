//! A study's results (docs/language.md, "Study results files"): `vggdsl study` writes
//! `results.json` and the Markdown table made from it ([`StudyResults::table`]), `vggdsl plot
//! study` reads it.
//!
//! ```json
//! {"study": "fashion_tiny", "model": "FashionTiny", "convention": "MACs: …",
//!  "latency": {"batch": 1, "threads": 1},
//!  "base": {"params": 34282, "macs": 978688, "accuracy": 0.8531, "latency_ms": 0.41},
//!  "rows": [{"budget": "macs-50%", "compress_rate": "[0.293] * 4", "method": "rank", "seed": 0,
//!            "params": 17730, "macs": 489210, "latency_ms": 0.27, "epochs": 3,
//!            "accuracy_after_surgery": 0.4811, "accuracy": 0.8402}, …]}
//! ```
//!
//! Accuracies are test-set fractions; `accuracy` is after fine-tuning (a scratch baseline's after
//! its training), `accuracy_after_surgery` absent for the baselines.

use serde::{Deserialize, Serialize};

use super::FormatError;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StudyResults {
    pub study: String,
    pub model: String,
    /// How params and MACs are counted.
    pub convention: String,
    pub latency: LatencySetting,
    pub base: BaseResult,
    pub rows: Vec<Row>,
}

/// The batch and threads the latencies were measured at.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LatencySetting {
    pub batch: u32,
    pub threads: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BaseResult {
    pub params: u64,
    pub macs: u64,
    pub accuracy: f64,
    pub latency_ms: f64,
}

/// One run: a method at a budget with a seed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Row {
    pub budget: String,
    pub compress_rate: String,
    /// A criterion of `vggdsl prune --by`, or `scratch-e` / `scratch-b`.
    pub method: String,
    pub seed: u64,
    pub params: u64,
    pub macs: u64,
    pub latency_ms: f64,
    /// Epochs of fine-tuning, or of training from scratch.
    pub epochs: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accuracy_after_surgery: Option<f64>,
    pub accuracy: f64,
}

/// The runs of one method at one budget, over the seeds.
#[derive(Debug, Clone, PartialEq)]
pub struct Group<'a> {
    pub budget: &'a str,
    pub method: &'a str,
    pub rows: Vec<&'a Row>,
}

/// Mean and sample standard deviation (n − 1; 0 for one value).
pub fn mean_std(values: &[f64]) -> (f64, f64) {
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    if values.len() < 2 {
        return (mean, 0.0);
    }
    let var = values.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / (n - 1.0);
    (mean, var.sqrt())
}

impl Group<'_> {
    pub fn accuracy(&self) -> (f64, f64) {
        mean_std(&self.rows.iter().map(|r| r.accuracy).collect::<Vec<_>>())
    }

    pub fn accuracy_after_surgery(&self) -> Option<(f64, f64)> {
        let values: Option<Vec<f64>> = self.rows.iter().map(|r| r.accuracy_after_surgery).collect();
        values.map(|v| mean_std(&v))
    }

    pub fn latency_ms(&self) -> (f64, f64) {
        mean_std(&self.rows.iter().map(|r| r.latency_ms).collect::<Vec<_>>())
    }
}

impl StudyResults {
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("results serialize") + "\n"
    }

    /// Reads a results file's text: at least one row, accuracies between 0 and 1.
    pub fn from_json(text: &str) -> Result<StudyResults, FormatError> {
        let results: StudyResults = serde_json::from_str(text)?;
        if results.rows.is_empty() {
            return Err(FormatError::Invalid("holds no row".into()));
        }
        for (i, r) in results.rows.iter().enumerate() {
            let accuracies = std::iter::once(r.accuracy).chain(r.accuracy_after_surgery);
            if accuracies.into_iter().any(|a| !(0.0..=1.0).contains(&a)) {
                return Err(FormatError::Invalid(format!(
                    "row {} has an accuracy outside 0 to 1",
                    i + 1
                )));
            }
        }
        Ok(results)
    }

    /// The rows by budget and method, in the order each first appears.
    pub fn groups(&self) -> Vec<Group<'_>> {
        let mut groups: Vec<Group> = Vec::new();
        for row in &self.rows {
            match groups
                .iter_mut()
                .find(|g| (g.budget, g.method) == (row.budget.as_str(), row.method.as_str()))
            {
                Some(g) => g.rows.push(row),
                None => groups.push(Group {
                    budget: &row.budget,
                    method: &row.method,
                    rows: vec![row],
                }),
            }
        }
        groups
    }

    /// The Markdown table: per budget and method, mean ± std over the seeds of the test accuracy
    /// after surgery and after fine-tuning, params, MACs and latency; the base first.
    pub fn table(&self) -> String {
        let pct = |(m, s): (f64, f64)| format!("{:.2} ± {:.2}", 100.0 * m, 100.0 * s);
        let removed =
            |now: u64, before: u64| 100.0 * (before as f64 - now as f64) / (before as f64).max(1.0);
        let mut out = format!(
            "| budget | method | seeds | params | MACs (removed) | latency, ms | test acc. after \
             surgery, % | test acc. after fine-tuning, % |\n|---|---|---:|---:|---:|---:|---:|---:|\n\
             | — | base | — | {} | {} | {:.3} | — | {:.2} |\n",
            self.base.params,
            self.base.macs,
            self.base.latency_ms,
            100.0 * self.base.accuracy
        );
        for g in self.groups() {
            let first = g.rows[0];
            let (latency, _) = g.latency_ms();
            out += &format!(
                "| {} | {} | {} | {} | {} ({:.1}%) | {latency:.3} | {} | {} |\n",
                g.budget,
                g.method,
                g.rows.len(),
                first.params,
                first.macs,
                removed(first.macs, self.base.macs),
                g.accuracy_after_surgery().map_or("—".to_owned(), pct),
                pct(g.accuracy()),
            );
        }
        out + &format!(
            "\n{} runs; mean ± sample standard deviation over the seeds; latency of \
             `to_inference()` at batch {} and {} thread{}, median; {}.\n",
            self.rows.len(),
            self.latency.batch,
            self.latency.threads,
            if self.latency.threads == 1 { "" } else { "s" },
            self.convention
        )
    }
}
