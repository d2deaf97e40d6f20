//! `train { … }`: the training recipe, a named recipe (`recipe = hrankplus`) or the seed's, with
//! each setting written in the block laid over it; and [`check_recipe`], the ranges a recipe's
//! settings must keep, which the checker applies to a block and `vggdsl train` to its flags and
//! to a run's saved state.

use super::suggest::{found, with_suggestion};
use super::Checker;
use crate::ast::{Item, Number, Setting, Span, Spanned, TrainBlock, Value};
use crate::diagnostic::Diagnostic;
use crate::spec::{Recipe, Schedule, TRAIN_KEYS};

/// Bounds that keep a recipe meaningful: a run of at most a million epochs, batches up to 2^16.
pub const MAX_EPOCHS: i64 = 1_000_000;
pub const MAX_BATCH: i64 = 1 << 16;

/// A real-valued setting: its key, the values it takes, and how a message names them.
type Real = (&'static str, fn(f64) -> bool, &'static str);

/// The real-valued settings.
const REALS: [Real; 4] = [
    ("lr", |x| x > 0.0, "a positive number"),
    (
        "momentum",
        |x| (0.0..1.0).contains(&x),
        "a number in [0, 1)",
    ),
    ("weight_decay", |x| x >= 0.0, "a number ≥ 0"),
    ("gamma", |x| x > 0.0 && x <= 1.0, "a number in (0, 1]"),
];

/// How a message names the values real-valued setting `key` takes.
fn range_of(key: &str) -> &'static str {
    REALS
        .iter()
        .find(|(k, ..)| *k == key)
        .map_or("a number", |&(.., range)| range)
}

/// Where a recipe's milestones may fall.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Milestones {
    /// Within the run: a milestone written past the last epoch is a mistake.
    WithinRun,
    /// Past the last epoch too, where it never applies: `vggdsl train --epochs 10` keeps the
    /// seed's milestone 50.
    PastTheEnd,
}

/// A recipe setting outside what it takes; `Display` is the sentence `vggdsl train` shows.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RecipeError {
    #[error("{key} must be {range}, not {found}")]
    Range {
        key: &'static str,
        range: &'static str,
        found: String,
    },
    /// Milestone `index` is not above the one before it.
    #[error("milestones must increase, not {}", list(milestones))]
    Decreasing { index: usize, milestones: Vec<u32> },
    /// Milestone `index` is past the run's epochs.
    #[error("milestone {milestone} is past the run's {epochs} epochs")]
    PastTheEnd {
        index: usize,
        milestone: u32,
        epochs: u32,
    },
    #[error("Nesterov momentum needs a momentum above 0")]
    NesterovWithoutMomentum,
}

fn list(milestones: &[u32]) -> String {
    let items: Vec<String> = milestones.iter().map(u32::to_string).collect();
    items.join(",")
}

/// Checks `recipe` against the ranges docs/language.md gives the `train` block; the first setting
/// out of range, in the order the language lists them, is the error.
pub fn check_recipe(recipe: &Recipe, milestones: Milestones) -> Result<(), RecipeError> {
    let count = |key: &'static str, v: u32, max: i64, range: &'static str| {
        if (1..=max).contains(&i64::from(v)) {
            Ok(())
        } else {
            Err(RecipeError::Range {
                key,
                range,
                found: v.to_string(),
            })
        }
    };
    count("epochs", recipe.epochs, MAX_EPOCHS, "from 1 to 1,000,000")?;
    count(
        "batch_size",
        recipe.batch_size,
        MAX_BATCH,
        "from 1 to 65,536",
    )?;
    real("lr", recipe.lr)?;
    real("momentum", recipe.momentum)?;
    real("weight_decay", recipe.weight_decay)?;
    if let Schedule::MultiStep {
        milestones: steps,
        gamma,
    } = &recipe.schedule
    {
        for (index, &m) in steps.iter().enumerate() {
            count("milestones", m, MAX_EPOCHS, "from 1 to 1,000,000")?;
            if milestones == Milestones::WithinRun && m > recipe.epochs {
                return Err(RecipeError::PastTheEnd {
                    index,
                    milestone: m,
                    epochs: recipe.epochs,
                });
            }
            if index > 0 && m <= steps[index - 1] {
                return Err(RecipeError::Decreasing {
                    index,
                    milestones: steps.clone(),
                });
            }
        }
        real("gamma", *gamma)?;
    }
    if recipe.nesterov && recipe.momentum == 0.0 {
        return Err(RecipeError::NesterovWithoutMomentum);
    }
    Ok(())
}

