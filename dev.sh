#!/usr/bin/env bash
# The two commands of the README, with all set-up included:
#   ./dev.sh seed   compile examples/vgg16_bn.vgg, build the generated code, run it on a random batch
#   ./dev.sh test   every test of the workspace (Rust and the PyTorch reference checks)
#   ./dev.sh bench  the benchmark against PyTorch (see BENCHMARKS.md)
# libtorch: $LIBTORCH if set, else torch==2.13.0 from PyPI in a cache outside the checkout.
set -euo pipefail
cd "$(dirname "$0")"
eval "$(bash scripts/setup-libtorch.sh)"

case "${1:-}" in
  seed)
    mkdir -p target/generated
    cargo run --quiet --bin vggdsl -- compile examples/vgg16_bn.vgg -o target/generated/vgg16_bn.rs
    echo "compiled examples/vgg16_bn.vgg -> target/generated/vgg16_bn.rs"
    cargo run --quiet --release --example seed
    ;;
  test)
    "$VGGDSL_PYTHON" tests/python/selfcheck.py
    cargo test --workspace --no-fail-fast
    ;;
  bench)
    cargo build --quiet --release --bin vggdsl
    cargo run --quiet --release --example bench -- --vggdsl target/release/vggdsl "${@:2}"
    ;;
  *)
    echo "usage: ./dev.sh seed | test | bench" >&2
    exit 2
    ;;
esac
