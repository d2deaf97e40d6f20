//! The user's pages against the command: README's quick start runs as written, every command
//! block of the pages is run by a test or marked as an illustration, and the exit-code tables of
//! the pages are the ones `vggdsl COMMAND --help` prints (src/exit.rs).
//!
//! `UPDATE_DOCS=1 cargo test --test docs` rewrites the pages' exit-code tables from `--help`.

mod common;

use common::{exit_codes, read, repo, text, vggdsl};
use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

/// The pages a user reads, and the reference.
const PAGES: [&str; 4] = ["README.md", "TRAINING.md", "PRUNING.md", "docs/language.md"];

/// Every command of `vggdsl --help`.
const COMMANDS: [&str; 12] = [
    "check",
    "summary",
    "compile",
    "export",
    "plot",
    "train",
    "eval",
    "rank",
    "prune",
    "sensitivity",
    "latency",
    "study",
];

/// What opens a page's exit-code table: `<!-- exit codes of: train -->`, then a ```text block.
const EXIT_MARK: &str = "<!-- exit codes of: ";

/// What comes right before a command block that a test runs: `<!-- run by tests/docs.rs -->`.
const RUN_MARK: &str = "<!-- run by tests/";

/// The fenced block that starts on the line after `at` (a marker line), as (first line index of
/// its text, its lines).
fn block_after<'a>(lines: &[&'a str], at: usize) -> (usize, Vec<&'a str>) {
    assert!(
        lines.get(at + 1).is_some_and(|l| l.starts_with("```")),
        "line {}: a fenced block must follow `{}`",
        at + 2,
        lines[at]
    );
    let start = at + 2;
    let len = lines[start..]
        .iter()
        .position(|l| l.starts_with("```"))
        .expect("the block is closed");
    (start, lines[start..start + len].to_vec())
}

/// The exit-code tables of `page`: the commands each names, and the table's text.
fn exit_tables(page: &str) -> Vec<(Vec<String>, usize, String)> {
    let lines: Vec<&str> = page.lines().collect();
    let mut tables = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        if let Some(rest) = line.strip_prefix(EXIT_MARK) {
            let names = rest.trim_end_matches("-->").split_whitespace();
            let (start, block) = block_after(&lines, i);
            tables.push((names.map(str::to_owned).collect(), start, block.join("\n")));
        }
    }
    tables
}

/// Each command's exit codes appear once in the pages, as `--help` prints them.
#[test]
fn exit_code_tables_are_the_help_texts() {
    let update = std::env::var_os("UPDATE_DOCS").is_some();
    let help: BTreeMap<&str, String> = COMMANDS.iter().map(|c| (*c, exit_codes(c))).collect();
    let mut seen: BTreeMap<String, &str> = BTreeMap::new();
    let mut stale = Vec::new();
    for name in PAGES {
        let page = read(name);
        let mut lines: Vec<String> = page.lines().map(str::to_owned).collect();
        // From the end, so that a rewritten table leaves the earlier ones' lines where they are.
        for (commands, start, found) in exit_tables(&page).into_iter().rev() {
            let table = |c: &String| help.get(c.as_str()).unwrap_or_else(|| panic!("`{c}`?"));
            let expected = table(&commands[0]).clone();
            for command in &commands {
                assert_eq!(table(command), &expected, "{command} and {}", commands[0]);
                if let Some(other) = seen.insert(command.clone(), name) {
                    panic!("{command}'s exit codes are in {other} and {name}; keep one table");
                }
            }
            if found != expected {
                stale.push(format!(
                    "{name}:{}: {}\n--- the page\n{found}\n+++ --help\n{expected}",
                    start + 1,
                    commands.join(" ")
                ));
                let len = found.lines().count();
                lines.splice(start..start + len, expected.lines().map(str::to_owned));
            }
        }
        if update {
            std::fs::write(repo(name), lines.join("\n") + "\n").unwrap();
        }
    }
    let missing: Vec<_> = COMMANDS
        .iter()
        .filter(|c| !seen.contains_key(**c))
        .collect();
    assert!(missing.is_empty(), "no exit-code table for {missing:?}");
    assert!(
        update || stale.is_empty(),
        "stale exit-code tables (UPDATE_DOCS=1 rewrites them):\n{}",
        stale.join("\n\n")
    );
}

/// The command list of `vggdsl --help` is the one this file checks, and README's.
#[test]
fn every_command_is_checked() {
    assert_eq!(subcommands(&[]), COMMANDS);
    // README's list of the commands names each, and every kind of picture.
    let readme = read("README.md");
    for command in COMMANDS {
        assert!(
            readme.contains(&format!("\nvggdsl {command} ")),
            "README.md lacks {command}"
        );
    }
    let kinds = subcommands(&["plot"]);
    assert!(
        readme.contains(&format!("vggdsl plot {} ", kinds.join("|"))),
        "README.md's plot line lacks one of {kinds:?}"
    );
}

