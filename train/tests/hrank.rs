//! HRank on the run-time network: feature-map ranks against HRank's own per-image, per-channel
//! loop run in PyTorch (`hrank.py` of `vggdsl-test-support`, one process for this file), the
//! filter choice rules, and surgery's slices. The width rules and ties are `vggdsl::select`'s
//! tests.
//! Surgery against the same surgery done in PyTorch is tested through `vggdsl prune` in the root
//! package (`tests/prune/`).

use vggdsl::files::ranks::RanksFile;
use vggdsl::select::language_rate;
use vggdsl::Architecture;
use vggdsl_runtime::tch::nn::{ModuleT, VarStore};
use vggdsl_runtime::tch::{self, Device, Kind, Tensor};
use vggdsl_runtime::{Layer, Network};
use vggdsl_test_support::{file_in, pytorch, tempdir};
use vggdsl_train::hrank::{
    choose, map_ranks, scores_for, surgery, Criterion, Inherit, RankSums, RanksMismatch,
};

/// Four convs, a pool after the first and the third: block outputs pool1 (8×8), relu2 (8×8),
/// pool4 (4×4) and the last conv's relu5 (4×4).
const SMALL: &str = "model Small { input = [3, 16, 16] cfg = [8, M, 16, 16, M, 24, 32] }";
const SMALL_CONFIG: &str = r#"{"cfg": [8, "M", 16, 16, "M", 24, 32], "input": [3, 16, 16]}"#;

fn model(source: &str) -> Architecture {
    vggdsl::check_source(source)
        .expect("a valid model")
        .remove(0)
}

/// The network `full` with conv `i` `keep[i]` wide, through the language's `compress_rate`.
fn pruned(full: &Architecture, keep: &[i64]) -> Architecture {
    let rates = full
        .convs()
        .zip(keep)
        .map(|((.., c), &k)| language_rate(c, k, 0.0))
        .collect();
    let mut spec = full.spec.clone();
    spec.compress_rate = Some(rates);
    vggdsl::ir::lower(&spec).expect("valid widths")
}

/// Runs `hrank.py batch` on the command lines, in one process; `None` without PyTorch.
fn pytorch(commands: &[Vec<String>]) -> Option<()> {
    let list: Vec<String> = commands
        .iter()
        .map(|c| {
            let args: Vec<String> = c.iter().map(|a| format!("{a:?}")).collect();
            format!("[{}]", args.join(", "))
        })
        .collect();
    let commands = format!("[{}]", list.join(", "));
    pytorch::run("hrank.py", ["batch", "--commands", &commands]).map(drop)
}

/// The output channels of each conv of `ir`, in order.
fn widths(ir: &Architecture) -> Vec<i64> {
    ir.convs().map(|(.., c)| c).collect()
}

fn args(a: &[&str]) -> Vec<String> {
    a.iter().map(|s| s.to_string()).collect()
}

/// 20 images of several kinds, so that ranks spread from 0 to full: Gaussian noise, constant
/// images, rank-1 outer products and all zeros.
fn images() -> Tensor {
    tch::manual_seed(11);
    let opts = (Kind::Float, Device::Cpu);
    let noise = Tensor::randn([8, 3, 16, 16], opts);
    let constant = Tensor::randn([4, 3, 1, 1], opts).expand([4, 3, 16, 16], false);
    let outer = Tensor::randn([4, 3, 16, 1], opts) * Tensor::randn([4, 3, 1, 16], opts);
    let zeros = Tensor::zeros([4, 3, 16, 16], opts);
    Tensor::cat(&[noise, constant, outer, zeros], 0).contiguous()
}

