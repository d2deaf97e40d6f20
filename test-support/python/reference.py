"""PyTorch reference for the Rust tests: builds `seed_vgg.VGG` from a JSON config and reports on it.

    python reference.py SUBCOMMAND [--config JSON] [options]

Config (JSON object, every key optional):
    {"cfg": "default" | preset name | [64, "M", ...], "bn": true, "num_classes": 10,
     "compress_rate": null | [..], "input": [3, 32, 32], "init": "default" | "pytorch"}

Subcommands print one JSON object on stdout. A bad config or a failing command prints
{"error": "..."} and exits 1 (check-load reports load failures as {"ok": false, ...} and exits 0).

`batch --commands JSON` runs a list of command lines (each a list of strings, e.g.
[["init", "--seed", "1", "--out", "a.safetensors"], ["repr"]]) in order in one process, to pay for
importing torch once, and prints {"results": [...]} with each command's JSON object; the first
failing command stops the batch with {"error": "command N (name): ..."} and exit code 1.

`serve` reads one such JSON list per line on stdin and answers each with one line on stdout, the
batch's JSON ({"results": [...]} or {"error": ...}), until stdin closes: a test binary keeps one
process (one `import torch`) for all its tests.
CPU only; deterministic algorithms are enforced, thread settings are PyTorch's defaults.
"""

import argparse
import json
import os
import sys

sys.dont_write_bytecode = True  # keep this folder free of __pycache__
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from safetensors.torch import load_file, save_file  # noqa: E402

import seed_vgg  # noqa: E402

CONFIG_DEFAULTS = {
    'cfg': 'default',
    'bn': True,
    'num_classes': 10,
    'compress_rate': None,
    'input': [3, 32, 32],
    'init': 'default',
}

# The optimiser every training subcommand uses (HRank's CIFAR fine-tuning settings).
SGD_ARGS = dict(lr=0.1, momentum=0.9, weight_decay=5e-4)
TRAIN_BATCH = 8


def parse_config(text):
    config = json.loads(text)
    if not isinstance(config, dict):
        raise ValueError('--config must be a JSON object')
    unknown = sorted(set(config) - set(CONFIG_DEFAULTS))
    if unknown:  # a misspelt key would otherwise silently take its default
        raise ValueError('unknown config key(s): %s' % ', '.join(unknown))
    return {**CONFIG_DEFAULTS, **config}


def build_model(config):
    if not isinstance(config['bn'], bool):
        raise ValueError('bn must be true or false, got %r' % (config['bn'],))
    return seed_vgg.VGG(num_classes=config['num_classes'], init_weights=config['init'],
                        cfg=config['cfg'], compress_rate=config['compress_rate'],
                        batch_norm=config['bn'], input_size=config['input'])


def dtype_str(dtype):
    return str(dtype).replace('torch.', '')


def contiguous_state_dict(model):
    # safetensors refuses non-contiguous or memory-sharing tensors; clone() gives each its own storage.
    return {k: v.detach().clone().contiguous() for k, v in model.state_dict().items()}


def load_weights(model, path):
    model.load_state_dict(load_file(path), strict=True)


def bn_buffers(model):
    """The state_dict entries BatchNorm updates in train mode."""
    return {k: v for k, v in model.state_dict().items()
            if k.rsplit('.', 1)[-1] in ('running_mean', 'running_var', 'num_batches_tracked')}


def seed_repr(model):
    """str(model) as the seed's (older) PyTorch printed it: newer versions add `, bias=True` to
    BatchNorm (and only BatchNorm must lose it: Linear printed `bias=True` then too)."""
    lines = str(model).split('\n')
    return '\n'.join(l.replace(', bias=True', '') if 'BatchNorm' in l else l for l in lines)


# --- subcommands -------------------------------------------------------------------------------

def cmd_state_dict(args, config):
    model = build_model(config)
    return {'keys': [[k, list(v.shape), dtype_str(v.dtype)] for k, v in model.state_dict().items()]}


def cmd_repr(args, config):
    return {'repr': seed_repr(build_model(config))}


