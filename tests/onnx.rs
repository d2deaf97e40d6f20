//! `vggdsl export` checked by its consumers. Every model of `examples/*.vgg` (the seed and its
//! HRank pruning among them) and of `tests/models/onnx.vgg` (BatchNorm on and off, non-square
//! and one-channel inputs), with weights PyTorch made, is exported unfolded and folded; ONNX's
//! checker and ONNX Runtime (`test-support/python/onnx_check.py`) check each file and run it at batch 1
//! and 7, against the run-time network's eval forward on the same weights and inputs. Then what
//! the command refuses: another model's weights, NaN and infinite values, its inputs as output,
//! an output it cannot write.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::repo;
use serde_json::{json, Value};
use vggdsl::spec::{CfgItem, ModelSpec};
use vggdsl_onnx::{self as onnx, Options, Weights};
use vggdsl_runtime::tch::nn::{ModuleT, VarStore};
use vggdsl_runtime::tch::{self, Device, Kind, Tensor};
use vggdsl_runtime::{load_state_dict, Network};
use vggdsl_test_support::pytorch::{self, cmd, reference};
use vggdsl_test_support::{file_in, rng, tempdir, TempDir};

/// How far ONNX Runtime's logits may lie from the network's: `|ort − vggdsl| ≤ 1e-5 · max(1,
/// max |vggdsl|)` over the batch, absolute for logits up to 1 and relative to the largest beyond.
const TOLERANCE: f64 = 1e-5;

/// A model of a `.vgg` file of the repository.
struct Case {
    file: String,
    ir: vggdsl::Architecture,
}

