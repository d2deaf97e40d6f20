//! A finished study's results: read from its steps' folders, written as `results.json` and the
//! Markdown table made from it (`results.md`), both whole.

use std::path::Path;

use serde_json::Value;
use vggdsl::analysis;
use vggdsl::files::metrics::EpochMetrics;
use vggdsl::files::results::{BaseResult, LatencySetting, Row, StudyResults};
use vggdsl::files::run::METRICS;
use vggdsl_train::checkpoint::RunDir;

use super::run::Done;
use super::Study;
use crate::exit::FAILED;
use crate::failure::Failure;
use crate::staged::Staged;

/// The files a study writes beside its steps' folders.
pub const RESULTS: &str = "results.json";
pub const TABLE: &str = "results.md";

/// The study's results from its finished steps.
pub fn collect(study: &Study, done: &[Done]) -> Result<StudyResults, Failure> {
    let folder = |i: usize| study.out.join(&study.plan.steps[i].id);
    let number = |i: usize, key: &str| -> Result<f64, Failure> {
        let value: Value = serde_json::from_str(&done[i].stdout).map_err(|e| {
            Failure::new(
                FAILED,
                format_args!("{} printed no JSON: {e}", study.plan.steps[i].id),
            )
        })?;
        value[key].as_f64().ok_or_else(|| {
            Failure::new(
                FAILED,
                format_args!("{} printed no `{key}`", study.plan.steps[i].id),
            )
        })
    };
    let accuracy = |i: usize| match study.plan.steps[i].kind {
        super::plan::Kind::Train => run_accuracy(&folder(i)).map(|(a, _)| a),
        _ => number(i, "accuracy"),
    };
    let summary = analysis::summarize(&study.model);
    let base = BaseResult {
        params: summary.params,
        macs: summary.macs,
        accuracy: accuracy(study.base.accuracy)?,
        latency_ms: number(study.base.latency, "median_ms")?,
    };
    let mut rows = Vec::new();
    for r in &study.rows {
        let budget = &study.budgets[r.budget];
        let (compress_rate, architecture, latency) = match (&r.pruned, &budget.fixed) {
            (Some(pruned), _) => {
                let (rates, architecture) = pruned_model(&pruned.folder)?;
                (rates, architecture, pruned.latency)
            }
            (None, Some(fixed)) => (
                fixed.compress_rate.clone(),
                fixed.architecture.clone(),
                fixed.latency,
            ),
            (None, None) => unreachable!("a row without its own prune has its budget's rates"),
        };
        let figures = analysis::summarize(&architecture);
        let (accuracy, epochs) = run_accuracy(&folder(r.train))?;
        rows.push(Row {
            budget: budget.name.clone(),
            compress_rate,
            method: r.method.clone(),
            seed: r.seed,
            params: figures.params,
            macs: figures.macs,
            latency_ms: number(latency, "median_ms")?,
            epochs: epochs * r.rounds,
            accuracy_after_surgery: r.surgery.map(|i| number(i, "accuracy")).transpose()?,
            accuracy,
        });
    }
    let latency = study.file.latency;
    Ok(StudyResults {
        study: study.name.clone(),
        model: study.model.spec.name.clone(),
        convention: analysis::CONVENTION.to_owned(),
        latency: LatencySetting {
            batch: latency.batch,
            threads: latency.threads,
        },
        base,
        rows,
    })
}

/// The model a prune wrote in `dir`, and its `compress_rate` as written.
fn pruned_model(dir: &Path) -> Result<(String, vggdsl::Architecture), Failure> {
    let path = dir.join(vggdsl_train::prune::MODEL_FILE);
    let text = std::fs::read_to_string(&path)
        .map_err(|e| Failure::new(FAILED, format_args!("cannot read {}: {e}", path.display())))?;
    let nets =
        vggdsl::load(&text, &path.display().to_string()).map_err(|d| Failure::invalid(&d))?;
    let model = nets
        .into_iter()
        .next()
        .expect("a pruned file has its model");
    let rates = vggdsl::rewrite::compress_rate(&text, &model.spec.name)
        .unwrap_or_default()
        .to_owned();
    Ok((rates, model))
}

/// A finished training run's test accuracy, of the epoch `best.safetensors` holds (chosen on the
/// validation images), else of its last epoch; and its epochs.
fn run_accuracy(dir: &Path) -> Result<(f64, u32), Failure> {
    let state = RunDir::new(dir)
        .state()
        .map_err(|e| Failure::new(FAILED, e))?
        .ok_or_else(|| Failure::new(FAILED, format_args!("{} holds no run", dir.display())))?;
    let epochs = state.recipe.epochs;
    if let Some(best) = state.best {
        return Ok((best.test_accuracy, epochs));
    }
    let path = dir.join(METRICS);
    let text = std::fs::read_to_string(&path)
        .map_err(|e| Failure::new(FAILED, format_args!("cannot read {}: {e}", path.display())))?;
    let last = text
        .lines()
        .rfind(|l| !l.trim().is_empty())
        .unwrap_or_default();
    let metrics = EpochMetrics::from_line(last)
        .map_err(|e| Failure::new(FAILED, format_args!("{}: {e}", path.display())))?;
    Ok((metrics.test_accuracy, epochs))
}

/// `results.json` and `results.md` in the study's folder, both or neither.
pub fn write(out: &Path, results: &StudyResults) -> Result<(), Failure> {
    let mut staged = Staged::new(out)?;
    staged.write(RESULTS, results.to_json().as_bytes())?;
    staged.write(TABLE, results.table().as_bytes())?;
    staged.commit()
}