/// The subcommands `vggdsl ARGS --help` lists, but `help`.
fn subcommands(args: &[&str]) -> Vec<String> {
    let help = text(&vggdsl(&[args, &["--help"]].concat()).stdout);
    help.split_once("Commands:\n")
        .expect("the help lists the subcommands")
        .1
        .lines()
        .take_while(|l| l.starts_with("  "))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|c| *c != "help")
        .map(str::to_owned)
        .collect()
}

/// A ```sh, ```console or ```bash block in the pages is run by a test, which the marker before
/// it names; anything else is shown as ```text (an illustration).
#[test]
fn command_blocks_are_run_or_illustrations() {
    for name in ["README.md", "TRAINING.md", "PRUNING.md", "docs/rust.md"] {
        let page = read(name);
        let lines: Vec<&str> = page.lines().collect();
        let mut open = false;
        for (i, line) in lines.iter().enumerate() {
            let Some(info) = line.trim_start().strip_prefix("```") else {
                continue;
            };
            open = !open;
            if !open || !matches!(info.trim(), "sh" | "console" | "bash") {
                continue;
            }
            let marker = i.checked_sub(1).map_or("", |j| lines[j]);
            let test = marker
                .strip_prefix(RUN_MARK)
                .and_then(|m| m.strip_suffix(" -->"))
                .unwrap_or_else(|| {
                    panic!(
                        "{name}:{}: a command block no test runs; mark it ```text, or run it \
                         in a test and put `{RUN_MARK}FILE.rs -->` before it",
                        i + 1
                    )
                });
            let source = read(&format!("tests/{test}"));
            assert!(
                source.contains(name),
                "{name}:{}: tests/{test} does not read {name}",
                i + 1
            );
        }
    }
}

/// README's quick start, run as written in a new folder: the same lines, with `sudo apt-get` and
/// `cargo build` checked instead of run (the data is installed and this test's binary is the
/// build, linked where the build puts it) and the README's `quick` and `images` flags, which the
/// block sets.
#[test]
fn readme_quick_start_runs_as_written() {
    let readme = read("README.md");
    let lines: Vec<&str> = readme.lines().collect();
    let at = lines
        .iter()
        .position(|l| *l == "<!-- run by tests/docs.rs -->")
        .expect("README.md marks its quick start");
    let (_, block) = block_after(&lines, at);
    let block = block.join("\n");
    assert!(block.contains("images=\"--limit-train"), "{block}");

    let tmp = vggdsl_test_support::tempdir();
    let dir = tmp.path();
    for shared in ["examples", "scripts"] {
        std::os::unix::fs::symlink(repo(shared), dir.join(shared)).unwrap();
    }
    std::fs::create_dir_all(dir.join("target/release")).unwrap();
    std::os::unix::fs::symlink(
        env!("CARGO_BIN_EXE_vggdsl"),
        dir.join("target/release/vggdsl"),
    )
    .unwrap();
    // The two set-up lines this test does not run: their arguments must be what a user types.
    let stubs = r#"
sudo() { [ "$*" = "apt-get install dataset-fashion-mnist" ] && dpkg -s dataset-fashion-mnist >/dev/null; }
cargo() { [ "$*" = "build --release --bin vggdsl" ]; }
"#;
    let out = Command::new("bash")
        .args(["-euo", "pipefail", "-c", &format!("{stubs}\n{block}")])
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .env("OMP_WAIT_POLICY", "PASSIVE")
        .output()
        .unwrap();
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "{block}\n{stdout}\n{stderr}");

    // Both runs, the pruned model under its own name, and the comparison.
    for run in ["runs/FashionTiny", "runs/FashionTinyPruned"] {
        assert!(
            Path::new(&dir.join(run).join("last.safetensors")).exists(),
            "{run}"
        );
    }
    let pruned = std::fs::read_to_string(dir.join("pruned/model.vgg")).unwrap();
    assert!(pruned.contains("model FashionTinyPruned {"), "{pruned}");
    assert!(stdout.contains("Pruned vs unpruned:"), "{stdout}");
    assert_eq!(
        stdout
            .matches("FashionTiny on the fashion-mnist test set")
            .count(),
        1,
        "{stdout}"
    );
    assert_eq!(
        stdout
            .matches("FashionTinyPruned on the fashion-mnist test set")
            .count(),
        1,
        "{stdout}"
    );
    let svg = std::fs::read_to_string(dir.join("training.svg")).unwrap();
    assert!(
        svg.contains("FashionTinyPruned"),
        "the plot names both runs"
    );
}

/// The example files the pages show are shown as they are: README's whole quick-start model, the
/// language reference's FashionVgg from its `pub model` on.
#[test]
fn pages_show_the_example_files_as_they_are() {
    let tiny = read("examples/fashion_tiny.vgg");
    assert!(
        read("README.md").contains(&format!("```vgg\n{tiny}```")),
        "README.md's FashionTiny differs from examples/fashion_tiny.vgg:\n{tiny}"
    );
    let fashion = read("examples/fashion_mnist.vgg");
    let model = &fashion[fashion.find("pub model").expect("a public model")..];
    assert!(
        read("docs/language.md").contains(&format!("```vgg\n{model}```")),
        "docs/language.md's FashionVgg differs from examples/fashion_mnist.vgg:\n{model}"
    );
}
