#!/usr/bin/env bash
# PRUNING.md's experiment: train a small VGG on Fashion-MNIST (by default examples/fashion_mnist.vgg
# with its own train block: 10 epochs), rank it, prune it to compress_rate [0.3] * 4 (every conv
# keeps int(0.7·c) filters: 51.3% of FashionVgg's MACs removed) by rank, by L1 norm and at random,
# fine-tune each pruned model the same way (HRankPlus's recipe, FINETUNE_EPOCHS epochs, default 3,
# with a cosine schedule), and evaluate every step. Every command is echoed with its wall time.
#   scripts/hrank-fashion.sh [VGGDSL] [OUT_DIR] [MODEL.vgg]
#     defaults: target/release/vggdsl, target/pruning, examples/fashion_mnist.vgg
# An existing OUT_DIR/runs/base/last.safetensors (e.g. a symlink to the run of
# `vggdsl train examples/fashion_mnist.vgg --threads 1`) is used as the unpruned model.
# Fashion-MNIST comes from Debian's dataset-fashion-mnist (/usr/share/datasets/fashion-mnist).
# THREADS (default 1) is libtorch's thread count: on a shared 2-core machine one thread is several
# times faster than libtorch's default of one per core (TRAINING.md, "Threads on a loaded machine").
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
vggdsl=$(realpath "${1:-$root/target/release/vggdsl}")
out=${2:-$root/target/pruning}
model=$(realpath "${3:-$root/examples/fashion_mnist.vgg}")
mkdir -p "$out" && cd "$out"
cp "$model" base.vgg
rates='[0.3] * 4'
threads=(--threads "${THREADS:-1}")
finetune=(--recipe hrankplus --epochs "${FINETUNE_EPOCHS:-3}" --schedule cosine)

step() {  # echo the command, run it, report its wall time
    echo "\$ vggdsl ${*:2}"
    local start=$SECONDS
    "$vggdsl" "${@:2}" 2>&1 | tee "$1.log"
    echo "[$1: $((SECONDS - start)) s]"
}

[ -e runs/base/last.safetensors ] || step train train base.vgg "${threads[@]}" --out runs/base
step eval-base eval base.vgg "${threads[@]}" --weights runs/base/last.safetensors
step rank rank base.vgg "${threads[@]}" --weights runs/base/last.safetensors --out ranks
for by in rank l1 random; do
    ranks=(); [ $by = rank ] && ranks=(--ranks ranks/ranks.json)
    step cut-$by prune base.vgg --weights runs/base/last.safetensors "${ranks[@]}" \
        --by $by --compress-rate "$rates" --out by-$by
    step eval-cut-$by eval by-$by/model.vgg "${threads[@]}" --weights by-$by/model.safetensors
    step finetune-$by train by-$by/model.vgg --init by-$by/model.safetensors "${threads[@]}" \
        "${finetune[@]}" --out runs/finetune-$by
    step eval-finetuned-$by eval by-$by/model.vgg "${threads[@]}" \
        --weights runs/finetune-$by/last.safetensors
done
