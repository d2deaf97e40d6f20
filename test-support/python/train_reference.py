"""PyTorch reference for the training tests: the seed's model (`seed_vgg.VGG`, built from the same
JSON config as `reference.py`) trained by `torch.optim.SGD`, and evaluated as the seed evaluates.

    python train_reference.py sgd --config JSON --weights W --batches B --lrs 0.1,0.05 \
        [--momentum M] [--weight-decay WD] [--nesterov] [--sparsity S] --out OUT
    python train_reference.py sgd-tensors --tensors T --lrs 0.1,0.05 [--momentum M] \
        [--weight-decay WD] [--nesterov] --out OUT
    python train_reference.py evaluate --config JSON --weights W --data DIR [--batch N]

`sgd` loads W strictly, then for each learning rate in --lrs takes one step on batch i of B (tensors
`x.i` and `y.i`): zero_grad, forward in train mode, F.cross_entropy (mean), backward, step. With
--sparsity S, Network Slimming's sparsity step comes between backward and step, as its authors'
`updateBN` does it: every BatchNorm2d's weight gradient gets S * sign(weight) added. OUT gets the
state_dict, `momentum_buffer.<param>` for every parameter and `loss.<i>` for every step.

`sgd-tensors` makes a parameter of each tensor `param.<name>` of T (its dtype kept) and for each
learning rate in --lrs takes one step with the gradients `grad.<name>.<i>`; OUT gets
`param.<name>` and `momentum_buffer.<name>` after the last step.

`evaluate` loads W with strict=True and classifies the CIFAR-10 binary test file of DIR
(`test_batch.bin`), normalised as the seed's transform does (ToTensor, Normalize with HRank's mean and
std), in eval mode; it prints {"accuracy", "correct", "images", "per_class_correct", "loss"}.
"""

import argparse
import json
import os
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from safetensors.torch import load_file, save_file  # noqa: E402

import reference  # noqa: E402

CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2023, 0.1994, 0.2010)


def model_from(args):
    model = reference.build_model(reference.parse_config(args.config))
    model.load_state_dict(load_file(args.weights), strict=True)
    return model


def cmd_sgd(args):
    model = model_from(args).train()
    batches = load_file(args.batches)
    lrs = [float(v) for v in args.lrs.split(',')]
    opt = torch.optim.SGD(model.parameters(), lr=lrs[0], momentum=args.momentum,
                          weight_decay=args.weight_decay, nesterov=args.nesterov)
    out = {}
    for i, lr in enumerate(lrs):
        for group in opt.param_groups:
            group['lr'] = lr
        opt.zero_grad()
        loss = F.cross_entropy(model(batches['x.%d' % i]), batches['y.%d' % i])
        loss.backward()
        if args.sparsity:
            for m in model.modules():
                if isinstance(m, torch.nn.BatchNorm2d):
                    m.weight.grad.data.add_(args.sparsity * torch.sign(m.weight.data))
        opt.step()
        out['loss.%d' % i] = loss.detach().clone()
    out.update(reference.contiguous_state_dict(model))
    for name, p in model.named_parameters():
        buf = opt.state[p].get('momentum_buffer')
        if buf is not None:
            out['momentum_buffer.' + name] = buf.clone().contiguous()
    save_file(out, args.out)
    return {'out': args.out, 'steps': len(lrs)}


def cmd_sgd_tensors(args):
    tensors = load_file(args.tensors)
    names = sorted(k[len('param.'):] for k in tensors if k.startswith('param.'))
    params = [torch.nn.Parameter(tensors['param.' + n].clone()) for n in names]
    lrs = [float(v) for v in args.lrs.split(',')]
    opt = torch.optim.SGD(params, lr=lrs[0], momentum=args.momentum,
                          weight_decay=args.weight_decay, nesterov=args.nesterov)
    for i, lr in enumerate(lrs):
        for group in opt.param_groups:
            group['lr'] = lr
        for n, p in zip(names, params):
            p.grad = tensors['grad.%s.%d' % (n, i)].clone()
        opt.step()
    out = {}
    for n, p in zip(names, params):
        out['param.' + n] = p.detach().clone()
        buf = opt.state[p].get('momentum_buffer')
        if buf is not None:
            out['momentum_buffer.' + n] = buf.clone()
    save_file(out, args.out)
    return {'out': args.out, 'steps': len(lrs)}


def cifar10_test(folder):
    path = os.path.join(folder, 'test_batch.bin')
    if not os.path.exists(path):
        path = os.path.join(folder, 'cifar-10-batches-bin', 'test_batch.bin')
    records = np.fromfile(path, dtype=np.uint8).reshape(-1, 1 + 3 * 32 * 32)
    labels = torch.from_numpy(records[:, 0].astype(np.int64))
    x = torch.from_numpy(records[:, 1:].reshape(-1, 3, 32, 32).copy()).float().div(255)
    mean = torch.tensor(CIFAR10_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(CIFAR10_STD).view(1, 3, 1, 1)
    return x.sub_(mean).div_(std), labels


def cmd_evaluate(args):
    model = model_from(args).eval()
    x, y = cifar10_test(args.data)
    correct = [0] * 10
    loss_sum = 0.0
    with torch.no_grad():
        for start in range(0, len(y), args.batch):
            logits = model(x[start:start + args.batch])
            labels = y[start:start + args.batch]
            loss_sum += F.cross_entropy(logits, labels, reduction='sum').item()
            for p, l in zip(logits.argmax(-1).tolist(), labels.tolist()):
                correct[l] += int(p == l)
    return {'accuracy': sum(correct) / len(y), 'correct': sum(correct), 'images': len(y),
            'per_class_correct': correct, 'loss': loss_sum / len(y)}


def add_sgd_options(p):
    """The options both SGD commands take: the steps' learning rates, the optimiser's settings, OUT."""
    p.add_argument('--lrs', required=True)
    p.add_argument('--momentum', type=float, default=0.0)
    p.add_argument('--weight-decay', type=float, default=0.0)
    p.add_argument('--nesterov', action='store_true')
    p.add_argument('--out', required=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest='command', required=True)
    p = sub.add_parser('sgd')
    p.add_argument('--config', default='{}')
    p.add_argument('--weights', required=True)
    p.add_argument('--batches', required=True)
    p.add_argument('--sparsity', type=float, default=0.0)
    add_sgd_options(p)
    p.set_defaults(fn=cmd_sgd)
    p = sub.add_parser('sgd-tensors')
    p.add_argument('--tensors', required=True)
    add_sgd_options(p)
    p.set_defaults(fn=cmd_sgd_tensors)
    p = sub.add_parser('evaluate')
    p.add_argument('--config', default='{}')
    p.add_argument('--weights', required=True)
    p.add_argument('--data', required=True)
    p.add_argument('--batch', type=int, default=256)
    p.set_defaults(fn=cmd_evaluate)
    args = ap.parse_args()
    print(json.dumps(args.fn(args)))


if __name__ == '__main__':
    main()