#[test]
fn ranks_are_those_of_hranks_loop_in_pytorch() {
    let dir = tempdir();
    let xs = images();
    Tensor::write_safetensors(&[("images", &xs)], file_in(&dir, "images.safetensors")).unwrap();
    let batch = 7;
    let ran = pytorch(&[
        args(&[
            "init",
            "--config",
            SMALL_CONFIG,
            "--seed",
            "5",
            "--perturb",
            "--out",
            &file_in(&dir, "w.safetensors"),
        ]),
        args(&[
            "ranks",
            "--config",
            SMALL_CONFIG,
            "--weights",
            &file_in(&dir, "w.safetensors"),
            "--images",
            &file_in(&dir, "images.safetensors"),
            "--batch-size",
            &batch.to_string(),
            "--out",
            &file_in(&dir, "ranks.safetensors"),
        ]),
    ]);
    if ran.is_none() {
        return;
    }
    let expected: std::collections::HashMap<String, Tensor> =
        Tensor::read_safetensors(file_in(&dir, "ranks.safetensors"))
            .unwrap()
            .into_iter()
            .collect();

    let ir = model(SMALL);
    let mut vs = VarStore::new(Device::Cpu);
    let net = Network::new(&vs.root(), &ir);
    vggdsl_runtime::load_state_dict(&mut vs, file_in(&dir, "w.safetensors")).unwrap();

    // Per image: the batched call on each block output of the same batches.
    let convs = ["conv0", "conv2", "conv3", "conv5"];
    let mut per_image: Vec<Vec<Tensor>> = convs.iter().map(|_| Vec::new()).collect();
    let mut sums = RankSums::new(&net);
    for start in (0..20).step_by(batch) {
        let b = xs.narrow(0, start, batch.min(20 - start as usize) as i64);
        let mut k = 0;
        let _logits = tch::no_grad(|| {
            net.forward_tapped(&b, false, |_, map| {
                per_image[k].push(map_ranks(map).unwrap());
                k += 1;
            })
        });
        sums.add(&net, &b).unwrap();
    }
    let mut spread = Vec::new();
    for (conv, ranks) in convs.iter().zip(&per_image) {
        let ours = Tensor::cat(ranks, 0);
        assert_eq!(ours.kind(), Kind::Int64);
        assert!(
            ours.equal(&expected[*conv]),
            "{conv}: per-image ranks differ"
        );
        spread.push((
            i64::try_from(ours.min()).unwrap(),
            i64::try_from(ours.max()).unwrap(),
        ));
    }
    // The images exercise dead maps, rank-deficient maps and full ones.
    assert_eq!(spread[0].0, 0, "{spread:?}");
    assert_eq!(spread[0].1, 8, "pool1's maps are 8×8: {spread:?}");

    let means = sums.means();
    assert_eq!(means.model, "Small");
    assert_eq!(means.images, 20);
    for ((name, mean), conv) in means.convs.iter().zip(convs) {
        assert_eq!(name, conv);
        let total = expected[conv].sum_dim_intlist(0, false, Kind::Int64);
        let want: Vec<f64> = Vec::<i64>::try_from(&total)
            .unwrap()
            .iter()
            .map(|&s| s as f64 / 20.0)
            .collect();
        assert_eq!(mean, &want, "{conv}");
    }
}

#[test]
fn map_ranks_uses_pytorchs_default_tolerance() {
    // diag(1, 1e-3, 1e-9) at 3×3: the tolerance σ_max · 3 · ε(f32) ≈ 3.6e-7 drops only 1e-9.
    let m =
        Tensor::from_slice(&[1.0f32, 0.0, 0.0, 0.0, 1e-3, 0.0, 0.0, 0.0, 1e-9]).view([1, 1, 3, 3]);
    assert_eq!(
        Vec::<i64>::try_from(map_ranks(&m).unwrap().view([-1])).unwrap(),
        [2]
    );
    let zero = Tensor::zeros([2, 3, 4, 5], (Kind::Float, Device::Cpu));
    assert_eq!(map_ranks(&zero).unwrap().size(), [2, 3]);
    assert_eq!(
        i64::try_from(map_ranks(&zero).unwrap().sum(Kind::Int64)).unwrap(),
        0
    );
}

#[test]
fn l1_keeps_the_filters_of_largest_norm_and_random_is_seeded() {
    let ir = model(SMALL);
    tch::manual_seed(3);
    let vs = VarStore::new(Device::Cpu);
    let net = Network::new(&vs.root(), &ir);
    let keep = [3, 9, 16, 1];

    let chosen = choose(&net, &keep, &Criterion::L1);
    for ((conv, kept), &k) in ["conv0", "conv2", "conv3", "conv5"]
        .iter()
        .zip(&chosen)
        .zip(&keep)
    {
        let Some(Layer::Conv2d(c)) = net.layer(&format!("features.{conv}")) else {
            panic!("{conv} is a conv")
        };
        // The norms, summed independently on the host.
        let w = Vec::<f32>::try_from(c.weight.flatten(0, -1)).unwrap();
        let per = w.len() / c.weight.size()[0] as usize;
        let norms: Vec<f64> = w
            .chunks(per)
            .map(|f| f.iter().map(|x| f64::from(x.abs())).sum())
            .collect();
        let mut order: Vec<usize> = (0..norms.len()).collect();
        order.sort_by(|&a, &b| norms[b].partial_cmp(&norms[a]).unwrap());
        let mut want: Vec<i64> = order[..k as usize].iter().map(|&i| i as i64).collect();
        want.sort();
        assert_eq!(kept, &want, "{conv}");
    }

    let a = choose(&net, &keep, &Criterion::Random(7));
    assert_eq!(a, choose(&net, &keep, &Criterion::Random(7)));
    assert_ne!(a, choose(&net, &keep, &Criterion::Random(8)));
    for ((kept, &k), width) in a.iter().zip(&keep).zip(widths(&ir)) {
        assert_eq!(kept.len() as i64, k);
        assert!(kept.windows(2).all(|w| w[0] < w[1]));
        assert!(kept.iter().all(|&i| (0..width).contains(&i)));
    }
}