def cmd_params(args, config):
    model = build_model(config).eval()  # eval: BatchNorm1d cannot train on a batch of one
    total = sum(p.numel() for p in model.parameters())
    conv_linear = sum(p.numel() for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))
                      for p in m.parameters(recurse=False))

    out_shapes, macs = {}, [0]

    def hook(name):
        def fn(m, inputs, output):
            out_shapes[name] = list(output.shape[1:])
            if isinstance(m, nn.Conv2d):
                k = m.kernel_size[0] * m.kernel_size[1]
                macs[0] += output[0].numel() * (m.in_channels // m.groups) * k
            elif isinstance(m, nn.Linear):
                macs[0] += m.in_features * m.out_features
        return fn

    handles = [m.register_forward_hook(hook(name)) for name, m in model.named_modules()
               if name and not list(m.children())]
    with torch.no_grad():
        model(torch.zeros(1, *config['input']))
    for h in handles:
        h.remove()
    return {'params': total, 'params_conv_linear': conv_linear, 'macs': macs[0], 'out_shapes': out_shapes}


def cmd_init(args, config):
    torch.manual_seed(args.seed)
    model = build_model(config)
    sd = contiguous_state_dict(model)
    save_file(sd, args.out)
    return {'out': args.out, 'tensors': len(sd)}


def cmd_train(args, config):
    """Training data: after construction the global generator is reseeded to seed+1 and each step draws
    x = torch.randn(8, C, H, W), then y = torch.randint(0, num_classes, (8,)); tch's
    manual_seed/randn/randint on the same libtorch draw the same numbers."""
    torch.manual_seed(args.seed)
    model = build_model(config).train()
    torch.manual_seed(args.seed + 1)
    opt = torch.optim.SGD(model.parameters(), **SGD_ARGS)
    losses = []
    for _ in range(args.steps):
        x = torch.randn(TRAIN_BATCH, *config['input'])
        y = torch.randint(0, config['num_classes'], (TRAIN_BATCH,))
        opt.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    if args.randomize_bn is not None:
        randomize_bn(model, args.randomize_bn, config['input'])
    p = args.out_prefix
    save_file(contiguous_state_dict(model), p + '.safetensors')
    torch.save(model.state_dict(), p + '.pt')  # an OrderedDict, with `_metadata`, as usual
    torch.save(dict(model.state_dict()), p + '_plain.pt')
    return {'losses': losses, 'files': [p + '.safetensors', p + '.pt', p + '_plain.pt']}


def randomize_bn(model, seed, input_size):
    """Redraws every BatchNorm's affine parameters and running statistics, per channel, from a
    generator of its own (the global one is left alone), the way training leaves them: scales
    around 1 (a fifth of them negative) and shifts around 0; statistics measured on a batch of
    that generator (what each layer really sees, so eval-mode outputs keep depending on the
    input through all the layers), then moved per channel (means by up to a few tenths of a
    standard deviation, variances by factors in [0.5, 2)). `num_batches_tracked` stays."""
    g = torch.Generator().manual_seed(seed)
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    training = model.training
    with torch.no_grad():
        for m in norms:
            n = m.num_features
            sign = torch.where(torch.rand(n, generator=g) < 0.2, -1.0, 1.0)
            m.weight.copy_(sign * (torch.rand(n, generator=g) * 0.75 + 0.75))
            m.bias.copy_(torch.randn(n, generator=g) * 0.2)
        kept = [(m.momentum, m.num_batches_tracked.clone()) for m in norms]
        for m in norms:
            m.reset_running_stats()
            m.momentum = None  # a cumulative average: one batch gives that batch's statistics
        model.train()
        model(torch.randn(32, *input_size, generator=g))
        for m, (momentum, tracked) in zip(norms, kept):
            n = m.num_features
            m.momentum = momentum
            m.num_batches_tracked.copy_(tracked)
            m.running_mean.add_(torch.randn(n, generator=g) * 0.2 * m.running_var.sqrt())
            m.running_var.mul_(torch.rand(n, generator=g) * 1.5 + 0.5)
    model.train(training)


def cmd_forward(args, config):
    x = load_file(args.input)['x']
    model = build_model(config)
    load_weights(model, args.weights)
    model.eval()
    with torch.no_grad():
        out = {'eval': model(x.clone())}

    # A fresh model, so the train-mode forward starts from the file's running stats.
    model = build_model(config)
    load_weights(model, args.weights)
    model.train()
    with torch.no_grad():
        out['train'] = model(x.clone())
    out.update({'after_train.' + k: v for k, v in bn_buffers(model).items()})

    save_file({k: v.detach().clone().contiguous() for k, v in out.items()}, args.out)
    return {'out': args.out, 'tensors': sorted(out)}


def cmd_sgd_step(args, config):
    data = load_file(args.input)
    x, y = data['x'], data['y']
    model = build_model(config)
    load_weights(model, args.weights)
    model.train()
    opt = torch.optim.SGD(model.parameters(), **SGD_ARGS)
    losses = []
    for _ in range(args.steps):  # several steps on the same batch exercise the momentum buffers
        opt.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        losses.append(loss.detach().clone())
    sd = contiguous_state_dict(model)
    sd['loss'] = losses[-1]
    if args.steps > 1:
        sd['losses'] = torch.stack(losses)
    save_file(sd, args.out)
    return {'out': args.out, 'losses': [l.item() for l in losses]}


def cmd_check_load(args, config):
    model = build_model(config)  # a bad config is an error (exit 1), not a load failure
    try:
        sd = load_file(args.weights)
        if args.strict_dtype:
            # load_state_dict casts silently (e.g. int32 num_batches_tracked); this flag refuses that.
            want = model.state_dict()
            bad = ['%s: %s, expected %s' % (k, dtype_str(v.dtype), dtype_str(want[k].dtype))
                   for k, v in sd.items() if k in want and v.dtype != want[k].dtype]
            if bad:
                raise RuntimeError('dtype mismatch: ' + '; '.join(bad))
        model.load_state_dict(sd, strict=True)
    except Exception as e:  # noqa: BLE001 -- every failure is a reportable "not loadable"
        return {'ok': False, 'error': str(e)}
    return {'ok': True}


def build_parser():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest='command', required=True)

    def add(name, fn, help):
        p = sub.add_parser(name, help=help)
        p.add_argument('--config', default='{}', help='JSON object (see above); default {}')
        p.set_defaults(fn=fn)
        return p

    add('state-dict', cmd_state_dict, 'state_dict keys, shapes and dtypes')
    add('repr', cmd_repr, "str(model) in the seed's form")
    add('params', cmd_params, 'parameter counts, MACs for one input, per-leaf output shapes')
    p = add('init', cmd_init, 'seeded construction, state_dict saved as safetensors')
    p.add_argument('--seed', type=int, required=True)
    p.add_argument('--out', required=True)
    p = add('train', cmd_train, 'N SGD steps on seeded random data; saves .safetensors, .pt, _plain.pt')
    p.add_argument('--seed', type=int, required=True)
    p.add_argument('--steps', type=int, required=True)
    p.add_argument('--out-prefix', required=True)
    p.add_argument('--randomize-bn', type=int, metavar='SEED',
                   help='after training, redraw BatchNorm statistics and affine (see randomize_bn)')
    p = add('forward', cmd_forward, 'eval and train-mode outputs, running stats after the train forward')
    p.add_argument('--weights', required=True)
    p.add_argument('--input', required=True)
    p.add_argument('--out', required=True)
    p = add('sgd-step', cmd_sgd_step, 'one SGD step (or --steps N on the same batch)')
    p.add_argument('--weights', required=True)
    p.add_argument('--input', required=True)
    p.add_argument('--out', required=True)
    p.add_argument('--steps', type=int, default=1)
    p = add('check-load', cmd_check_load, 'load_state_dict(strict=True) from a safetensors file')
    p.add_argument('--weights', required=True)
    p.add_argument('--strict-dtype', action='store_true', help='also refuse dtype mismatches')
    p = sub.add_parser('batch', help='several command lines in one process (see above)')
    p.add_argument('--commands', required=True, help='JSON list of command lines (lists of strings)')
    p.set_defaults(fn=None)
    p = sub.add_parser('serve', help='one batch per stdin line, one JSON answer per line (see above)')
    p.set_defaults(fn=None)
    return ap


