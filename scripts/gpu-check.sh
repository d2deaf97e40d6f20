#!/usr/bin/env bash
# vggdsl on a CUDA GPU, which CI cannot check (it has none): one command, a few minutes on one GPU.
#   scripts/gpu-check.sh [--require-gpu] [OUT_DIR]        OUT_DIR defaults to target/gpu-check
# It builds the vggdsl command and examples/gpu_bench.rs, then, on examples/fashion_tiny.vgg and a
# slice of Fashion-MNIST (Debian's dataset-fashion-mnist, /usr/share/datasets/fashion-mnist):
#   CPU (always): trains one epoch, evaluates, ranks and sweeps the sensitivity of the result on
#     the CPU; checks that a GPU libtorch does not see is refused in one sentence (exit 2); runs
#     the comparisons below (each output against itself) and the benchmark briefly on the CPU.
#   CUDA (when libtorch sees a GPU; DEVICE=cuda:N picks one, default cuda:0): trains the same epoch
#     with --device, loads its checkpoint on the CPU (checkpoints are CPU copies), evaluates,
#     ranks and sweeps the CPU run's weights on the GPU against the CPU's figures, and benchmarks
#     to_inference() against eager forward_t(eval) on the GPU (interleaved iteration by
#     iteration, medians of the per-iteration speed-ups, outputs checked to agree).
# Tolerances, GPU against CPU (cuDNN may run convolutions in TF32, about 1e-3 relative, which
# flips the odd near-tie): accuracies within 1 percentage point, losses within 2 %, every filter's
# mean rank within 0.25; the GPU run's test accuracy within 3 points of the CPU run's (the same
# initial weights and batches, different rounding for a whole epoch).
# Exit codes: 0 every check that ran passed; without a GPU the CUDA checks are skipped, and the
# last line says so. 1 a check failed. 3 no GPU, with --require-gpu.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
require_gpu=0
if [ "${1:-}" = --require-gpu ]; then require_gpu=1; shift; fi
out=$(realpath -m "${1:-$root/target/gpu-check}")
device=${DEVICE:-cuda:0}
cd "$root"
eval "$(bash scripts/setup-libtorch.sh)"

say() { printf '== %s\n' "$*"; }
fail() { printf 'gpu-check: FAILED: %s\n' "$*" >&2; exit 1; }

