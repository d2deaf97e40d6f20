//! `vggdsl study` through the binary, on examples/fashion_tiny.vgg and a slice of Fashion-MNIST
//! (Debian's dataset-fashion-mnist): 2 criteria × 2 seeds and the Scratch-B baseline, one epoch
//! each. A study killed after its first finished step and run again redoes nothing that was done
//! and ends with the results of an uninterrupted run; its table is its results.json's. Its budget
//! in 2 prune/fine-tune rounds lands on the same widths.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use vggdsl::files::results::{mean_std, StudyResults};
use vggdsl_test_support::{assert_success, tempdir};

mod common;

const VGGDSL: &str = env!("CARGO_BIN_EXE_vggdsl");

fn study_file(dir: &Path) -> PathBuf {
    let text = format!(
        r#"model = "{}"
seeds = [0, 1]
threads = 1
limit_train = 500
limit_test = 200
val_size = 50
baselines = ["scratch-b"]

[base.train]
epochs = 1

[prune]
criteria = ["l1", "random"]
budgets = [{{ macs_removed = 0.5 }}]

[finetune]
epochs = 1
"#,
        common::repo("examples/fashion_tiny.vgg")
    );
    let path = dir.join("tiny.toml");
    std::fs::write(&path, text).unwrap();
    path
}

fn study(file: &Path, out: &Path) -> Command {
    let mut cmd = Command::new(VGGDSL);
    cmd.arg("study")
        .arg(file)
        .arg("--out")
        .arg(out)
        .args(["--jobs", "2"]);
    cmd
}

/// Every step's marker (`FOLDER.step.json`) under `dir`, with its modification time and text.
fn markers(dir: &Path) -> Vec<(PathBuf, SystemTime, String)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(markers(&path));
        } else if path.to_string_lossy().ends_with(".step.json") {
            let modified = path.metadata().unwrap().modified().unwrap();
            out.push((
                path.clone(),
                modified,
                std::fs::read_to_string(&path).unwrap(),
            ));
        }
    }
    out
}

fn results(out: &Path) -> StudyResults {
    StudyResults::from_json(&std::fs::read_to_string(out.join("results.json")).unwrap()).unwrap()
}