def run_batch(ap, text):
    commands = json.loads(text)
    if not isinstance(commands, list) or not all(
            isinstance(c, list) and c and all(isinstance(a, str) for a in c) for c in commands):
        raise ValueError('--commands must be a JSON list of non-empty lists of strings')
    results = []
    for i, argv in enumerate(commands):
        where = 'command %d (%s)' % (i, argv[0])
        if argv[0] in ('batch', 'serve'):
            raise ValueError('%s: batches do not nest' % where)
        try:
            args = ap.parse_args(argv)
        except SystemExit:  # argparse has printed the usage error on stderr
            raise ValueError('%s: bad arguments %r' % (where, argv))
        try:
            results.append(args.fn(args, parse_config(args.config)))
        except Exception as e:  # noqa: BLE001
            raise RuntimeError('%s: %s: %s' % (where, type(e).__name__, e))
    return {'results': results}


def serve(ap, lines, out):
    """`serve`: answers each line of `lines` (a batch's --commands) with one line on `out`."""
    for line in lines:
        if not line.strip():
            continue
        try:
            result = run_batch(ap, line)
        except Exception as e:  # noqa: BLE001 -- reported to the caller, the server stays up
            result = {'error': '%s: %s' % (type(e).__name__, e)}
        out.write(json.dumps(result) + '\n')
        out.flush()


def main(argv=None):
    ap = build_parser()
    args = ap.parse_args(argv)

    torch.use_deterministic_algorithms(True)
    if args.command == 'serve':
        serve(ap, sys.stdin, sys.stdout)
        return 0
    try:
        if args.command == 'batch':
            result = run_batch(ap, args.commands)
        else:
            result = args.fn(args, parse_config(args.config))
    except Exception as e:  # noqa: BLE001 -- tests read the message from stdout
        print(json.dumps({'error': '%s: %s' % (type(e).__name__, e)}))
        print('reference.py %s: %s: %s' % (args.command, type(e).__name__, e), file=sys.stderr)
        return 1
    print(json.dumps(result))
    return 0


if __name__ == '__main__':
    sys.exit(main())