say "building vggdsl and examples/gpu_bench"
cargo build --quiet --profile test --bin vggdsl --example gpu_bench
bin=$(cargo metadata --format-version 1 --no-deps |
  "$VGGDSL_PYTHON" -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')/debug
vggdsl=$bin/vggdsl
bench=$bin/examples/gpu_bench

rm -rf "$out" && mkdir -p "$out"
model=$root/examples/fashion_tiny.vgg
slice=(--limit-train 11000 --val-size 1000 --limit-test 2000)
rank=(--limit 2 --batch-size 128)
sweep=(--by l1 --rates 0.5 --limit-train 11000 --val-size 1000)

# `compare KIND A B`: the figures of two JSON outputs within the tolerances above.
compare() {
  "$VGGDSL_PYTHON" - "$@" <<'EOF'
import json, sys
kind, a, b = sys.argv[1:4]
load = lambda p: json.load(open(p))
x, y = load(a), load(b)
def close(what, u, v, tol, rel=False):
    off = abs(u - v) / max(abs(v), 1e-12) if rel else abs(u - v)
    print(f"  {what}: {u:.6g} against {v:.6g} (off {off:.3g}, tolerance {tol})")
    if not off <= tol:
        sys.exit(f"gpu-check: FAILED: {what} differs beyond the tolerance")
if kind == "eval":
    close("accuracy", x["accuracy"], y["accuracy"], 0.01)
    close("loss", x["loss"], y["loss"], 0.02, rel=True)
elif kind == "ranks":
    if [len(r) for r in x["ranks"].values()] != [len(r) for r in y["ranks"].values()]:
        sys.exit("gpu-check: FAILED: the ranks are of other convs")
    worst = max(abs(u - v) for conv in x["ranks"]
                for u, v in zip(x["ranks"][conv], y["ranks"][conv]))
    close("largest difference of a filter's mean rank", worst, 0.0, 0.25)
elif kind == "sensitivity":
    close("unpruned accuracy", x["unpruned"]["accuracy"], y["unpruned"]["accuracy"], 0.01)
    for c, d in zip(x["convs"], y["convs"]):
        for p, q in zip(c["points"], d["points"]):
            close(f"{c['name']} at {p['rate']}: accuracy", p["accuracy"], q["accuracy"], 0.01)
elif kind == "train":
    u, v = (json.loads(open(p).read().splitlines()[-1])["test_accuracy"] for p in (a, b))
    close("test accuracy after one epoch", u, v, 0.03)
EOF
}

say "CPU: one epoch of FashionTiny, then eval, rank and sensitivity"
"$vggdsl" train "$model" --epochs 1 "${slice[@]}" --out "$out/cpu-run" --device cpu
weights=$out/cpu-run/last.safetensors
"$vggdsl" eval "$model" --weights "$weights" --limit-test 2000 --json --device cpu > "$out/eval-cpu.json"
"$vggdsl" rank "$model" --weights "$weights" "${rank[@]}" --out "$out/ranks-cpu" --device cpu > /dev/null
"$vggdsl" sensitivity "$model" --weights "$weights" "${sweep[@]}" --out "$out/sens-cpu" --device cpu > /dev/null
"$VGGDSL_PYTHON" -c 'import json, sys; r = json.load(open(sys.argv[1])); print("  accuracy %.4f, loss %.4f on %d test images" % (r["accuracy"], r["loss"], r["images"]))' "$out/eval-cpu.json"

gpus=$("$bench" --cuda-devices)
if [ "$gpus" = 0 ]; then
  say "CPU: a GPU libtorch does not see is refused in one sentence"
  set +e
  "$vggdsl" eval "$model" --weights "$weights" --device cuda 2> "$out/no-gpu.txt"
  code=$?
  set -e
  cat "$out/no-gpu.txt"
  [ "$code" = 2 ] || fail "eval --device cuda exited with $code, not 2"
  grep -qx 'error: --device cuda:0 is not available: this machine has no CUDA device (libtorch sees 0); use --device cpu' \
    "$out/no-gpu.txt" || fail "eval --device cuda did not say the GPU is missing in one sentence"
  say "CPU: the comparisons, each output against itself (so that they run here too)"
  compare train "$out/cpu-run/metrics.jsonl" "$out/cpu-run/metrics.jsonl"
  compare eval "$out/eval-cpu.json" "$out/eval-cpu.json"
  compare ranks "$out/ranks-cpu/ranks.json" "$out/ranks-cpu/ranks.json"
  compare sensitivity "$out/sens-cpu/sensitivity.json" "$out/sens-cpu/sensitivity.json"
  say "CPU: to_inference() against eager, briefly (the GPU's run is the real one)"
  "$bench" --device cpu --batches 1,16 --iters 5
  echo "gpu-check: the CPU checks passed; the CUDA checks were SKIPPED: libtorch sees no CUDA device on this machine (no GPU, or no driver)"
  [ "$require_gpu" = 1 ] && exit 3
  exit 0
fi

say "CUDA: libtorch sees $gpus device(s); checking $device"
command -v nvidia-smi > /dev/null && nvidia-smi --query-gpu=index,name,driver_version,memory.total --format=csv,noheader
say "CUDA: one epoch of FashionTiny with --device $device"
"$vggdsl" train "$model" --epochs 1 "${slice[@]}" --out "$out/gpu-run" --device "$device"
compare train "$out/gpu-run/metrics.jsonl" "$out/cpu-run/metrics.jsonl"
say "CUDA: the GPU run's checkpoint loads and evaluates on the CPU"
"$vggdsl" eval "$model" --weights "$out/gpu-run/last.safetensors" --limit-test 2000 --json --device cpu > "$out/eval-gpu-run-on-cpu.json"
say "CUDA: eval on $device against the CPU (the CPU run's weights)"
"$vggdsl" eval "$model" --weights "$weights" --limit-test 2000 --json --device "$device" > "$out/eval-gpu.json"
compare eval "$out/eval-gpu.json" "$out/eval-cpu.json"
say "CUDA: rank on $device against the CPU"
"$vggdsl" rank "$model" --weights "$weights" "${rank[@]}" --out "$out/ranks-gpu" --device "$device" > /dev/null
compare ranks "$out/ranks-gpu/ranks.json" "$out/ranks-cpu/ranks.json"
say "CUDA: sensitivity on $device against the CPU"
"$vggdsl" sensitivity "$model" --weights "$weights" "${sweep[@]}" --out "$out/sens-gpu" --device "$device" > /dev/null
compare sensitivity "$out/sens-gpu/sensitivity.json" "$out/sens-cpu/sensitivity.json"
say "CUDA: to_inference() against eager on $device"
"$bench" --device "$device" --batches 1,16,64,256 --iters 21
echo "gpu-check: every check passed on the CPU and on $device"