#[test]
fn a_killed_study_resumes_without_redoing_finished_steps() {
    if vggdsl_train::data::Dataset::FashionMnist
        .default_dir()
        .is_none()
    {
        vggdsl_test_support::skip("Debian's dataset-fashion-mnist is not installed");
        return;
    }
    let dir = tempdir();
    let file = study_file(dir.path());

    let whole = dir.path().join("whole");
    let out = study(&file, &whole).output().unwrap();
    assert_success(&out, "the uninterrupted study");
    let stderr = String::from_utf8_lossy(&out.stderr);
    // Not a terminal: one line per finished step, none per start.
    assert!(stderr.contains("study: [1/"), "{stderr}");
    assert!(!stderr.contains("study: start"), "{stderr}");

    // Killed once its first step has finished.
    let killed = dir.path().join("killed");
    let mut child = study(&file, &killed)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while !killed.exists() || markers(&killed).is_empty() {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "no step finished"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let before = markers(&killed);
    assert!(!killed.join("results.json").exists());

    let out = study(&file, &killed).output().unwrap();
    assert_success(&out, "the study run again");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let total = markers(&whole).len();
    assert!(
        stderr.contains(&format!(
            "study: {} of {total} steps already done",
            before.len()
        )),
        "{stderr}"
    );
    let after = markers(&killed);
    assert_eq!(after.len(), total);
    for marker in &before {
        assert!(after.contains(marker), "{} was redone", marker.0.display());
    }

    // The same results as the uninterrupted study's, latencies (timed) aside.
    let (a, b) = (results(&whole), results(&killed));
    let untimed = |r: &StudyResults| {
        let mut rows = r.rows.clone();
        rows.iter_mut().for_each(|row| row.latency_ms = 0.0);
        (rows, r.base.accuracy, r.base.macs)
    };
    assert_eq!(untimed(&a), untimed(&b));
    // Folders without shell characters; the table keeps the budget's name.
    assert!(killed.join("macs-50pct/l1/prune/model.vgg").exists());
    assert!(b.rows.iter().all(|row| row.budget == "macs-50%"));
    check(
        &b,
        &std::fs::read_to_string(killed.join("results.md")).unwrap(),
    );
    rounds(dir.path(), &whole, &b);
}

/// The study's budget reached in 2 prune/fine-tune rounds from its base's weights: round 2
/// prunes round 1's fine-tuned model, lands on the budget's widths (round 1 between), and the
/// row names its rounds and counts both fine-tunings' epochs.
fn rounds(dir: &Path, whole: &Path, one_shot: &StudyResults) {
    let file = dir.join("rounds.toml");
    let text = std::fs::read_to_string(dir.join("tiny.toml")).unwrap();
    let text = text
        .replace("seeds = [0, 1]", "seeds = [0]")
        .replace("baselines = [\"scratch-b\"]", "baselines = []")
        .replace("[\"l1\", \"random\"]", "[\"l1\"]\nsteps = 2")
        .replace(
            "[base.train]\nepochs = 1",
            &format!(
                "[base]\nweights = {:?}",
                whole.join("base/best.safetensors")
            ),
        );
    std::fs::write(&file, text).unwrap();
    let out = dir.join("rounds");
    assert_success(&study(&file, &out).output().unwrap(), "the study in rounds");
    let r = results(&out);
    assert_eq!(r.rows.len(), 1);
    let (row, l1) = (&r.rows[0], &one_shot.rows[0]);
    assert_eq!((row.method.as_str(), row.epochs), ("l1 ×2", 2));
    assert_eq!((&row.compress_rate, row.macs), (&l1.compress_rate, l1.macs));
    let widths = |path: &str| -> Vec<i64> {
        let text = std::fs::read_to_string(out.join(path)).unwrap();
        let model = vggdsl::check_source(&text).unwrap().remove(0);
        model.convs().map(|(.., c)| c).collect()
    };
    let (budget, first, second) = (
        widths("macs-50pct/model.vgg"),
        widths("macs-50pct/l1-x2/round1/prune/model.vgg"),
        widths("macs-50pct/l1-x2/s0/round2/prune/model.vgg"),
    );
    assert_eq!(second, budget);
    let model = common::read("examples/fashion_tiny.vgg");
    let model = vggdsl::check_source(&model).unwrap().remove(0);
    let base: Vec<i64> = model.convs().map(|(.., c)| c).collect();
    for i in 0..base.len() {
        assert!(base[i] >= first[i] && first[i] >= budget[i], "{first:?}");
    }
    assert!(
        first != base && first != budget,
        "{base:?} {first:?} {budget:?}"
    );
    let marker = std::fs::read_to_string(out.join("macs-50pct/l1-x2/s0/round2/prune.step.json"));
    let finetuned = out.join("macs-50pct/l1-x2/s0/round1/finetune/best.safetensors");
    assert!(
        marker.unwrap().contains(&finetuned.display().to_string()),
        "round 2 prunes round 1's fine-tuned weights"
    );
    assert!(r.table().contains("| l1 ×2 |"), "{}", r.table());
}

/// The rows the study promises, and its table's figures computed here from its results.json.
fn check(r: &StudyResults, table: &str) {
    assert_eq!(r.rows.len(), 6, "2 criteria and a baseline × 2 seeds");
    for row in &r.rows {
        assert_eq!(row.compress_rate, r.rows[0].compress_rate);
        assert!(row.macs as f64 <= 0.5 * r.base.macs as f64, "{row:?}");
        match row.method.as_str() {
            // Liu et al.'s Scratch-B: the base's epochs × base MACs / pruned MACs, truncated.
            "scratch-b" => {
                assert_eq!(row.epochs, (r.base.macs as f64 / row.macs as f64) as u32);
                assert!(row.accuracy_after_surgery.is_none());
            }
            _ => {
                assert_eq!(row.epochs, 1);
                assert!(row.accuracy_after_surgery.is_some());
            }
        }
    }
    for method in ["l1", "random", "scratch-b"] {
        let rows: Vec<_> = r.rows.iter().filter(|x| x.method == method).collect();
        let pct = |v: Vec<f64>| {
            let (m, s) = mean_std(&v);
            format!("{:.2} ± {:.2}", 100.0 * m, 100.0 * s)
        };
        let accuracy = pct(rows.iter().map(|x| x.accuracy).collect());
        let line = table
            .lines()
            .find(|l| l.contains(&format!("| {method} |")))
            .unwrap_or_else(|| panic!("no {method} row in\n{table}"));
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        assert_eq!(cells[3], "2", "{line}");
        assert_eq!(cells[4], rows[0].params.to_string(), "{line}");
        assert_eq!(cells[8], accuracy, "{line}");
        let surgery = rows
            .iter()
            .map(|x| x.accuracy_after_surgery)
            .collect::<Option<Vec<f64>>>();
        assert_eq!(cells[7], surgery.map_or("—".to_owned(), pct), "{line}");
    }
    assert_eq!(table, r.table());
}

/// The study files of the examples and of docs/language.md read as studies; a bad one is one
/// sentence naming the file, and runs nothing.
#[test]
fn study_files_of_the_examples_and_the_reference_are_valid() {
    use vggdsl::files::study::StudyFile;
    for name in ["fashion_tiny", "fashion_vgg"] {
        let text = common::read(&format!("examples/studies/{name}.toml"));
        let study = StudyFile::from_toml(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(study.seeds, [0, 1, 2], "{name}");
    }
    let doc = common::read("docs/language.md");
    let block = doc
        .split("```toml\n")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .expect("a toml block in docs/language.md");
    let study = StudyFile::from_toml(block).unwrap();
    assert_eq!(study.prune.criteria.len(), 6);

    let dir = tempdir();
    let bad = |text: &str| {
        let path = dir.path().join("bad.toml");
        std::fs::write(&path, text).unwrap();
        let out = Command::new(VGGDSL)
            .args(["study", path.to_str().unwrap(), "--out"])
            .arg(dir.path().join("out"))
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1));
        assert!(!dir.path().join("out").exists());
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let base = format!(
        "model = \"{}\"\nseeds = [0]\n[base]\n[finetune]\nepochs = 1\n[prune]\n",
        common::repo("examples/fashion_tiny.vgg")
    );
    let err = bad(&format!(
        "{base}criteria = [\"l2\"]\nbudgets = [{{ macs_removed = 0.5 }}]\n"
    ));
    assert!(
        err.ends_with(
            "criterion `l2` is not one vggdsl knows; expected one of rank, l1, random, bn, \
             fpgm, taylor\n"
        ),
        "{err}"
    );
    let both = "budgets = [{ macs_removed = 0.5, compress_rate = \"[0.3] * 4\" }]\n";
    let err = bad(&format!("{base}criteria = [\"l1\"]\n{both}"));
    assert!(
        err.contains("exactly one of `macs_removed`, `compress_rate`"),
        "{err}"
    );
    let err = bad(&format!("{base}criteria = [\"l1\"]\nbudget = []\n"));
    assert!(err.contains("unknown field `budget`"), "{err}");
}
