//! The conv kernels an inference model chooses from: each computes what `forward_t(eval)`
//! computes, a fixed choice reproduces bit for bit, the tuner times once per size class and
//! remembers its choice in a cache file that survives being damaged, and a weight's packings for
//! several batch shapes are kept once where their bytes agree.
use std::sync::Mutex;

use vggdsl_runtime::inference::{
    enter, kernel_choice, set_kernel_choice, tuning_log, use_kernel_cache, ConvReLU2d, Kernel,
    KernelCache, KernelChoice,
};
use vggdsl_runtime::nn::Conv2d;
use vggdsl_runtime::tch::nn::{ModuleT, VarStore};
use vggdsl_runtime::tch::{self, Device, Kind, Tensor};

// Convs on maps 16², 8², 4², 2² (the last 192 is the classifier's width): every kernel applies somewhere (Winograd on the even maps, the matrix
// form on 2×2), and the 192-channel convs are wide enough for the guess to take Winograd's form.
vggdsl_runtime::vgg!(Net<input = [3, 16, 16], cfg = [16, M, 192, M, 192, M, 192, 192], num_classes = 5>);

/// The kernel choice and the tuner's cache are the process's: one test at a time.
static PROCESS_WIDE: Mutex<()> = Mutex::new(());

fn alone() -> std::sync::MutexGuard<'static, ()> {
    PROCESS_WIDE.lock().unwrap_or_else(|e| e.into_inner())
}

/// A model whose BatchNorms hold statistics other than the identity.
fn model() -> (VarStore, Net) {
    tch::manual_seed(0);
    let vs = VarStore::new(Device::Cpu);
    let net = Net::new(&vs.root());
    tch::no_grad(|| {
        for (name, mut t) in vs.variables() {
            if name.contains("norm") && name.ends_with("running_var") {
                let _ = t.uniform_(0.5, 1.5);
            } else if name.contains("norm") && name.ends_with("running_mean") {
                let _ = t.uniform_(-0.5, 0.5);
            }
        }
    });
    (vs, net)
}

fn relative_difference(a: &Tensor, b: &Tensor) -> f64 {
    let diff = (a - b).abs().max().double_value(&[]);
    diff / b.abs().max().double_value(&[])
}

const CHOICES: [KernelChoice; 7] = [
    KernelChoice::Fixed(Kernel::OneDnn),
    KernelChoice::Fixed(Kernel::Winograd),
    KernelChoice::Fixed(Kernel::WinogradFew),
    KernelChoice::Fixed(Kernel::Matrix),
    KernelChoice::Fixed(Kernel::Aten),
    KernelChoice::Guess,
    KernelChoice::Tune,
];

#[test]
fn every_kernel_computes_the_eval_outputs() {
    let _alone = alone();
    use_kernel_cache(KernelCache::open(None, "tests"));
    let (_vs, net) = model();
    for choice in CHOICES {
        set_kernel_choice(Some(choice));
        let fast = net.to_inference();
        for batch in [1, 3, 8, 16] {
            let xs = Tensor::randn([batch, 3, 16, 16], (Kind::Float, Device::Cpu));
            let eval = tch::no_grad(|| net.forward_t(&xs, false));
            let out = fast.forward(&xs);
            let diff = relative_difference(&out, &eval);
            assert!(diff < 1e-5, "{choice:?}, batch {batch}: {diff}");
            if let KernelChoice::Fixed(kernel) = choice {
                // conv6 runs on 2×2 maps, where every kernel applies.
                let map =
                    tch::no_grad(|| Tensor::randn([batch, 192, 2, 2], (Kind::Float, Device::Cpu)));
                let expected = if tch::utils::has_mkldnn() {
                    kernel
                } else {
                    Kernel::Aten
                };
                assert_eq!(
                    fast.conv6.kernel_for(&enter(&map)),
                    expected,
                    "batch {batch}"
                );
            }
        }
    }
    set_kernel_choice(None);
}

#[test]
fn fixed_choices_reproduce() {
    let _alone = alone();
    let (_vs, net) = model();
    let xs = Tensor::randn([5, 3, 16, 16], (Kind::Float, Device::Cpu));
    for choice in CHOICES
        .into_iter()
        .filter(|c| matches!(c, KernelChoice::Fixed(_)))
    {
        set_kernel_choice(Some(choice));
        let (a, b) = (net.to_inference(), net.to_inference());
        let first = a.forward(&xs);
        assert!(
            first.equal(&a.forward(&xs)),
            "{choice:?}: the same model twice"
        );
        assert!(first.equal(&b.forward(&xs)), "{choice:?}: two models");
    }
    set_kernel_choice(None);
}

