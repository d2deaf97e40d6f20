//! Inputs at the limits: a flood of errors cut short, brackets nested too deep, an expression
//! too long; each a snapshot of the rendered text.

use super::render::diagnose;

#[test]
fn too_many_errors() {
    // 120 models, each with one error: the first 100 are reported, then one line for the rest.
    let src: String = (0..120)
        .map(|i| format!("model A{i} {{ bn = 1 }}\n"))
        .collect();
    // `model A{i} { bn = 1 }`: the `1` is in column 16 + the digits of i.
    let expected: Vec<(usize, usize)> = (0..=100)
        .map(|i| (i + 1, 16 + i.to_string().len()))
        .collect();
    let rendered = diagnose(&src, &expected);
    let last = rendered.split("\n\n").last().unwrap();
    insta::assert_snapshot!(last);
}

#[test]
fn deep_nesting() {
    let src = format!(
        "model A {{ init = {{ conv.weight = constant({}1{}) }} }}\n",
        "(".repeat(200),
        ")".repeat(200)
    );
    // `{`, `{` and `constant(` open three; the 62nd `(` after them is the 65th bracket.
    let rendered = diagnose(&src, &[(1, 42 + 62)]);
    insta::assert_snapshot!(rendered);
}

#[test]
fn long_expression() {
    let src = format!(
        "model A {{ init = {{ conv.bias = constant(0{}) }} }}\n",
        " + 1".repeat(1000)
    );
    let rendered = diagnose(&src, &[(1, 20)]);
    insta::assert_snapshot!(rendered);
}