/// A real-valued setting: finite, and within its range.
fn real(key: &'static str, x: f64) -> Result<(), RecipeError> {
    let &(key, ok, range) = REALS
        .iter()
        .find(|(k, ..)| *k == key)
        .expect("a real setting");
    if x.is_finite() && ok(x) {
        Ok(())
    } else {
        Err(RecipeError::Range {
            key,
            range,
            found: x.to_string(),
        })
    }
}

impl Checker {
    pub(super) fn recipe(&mut self, block: &TrainBlock) -> Option<Recipe> {
        let before = self.errors.len();
        let settings = self.train_settings(block);
        let get = |k: &str| settings.iter().find(|s| s.key.node == k).map(|s| &s.value);
        let mut recipe = match get("recipe") {
            None => Recipe::default(),
            Some(v) => self.named_recipe(v)?,
        };
        if let Some(v) = get("epochs") {
            recipe.epochs = self.count(v, "epochs", MAX_EPOCHS).map(|n| n as u32)?;
        }
        if let Some(v) = get("batch_size") {
            recipe.batch_size = self.count(v, "batch_size", MAX_BATCH).map(|n| n as u32)?;
        }
        if let Some(v) = get("lr") {
            recipe.lr = self.real(v, "lr")?;
        }
        if let Some(v) = get("momentum") {
            recipe.momentum = self.real(v, "momentum")?;
        }
        if let Some(v) = get("weight_decay") {
            recipe.weight_decay = self.real(v, "weight_decay")?;
        }
        if let Some(v) = get("nesterov") {
            recipe.nesterov = self.boolean("nesterov", v)?;
        }
        if let Some(v) = get("seed") {
            recipe.seed = self.count(v, "seed", i64::MAX).map(|n| n as u64)?;
        }
        let milestones = self.schedule(
            &mut recipe,
            get("schedule"),
            get("milestones"),
            get("gamma"),
        );
        if self.errors.len() > before {
            return None;
        }
        // A milestone written past the run is a mistake; the named recipe's own never apply then.
        let rule = match milestones {
            Some(_) => Milestones::WithinRun,
            None => Milestones::PastTheEnd,
        };
        let Err(error) = check_recipe(&recipe, rule) else {
            return Some(recipe);
        };
        let at = |key: &str| get(key).map_or(block.keyword.clone(), |v| v.span.clone());
        let milestone =
            |index: usize| milestones.as_ref().expect("written milestones")[index].clone();
        self.errors.push(match &error {
            RecipeError::Range { key, range, found } => {
                Diagnostic::new(at(key), format!("`{key}` takes {range}, found {found}"))
            }
            RecipeError::Decreasing { index, .. } => {
                Diagnostic::new(milestone(*index), "milestones must increase")
            }
            RecipeError::PastTheEnd { index, .. } => {
                Diagnostic::new(milestone(*index), error.to_string())
            }
            RecipeError::NesterovWithoutMomentum => {
                Diagnostic::new(at("nesterov"), error.to_string())
                    .with_help("set `momentum = 0.9`, or `nesterov = false`")
            }
        });
        None
    }

