"""PyTorch reference for `vggdsl prune --by bn|fpgm|taylor`: each criterion's filter scores and the
filters it keeps, on the seed model (`seed_vgg.VGG`, built from reference.py's JSON config), written
from the papers (and, for FPGM, its authors' definition), independently of vggdsl's code.

    python criteria.py --config JSON --weights W --images I --batch-size B --rates 0.5,0.25,... --out OUT

- bn (Liu et al. 2017, Network Slimming): a filter's score is |gamma| of the BatchNorm2d after its conv.
- fpgm (He et al. 2019): the conv weight flattened per filter; a filter's score is the sum of its
  Euclidean distances to all filters of the conv, in float64; the smallest sums are pruned.
- taylor (Molchanov et al. 2017, first-order Taylor expansion): at each conv block's output a (the
  ReLU, or the max-pool after it), per image and channel |mean over positions of a * dC/da|, averaged
  over images; C is the sum over the batch of the per-image cross-entropy, the model in eval mode; the
  batches are I's `images` and `labels`, B at a time, in order.

Each conv of width c with rate r keeps the int(c * (1 - r)) filters of highest score, the lower index
first among equal scores. OUT (JSON): {criterion: {"scores": {conv: [...]}, "kept": {conv: [...]}}}.
"""

import argparse
import json
import os
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from safetensors.torch import load_file  # noqa: E402

import hrank  # noqa: E402
import reference  # noqa: E402


def convs(model):
    """(name, conv, the module right after it) for every conv of the features, in order."""
    mods = list(model.features.named_children())
    return [(name, m, mods[i + 1][1]) for i, (name, m) in enumerate(mods) if isinstance(m, nn.Conv2d)]


def bn_scores(model):
    out = {}
    for name, _, after in convs(model):
        assert isinstance(after, nn.BatchNorm2d), 'a BatchNorm2d follows %s' % name
        out[name] = after.weight.detach().abs().double().tolist()
    return out


def fpgm_scores(model):
    out = {}
    for name, conv, _ in convs(model):
        w = conv.weight.detach().double().reshape(conv.weight.shape[0], -1)
        distances = ((w[:, None, :] - w[None, :, :]) ** 2).sum(-1).sqrt()
        out[name] = distances.sum(0).tolist()
    return out


def taylor_scores(model, images, labels, batch_size):
    model.eval()
    names = [name for name, _, _ in convs(model)]
    sums = [None] * len(names)
    for start in range(0, images.shape[0], batch_size):
        maps = []
        hooks = [model.features[i].register_forward_hook(lambda m, inp, out: maps.append(out))
                 for i in hrank.block_outputs(model)]
        loss = F.cross_entropy(model(images[start:start + batch_size]),
                               labels[start:start + batch_size], reduction='sum')
        for h in hooks:
            h.remove()
        grads = torch.autograd.grad(loss, maps)
        for k, (a, g) in enumerate(zip(maps, grads)):
            per_image = (a * g).mean(dim=(2, 3)).abs().double().sum(0)
            sums[k] = per_image if sums[k] is None else sums[k] + per_image
    return {name: (s / images.shape[0]).tolist() for name, s in zip(names, sums)}


def keep(scores, rates):
    kept = {}
    for (name, s), r in zip(scores.items(), rates):
        k = int(len(s) * (1 - r))
        order = sorted(range(len(s)), key=lambda i: (-s[i], i))
        kept[name] = sorted(order[:k])
    return kept


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--config', default='{}')
    ap.add_argument('--weights', required=True)
    ap.add_argument('--images', required=True)
    ap.add_argument('--batch-size', type=int, required=True)
    ap.add_argument('--rates', required=True)
    ap.add_argument('--out', required=True)
    args = ap.parse_args()
    model = reference.build_model(reference.parse_config(args.config))
    reference.load_weights(model, args.weights)
    data = load_file(args.images)
    rates = [float(r) for r in args.rates.split(',')]
    result = {}
    for criterion, scores in [('bn', bn_scores(model)), ('fpgm', fpgm_scores(model)),
                              ('taylor', taylor_scores(model, data['images'], data['labels'],
                                                       args.batch_size))]:
        result[criterion] = {'scores': scores, 'kept': keep(scores, rates)}
    with open(args.out, 'w') as f:
        json.dump(result, f)
    print(json.dumps({'out': args.out}))


if __name__ == '__main__':
    main()
