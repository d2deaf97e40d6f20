//! `vggdsl eval FILE --weights W`: a model's accuracy, per-class accuracy and loss on the test set,
//! on the fused inference path (`to_inference()`).

use std::num::NonZeroUsize;
use std::sync::atomic::AtomicBool;

use serde::Serialize;
use vggdsl::check::MAX_BATCH;
use vggdsl_train::data::split::first;
use vggdsl_train::data::Split;
use vggdsl_train::error::torch_sentence;
use vggdsl_train::trainer::{self, EVAL_BATCH};

use super::setup::{Trained, TrainedArgs};
use crate::exit::FAILED;
use crate::failure::Failure;
use crate::{numbers, output};

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    trained: TrainedArgs,
    /// Images per forward pass.
    #[arg(
        long,
        value_name = "N",
        default_value_t = NonZeroUsize::new(EVAL_BATCH).expect("positive"),
        value_parser = numbers::count::<NonZeroUsize>(MAX_BATCH as usize),
        allow_negative_numbers = true
    )]
    batch_size: NonZeroUsize,
    /// Print one JSON object: accuracy (a fraction), loss, per_class.
    #[arg(long)]
    json: bool,
    /// Evaluate on only the first N test images (file order), as `train --limit-test` does.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    limit_test: Option<u64>,
}

#[derive(Serialize)]
struct Report {
    model: String,
    dataset: String,
    images: u64,
    accuracy: f64,
    loss: f64,
    per_class: Vec<Class>,
}

#[derive(Serialize)]
struct Class {
    class: String,
    /// `null` for a class without test images.
    accuracy: Option<f64>,
    correct: u64,
    images: u64,
}

pub fn run(args: Args) -> Result<(), Failure> {
    let Trained {
        model,
        net,
        data: test,
    } = args.trained.load(Split::Test)?;
    let test = match args.limit_test {
        Some(n) => first(&test, usize::try_from(n).unwrap_or(usize::MAX)),
        None => test,
    };
    let name = model.ir.spec.name.clone();
    // The fused inference path, as a deployed model runs: the same accuracy as the eager
    // forward pass, sooner.
    let evaluation = trainer::evaluate(
        &net.to_inference(),
        &test,
        args.batch_size,
        &AtomicBool::new(false),
        &mut |_, _| {},
    )
    .map_err(|e| {
        Failure::new(
            FAILED,
            format_args!("libtorch failed: {}", torch_sentence(&e)),
        )
    })?
    .expect("never stopped");
    let per_class = model
        .dataset
        .class_names()
        .into_iter()
        .enumerate()
        .map(|(i, class)| Class {
            class,
            accuracy: evaluation.class_accuracy(i),
            correct: evaluation.correct[i],
            images: evaluation.images[i],
        })
        .collect();
    let report = Report {
        model: name,
        dataset: model.dataset.name().into(),
        images: evaluation.images.iter().sum(),
        accuracy: evaluation.accuracy(),
        loss: evaluation.loss,
        per_class,
    };
    let text = if args.json {
        serde_json::to_string(&report).expect("a report serializes") + "\n"
    } else {
        table(&report)
    };
    output::stdout(text.as_bytes())
}

fn table(r: &Report) -> String {
    let correct: u64 = r.per_class.iter().map(|c| c.correct).sum();
    let mut out = format!(
        "{} on the {} test set ({} images)\naccuracy  {:.2}% ({correct}/{})\nloss      {:.4}\n\n",
        r.model,
        r.dataset,
        r.images,
        100.0 * r.accuracy,
        r.images,
        r.loss
    );
    let width = r
        .per_class
        .iter()
        .map(|c| c.class.len())
        .max()
        .unwrap_or(0)
        .max(5);
    out += &format!("{:<width$}  accuracy  correct/images\n", "class");
    for c in &r.per_class {
        let accuracy = c
            .accuracy
            .map_or("-".to_string(), |a| format!("{:.2}%", 100.0 * a));
        out += &format!(
            "{:<width$}  {accuracy:>8}  {}/{}\n",
            c.class, c.correct, c.images
        );
    }
    out
}