    /// The block's settings with known keys, each once; the others are errors.
    fn train_settings<'b>(&mut self, block: &'b TrainBlock) -> Vec<&'b Setting> {
        let mut settings: Vec<&Setting> = Vec::new();
        for s in &block.settings {
            let key = &s.key;
            if !TRAIN_KEYS.contains(&key.node.as_str()) {
                let d = Diagnostic::new(
                    key.span.clone(),
                    format!("unknown key `{}` in the train block", key.node),
                );
                self.errors
                    .push(with_suggestion(d, &key.node, &TRAIN_KEYS, "keys are"));
            } else if let Some(first) = settings.iter().find(|p| p.key.node == key.node) {
                self.errors.push(
                    Diagnostic::new(
                        key.span.clone(),
                        format!("`{}` is set twice in the train block", key.node),
                    )
                    .with_label(first.key.span.clone(), "first set here"),
                );
            } else {
                settings.push(s);
            }
        }
        settings
    }

    fn named_recipe(&mut self, v: &Spanned<Value>) -> Option<Recipe> {
        match &v.node {
            Value::Word(w) => Recipe::named(w).or_else(|| {
                let d = Diagnostic::new(v.span.clone(), format!("unknown recipe `{w}`"));
                self.errors
                    .push(with_suggestion(d, w, &Recipe::NAMES, "recipes are"));
                None
            }),
            other => {
                self.error(
                    v.span.clone(),
                    format!("`recipe` takes a name, found {}", found(other)),
                );
                None
            }
        }
    }

    /// `schedule = multistep | cosine`, with `milestones` and `gamma` for multistep (setting
    /// either without `schedule` means multistep). Returns the spans of the milestones written.
    fn schedule(
        &mut self,
        recipe: &mut Recipe,
        schedule: Option<&Spanned<Value>>,
        milestones: Option<&Spanned<Value>>,
        gamma: Option<&Spanned<Value>>,
    ) -> Option<Vec<Span>> {
        let cosine = match schedule.map(|v| &v.node) {
            None => matches!(recipe.schedule, Schedule::Cosine) && milestones.is_none(),
            Some(Value::Word(w)) if w == "cosine" => true,
            Some(Value::Word(w)) if w == "multistep" => false,
            Some(other) => {
                let at = schedule.expect("matched a value").span.clone();
                let d = Diagnostic::new(
                    at,
                    format!(
                        "`schedule` takes `multistep` or `cosine`, found {}",
                        found(other)
                    ),
                );
                self.errors.push(match other {
                    Value::Word(w) => {
                        with_suggestion(d, w, &["multistep", "cosine"], "choices are")
                    }
                    _ => d,
                });
                return None;
            }
        };
        if cosine {
            for v in [milestones, gamma].into_iter().flatten() {
                self.errors.push(
                    Diagnostic::new(
                        v.span.clone(),
                        "the cosine schedule takes no milestones or gamma",
                    )
                    .with_help("remove it, or set `schedule = multistep`"),
                );
            }
            recipe.schedule = Schedule::Cosine;
            return None;
        }
        let (mut steps, mut factor) = match &recipe.schedule {
            Schedule::MultiStep { milestones, gamma } => (milestones.clone(), *gamma),
            Schedule::Cosine => (Vec::new(), 0.1),
        };
        let mut spans = None;
        if let Some(v) = milestones {
            let written = self.milestones(v)?;
            steps = written.iter().map(|(m, _)| *m).collect();
            spans = Some(written.into_iter().map(|(_, span)| span).collect());
        }
        if let Some(v) = gamma {
            factor = self.real(v, "gamma")?;
        }
        recipe.schedule = Schedule::MultiStep {
            milestones: steps,
            gamma: factor,
        };
        spans
    }

    /// Epochs at which the rate drops, each with its span.
    fn milestones(&mut self, v: &Spanned<Value>) -> Option<Vec<(u32, Span)>> {
        let items = self.list(v, "milestones")?;
        let mut out = Vec::new();
        for item in &items {
            let Item::Number(n) = &item.node else {
                self.error(item.span.clone(), "milestones are epoch numbers");
                return None;
            };
            let m = self.bounded(n, &item.span, "a milestone", 1, MAX_EPOCHS)? as u32;
            out.push((m, item.span.clone()));
        }
        Some(out)
    }

    /// A whole number from 1 (0 for `seed`) to `max`.
    fn count(&mut self, v: &Spanned<Value>, key: &str, max: i64) -> Option<i64> {
        let min = if key == "seed" { 0 } else { 1 };
        match &v.node {
            Value::Number(n) => self.bounded(n, &v.span, key, min, max),
            other => {
                self.error(
                    v.span.clone(),
                    format!("`{key}` takes a number, found {}", found(other)),
                );
                None
            }
        }
    }

    /// A number, for real-valued setting `key` (its range is [`check_recipe`]'s).
    fn real(&mut self, v: &Spanned<Value>, key: &str) -> Option<f64> {
        match &v.node {
            Value::Number(Number::Float(x)) => Some(*x),
            Value::Number(Number::Int(t)) => Some(t.parse::<f64>().unwrap_or(f64::INFINITY)),
            other => {
                let range = range_of(key);
                self.error(
                    v.span.clone(),
                    format!("`{key}` takes {range}, found {}", found(other)),
                );
                None
            }
        }
    }
}
