//! A budget reached in K prune/fine-tune rounds (`prune.steps`): round k prunes round k − 1's
//! fine-tuned model, so that after K rounds every conv has the budget's width.
//!
//! The widths of round k are the geometric path from the base's width c to the budget's f,
//! `round(c · (f/c)^(k/K))` (never below f, never above the round before), so each round removes
//! about the same share: for a uniform rate r, a rate r_k with (1 − r_k)^K = 1 − r, up to whole
//! filters; the last round lands on f exactly. Each round is fine-tuned by the whole fine-tuning
//! recipe: iterative pruning fine-tunes after every cut (a one-epoch recipe could not be split
//! anyway), and the row counts the K fine-tunings' epochs, so its cost shows.

use std::path::Path;

use vggdsl::budget::rates_for;
use vggdsl::rewrite::{cfg_with_widths, rate_list, with_cfg};
use vggdsl::Architecture;

use super::plan::Arg;
use super::targets::write_architecture;
use super::{BaseRefs, Cut, Layout, Method, MethodRow};
use crate::exit::FAILED;
use crate::failure::Failure;

/// The model files the K rounds prune, written as `DIR/roundK.vgg`: round k's is the base model
/// declared at round k − 1's widths (its cfg), with round k's rates as its `compress_rate` and
/// `round_to = 1` (the budget's `round_to` in the last round). `to` is the base model, the
/// budget's architecture and its `round_to`.
pub fn models(
    source: &str,
    to: (&Architecture, &Architecture, Option<i64>),
    steps: u32,
    dir: &Path,
) -> Result<Vec<String>, Failure> {
    let (model, budget, round_to) = to;
    let name = &model.spec.name;
    let first: Vec<i64> = model.convs().map(|(.., c)| c).collect();
    let last: Vec<i64> = budget.convs().map(|(.., c)| c).collect();
    let mut widths = first.clone();
    let mut files = Vec::new();
    for k in 1..=steps {
        let share = f64::from(k) / f64::from(steps);
        let next: Vec<i64> = first
            .iter()
            .zip(&last)
            .zip(&widths)
            .map(|((&c, &f), &before)| {
                let w = (c as f64 * (f as f64 / c as f64).powf(share)).round() as i64;
                if k == steps {
                    f
                } else {
                    w.clamp(f, before)
                }
            })
            .collect();
        let rounding = match k == steps {
            true => round_to.unwrap_or(model.spec.round_to()),
            false => 1,
        };
        let rates = rate_list(&rates_for(&widths, &next, rounding));
        let declared = match k {
            1 => source.to_owned(),
            _ => with_cfg(source, name, &cfg_with_widths(model, &widths))
                .expect("the source parsed and has the model"),
        };
        let path = dir.join(format!("round{k}.vgg"));
        let cut = write_architecture(&declared, model, &rates, Some(rounding), &path)?;
        let got: Vec<i64> = cut.convs().map(|(.., c)| c).collect();
        if got != next {
            return Err(Failure::new(
                FAILED,
                format_args!(
                    "{}: round {k} keeps widths {got:?}, not {next:?}; give fewer `prune.steps`",
                    path.display()
                ),
            ));
        }
        files.push(path.display().to_string());
        widths = next;
    }
    Ok(files)
}

impl Layout<'_> {
    /// One method at one budget in rounds: round 1 prunes the base (once, or per seed for a
    /// choice that depends on it), round k > 1 each seed's fine-tuned model of round k − 1 (with
    /// its own ranks for `rank`), each round fine-tuned per seed. The row is the last round's
    /// surgery and fine-tuning.
    pub(super) fn rounds(
        &mut self,
        base: &BaseRefs,
        budget: &str,
        method: &Method,
        models: &[String],
    ) -> Vec<MethodRow> {
        let criterion = method.by.as_str();
        let folder = format!("{budget}/{}-x{}", method.label, models.len());
        let (base_weights, base_needs) = self.pruned_weights(base, criterion);
        let f = self.f;
        let per_seed = criterion == "random" || f.prune.copy.as_deref() == Some("conv-only");
        let mut shared: Option<(usize, usize, String)> = None;
        let mut rows = Vec::new();
        for &seed in &f.seeds {
            let (mut weights, mut needs) = (base_weights.clone(), base_needs.clone());
            let mut ranks = self.path("ranks/ranks.json");
            let mut last = (0, 0);
            for (k, model) in models.iter().enumerate().map(|(k, m)| (k + 1, m)) {
                let here = match k == 1 && !per_seed {
                    true => format!("{folder}/round1"),
                    false => format!("{folder}/s{seed}/round{k}"),
                };
                let (prune, surgery, dir) = match (&shared, k == 1 && !per_seed) {
                    (Some(steps), true) => steps.clone(),
                    _ => {
                        let cut = Cut {
                            folder: &here,
                            model,
                            criterion,
                            flags: &[],
                            seed,
                            weights: &weights,
                            ranks: ranks.clone(),
                        };
                        let steps = self.cut(&cut, needs.clone());
                        if k == 1 && !per_seed {
                            shared = Some(steps.clone());
                        }
                        steps
                    }
                };
                let id = format!("{folder}/s{seed}/round{k}/finetune");
                let train = self.finetune(id.clone(), &dir, seed, prune);
                weights = Arg::Weights(self.out.join(&id));
                needs = vec![train];
                if criterion == "rank" && k < models.len() {
                    // The next round ranks this round's fine-tuned model.
                    let rank_id = format!("{folder}/s{seed}/round{}/ranks", k + 1);
                    let pruned = format!("{dir}/model.vgg");
                    needs.push(self.rank(&rank_id, &pruned, &weights, vec![train]));
                    ranks = format!("{}/ranks.json", self.path(&rank_id));
                }
                last = (surgery, train);
            }
            rows.push(MethodRow {
                seed,
                surgery: last.0,
                train: last.1,
                pruned: None,
            });
        }
        rows
    }
}
