//! Pruning to a budget: the widths chosen by a strategy ([`vggdsl::budget`]) for a target of
//! MACs, parameters or latency, then the cut [`crate::prune`] makes for given rates. What
//! `vggdsl prune --target-… --strategy …` runs.
//!
//! MACs and parameters are counted from the widths exactly. Latency is predicted from the
//! [`LatencyTable`]'s blocks plus the rest of a pass ([`LatencyModel`]) while the strategy
//! searches; the widths it chooses are then timed whole, the prediction corrected by what that
//! measured, and the search run again until it chooses widths already timed (at most
//! [`LATENCY_ROUNDS`] networks timed): of those timed, the slowest that meets the target is
//! kept, or, if none does, the fastest.

use vggdsl::budget::{self, Normalise, Point, Resource, Target, Unreachable};
use vggdsl::files::sensitivity::SensitivityFile;
use vggdsl::rewrite::rate_list;

use crate::hrank;
use crate::latency::{At, LatencyModel, LatencyTable};
use crate::prune::{self, Loaded, PruneError, Pruned, Request};

/// How many networks a latency target times whole, at most.
pub const LATENCY_ROUNDS: usize = 3;

/// How the widths are chosen.
#[derive(Debug, Clone, Copy)]
pub enum Strategy<'a> {
    /// One rate for every conv.
    Uniform,
    /// Where accuracy drops least, from a sweep of `vggdsl sensitivity` with the same criterion.
    Sensitivity(&'a SensitivityFile),
    /// Every conv's filters in one ranking, scores normalised per conv.
    Global(Normalise),
}

impl Strategy<'_> {
    pub fn name(&self) -> &'static str {
        match self {
            Strategy::Uniform => "uniform",
            Strategy::Sensitivity(_) => "sensitivity",
            Strategy::Global(_) => "global",
        }
    }
}

/// A target and how to meet it; `latency` says where a latency target is measured.
pub struct Budget<'a> {
    pub target: Target,
    pub strategy: Strategy<'a>,
    pub latency: Option<(At, &'a mut LatencyTable)>,
}

/// What a budget asked for and what the pruned model reached.
#[derive(Debug, Clone, PartialEq)]
pub struct Reached {
    pub target: Target,
    /// The unpruned model's figure, the most the target allows, and the pruned model's (for
    /// latency: measured, each a median of timed passes).
    pub unpruned: f64,
    pub limit: f64,
    pub reached: f64,
    /// For latency: what the table predicted for the pruned model, and how many networks were
    /// timed whole.
    pub predicted: Option<f64>,
    pub timed: usize,
}

impl Reached {
    /// Whether the pruned model meets the target.
    pub fn met(&self) -> bool {
        self.reached <= self.limit
    }
}