#[test]
fn tuning_times_each_size_class_once_and_remembers() {
    let _alone = alone();
    if !tch::utils::has_mkldnn() {
        return;
    }
    let dir = vggdsl_test_support::tempdir();
    let path = dir.path().join("kernels").join("this-machine.json");
    use_kernel_cache(KernelCache::open(Some(path.clone()), "this machine"));
    set_kernel_choice(Some(KernelChoice::Tune));
    let (_vs, net) = model();
    let fast = net.to_inference();
    tuning_log();
    let batch = |n| Tensor::randn([n, 3, 16, 16], (Kind::Float, Device::Cpu));

    drop(fast.forward(&batch(8)));
    let timed = tuning_log();
    // Every conv has more than one candidate: oneDNN's and Winograd's (even maps); conv6 also
    // the matrix form.
    assert_eq!(timed.len(), 4, "{timed:#?}");
    for record in &timed {
        assert_eq!(record.batch, 8);
        assert!(record.times.len() >= 2, "{record:?}");
        assert!(record.times.iter().all(|(_, t)| t.is_finite() && *t > 0.0));
        let fastest = record
            .times
            .iter()
            .min_by(|a, b| a.1.total_cmp(&b.1))
            .unwrap()
            .0;
        assert_eq!(record.chosen, fastest, "{record:?}");
        assert!(record.key.contains("batch class 8"), "{}", record.key);
    }
    assert!(timed
        .last()
        .unwrap()
        .times
        .iter()
        .any(|(k, _)| *k == Kernel::Matrix));

    // The same class again (8–15 images): nothing timed; a new class: timed.
    drop(fast.forward(&batch(15)));
    assert!(tuning_log().is_empty());
    drop(fast.forward(&batch(16)));
    assert_eq!(tuning_log().len(), 4);

    // A new model of the same shapes takes the choices from the cache, without timing.
    let again = net.to_inference();
    drop(again.forward(&batch(9)));
    let cached = tuning_log();
    assert_eq!(cached.len(), 4);
    for (c, t) in cached.iter().zip(&timed) {
        assert!(c.times.is_empty(), "{c:?}");
        assert_eq!((&c.key, c.chosen), (&t.key, t.chosen));
    }
    // And so does the next process: the file holds every choice.
    let reopened = KernelCache::open(Some(path), "this machine");
    for t in &timed {
        assert_eq!(reopened.get(&t.key), Some(t.chosen));
    }
    set_kernel_choice(None);
    use_kernel_cache(KernelCache::open(None, "tests"));
}

#[test]
fn the_cache_round_trips_and_survives_damage() {
    let dir = vggdsl_test_support::tempdir();
    let path = dir.path().join("k.json");
    let mut cache = KernelCache::open(Some(path.clone()), "cpu A");
    assert_eq!(cache.get("layer"), None);
    assert!(cache.insert("layer", Kernel::Winograd));
    assert!(cache.insert("other", Kernel::Matrix));
    let reopened = KernelCache::open(Some(path.clone()), "cpu A");
    assert_eq!(reopened.get("layer"), Some(Kernel::Winograd));
    assert_eq!(reopened.get("other"), Some(Kernel::Matrix));
    // Another machine's choices are not this one's.
    assert_eq!(
        KernelCache::open(Some(path.clone()), "cpu B").get("layer"),
        None
    );
    // Two processes' entries merge: the second writer keeps the first one's.
    let mut a = KernelCache::open(Some(path.clone()), "cpu A");
    let mut b = KernelCache::open(Some(path.clone()), "cpu A");
    a.insert("from a", Kernel::OneDnn);
    b.insert("from b", Kernel::OneDnn);
    let merged = KernelCache::open(Some(path.clone()), "cpu A");
    assert_eq!(merged.get("from a"), Some(Kernel::OneDnn));
    assert_eq!(merged.get("from b"), Some(Kernel::OneDnn));

    // Damaged files count as empty, and the next choice writes a sound file over them.
    let damaged: [&[u8]; 6] = [
        b"",
        b"{\"machine\": \"cpu A\", \"choices\": {\"layer\": \"winog",
        b"\xff\xfe not text",
        b"[1, 2, 3]",
        b"{\"machine\": \"cpu A\", \"choices\": {\"layer\": 7}}",
        b"{\"machine\": \"cpu A\", \"choices\": {\"layer\": \"no such kernel\"}}",
    ];
    for bytes in damaged {
        std::fs::write(&path, bytes).unwrap();
        let mut cache = KernelCache::open(Some(path.clone()), "cpu A");
        assert_eq!(cache.get("layer"), None, "{bytes:?}");
        assert!(cache.insert("new", Kernel::OneDnn));
        let fixed = KernelCache::open(Some(path.clone()), "cpu A");
        assert_eq!(fixed.get("new"), Some(Kernel::OneDnn), "{bytes:?}");
    }
    // Only the file itself: the temporary names are renamed into place.
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["k.json"]);

    // A file that can't be written keeps the choices in memory.
    let mut unwritable = KernelCache::open(Some(path.join("below a file.json")), "cpu A");
    assert!(!unwritable.insert("layer", Kernel::Matrix));
    assert_eq!(unwritable.get("layer"), Some(Kernel::Matrix));
}

