#!/usr/bin/env bash
# The two commands of the README, with all set-up included:
#   ./dev.sh seed   compile examples/vgg16_bn.vgg, build the generated code, run it on a random batch
#   ./dev.sh test   every test of the workspace (Rust and the PyTorch reference checks)
#   ./dev.sh bench  the benchmark against PyTorch, on this CPU's ISA and on AVX2: BENCHMARKS.md's
#                   tables and docs/img/bench.svg
#   ./dev.sh pictures  the pictures of PRUNING.md and docs/rust.md (docs/img/*.svg), DDP training runs included
# libtorch: $LIBTORCH if set, else torch==2.13.0 from PyPI in a cache outside the checkout.
set -euo pipefail
cd "$(dirname "$0")"
eval "$(bash scripts/setup-libtorch.sh)"

# Every test binary of the workspace, its doc tests and the PyTorch reference's self-check, two at a
# time. `cargo test` runs one at a
# time, and most binaries spend their time in one long test or waiting on a PyTorch process, which
# left a core idle; two cargo processes would resolve the packages' features apart and build twice.
# The longest start first (each binary's time in the last run is kept in the target folder), so
# that no long one starts last. Each binary runs as `cargo test` runs it (from its package's
# folder, with its CARGO_ variables and Rust's own libraries on the library path) and prints its
# output whole when it ends.
# The target folder cargo builds into (`target/`, or CARGO_TARGET_DIR).
target_dir() {
  cargo metadata --format-version 1 --no-deps |
    "$VGGDSL_PYTHON" -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])'
}

run_tests() {
  local logs times libs cargo rc=0 failed=()
  logs=$(mktemp -d)
  times=$(target_dir)/test-times
  mkdir -p "$times"
  # One line per test binary, longest first (unknown ones first of all): name, executable,
  # package folder, package name.
  cargo test --workspace --no-run --quiet --message-format=json-render-diagnostics |
    "$VGGDSL_PYTHON" -c '
import json, os, sys
times, rows = sys.argv[1], []
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["profile"]["test"]:
        folder = os.path.dirname(m["manifest_path"])
        package = m["package_id"].split("#")[-1].split("@")[0]
        package = os.path.basename(folder) if package[0].isdigit() else package
        name = package + "-" + m["target"]["name"] + "-" + "-".join(m["target"]["kind"])
        try:
            seconds = float(open(os.path.join(times, name)).read())
        except (OSError, ValueError):
            seconds = float("inf")
        rows.append((-seconds, name, m["executable"], folder, package))
for row in sorted(rows):
    print(*row[1:], sep="\t")
' "$times" > "$logs/binaries"
  run_one() { # name command...
    local t0=$SECONDS status=0
    "${@:2}" > "$logs/$1.log" 2>&1 || status=$?
    echo "$status" > "$logs/$1.status"
    echo "$((SECONDS - t0))" > "$times/$1"
    flock "$logs/binaries" cat "$logs/$1.log"
    echo "test binary $1: $([ "$status" = 0 ] && echo ok || echo "FAILED ($status)") in $((SECONDS - t0)) s" >&2
  }
  libs=$(rustc --print target-libdir)
  cargo=$(command -v cargo)
  run_one selfcheck "$VGGDSL_PYTHON" test-support/python/selfcheck.py &
  run_one doc-tests cargo test --workspace --doc --quiet &
  while IFS=$'\t' read -r name exe folder package; do
    while [ "$(jobs -rp | wc -l)" -ge 2 ]; do wait -n || true; done
    (cd "$folder" && CARGO=$cargo CARGO_MANIFEST_DIR=$folder CARGO_PKG_NAME=$package \
      LD_LIBRARY_PATH=$libs:$(dirname "$exe")${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH} \
      run_one "$name" "$exe") &
  done < "$logs/binaries"
  wait
  for status in "$logs"/*.status; do
    [ "$(cat "$status")" = 0 ] || { failed+=("$(basename "$status" .status)"); rc=1; }
  done
  rm -rf "$logs"
  [ "$rc" = 0 ] || { echo "failed: ${failed[*]}" >&2; return "$rc"; }
  echo "every test binary passed" >&2
}

case "${1:-}" in
  seed)
    # The build `./dev.sh test` makes (and reuses): the tests' profile (libtorch does the
    # arithmetic, so an optimised build would change only the build time) and the workspace's
    # features with its examples (a lone `cargo run` resolves dependencies' features differently
    # and would build them again).
    cargo build --quiet --profile test --workspace --bins --examples
    bin=$(target_dir)/debug
    mkdir -p target/generated
    "$bin/vggdsl" compile examples/vgg16_bn.vgg -o target/generated/vgg16_bn.rs
    echo "compiled examples/vgg16_bn.vgg -> target/generated/vgg16_bn.rs"
    "$bin/examples/seed"
    ;;
  test)
    # Test threads and the PyTorch reference process run libtorch side by side on few cores:
    # OpenMP's default of spinning while it waits for work made each starve the other (the
    # fidelity tests took 3x as long).
    OMP_WAIT_POLICY=PASSIVE run_tests
    ;;
  bench)
    # BENCHMARKS.md's tables (printed), once under this machine's own ISA and once under the AVX2
    # emulation (aten's, oneDNN's, MKL's and vggdsl's AVX2 kernels on an AVX-512 machine), and the
    # picture of the first (docs/img/bench.svg).
    cargo build --quiet --release --bin vggdsl
    mkdir -p target/bench
    for isa in native avx2; do
      emulation=()
      [ "$isa" = avx2 ] && emulation=(ONEDNN_MAX_CPU_ISA=AVX2 ATEN_CPU_CAPABILITY=avx2 MKL_ENABLE_INSTRUCTIONS=AVX2)
      echo "## ISA: $isa"
      env "${emulation[@]}" cargo run --quiet --release --example bench -- \
        --vggdsl target/release/vggdsl --json "target/bench/results-$isa.json" "${@:2}"
    done
    target/release/vggdsl plot bench target/bench/results-native.json -o docs/img/bench.svg
    ;;
  pictures)
    # The widths of the seed and its HRank pruning; then both trained for 10 epochs by
    # examples/ddp_train.py with 2 CPU processes on generated data, and their curves.
    vggdsl() { cargo run --quiet --no-default-features --bin vggdsl -- "$@"; }
    runs=target/pictures
    mkdir -p docs/img "$runs"
    vggdsl plot widths examples/vgg16_bn.vgg examples/hrank_vgg16_pruned.vgg -o docs/img/widths.svg
    for model in vgg16_bn hrank_vgg16_pruned; do
      vggdsl compile --target pytorch "examples/$model.vgg" -o "$runs/$model.py"
    done
    for run in vgg16_bn:Vgg16Bn hrank_vgg16_pruned:Vgg16BnHrank; do
      "$VGGDSL_PYTHON" -m torch.distributed.run --standalone --nproc_per_node=2 examples/ddp_train.py \
        "$runs/${run%%:*}.py" --out-dir "$runs/${run##*:}" --epochs 10
    done
    vggdsl plot training "$runs/Vgg16Bn" "$runs/Vgg16BnHrank" -o docs/img/training.svg
    echo "wrote docs/img/widths.svg and docs/img/training.svg"
    ;;
  *)
    echo "usage: ./dev.sh seed | test | bench | pictures" >&2
    exit 2
    ;;
esac