/// Why a budget cannot be met or read, besides what [`PruneError`] says.
#[derive(Debug, thiserror::Error)]
pub enum BudgetError {
    #[error(transparent)]
    Prune(#[from] PruneError),
    #[error("the target {target} cannot be met: {source}")]
    Unreachable { target: Target, source: Unreachable },
    #[error("the global strategy ranks scores, and {0} gives none")]
    NoScores(String),
    #[error("the sensitivity file does not fit: {0}")]
    Sensitivity(String),
}

/// Prunes `request.model` to `budget` (the request's rates, if any, are not used).
pub fn prune_to(request: &Request, budget: Budget) -> Result<(Pruned, Reached), BudgetError> {
    let strategy = budget.strategy.name();
    prune::load(request, |full| {
        let (keep, reached) = choose(request, &full, budget)?;
        let rates = budget::rates_for(&full.widths(), &keep, prune::round_to(request));
        let how = format!(
            "widths chosen by the {strategy} strategy for {}",
            reached.target
        );
        let pruned = prune::finish(request, &full, &keep, rate_list(&rates), &how);
        Ok((pruned, reached))
    })
}

/// The widths `budget` chooses for `full`, and what they reach.
fn choose(
    request: &Request,
    full: &Loaded,
    budget: Budget,
) -> Result<(Vec<i64>, Reached), BudgetError> {
    let widths = full.widths();
    let round_to = prune::round_to(request);
    let Budget {
        target,
        strategy,
        latency,
    } = budget;
    let scores = match strategy {
        Strategy::Global(_) => Some(
            hrank::scores(full.net, full.criterion)
                .ok_or_else(|| BudgetError::NoScores(full.text.to_owned()))?,
        ),
        _ => None,
    };
    let curves = match strategy {
        Strategy::Sensitivity(file) => Some(curves(file, full, request.by.name())?),
        _ => None,
    };
    // A limit the unpruned network already meets keeps every filter, whatever the strategy (and
    // however a noisy timing ranks the narrower networks).
    let search = |cost: &mut budget::Cost, limit: f64| match strategy {
        _ if cost(&widths) <= limit => Ok(widths.clone()),
        Strategy::Uniform => budget::uniform(&widths, round_to, cost, limit).map(|(w, _)| w),
        Strategy::Sensitivity(_) => {
            let curves = curves.as_deref().expect("read for the strategy");
            budget::sensitivity(&widths, curves, round_to, cost, limit)
        }
        Strategy::Global(how) => {
            let scores = scores.as_deref().expect("computed for the strategy");
            budget::global(scores, how, round_to, cost, limit)
        }
    };
    let unreachable = |source| BudgetError::Unreachable { target, source };
    let count = |w: &[i64]| {
        let (params, macs) = budget::figures(full.ir, w);
        match target.resource {
            Resource::Params => params as f64,
            _ => macs as f64,
        }
    };
    if target.resource != Resource::Latency {
        let unpruned = count(&widths);
        let limit = target.limit(unpruned);
        let keep = search(&mut |w: &[i64]| count(w), limit).map_err(unreachable)?;
        let reached = Reached {
            target,
            unpruned,
            limit,
            reached: count(&keep),
            predicted: None,
            timed: 0,
        };
        return Ok((keep, reached));
    }
    let (at, table) = latency.expect("a latency target says where it is measured");
    timed(search, LatencyModel::new(table, full.ir, at), target).map_err(unreachable)
}

/// A latency target's widths: those `search` chooses on predicted latencies, timed whole and the
/// prediction corrected, until it chooses widths already timed or [`LATENCY_ROUNDS`] networks
/// are; of those timed, the slowest that meets the target, or else the fastest.
fn timed(
    search: impl Fn(&mut budget::Cost, f64) -> Result<Vec<i64>, Unreachable>,
    mut model: LatencyModel,
    target: Target,
) -> Result<(Vec<i64>, Reached), Unreachable> {
    let unpruned = model.unpruned();
    let limit = target.limit(unpruned);
    // (widths, measured, predicted) of each network timed whole.
    let mut timed: Vec<(Vec<i64>, f64, f64)> = Vec::new();
    while timed.len() < LATENCY_ROUNDS {
        let keep = search(&mut |w: &[i64]| model.predict(w), limit)?;
        if timed.iter().any(|(w, ..)| *w == keep) {
            break;
        }
        let predicted = model.predict(&keep);
        let measured = model.measure(&keep);
        timed.push((keep, measured, predicted));
    }
    let meets = timed.iter().filter(|t| t.1 <= limit);
    let best = meets
        .max_by(|a, b| a.1.total_cmp(&b.1))
        .or_else(|| timed.iter().min_by(|a, b| a.1.total_cmp(&b.1)))
        .expect("one network timed")
        .clone();
    let reached = Reached {
        target,
        unpruned,
        limit,
        reached: best.1,
        predicted: Some(best.2),
        timed: timed.len(),
    };
    Ok((best.0, reached))
}

/// Each conv's measured points from a sweep of the same model with the same criterion, as
/// accuracy drops from the unpruned model's.
fn curves(file: &SensitivityFile, full: &Loaded, by: &str) -> Result<Vec<Vec<Point>>, BudgetError> {
    let misfit = |why: String| Err(BudgetError::Sensitivity(why));
    if file.by != by {
        return misfit(format!(
            "it measured filters chosen by {}, and this pruning chooses them by {by}",
            file.by
        ));
    }
    let convs: Vec<(&str, i64)> = full.ir.convs().map(|(_, n, c)| (n, c)).collect();
    let swept: Vec<(&str, i64)> = file
        .convs
        .iter()
        .map(|c| (c.name.as_str(), c.width))
        .collect();
    if swept != convs {
        return misfit(format!(
            "it sweeps model {} with convs {swept:?}, and this model's are {convs:?}",
            file.model
        ));
    }
    Ok(file
        .convs
        .iter()
        .map(|conv| {
            conv.points
                .iter()
                .map(|p| Point {
                    width: p.filters,
                    drop: file.unpruned.accuracy - p.accuracy,
                })
                .collect()
        })
        .collect())
}