#[test]
fn choices_parse_as_the_variable_spells_them() {
    let _alone = alone();
    for (text, choice) in [
        ("tune", KernelChoice::Tune),
        ("guess", KernelChoice::Guess),
        ("onednn", KernelChoice::Fixed(Kernel::OneDnn)),
        ("winograd", KernelChoice::Fixed(Kernel::Winograd)),
        ("winograd-few", KernelChoice::Fixed(Kernel::WinogradFew)),
        ("matrix", KernelChoice::Fixed(Kernel::Matrix)),
        ("direct", KernelChoice::Fixed(Kernel::Direct)),
        ("aten", KernelChoice::Fixed(Kernel::Aten)),
    ] {
        assert_eq!(KernelChoice::parse(text), Some(choice));
        set_kernel_choice(Some(choice));
        assert_eq!(kernel_choice(), choice, "{text}");
    }
    set_kernel_choice(None);
    for wrong in ["", "Tune", "blocked", "onednn "] {
        assert_eq!(KernelChoice::parse(wrong), None, "{wrong:?}");
    }
}

/// Packings for several batch shapes give the conv's numbers, are made once per shape, and are
/// kept once where their bytes agree.
#[test]
fn packings_per_shape_are_shared_where_identical() {
    if !tch::utils::has_mkldnn() {
        return;
    }
    tch::manual_seed(5);
    let vs = VarStore::new(Device::Cpu);
    let conv = Conv2d::new(vs.root() / "conv", 64, 96, 3, 1, 1);
    let layer = ConvReLU2d::new(&conv, None);
    let shapes = [
        [1, 64, 8, 8],
        [2, 64, 8, 8],
        [7, 64, 8, 8],
        [1, 64, 4, 4],
        [1, 64, 8, 8],
    ];
    for shape in shapes {
        let xs = enter(&Tensor::randn(shape, (Kind::Float, Device::Cpu)));
        let got = layer.forward_with(Kernel::OneDnn, &xs).unwrap();
        let want = tch::no_grad(|| {
            xs.conv2d(&conv.weight, Some(&conv.bias), [1, 1], [1, 1], [1, 1], 1)
                .relu()
        });
        assert!(relative_difference(&got, &want) < 1e-5, "{shape:?}");
    }
    let kept = layer.packings_kept();
    assert!((1..=4).contains(&kept), "{kept} packings for 4 shapes");
    // The same shape twice is one packing, the very same bytes.
    let xs = Tensor::randn([2, 64, 8, 8], (Kind::Float, Device::Cpu));
    let (a, b) = (
        layer.packed_weight(&xs).unwrap(),
        layer.packed_weight(&xs).unwrap(),
    );
    let bytes = |t: &Tensor| vggdsl_runtime::ops::data_bytes(t).unwrap().0;
    assert_eq!(bytes(&a), bytes(&b));
    assert_eq!(layer.packings_kept(), kept);
}

/// vggdsl's own kernels run the build of aten's capability, which `ATEN_CPU_CAPABILITY` sets:
/// under `ATEN_CPU_CAPABILITY=avx2` an AVX-512 machine runs their AVX2 build, as an AVX2 machine
/// would.
#[test]
fn our_kernels_run_the_build_of_atens_capability() {
    use vggdsl_runtime::ops::{cpu_capability, kernel_isa};
    let expected = match cpu_capability() {
        "AVX512" => "avx512",
        "AVX2" => "avx2",
        _ => "baseline",
    };
    if cfg!(target_arch = "x86_64") {
        assert_eq!(kernel_isa(), expected, "aten runs {}", cpu_capability());
    } else {
        assert_eq!(kernel_isa(), "baseline");
    }
}
