#!/usr/bin/env bash
# Finds or installs the libtorch that tch 0.26 needs (PyTorch 2.13.0 exactly) and prints the
# environment that cargo needs to build and run against it, as `export` lines.
#
#   eval "$(scripts/setup-libtorch.sh)"
#
# - LIBTORCH already set: it is used as it is (it must hold lib/ and include/).
# - otherwise torch==2.13.0 is installed from PyPI into a virtual environment in a versioned cache
#   folder outside the checkout (VGGDSL_CACHE, default ~/.cache/vggdsl), reused by every clone,
#   with what the tests' Python needs beside it: numpy, safetensors, and onnx and onnxruntime
#   (which check `vggdsl export`'s files). A venv that lacks them, or has other versions of
#   those two, gets them added; torch is not reinstalled.
set -euo pipefail

TORCH_VERSION=2.13.0
ONNX_VERSION=1.23.2
ONNXRUNTIME_VERSION=1.32.0
cache=${VGGDSL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/vggdsl}
venv="$cache/torch-$TORCH_VERSION"

say() { echo "setup-libtorch: $*" >&2; }
die() { say "error: $*"; exit 1; }

if [ -n "${LIBTORCH:-}" ]; then
  [ -d "$LIBTORCH/lib" ] && [ -d "$LIBTORCH/include" ] \
    || die "LIBTORCH=$LIBTORCH has no lib/ and include/; point it at a libtorch $TORCH_VERSION folder or unset it."
  libtorch=$LIBTORCH
  python=${VGGDSL_PYTHON:-python3}
else
  python="$venv/bin/python"
  if ! [ -x "$python" ] || ! "$python" -c "import torch, sys; sys.exit(torch.__version__.split('+')[0] != '$TORCH_VERSION')" 2>/dev/null; then
    command -v python3 >/dev/null || die "python3 is needed to install torch==$TORCH_VERSION from PyPI."
    say "installing torch==$TORCH_VERSION into $venv (about 2.6 GB, once per machine)"
    rm -rf "$venv.partial"
    python3 -m venv "$venv.partial" || die "python3 -m venv failed; install python3-venv."
    "$venv.partial/bin/pip" install --quiet --disable-pip-version-check \
      "torch==$TORCH_VERSION" numpy safetensors \
      "onnx==$ONNX_VERSION" "onnxruntime==$ONNXRUNTIME_VERSION" >&2 \
      || die "pip could not install torch==$TORCH_VERSION from PyPI (see above)."
    rm -rf "$venv"
    mv "$venv.partial" "$venv"
    # venv scripts hard-code their folder; the interpreter itself is all that is used here.
  elif ! "$python" -c "
import sys
from importlib.metadata import version, PackageNotFoundError
try:
    sys.exit((version('onnx'), version('onnxruntime')) != ('$ONNX_VERSION', '$ONNXRUNTIME_VERSION'))
except PackageNotFoundError:
    sys.exit(1)" 2>/dev/null; then
    say "installing onnx==$ONNX_VERSION and onnxruntime==$ONNXRUNTIME_VERSION into $venv"
    "$python" -m pip install --quiet --disable-pip-version-check \
      "onnx==$ONNX_VERSION" "onnxruntime==$ONNXRUNTIME_VERSION" >&2 \
      || die "pip could not install onnx==$ONNX_VERSION and onnxruntime==$ONNXRUNTIME_VERSION from PyPI (see above)."
  fi
  libtorch=$("$python" -c "import torch, os; print(os.path.dirname(torch.__file__))")
fi

[ -f "$libtorch/lib/libtorch_cpu.so" ] || die "no libtorch_cpu.so in $libtorch/lib."
echo "export LIBTORCH='$libtorch'"
echo "export VGGDSL_PYTHON='$python'"
echo "export LD_LIBRARY_PATH='$libtorch/lib'\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}"
