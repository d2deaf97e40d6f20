//! `train { … }`: the training recipe, a named recipe (`recipe = hrankplus`) or the seed's, with
//! each setting written in the block laid over it.

use super::suggest::{found, with_suggestion};
use super::Checker;
use crate::ast::{Item, Number, Setting, Spanned, TrainBlock, Value};
use crate::diagnostic::Diagnostic;
use crate::spec::{Recipe, Schedule, TRAIN_KEYS};

/// Bounds that keep a recipe meaningful: a run of at most a million epochs, batches up to 2^16.
const MAX_EPOCHS: i64 = 1_000_000;
const MAX_BATCH: i64 = 1 << 16;

impl Checker {
    pub(super) fn recipe(&mut self, block: &TrainBlock) -> Option<Recipe> {
        let before = self.errors.len();
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
            recipe.lr = self.real(v, "lr", |x| x > 0.0, "a positive number")?;
        }
        if let Some(v) = get("momentum") {
            let ok = |x: f64| (0.0..1.0).contains(&x);
            recipe.momentum = self.real(v, "momentum", ok, "a number in [0, 1)")?;
        }
        if let Some(v) = get("weight_decay") {
            let ok = |x: f64| x >= 0.0;
            recipe.weight_decay = self.real(v, "weight_decay", ok, "a number ≥ 0")?;
        }
        if let Some(v) = get("nesterov") {
            recipe.nesterov = self.boolean("nesterov", v)?;
        }
        if let Some(v) = get("seed") {
            recipe.seed = self.count(v, "seed", i64::MAX).map(|n| n as u64)?;
        }
        self.schedule(
            &mut recipe,
            get("schedule"),
            get("milestones"),
            get("gamma"),
        );
        if recipe.nesterov && recipe.momentum == 0.0 {
            let at = get("nesterov").map_or(block.keyword.clone(), |v| v.span.clone());
            self.errors.push(
                Diagnostic::new(at, "Nesterov momentum needs a momentum above 0")
                    .with_help("set `momentum = 0.9`, or `nesterov = false`"),
            );
        }
        (self.errors.len() == before).then_some(recipe)
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
    /// either without `schedule` means multistep).
    fn schedule(
        &mut self,
        recipe: &mut Recipe,
        schedule: Option<&Spanned<Value>>,
        milestones: Option<&Spanned<Value>>,
        gamma: Option<&Spanned<Value>>,
    ) {
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
                return;
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
            return;
        }
        let (mut steps, mut factor) = match &recipe.schedule {
            Schedule::MultiStep { milestones, gamma } => (milestones.clone(), *gamma),
            Schedule::Cosine => (Vec::new(), 0.1),
        };
        if let Some(v) = milestones {
            match self.milestones(v, recipe.epochs) {
                Some(m) => steps = m,
                None => return,
            }
        }
        if let Some(v) = gamma {
            let ok = |x: f64| x > 0.0 && x <= 1.0;
            match self.real(v, "gamma", ok, "a number in (0, 1]") {
                Some(g) => factor = g,
                None => return,
            }
        }
        recipe.schedule = Schedule::MultiStep {
            milestones: steps,
            gamma: factor,
        };
    }

    /// Epochs at which the rate drops: increasing, each within the run.
    fn milestones(&mut self, v: &Spanned<Value>, epochs: u32) -> Option<Vec<u32>> {
        let items = self.list(v, "milestones")?;
        let mut out: Vec<u32> = Vec::new();
        for item in &items {
            let Item::Number(n) = &item.node else {
                self.error(item.span.clone(), "milestones are epoch numbers");
                return None;
            };
            let m = self.bounded(n, &item.span, "a milestone", 1, MAX_EPOCHS)? as u32;
            if m > epochs {
                self.error(
                    item.span.clone(),
                    format!("milestone {m} is past the run's {epochs} epochs"),
                );
                return None;
            }
            if out.last().is_some_and(|&last| m <= last) {
                self.error(item.span.clone(), "milestones must increase");
                return None;
            }
            out.push(m);
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

    /// A finite number that `ok` accepts (`what` names the range in the message).
    fn real(
        &mut self,
        v: &Spanned<Value>,
        key: &str,
        ok: impl Fn(f64) -> bool,
        what: &str,
    ) -> Option<f64> {
        let x = match &v.node {
            Value::Number(Number::Float(x)) => *x,
            Value::Number(Number::Int(t)) => t.parse::<f64>().unwrap_or(f64::INFINITY),
            other => {
                self.error(
                    v.span.clone(),
                    format!("`{key}` takes {what}, found {}", found(other)),
                );
                return None;
            }
        };
        if x.is_finite() && ok(x) {
            Some(x)
        } else {
            self.error(v.span.clone(), format!("`{key}` takes {what}, found {x}"));
            None
        }
    }
}