/// Every model of `examples/*.vgg`, then of `tests/models/onnx.vgg`.
fn cases() -> Vec<Case> {
    let mut files: Vec<String> = std::fs::read_dir(repo("examples"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|name| name.ends_with(".vgg"))
        .map(|name| format!("examples/{name}"))
        .collect();
    files.sort();
    files.push("tests/models/onnx.vgg".into());
    files
        .iter()
        .flat_map(|file| {
            let nets = vggdsl::load(&common::read(file), file).unwrap_or_else(|d| panic!("{d}"));
            nets.into_iter().map(|ir| Case {
                file: file.clone(),
                ir,
            })
        })
        .collect()
}

/// `reference.py --config` for the network of `spec`.
fn config(spec: &ModelSpec) -> String {
    let cfg: Vec<Value> = spec
        .cfg
        .iter()
        .map(|item| match item {
            CfgItem::Conv(width) => json!(width),
            CfgItem::Pool => json!("M"),
        })
        .collect();
    json!({
        "cfg": cfg,
        "bn": spec.bn,
        "num_classes": spec.num_classes,
        "compress_rate": spec.compress_rate,
        "input": spec.input,
    })
    .to_string()
}

fn vggdsl(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_vggdsl"))
        .args(args)
        .env("NO_COLOR", "1")
        .output()
        .expect("the vggdsl binary runs")
}

fn export(case: &Case, weights: &str, out: &str, fold: bool) {
    let mut args = vec!["export", &case.file, "--model", &case.ir.spec.name];
    args.extend(["--weights", weights, "-o", out]);
    if fold {
        args.push("--fold-bn");
    }
    let output = vggdsl(&args);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{args:?}: {stderr}");
    assert_eq!(stderr, "", "{args:?}");
}

/// What the run-time network holds after loading `weights`, for `vggdsl_onnx`, and its eval
/// outputs for a batch of 1 and of 7 seeded random images, which are saved to `inputs` as
/// `batch1` and `batch7`.
fn network_outputs(
    ir: &vggdsl::Architecture,
    weights: &str,
    inputs: &str,
) -> (Weights, Vec<(String, Tensor)>) {
    let mut vs = VarStore::new(Device::Cpu);
    let [c, h, w] = ir.spec.input;
    let (net, batches) = {
        let _rng = rng();
        let net = Network::new(&vs.root(), ir);
        tch::manual_seed(27);
        let batches: Vec<(String, Tensor)> = [1, 7]
            .map(|n| {
                (
                    format!("batch{n}"),
                    Tensor::randn([n, c, h, w], (Kind::Float, Device::Cpu)),
                )
            })
            .into();
        (net, batches)
    };
    load_state_dict(&mut vs, weights).unwrap();
    Tensor::write_safetensors(&batches, inputs).unwrap();
    let forward = |x: &Tensor| tch::no_grad(|| net.forward_t(x, false));
    let outputs = batches
        .iter()
        .map(|(name, x)| (name.clone(), forward(x)))
        .collect();
    let state_dict = vs.variables().into_iter().map(|(key, t)| {
        let data = Vec::<f32>::try_from(&t.to_kind(Kind::Float).flatten(0, -1)).unwrap();
        (key, onnx::Tensor::new(t.size(), data).unwrap())
    });
    (state_dict.collect(), outputs)
}

/// Runs `onnx_check.py` on the jobs: its report on each.
fn onnx_check(jobs: &[Value], dir: &TempDir) -> Option<Vec<Value>> {
    let path = file_in(dir, "jobs.json");
    std::fs::write(&path, serde_json::to_string(jobs).unwrap()).unwrap();
    let report = pytorch::run_json("onnx_check.py", [&path])?;
    Some(serde_json::from_value(report).expect("onnx_check.py prints a list"))
}

/// The initializers an export has, from PyTorch's state_dict keys in PyTorch's order: all but
/// BatchNorm's counters; with BatchNorm folded, only those of modules without running
/// statistics (the convs and linears).
fn expected_initializers(state_dict: &[String], folded: bool) -> Vec<String> {
    let is_norm = |key: &str| {
        let module = key.rsplit_once('.').expect("a module's tensor").0;
        state_dict.contains(&format!("{module}.running_mean"))
    };
    state_dict
        .iter()
        .filter(|key| !key.ends_with(".num_batches_tracked"))
        .filter(|key| !folded || !is_norm(key))
        .cloned()
        .collect()
}

/// What `onnx_check.py` reports of an exported file, against the network it came from.
fn check_report(report: &Value, ir: &vggdsl::Architecture, state_dict: &[String], folded: bool) {
    let spec = &ir.spec;
    assert_eq!(report["opset"], json!([["", 17]]));
    assert_eq!(report["ir_version"], 8);
    assert_eq!(report["producer"][0], "vggdsl");
    let initializers: Vec<String> = serde_json::from_value(report["initializers"].clone()).unwrap();
    let expected = expected_initializers(state_dict, folded);
    assert_eq!(initializers, expected, "{}", spec.name);
    let [c, h, w] = spec.input;
    assert_eq!(report["inputs"], json!([["input", ["batch", c, h, w]]]));
    assert_eq!(
        report["outputs"],
        json!([["logits", ["batch", spec.num_classes]]])
    );
    let norms = ir
        .layers()
        .filter(|(_, l)| l.kind.class_name().starts_with("BatchNorm"))
        .count();
    let nodes = report["nodes"].as_array().unwrap();
    let ops = |op: &str| nodes.iter().filter(|n| n[0] == op).count();
    let folded_norms = if folded { norms } else { 0 };
    assert_eq!(ops("BatchNormalization"), norms - folded_norms);
    // Every layer a node but the folded BatchNorms, and the head's AveragePool and Flatten.
    assert_eq!(nodes.len(), ir.layers().count() - folded_norms + 2);
    assert_eq!(nodes[0], json!(["Conv", "features.conv0"]));
}

/// The largest `|a − b|` and the largest `|b|`.
fn deviation(a: &Tensor, b: &Tensor) -> (f64, f64) {
    let diff = (a - b).abs().max().double_value(&[]);
    (diff, b.abs().max().double_value(&[]))
}

#[test]
fn onnx_runtime_agrees_with_the_network() {
    let dir = tempdir();
    let cases = cases();
    // PyTorch's weights: each model's init, then BatchNorm's affine parameters and statistics
    // redrawn as training leaves them (reference.py's randomize_bn); .safetensors and .pt. And
    // PyTorch's state_dict keys, in its order.
    let commands: Vec<Vec<String>> = cases
        .iter()
        .enumerate()
        .flat_map(|(seed, case)| {
            let (seed, prefix) = (seed.to_string(), file_in(&dir, &case.ir.spec.name));
            let config = config(&case.ir.spec);
            let weights = [
                "train", "--config", &config, "--seed", &seed, "--steps", "0",
            ];
            let weights = [
                &weights[..],
                &["--randomize-bn", &seed, "--out-prefix", &prefix],
            ];
            [
                cmd(&weights.concat()),
                cmd(&["state-dict", "--config", &config]),
            ]
        })
        .collect();
    let Some(results) = reference(&commands) else {
        return;
    };
    let state_dicts: Vec<Vec<String>> = results
        .chunks(2)
        .map(|pair| {
            let keys = pair[1]["keys"]
                .as_array()
                .expect("state-dict lists the keys");
            keys.iter()
                .map(|k| k[0].as_str().unwrap().to_owned())
                .collect()
        })
        .collect();

    let networks: Vec<(Weights, Vec<(String, Tensor)>)> = cases
        .iter()
        .map(|case| {
            let name = &case.ir.spec.name;
            let weights = file_in(&dir, &format!("{name}.safetensors"));
            let inputs = file_in(&dir, &format!("{name}.inputs.safetensors"));
            network_outputs(&case.ir, &weights, &inputs)
        })
        .collect();
    let mut jobs = Vec::new();
    let mut expected = Vec::new();
    for ((case, (weights, outputs)), state_dict) in cases.iter().zip(&networks).zip(&state_dicts) {
        let name = &case.ir.spec.name;
        for fold_bn in [false, true] {
            let stem = format!("{name}{}", if fold_bn { ".folded" } else { "" });
            let onnx = file_in(&dir, &format!("{stem}.onnx"));
            let bytes = onnx::export(&case.ir, weights, Options { fold_bn }).unwrap();
            std::fs::write(&onnx, bytes).unwrap();
            let ort = file_in(&dir, &format!("{stem}.ort.safetensors"));
            let inputs = file_in(&dir, &format!("{name}.inputs.safetensors"));
            jobs.push(json!({"onnx": onnx, "inputs": inputs, "outputs": ort}));
            expected.push((case, state_dict, fold_bn, ort, outputs));
        }
    }
    let Some(reports) = onnx_check(&jobs, &dir) else {
        return;
    };
    assert_eq!(reports.len(), jobs.len());
    for (report, (case, state_dict, folded, ort, outputs)) in reports.iter().zip(&expected) {
        check_report(report, &case.ir, state_dict, *folded);
        let ort = Tensor::read_safetensors(ort).unwrap();
        assert_eq!(ort.len(), outputs.len());
        for (name, ours) in outputs.iter() {
            let (_, theirs) = ort
                .iter()
                .find(|(n, _)| n == name)
                .expect("every batch ran");
            let (diff, scale) = deviation(theirs, ours);
            eprintln!(
                "{} folded={folded} {name}: max |ort - vggdsl| = {diff:.2e}, max |logit| = {scale:.3}",
                case.ir.spec.name
            );
            assert!(
                diff <= TOLERANCE * scale.max(1.0),
                "{} (folded: {folded}), {name}: ONNX Runtime's logits differ by {diff:e}, the \
                 largest is {scale}",
                case.ir.spec.name
            );
        }
    }

    // The command writes those files: from safetensors, and from torch.save archives (an
    // OrderedDict, and a plain dict).
    let case = cases
        .iter()
        .find(|c| c.ir.spec.name == "BnNonSquare")
        .unwrap();
    for (weights, fold_bn) in [
        ("BnNonSquare.safetensors", false),
        ("BnNonSquare.safetensors", true),
        ("BnNonSquare.pt", false),
        ("BnNonSquare_plain.pt", true),
    ] {
        let out = file_in(&dir, &format!("{weights}.{fold_bn}.onnx"));
        export(case, &file_in(&dir, weights), &out, fold_bn);
        let stem = if fold_bn {
            "BnNonSquare.folded"
        } else {
            "BnNonSquare"
        };
        let library = std::fs::read(file_in(&dir, &format!("{stem}.onnx"))).unwrap();
        assert!(std::fs::read(&out).unwrap() == library, "{weights}");
    }
}

// ---- what the command refuses -----------------------------------------------------------------

const MODELS: &str = "tests/models/onnx.vgg";

/// The run-time network's own state_dict of `model` (of `tests/models/onnx.vgg`), as
/// `(key, tensor)` in file order.
fn state_dict(model: &str) -> Vec<(String, Tensor)> {
    let nets = vggdsl::load(&common::read(MODELS), MODELS).unwrap();
    let ir = nets.iter().find(|n| n.spec.name == model).unwrap();
    let vs = VarStore::new(Device::Cpu);
    let _rng = rng();
    tch::manual_seed(1);
    Network::new(&vs.root(), ir);
    let mut tensors: Vec<(String, Tensor)> = vs.variables().into_iter().collect();
    tensors.sort_by(|a, b| a.0.cmp(&b.0));
    tensors
}

fn save(tensors: &[(String, Tensor)], path: &str) {
    Tensor::write_safetensors(tensors, path).unwrap();
}

/// Runs `export` of `model` with `weights` to `out`, expecting exit `code` and one error line;
/// returns the line. A refused export leaves no file at `out`, and none beside it.
fn refused(model: &str, weights: &str, out: &str, code: i32) -> String {
    let output = vggdsl(&[
        "export",
        &repo(MODELS),
        "--model",
        model,
        "--weights",
        weights,
        "-o",
        out,
    ]);
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert_eq!(output.status.code(), Some(code), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.starts_with("error: "), "{stderr}");
    let dir = Path::new(out).parent().unwrap();
    if dir.is_dir() {
        for entry in std::fs::read_dir(dir).unwrap() {
            let name = entry.unwrap().file_name().into_string().unwrap();
            assert!(!name.ends_with(".partial"), "{name} left behind");
        }
    }
    stderr.trim_end().to_owned()
}

#[test]
fn refuses_weights_of_another_model() {
    let dir = tempdir();
    let out = file_in(&dir, "net.onnx");
    let weights = file_in(&dir, "w.safetensors");
    let tensors = state_dict("BnNonSquare");
    save(&tensors, &weights);
    // 14 of NoBnGray's 15 keys differ (its num_batches_tracked is the same), and 24 of
    // BnNonSquare's are not NoBnGray's: norm0, norm2, conv3, norm3, conv5 and norm5.
    assert_eq!(
        refused("NoBnGray", &weights, &out, 1),
        format!(
            "error: {weights} holds weights of another model than NoBnGray: shape mismatch for \
             features.conv0.weight: the model expects [6, 1, 3, 3], the weights have \
             [8, 3, 3, 3] (and 37 more differences)"
        )
    );
    let without = |key: &str| -> Vec<(String, Tensor)> {
        let kept = tensors.iter().filter(|(k, _)| k != key);
        kept.map(|(k, t)| (k.clone(), t.shallow_clone())).collect()
    };
    save(&without("features.norm3.running_var"), &weights);
    assert_eq!(
        refused("BnNonSquare", &weights, &out, 1),
        format!(
            "error: {weights} holds weights of another model than BnNonSquare: missing key \
             features.norm3.running_var: the model's [16] is not in the weights"
        )
    );
    let mut extra = without("");
    extra.push((
        "features.conv9.weight".into(),
        Tensor::zeros([2], (Kind::Float, Device::Cpu)),
    ));
    save(&extra, &weights);
    assert_eq!(
        refused("BnNonSquare", &weights, &out, 1),
        format!(
            "error: {weights} holds weights of another model than BnNonSquare: unexpected key \
             features.conv9.weight: the weights' [2] is not in the model"
        )
    );
    let mut double = without("");
    double[0].1 = double[0].1.to_kind(Kind::Double);
    save(&double, &weights);
    let key = &double[0].0;
    assert_eq!(
        refused("BnNonSquare", &weights, &out, 1),
        format!(
            "error: {key} in {weights} has dtype F64; export reads float32 weights (and int64 \
             counters)"
        )
    );
    let missing = file_in(&dir, "missing.safetensors");
    let error = refused("BnNonSquare", &missing, &out, 2);
    assert!(
        error.starts_with(&format!("error: cannot read {missing}: ")),
        "{error}"
    );
    let text = file_in(&dir, "text.safetensors");
    std::fs::write(&text, "not weights").unwrap();
    assert_eq!(
        refused("BnNonSquare", &text, &out, 1),
        format!(
            "error: {text} is neither a safetensors file nor a torch.save archive (it starts \
             with no safetensors header); export reads .safetensors and .pt files"
        )
    );
}

/// Refused rather than warned about: one NaN or infinity makes every output NaN.
#[test]
fn refuses_nan_and_infinite_weights() {
    let dir = tempdir();
    let out = file_in(&dir, "net.onnx");
    let weights = file_in(&dir, "w.safetensors");
    for (key, value, shown) in [
        ("features.conv2.weight", f64::NAN, "NaN"),
        ("classifier.norm1.running_mean", f64::INFINITY, "inf"),
        ("classifier.linear2.bias", f64::NEG_INFINITY, "-inf"),
    ] {
        let tensors = state_dict("BnNonSquare");
        let (_, t) = tensors.iter().find(|(k, _)| k == key).unwrap();
        // fill_ returns its tensor, which is `t`'s element.
        let _ = tch::no_grad(|| t.view([-1]).get(5).fill_(value));
        save(&tensors, &weights);
        assert_eq!(
            refused("BnNonSquare", &weights, &out, 1),
            format!(
                "error: cannot export BnNonSquare with {weights}: {key} holds {shown} at index 5: \
                 a NaN or infinite weight makes every output NaN, so the model is not exported"
            )
        );
    }
    let tensors = state_dict("BnNonSquare");
    let (_, t) = tensors
        .iter()
        .find(|(k, _)| k == "features.norm0.running_var")
        .unwrap();
    let _ = tch::no_grad(|| t.get(3).fill_(-0.25));
    save(&tensors, &weights);
    assert_eq!(
        refused("BnNonSquare", &weights, &out, 1),
        format!(
            "error: cannot export BnNonSquare with {weights}: features.norm0.running_var holds \
             -0.25 at index 3: a variance cannot be negative"
        )
    );
}

#[test]
fn never_writes_over_its_inputs() {
    let dir = tempdir();
    let weights = file_in(&dir, "w.safetensors");
    save(&state_dict("BnNonSquare"), &weights);
    let model = file_in(&dir, "models.vgg");
    std::fs::copy(repo(MODELS), &model).unwrap();
    let (model_link, weights_link) = (
        file_in(&dir, "model-link"),
        file_in(&dir, "weights-hard-link"),
    );
    std::os::unix::fs::symlink(&model, &model_link).unwrap();
    std::fs::hard_link(&weights, &weights_link).unwrap();
    let before = (
        std::fs::read(&model).unwrap(),
        std::fs::read(&weights).unwrap(),
    );
    for (out, what) in [
        (&model, "the model file"),
        (&model_link, "the model file"),
        (&weights, "the weights file"),
        (&weights_link, "the weights file"),
    ] {
        let args = [
            "export",
            &model,
            "--model",
            "BnNonSquare",
            "--weights",
            &weights,
            "-o",
            out,
        ];
        let output = vggdsl(&args);
        assert_eq!(output.status.code(), Some(1), "{out}");
        assert_eq!(
            String::from_utf8(output.stderr).unwrap(),
            format!("error: cannot write {out}: it is {what}\n")
        );
    }
    let after = (
        std::fs::read(&model).unwrap(),
        std::fs::read(&weights).unwrap(),
    );
    assert!(before == after, "an input changed");
}

#[test]
fn reports_an_output_it_cannot_write() {
    let dir = tempdir();
    let weights = file_in(&dir, "w.safetensors");
    save(&state_dict("BnNonSquare"), &weights);
    let folder = file_in(&dir, "no-such-folder");
    let out = format!("{folder}/net.onnx");
    assert_eq!(
        refused("BnNonSquare", &weights, &out, 1),
        format!("error: cannot write {out}: the folder {folder} does not exist")
    );
    let out = file_in(&dir, "");
    let out = out.trim_end_matches('/');
    assert_eq!(
        refused("BnNonSquare", &weights, out, 1),
        format!("error: cannot write {out}: it is a folder")
    );
    // An existing file is replaced whole; a device is written as a stream.
    let out = file_in(&dir, "net.onnx");
    std::fs::write(&out, "old").unwrap();
    for out in [out.as_str(), "/dev/null"] {
        let args = [
            "export",
            &repo(MODELS),
            "--model",
            "BnNonSquare",
            "--weights",
            &weights,
        ];
        let output = vggdsl(&[&args[..], &["-o", out]].concat());
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    assert!(std::fs::read(&out).unwrap().len() > 1000);
}
