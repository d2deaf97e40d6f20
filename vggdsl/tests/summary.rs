//! Snapshots of the summary table (`vggdsl summary`), reviewed by hand: layer names, shapes,
//! per-layer parameters and MACs, totals, HRank's relu_cfg / conv_cfg.
//!
//! The HRank example's table, with the pruning figures, is the README recipe's snapshot,
//! `tests/architecture.rs` in the root package (`tests/snapshots/architecture__Vgg16BnHrank.snap`),
//! not taken twice.

mod common;

use common::read;
use vggdsl::analysis::summarize;

/// The tables of every model in `src`.
fn tables(src: &str) -> String {
    let nets = vggdsl::load(src, "test.vgg").unwrap_or_else(|d| panic!("{}", d.render(false)));
    nets.iter()
        .map(|n| summarize(n).table())
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn seed() {
    insta::assert_snapshot!(tables(&read("examples/vgg16_bn.vgg")));
}

#[test]
fn without_bn() {
    insta::assert_snapshot!(tables("pub model Vgg16NoBn { cfg = vgg16  bn = false }"));
}

#[test]
fn vgg19() {
    insta::assert_snapshot!(tables("pub Vgg19<cfg = vgg19, bn = true>"));
}

#[test]
fn tiny() {
    insta::assert_snapshot!(tables("model Tiny { input = [3, 8, 8]  cfg = [8, M, 16] }"));
}

#[test]
fn with_a_train_block() {
    insta::assert_snapshot!(tables(
        "model Tiny {
            input = [1, 8, 8]
            cfg = [8, M, 16]
            train {
                recipe = hrankplus
                epochs = 10
                lr = 0.05
                schedule = cosine
                nesterov = true
            }
        }"
    ));
}

#[test]
fn a_train_block_lays_its_settings_over_the_recipe() {
    let nets = vggdsl::load(
        "model A { cfg = vgg11 train { milestones = [3, 6] gamma = 0.5 seed = 7 } }",
        "a.vgg",
    )
    .unwrap();
    let recipe = nets[0].spec.train.clone().expect("a train block");
    let expected = vggdsl::spec::Recipe {
        schedule: vggdsl::spec::Schedule::MultiStep {
            milestones: vec![3, 6],
            gamma: 0.5,
        },
        seed: 7,
        ..Default::default()
    };
    assert_eq!(recipe, expected);
    // Learning rates as PyTorch's MultiStepLR gives them: 0.01 until epoch 3, ×0.5 from 3 and 6.
    let lrs: Vec<f64> = (0..8).map(|e| recipe.lr_at(e)).collect();
    assert_eq!(lrs, [0.01, 0.01, 0.01, 0.005, 0.005, 0.005, 0.0025, 0.0025]);
    let none = vggdsl::load("model A { cfg = vgg11 }", "a.vgg").unwrap();
    assert_eq!(none[0].spec.train, None);
}
