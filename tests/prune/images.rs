//! The images rank and `--by taylor` read: those train trains on, never its validation images.

use super::*;

/// The ranks and Taylor scores of `weights` over the first 150 images of `set`, in file order, in
/// one batch: `(ranks.json's text, Taylor scores per conv)`.
fn scores_over(weights: &Path, set: &vggdsl_train::data::ImageSet) -> (String, Vec<Vec<f64>>) {
    use vggdsl_train::hrank::RankSums;
    let ir = vggdsl::check_source(SMALL).unwrap().remove(0);
    let mut vs = VarStore::new(Device::Cpu);
    let net = Network::new(&vs.root(), &ir);
    vggdsl_runtime::load_state_dict(&mut vs, weights).unwrap();
    let batch = std::num::NonZeroUsize::new(150).unwrap();
    let mut sums = RankSums::new(&net);
    for b in set.in_order(batch, 150) {
        sums.add(&net, &b.images).unwrap();
    }
    let ranks = sums.means().to_json();
    let taylor = vggdsl_train::criteria::taylor::scores(&net, set, batch, 150, &mut |_| {});
    (ranks, taylor.unwrap())
}

#[test]
fn rank_and_taylor_read_only_the_images_train_trains_on() {
    use vggdsl_train::data::{carve_validation, Dataset, ImageSet, Split};
    let s = Setup::new();
    let limits = ["--val-size", "30", "--limit", "1", "--batch-size", "150"];
    let mut args = vec!["rank", "small.vgg", "--weights", "w.safetensors"];
    args.extend(["--data", "data", "--out", "ranks"]);
    args.extend(limits);
    let out = s.vggdsl(&args);
    assert!(out.status.success(), "{}", stderr(&out));
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(
        report.contains("over the first 120 training images of cifar10 (30 held out"),
        "{report}"
    );
    // The 120 images train --val-size 30 trains on, not the first 120 of the file.
    let all = ImageSet::load(Dataset::Cifar10, Split::Train, &s.path("data")).unwrap();
    let (trained, _) = carve_validation(&all, 30).unwrap();
    assert_eq!((all.len(), trained.len()), (150, 120));
    let w = s.path("w.safetensors");
    let (ranks, taylor) = scores_over(&w, &trained);
    let (first_ranks, first_taylor) = scores_over(&w, &vggdsl_train::data::split::first(&all, 120));
    assert_ne!(ranks, first_ranks, "the two sets of images must tell apart");
    let file = std::fs::read_to_string(s.path("ranks/ranks.json")).unwrap();
    assert_eq!(file, ranks);
    assert!(file.contains("\"images\": 120"), "{file}");

    // Taylor: per conv, the fewest filters kept on which the two sets of images disagree (half
    // where they never do), as rates prune takes.
    let keep = |s: &[f64], k: usize| vggdsl::select::keep_highest(s, k);
    let kept: Vec<usize> = taylor
        .iter()
        .zip(&first_taylor)
        .map(|(a, b)| {
            (1..a.len())
                .find(|&k| keep(a, k) != keep(b, k))
                .unwrap_or(a.len() / 2)
        })
        .collect();
    let rates: Vec<String> = taylor
        .iter()
        .zip(&kept)
        .map(|(s, &k)| {
            let (lo, hi) = vggdsl::select::rates_keeping(s.len() as i64, k as i64);
            ((lo + hi) / 2.0).to_string()
        })
        .collect();
    let rates = format!("[{}]", rates.join(", "));
    let mut args = vec![
        "--by",
        "taylor",
        "--compress-rate",
        &rates,
        "--data",
        "data",
    ];
    args.extend(limits);
    s.prune("by-taylor", &args);
    let file =
        KeptFile::from_json(&std::fs::read_to_string(s.path("by-taylor/kept.json")).unwrap());
    let got: Vec<Vec<i64>> = file.unwrap().convs.into_iter().map(|(_, k)| k).collect();
    let want = |scores: &[Vec<f64>]| -> Vec<Vec<i64>> {
        scores.iter().zip(&kept).map(|(s, &k)| keep(s, k)).collect()
    };
    assert_eq!(got, want(&taylor));
    assert_ne!(
        got,
        want(&first_taylor),
        "the two sets of images must tell apart"
    );
}
