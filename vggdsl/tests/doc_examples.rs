//! Every example of the language reference (docs/language.md) is checked: ```vgg blocks must be
//! valid, ```vgg,error blocks must be refused.

mod common;

use common::read;

struct Block {
    line: usize,
    expect_error: bool,
    text: String,
}

fn blocks(doc: &str) -> Vec<Block> {
    let mut out = Vec::new();
    let mut open: Option<Block> = None;
    for (i, line) in doc.lines().enumerate() {
        let fence = line.trim_start();
        match &mut open {
            None => {
                if let Some(info) = fence.strip_prefix("```") {
                    let info = info.trim();
                    let expect_error = match info {
                        "vgg" => false,
                        "vgg,error" => true,
                        _ if info.starts_with("vgg") => {
                            panic!("line {}: unknown fence `{info}`", i + 1)
                        }
                        _ => {
                            // Another language: skip to its end.
                            open = Some(Block {
                                line: 0,
                                expect_error: false,
                                text: String::new(),
                            });
                            continue;
                        }
                    };
                    open = Some(Block {
                        line: i + 1,
                        expect_error,
                        text: String::new(),
                    });
                }
            }
            Some(block) => {
                if fence.starts_with("```") {
                    let block = open.take().unwrap();
                    if block.line > 0 {
                        out.push(block);
                    }
                } else {
                    block.text.push_str(line);
                    block.text.push('\n');
                }
            }
        }
    }
    assert!(open.is_none(), "an unclosed fence");
    out
}

#[test]
fn every_example_checks_as_marked() {
    let doc = read("docs/language.md");
    let blocks = blocks(&doc);
    let (good, bad) = (
        blocks.iter().filter(|b| !b.expect_error).count(),
        blocks.iter().filter(|b| b.expect_error).count(),
    );
    assert!(
        good >= 15 && bad >= 10,
        "{good} valid and {bad} invalid examples"
    );
    let mut failures = Vec::new();
    for b in &blocks {
        match (vggdsl::load(&b.text, "language.md"), b.expect_error) {
            (Ok(_), false) | (Err(_), true) => {}
            (Ok(_), true) => failures.push(format!(
                "docs/language.md:{}: a ```vgg,error block checks:\n{}",
                b.line, b.text
            )),
            (Err(d), false) => failures.push(format!(
                "docs/language.md:{}: a ```vgg block fails:\n{}",
                b.line,
                d.render(false)
            )),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    println!("{good} valid and {bad} invalid examples checked");
}

#[test]
fn refused_examples_fail_for_the_reason_they_show() {
    let doc = read("docs/language.md");
    // The first error of each refused example, so a block cannot fail for a typo instead.
    let firsts: Vec<String> = blocks(&doc)
        .iter()
        .filter(|b| b.expect_error)
        .map(|b| {
            vggdsl::load(&b.text, "x").unwrap_err().items[0]
                .message
                .clone()
        })
        .collect();
    insta::assert_debug_snapshot!(firsts);
}

#[test]
fn the_seed_in_the_reference_is_the_example_file() {
    let doc = read("docs/language.md");
    let example = read("examples/vgg16_bn.vgg");
    let first = &blocks(&doc)[0];
    assert_eq!(
        vggdsl::check_source(&first.text).unwrap(),
        vggdsl::check_source(&example).unwrap()
    );
}
