"""PyTorch reference for `vggdsl rank` and `vggdsl prune`: HRank's rank loop and HRankPlus-style surgery
on the seed model (`seed_vgg.VGG`), written from shared/HRANK.md's description (not copied).

    python hrank.py batch --commands JSON     # several command lines in one process (see reference.py)
    python hrank.py SUBCOMMAND [options]

Subcommands (each prints one JSON object):
  init     seeded model; --perturb also draws random BatchNorm statistics and affine parameters, conv
           and linear biases, so that surgery that forgets one of them shows
  ranks    HRank's loop: for each conv (the last one too), one pass over the images with a forward hook
           on its block output (the ReLU, or the max-pool right after it), and
           torch.linalg.matrix_rank per image and channel; per-image ranks saved as int64 [N, C]
  prune    the same kept filters cut out of the weights with index_select, the pruned model built and
           loaded strictly, its eval-mode output saved; --conv-only copies only the conv kernels into a
           fresh pruned model built after torch.manual_seed(--seed), as HRankPlus does
Configs are reference.py's JSON objects.
"""

import argparse
import json
import os
import sys
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
from safetensors.torch import load_file, save_file  # noqa: E402

import reference  # noqa: E402


def block_outputs(model):
    """The features index of every conv block's output, the last conv's included: the seed's relucfg
    and, for the last conv, its ReLU (or the pool right after it)."""
    mods = list(model.features.children())
    last_conv = max(i for i, m in enumerate(mods) if isinstance(m, nn.Conv2d))
    r = next(i for i in range(last_conv, len(mods)) if isinstance(mods[i], nn.ReLU))
    if r + 1 < len(mods) and isinstance(mods[r + 1], nn.MaxPool2d):
        r += 1
    return model.relucfg + [r]


def conv_names(model):
    return [name for name, m in model.features.named_children() if isinstance(m, nn.Conv2d)]


def cmd_init(args, config):
    torch.manual_seed(args.seed)
    model = reference.build_model(config)
    if args.perturb:
        with torch.no_grad():
            for m in model.modules():
                if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
                    m.weight.uniform_(0.5, 1.5)
                    m.bias.normal_(0, 0.1)
                    m.running_mean.normal_(0, 0.1)
                    m.running_var.uniform_(0.5, 2.0)
                    m.num_batches_tracked.fill_(7)
                elif isinstance(m, (nn.Conv2d, nn.Linear)):
                    m.bias.normal_(0, 0.1)
    save_file(reference.contiguous_state_dict(model), args.out)
    return {'out': args.out}


def hrank_loop(model, images, batch_size):
    """HRank's rank generation, extended to the last conv: per conv one pass over the images with a
    hook on its block output; matrix_rank per image and channel. Returns {conv name: int64 [N, C]}."""
    model.eval()
    ranks = {}
    for name, index in zip(conv_names(model), block_outputs(model)):
        per_image = []

        def hook(module, inputs, output):
            a = output.shape[0]
            b = output.shape[1]
            c = torch.tensor([[torch.linalg.matrix_rank(output[i, j, :, :]).item() for j in range(b)]
                              for i in range(a)], dtype=torch.int64)
            per_image.append(c)

        handle = model.features[index].register_forward_hook(hook)
        with torch.no_grad():
            for start in range(0, images.shape[0], batch_size):
                model(images[start:start + batch_size])
        handle.remove()
        ranks[name] = torch.cat(per_image)
    return ranks


def cmd_ranks(args, config):
    model = reference.build_model(config)
    reference.load_weights(model, args.weights)
    images = load_file(args.images)['images']
    start = time.perf_counter()
    ranks = hrank_loop(model, images, args.batch_size)
    seconds = time.perf_counter() - start
    save_file(ranks, args.out)
    return {'out': args.out, 'seconds': seconds, 'convs': list(ranks)}


def cmd_prune(args, config):
    pruned_config = json.loads(args.pruned_config)
    kept = {k: torch.tensor(v, dtype=torch.int64) for k, v in json.load(open(args.kept)).items()}
    full = load_file(args.weights)
    torch.manual_seed(args.seed)
    model = reference.build_model({**config, **pruned_config})
    names = conv_names(model)
    # key -> [(dim, indices)]: conv rows and input channels, BatchNorm rows, linear1's columns.
    slices, previous = {}, None
    for name in names:
        rows = kept[name]
        slices['features.%s.weight' % name] = [(0, rows)] + ([(1, previous)] if previous is not None else [])
        slices['features.%s.bias' % name] = [(0, rows)]
        norm = 'features.norm%s' % name[len('conv'):]
        for t in ('weight', 'bias', 'running_mean', 'running_var'):
            slices['%s.%s' % (norm, t)] = [(0, rows)]
        previous = rows
    per_channel = full['classifier.linear1.weight'].shape[1] // len(full['features.%s.bias' % names[-1]])
    columns = (previous[:, None] * per_channel + torch.arange(per_channel)[None, :]).reshape(-1)
    slices['classifier.linear1.weight'] = [(1, columns)]

    state = model.state_dict()
    for key in state:
        if args.conv_only and not (key.endswith('.weight') and key[len('features.'):].startswith('conv')):
            continue
        tensor = full[key]
        for dim, index in slices.get(key, []):
            tensor = tensor.index_select(dim, index)
        state[key] = tensor
    model.load_state_dict(state, strict=True)
    model.eval()
    x = load_file(args.input)['x']
    with torch.no_grad():
        out = {'output': model(x)}
    out.update(reference.contiguous_state_dict(model))
    save_file(out, args.out)
    return {'out': args.out}


def build_parser():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest='command', required=True)

    def add(name, fn):
        p = sub.add_parser(name)
        p.add_argument('--config', default='{}')
        p.set_defaults(fn=fn)
        return p

    p = add('init', cmd_init)
    p.add_argument('--seed', type=int, required=True)
    p.add_argument('--out', required=True)
    p.add_argument('--perturb', action='store_true')
    p = add('ranks', cmd_ranks)
    p.add_argument('--weights', required=True)
    p.add_argument('--images', required=True)
    p.add_argument('--batch-size', type=int, default=128)
    p.add_argument('--out', required=True)
    p = add('prune', cmd_prune)
    p.add_argument('--pruned-config', required=True, help='JSON object laid over --config')
    p.add_argument('--weights', required=True)
    p.add_argument('--kept', required=True, help="kept.json: {conv name: [kept filter indices]}")
    p.add_argument('--input', required=True)
    p.add_argument('--out', required=True)
    p.add_argument('--conv-only', action='store_true')
    p.add_argument('--seed', type=int, default=0)
    p = sub.add_parser('batch')
    p.add_argument('--commands', required=True)
    p.set_defaults(fn=None)
    return ap


def main(argv=None):
    ap = build_parser()
    args = ap.parse_args(argv)
    torch.use_deterministic_algorithms(True)
    try:
        if args.command == 'batch':
            result = reference.run_batch(ap, args.commands)
        else:
            result = args.fn(args, reference.parse_config(args.config))
    except Exception as e:  # noqa: BLE001 -- the tests read the message from stdout
        print(json.dumps({'error': '%s: %s' % (type(e).__name__, e)}))
        return 1
    print(json.dumps(result))
    return 0


if __name__ == '__main__':
    sys.exit(main())
