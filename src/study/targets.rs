//! A study's budgets as the flags each prune takes: rates (given, or one rate for a share of the
//! MACs), or a target of `vggdsl prune` with each of its strategies, a sensitivity sweep first
//! for the sensitivity strategy; and a budget's one architecture, where it has one.

use std::path::Path;

use vggdsl::budget::{self, Resource};
use vggdsl::files::study::{Budget, StudyFile};
use vggdsl::rewrite::rate_list;
use vggdsl::{analysis, Architecture};

use super::plan::{text, Arg, Kind};
use super::{Layout, Method};
use crate::failure::Failure;

/// The rates every criterion of `budget` cuts to, with the `round_to` they go with: the rates
/// given; for `macs_removed`, one rate for every conv, the smallest multiple of 0.001 that
/// removes at least the share; for a MACs or parameter target, the uniform strategy's widths
/// (what the baselines train). `None` for a latency target, which the machine decides.
pub fn fixed_rates(model: &Architecture, budget: &Budget) -> Option<(String, Option<i64>)> {
    if let Some(rates) = &budget.compress_rate {
        return Some((rates.clone(), None));
    }
    if let Some(share) = budget.macs_removed {
        return Some((macs_removed(model, share), None));
    }
    let target = budget.target().expect("a checked budget has an amount");
    let round_to = budget.round_to.map(i64::from);
    let count = |w: &[i64]| {
        let (params, macs) = budget::figures(model, w);
        match target.resource {
            Resource::Params => params as f64,
            _ => macs as f64,
        }
    };
    if target.resource == Resource::Latency {
        return None;
    }
    let widths: Vec<i64> = model.convs().map(|(.., c)| c).collect();
    let step = round_to.unwrap_or(1);
    let limit = target.limit(count(&widths));
    // Unreachable: the prunes say so, one sentence each; the baselines train the narrowest.
    let keep = budget::uniform(&widths, step, &mut |w: &[i64]| count(w), limit).map_or_else(
        |_| widths.iter().map(|&c| c.min(step)).collect(),
        |(w, _)| w,
    );
    let rates = budget::rates_for(&widths, &keep, step);
    Some((rate_list(&rates), round_to))
}

/// One rate for every conv, the smallest multiple of 0.001 that removes at least `share` of the
/// MACs.
fn macs_removed(model: &Architecture, share: f64) -> String {
    let convs = model.convs().count();
    let base = analysis::summarize(model).macs as f64;
    let mut spec = model.spec.unpruned();
    for step in 1..1000 {
        let rate = f64::from(step) / 1000.0;
        spec.compress_rate = Some(vec![rate; convs]);
        let Ok(pruned) = vggdsl::ir::lower(&spec) else {
            break; // a conv would keep no filter
        };
        if 1.0 - analysis::summarize(&pruned).macs as f64 / base >= share {
            return format!("[{rate}] * {convs}");
        }
    }
    format!("[0.999] * {convs}")
}

/// The methods of `budget`: each criterion at its rates (`fixed`), or each criterion with each
/// strategy of its target.
pub fn methods<T>(
    f: &StudyFile,
    budget: &Budget,
    fixed: &Option<(T, super::Fixed)>,
) -> Vec<Method> {
    let Some(target) = budget.target() else {
        let rates = &fixed
            .as_ref()
            .expect("rates for a budget without a target")
            .1;
        return f
            .prune
            .criteria
            .iter()
            .map(|c| Method {
                by: c.clone(),
                label: c.clone(),
                flags: text(["--compress-rate", &rates.compress_rate]),
                sweep: false,
                chooses: false,
            })
            .collect();
    };
    let mut flags = text([
        format!("--target-{}", target.resource.name()),
        budget.target_text().to_owned(),
    ]);
    if let Some(n) = budget.round_to {
        flags.extend(text(["--round-to".to_owned(), n.to_string()]));
    }
    if target.resource == Resource::Latency {
        flags.extend(latency_flags(f));
    }
    let mut methods = Vec::new();
    for c in &f.prune.criteria {
        for strategy in budget.strategies() {
            let mut flags = flags.clone();
            flags.extend(text(["--strategy", &strategy]));
            methods.push(Method {
                by: c.clone(),
                label: format!("{c}-{strategy}"),
                flags,
                sweep: strategy == "sensitivity",
                chooses: true,
            });
        }
    }
    methods
}

/// `--latency-batch` and `--latency-threads` of the study's `[latency]`.
fn latency_flags(f: &StudyFile) -> Vec<Arg> {
    text([
        "--latency-batch".to_owned(),
        f.latency.batch.to_string(),
        "--latency-threads".into(),
        f.latency.threads.to_string(),
    ])
}

impl Layout<'_> {
    /// The sensitivity sweep of the base by `criterion` (once per criterion, in
    /// `sensitivity/CRITERION`): its step and its file.
    pub(super) fn sensitivity(
        &mut self,
        criterion: &str,
        weights: &Arg,
        needs: Vec<usize>,
    ) -> (usize, String) {
        let id = format!("sensitivity/{criterion}");
        let dir = self.path(&id);
        if let Some(i) = self.plan.steps.iter().position(|s| s.id == id) {
            return (i, format!("{dir}/sensitivity.json"));
        }
        let mut a = text([
            "sensitivity",
            &self.model_path,
            "--by",
            criterion,
            "--out",
            &dir,
            "--weights",
        ]);
        a.push(weights.clone());
        if criterion == "rank" {
            a.extend(text(["--ranks".to_owned(), self.path("ranks/ranks.json")]));
        }
        a.extend(self.common.reading());
        a.extend(super::prune_batches(self.f));
        a.extend(latency_flags(self.f));
        let step = self.plan.add(id, Kind::Sensitivity, a, needs);
        (step, format!("{dir}/sensitivity.json"))
    }
}

/// The pruned architecture of a budget as its own `.vgg` file (what the scratch baselines
/// train, and `latency` times), written only if it changed.
pub fn write_architecture(
    source: &str,
    model: &Architecture,
    rates: &str,
    round_to: Option<i64>,
    path: &Path,
) -> Result<Architecture, Failure> {
    let name = &model.spec.name;
    let comment = format!("{name} at the rates {rates}, written by `vggdsl study`.");
    let source = match round_to {
        Some(n) => vggdsl::rewrite::with_round_to(source, name, n),
        None => Some(source.to_owned()),
    }
    .expect("the source parsed and has the model");
    let (text, _) = vggdsl::rewrite::with_compress_rate(&source, name, rates, &comment)
        .expect("the source parsed and has the model");
    let nets =
        vggdsl::load(&text, &path.display().to_string()).map_err(|d| Failure::invalid(&d))?;
    let dir = path.parent().expect("a folder");
    std::fs::create_dir_all(dir).map_err(|e| Failure::write(dir.display(), e))?;
    if std::fs::read_to_string(path).ok().as_deref() != Some(text.as_str()) {
        vggdsl::atomic::write(path, text.as_bytes())
            .map_err(|e| Failure::write(path.display(), e))?;
    }
    Ok(nets.into_iter().next().expect("one model"))
}
