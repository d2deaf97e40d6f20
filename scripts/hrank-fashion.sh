#!/usr/bin/env bash
# PRUNING.md's experiment: train examples/fashion_tiny.vgg on Fashion-MNIST, rank it, prune it to
# compress_rate [0.3] * 4 (52% of the MACs removed) by rank, by L1 norm and at random, fine-tune each
# the same way, and evaluate every step. Every command is echoed with its wall time.
#   scripts/hrank-fashion.sh [VGGDSL] [OUT_DIR]     (defaults: target/release/vggdsl, target/pruning)
# Fashion-MNIST comes from Debian's dataset-fashion-mnist (/usr/share/datasets/fashion-mnist).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
vggdsl=$(realpath "${1:-$root/target/release/vggdsl}")
out=${2:-$root/target/pruning}
mkdir -p "$out" && cd "$out"
cp "$root/examples/fashion_tiny.vgg" .
rates='[0.3] * 4'
finetune=(--recipe hrankplus --epochs 2 --schedule cosine)

step() {  # echo the command, run it, report its wall time
    echo "\$ vggdsl ${*:2}"
    local start=$SECONDS
    "$vggdsl" "${@:2}" 2>&1 | tee "$1.log"
    echo "[$1: $((SECONDS - start)) s]"
}

[ -e runs/base/last.safetensors ] || step train train fashion_tiny.vgg --out runs/base
step eval-base eval fashion_tiny.vgg --weights runs/base/last.safetensors
step rank rank fashion_tiny.vgg --weights runs/base/last.safetensors --out ranks
for by in rank l1 random; do
    ranks=(); [ $by = rank ] && ranks=(--ranks ranks/ranks.json)
    step cut-$by prune fashion_tiny.vgg --weights runs/base/last.safetensors "${ranks[@]}" \
        --by $by --compress-rate "$rates" --out by-$by
    step eval-cut-$by eval by-$by/model.vgg --weights by-$by/model.safetensors
    step finetune-$by train by-$by/model.vgg --init by-$by/model.safetensors \
        "${finetune[@]}" --out runs/finetune-$by
    step eval-finetuned-$by eval by-$by/model.vgg --weights runs/finetune-$by/last.safetensors
done