#[test]
fn surgery_slices_every_tensor_that_follows_a_filter() {
    let ir = model(SMALL);
    tch::manual_seed(4);
    let vs = VarStore::new(Device::Cpu);
    let _net = Network::new(&vs.root(), &ir);
    let kept = vec![vec![1, 6], vec![0, 5, 15], vec![2, 3, 9], vec![4, 20]];
    let small = pruned(&ir, &[2, 3, 3, 2]);
    let pvs = VarStore::new(Device::Cpu);
    let _pruned = Network::new(&pvs.root(), &small);
    surgery::transplant(&ir, &vs, &kept, &pvs, Inherit::All);

    let full = vs.variables();
    let cut = pvs.variables();
    let at = |t: &Tensor, index: &[i64]| -> Vec<f32> {
        let mut t = t.shallow_clone();
        for &i in index {
            t = t.get(i);
        }
        vec![f32::try_from(&t).unwrap()]
    };
    // conv3.weight[o][i] = full conv3.weight[kept3[o]][kept2[i]].
    for (o, &fo) in kept[2].iter().enumerate() {
        for (i, &fi) in kept[1].iter().enumerate() {
            for (y, x) in [(0, 0), (1, 2), (2, 1)] {
                assert_eq!(
                    at(&cut["features.conv3.weight"], &[o as i64, i as i64, y, x]),
                    at(&full["features.conv3.weight"], &[fo, fi, y, x])
                );
            }
        }
    }
    for (o, &fo) in kept[3].iter().enumerate() {
        for t in [
            "conv5.bias",
            "norm5.weight",
            "norm5.bias",
            "norm5.running_mean",
            "norm5.running_var",
        ] {
            let key = format!("features.{t}");
            assert_eq!(at(&cut[&key], &[o as i64]), at(&full[&key], &[fo]), "{key}");
        }
        // linear1: the last conv's channel c owns features 4c … 4c + 3 (2×2 after the head).
        for j in 0..4 {
            assert_eq!(
                at(&cut["classifier.linear1.weight"], &[5, o as i64 * 4 + j]),
                at(&full["classifier.linear1.weight"], &[5, fo * 4 + j])
            );
        }
    }
    assert!(cut["classifier.linear2.weight"].equal(&full["classifier.linear2.weight"]));
    assert!(cut["features.norm0.num_batches_tracked"]
        .equal(&full["features.norm0.num_batches_tracked"]));
}

#[test]
fn surgery_keeping_every_filter_gives_back_the_same_network() {
    let ir = model(SMALL);
    tch::manual_seed(5);
    let vs = VarStore::new(Device::Cpu);
    let net = Network::new(&vs.root(), &ir);
    let all: Vec<Vec<i64>> = widths(&ir).iter().map(|&c| (0..c).collect()).collect();
    for inherit in [Inherit::All, Inherit::ConvOnly] {
        tch::manual_seed(6);
        let pvs = VarStore::new(Device::Cpu);
        let same = Network::new(&pvs.root(), &pruned(&ir, &widths(&ir)));
        surgery::transplant(&ir, &vs, &all, &pvs, inherit);
        let (a, b) = (vs.variables(), pvs.variables());
        for (key, t) in &a {
            let conv_weight = key.starts_with("features.conv") && key.ends_with(".weight");
            if inherit == Inherit::All || conv_weight {
                assert!(t.equal(&b[key]), "{key}");
            }
        }
        if inherit == Inherit::All {
            let xs = Tensor::randn([4, 3, 16, 16], (Kind::Float, Device::Cpu));
            let (y, z) = tch::no_grad(|| (net.forward_t(&xs, false), same.forward_t(&xs, false)));
            assert!(y.equal(&z));
        }
    }
}

#[test]
fn a_ranks_file_for_another_network_says_which_conv_differs() {
    let ir = model(SMALL);
    let ranks = |convs: Vec<(&str, usize)>| RanksFile {
        model: "Other".into(),
        images: 640,
        convs: convs
            .into_iter()
            .map(|(n, c)| (n.to_owned(), vec![1.0; c]))
            .collect(),
    };
    let good = ranks(vec![
        ("conv0", 8),
        ("conv2", 16),
        ("conv3", 16),
        ("conv5", 24),
    ]);
    assert_eq!(scores_for(&good, &ir).unwrap().len(), 4);
    let wide = ranks(vec![
        ("conv0", 8),
        ("conv2", 32),
        ("conv3", 16),
        ("conv5", 24),
    ]);
    let e = scores_for(&wide, &ir).unwrap_err();
    assert!(matches!(e, RanksMismatch::Width { .. }));
    assert_eq!(
        e.to_string(),
        "it ranks model Other, whose conv2 has 32 filters, but Small's conv2 has 16"
    );
    let short = ranks(vec![("conv0", 8), ("conv2", 16)]);
    assert_eq!(
        scores_for(&short, &ir).unwrap_err().to_string(),
        "it ranks model Other, whose convs are conv0, conv2, but Small's are conv0, conv2, conv3, conv5"
    );
}
