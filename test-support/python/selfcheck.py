"""Checks that seed_vgg.py / reference.py reproduce the seed before Rust tests trust them.

    $VGGDSL_PYTHON test-support/python/selfcheck.py   # exits non-zero on the first failed check
"""

import contextlib
import io
import json
import math
import os
import re
import subprocess
import sys
import tempfile
from collections import OrderedDict

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
from safetensors.torch import load_file, save_file  # noqa: E402

import reference  # noqa: E402
import seed_vgg  # noqa: E402



# The seed's VGG class verbatim (comments dropped), to compare seeded weights against.
class SeedVGG(nn.Module):
    def __init__(self, num_classes=10, init_weights=True, cfg=None, compress_rate=None):
        super(SeedVGG, self).__init__()
        self.features = nn.Sequential()
        if cfg is None:
            cfg = seed_vgg.defaultcfg
        self.relucfg = seed_vgg.relucfg
        self.covcfg = seed_vgg.convcfg
        self.compress_rate = compress_rate
        self.features = self.make_layers(cfg[:-1], True, compress_rate)
        self.classifier = nn.Sequential(OrderedDict([
            ('linear1', nn.Linear(cfg[-2], cfg[-1])),
            ('norm1', nn.BatchNorm1d(cfg[-1])),
            ('relu1', nn.ReLU(inplace=True)),
            ('linear2', nn.Linear(cfg[-1], num_classes)),
        ]))
        if init_weights:
            self._initialize_weights()

    def make_layers(self, cfg, batch_norm=True, compress_rate=None):
        layers = nn.Sequential()
        in_channels = 3
        cnt = 0
        for i, v in enumerate(cfg):
            if v == 'M':
                layers.add_module('pool%d' % i, nn.MaxPool2d(kernel_size=2, stride=2))
            else:
                conv2d = nn.Conv2d(in_channels, v, kernel_size=3, padding=1)
                conv2d.cp_rate = compress_rate[cnt]
                cnt += 1
                layers.add_module('conv%d' % i, conv2d)
                layers.add_module('norm%d' % i, nn.BatchNorm2d(v))
                layers.add_module('relu%d' % i, nn.ReLU(inplace=True))
                in_channels = v
        return layers

    def forward(self, x):
        x = self.features(x)
        x = nn.AvgPool2d(2)(x)
        x = x.view(x.size(0), -1)
        x = self.classifier(x)
        return x

    def _initialize_weights(self):
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                n = m.kernel_size[0] * m.kernel_size[1] * m.out_channels
                m.weight.data.normal_(0, math.sqrt(2. / n))
                if m.bias is not None:
                    m.bias.data.zero_()
            elif isinstance(m, nn.BatchNorm2d):
                m.weight.data.fill_(0.5)
                m.bias.data.zero_()
            elif isinstance(m, nn.Linear):
                m.weight.data.normal_(0, 0.01)
                m.bias.data.zero_()


HRANK_RATES = [0.95] + [0.5] * 6 + [0.9] * 4 + [0.8] * 2
failures = []


def check(name, ok, detail=''):
    print('%s %s%s' % ('ok  ' if ok else 'FAIL', name, (': ' + detail) if detail else ''))
    if not ok:
        failures.append(name)


def collapse(s):
    return re.sub(r'\s+', ' ', s).strip()


def run_process(*args, stdin=None):
    """reference.py in a process of its own: `(exit code, stdout, stderr)`."""
    out = subprocess.run([sys.executable, os.path.join(HERE, 'reference.py'), *args],
                         input=stdin, capture_output=True, text=True)
    return out.returncode, out.stdout, out.stderr


def run_cli(*args):
    """reference.py's command line, run in this process (importing torch again per call would
    take seconds): `main(argv)` with stdout and stderr captured. `real process` below checks that
    a process of its own gives the same."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            rc = reference.main(list(args))
        except SystemExit as e:  # argparse's usage errors
            rc = e.code
    return rc, (json.loads(out.getvalue()) if out.getvalue().strip() else None), err.getvalue()


def params_of(config):
    return reference.cmd_params(None, reference.parse_config(json.dumps(config)))


def main():
    torch.use_deterministic_algorithms(True)
    seed = seed_vgg.VGG()

    # The printed network, character for character.
    want = collapse(open(os.path.join(HERE, 'seed_repr.txt'), encoding='utf-8').read())
    got = collapse(reference.seed_repr(seed))
    if got == want:
        check('repr equals the seed document', True, '%d characters' % len(want))
    else:
        i = next((i for i, (a, b) in enumerate(zip(got, want)) if a != b), min(len(got), len(want)))
        check('repr equals the seed document', False,
              'first difference at %d: got %r, want %r' % (i, got[i - 40:i + 40], want[i - 40:i + 40]))

    # Figures from SEMANTICS.md.
    p = params_of({})
    check('params total', p['params'] == 14991946, str(p['params']))
    check('params conv+linear', p['params_conv_linear'] == 14982474, str(p['params_conv_linear']))
    check('MACs (conv+linear, no bias/BN)', p['macs'] == 313463808, str(p['macs']))
    sd = seed.state_dict()
    check('state_dict keys', len(sd) == 100, str(len(sd)))
    check('num_batches_tracked is int64',
          sd['features.norm0.num_batches_tracked'].dtype == torch.int64,
          str(sd['features.norm0.num_batches_tracked'].dtype))
    check('relucfg derived', seed.relucfg == seed_vgg.relucfg, str(seed.relucfg))
    check('covcfg derived', seed.covcfg == seed_vgg.convcfg, str(seed.covcfg))
    check('features out shape', p['out_shapes']['features.relu16'] == [512, 2, 2],
          str(p['out_shapes']['features.relu16']))

    # Seed init: BatchNorm2d 0.5/0, BatchNorm1d untouched (1/0), biases 0.
    check('init: norm0.weight = 0.5', bool((sd['features.norm0.weight'] == 0.5).all()))
    check('init: classifier norm1.weight = 1 (BatchNorm1d not matched)',
          bool((sd['classifier.norm1.weight'] == 1).all()))
    check('init: conv bias = 0', bool((sd['features.conv0.bias'] == 0).all()))
    std = sd['features.conv16.weight'].std().item()
    check('init: conv16 std ~ sqrt(2/(9*512))', abs(std / (2 / (9 * 512)) ** 0.5 - 1) < 0.02, '%.5f' % std)

    # HRank's pruned VGG-16 builds and runs; HRankPlus's 12-rate form is the same network.
    torch.manual_seed(0)
    pruned = seed_vgg.VGG(compress_rate=HRANK_RATES).train()
    y = pruned(torch.randn(2, 3, 32, 32))
    widths = [m.out_channels for m in pruned.features if isinstance(m, torch.nn.Conv2d)]
    check('HRank pruned VGG-16 runs on 2x3x32x32', list(y.shape) == [2, 10], 'widths %s' % widths)
    check('HRank pruned cp_rate attached',
          [m.cp_rate for m in pruned.features if isinstance(m, torch.nn.Conv2d)] == HRANK_RATES)
    pp = params_of({'compress_rate': HRANK_RATES})
    check('HRank pruned linear1 in_features', pruned.classifier.linear1.in_features == widths[-1],
          'params %d, MACs %d' % (pp['params'], pp['macs']))
    plus = seed_vgg.VGG(compress_rate=HRANK_RATES[:-1])
    check('HRankPlus 12-rate form appends 0.0', plus.compress_rate[-1] == 0.0
          and plus.classifier.linear1.in_features == 512)

    # Other shapes: presets, no bn, other input sizes.
    for name, n_convs in (('vgg11', 8), ('vgg13', 10), ('vgg16', 13), ('vgg19', 16)):
        m = seed_vgg.VGG(cfg=name).eval()
        convs = sum(isinstance(l, torch.nn.Conv2d) for l in m.features)
        with torch.no_grad():
            shape = list(m(torch.zeros(1, 3, 32, 32)).shape)
        check('preset %s' % name, convs == n_convs and shape == [1, 10], '%d convs' % convs)
    nobn = seed_vgg.VGG(batch_norm=False)
    names = [n for n, _ in nobn.features.named_children()]
    check('no bn: names not renumbered', names[:4] == ['conv0', 'relu0', 'conv1', 'relu1']
          and 'norm1' in dict(nobn.classifier.named_children()), str(names[:7]))
    for size in ((3, 64, 64), (1, 48, 40), (3, 40, 33)):
        m = seed_vgg.VGG(input_size=size).eval()
        with torch.no_grad():
            ok = list(m(torch.zeros(2, *size)).shape) == [2, 10]
        check('input %s: flat=%d runs' % ('x'.join(map(str, size)), m.classifier.linear1.in_features), ok)
    for bad, kw in (('rate 1.0', dict(compress_rate=[1.0] + [0.0] * 12)),
                    ('rate leaving 0 channels', dict(compress_rate=[0.99] + [0.0] * 12)),
                    ('11 rates', dict(compress_rate=[0.0] * 11)),
                    ('input too small', dict(input_size=(3, 16, 16)))):
        try:
            seed_vgg.VGG(**kw)
            check('rejects %s' % bad, False)
        except ValueError as e:
            check('rejects %s' % bad, True, str(e))

    # Same seed, bit-identical weights to the seed's verbatim code (so no extra random numbers are drawn).
    torch.manual_seed(7)
    a = seed_vgg.VGG().state_dict()
    torch.manual_seed(7)
    b = SeedVGG(compress_rate=[0.0] * 13).state_dict()  # the seed crashes on compress_rate=None
    check('weights equal the verbatim seed code', list(a) == list(b)
          and all(torch.equal(a[k], b[k]) for k in a))

    # The CLI end to end.
    with tempfile.TemporaryDirectory() as tmp:
        f = lambda n: os.path.join(tmp, n)  # noqa: E731
        small = json.dumps({'cfg': [16, 'M', 32, 'M', 64, 32], 'input': [3, 16, 16]})
        rc, out, err = run_cli('state-dict')
        check('cli state-dict', rc == 0 and len(out['keys']) == 100 and out['keys'][0]
              == ['features.conv0.weight', [64, 3, 3, 3], 'float32'], err)
        rc, out, err = run_cli('repr')
        check('cli repr', rc == 0 and collapse(out['repr']) == want, err)
        rc, out, err = run_cli('init', '--seed', '3', '--out', f('init.safetensors'))
        torch.manual_seed(3)
        expect = seed_vgg.VGG().state_dict()
        got_sd = load_file(f('init.safetensors'))
        check('cli init', rc == 0 and list(got_sd) != [] and set(got_sd) == set(expect)
              and all(torch.equal(got_sd[k], expect[k]) for k in expect), err)
        rc, out, err = run_cli('train', '--config', small, '--seed', '1', '--steps', '3',
                               '--out-prefix', f('trained'))
        ok = rc == 0 and all(os.path.exists(f('trained' + s)) for s in ('.safetensors', '.pt', '_plain.pt'))
        if ok:
            st = load_file(f('trained.safetensors'))
            od = torch.load(f('trained.pt'))
            ok = type(od).__name__ == 'OrderedDict' and all(torch.equal(st[k], od[k]) for k in st) \
                and st['features.norm0.num_batches_tracked'].item() == 3
        check('cli train', ok, 'losses %s' % (out or {}).get('losses'))
        torch.manual_seed(0)
        save_file({'x': torch.randn(4, 3, 16, 16), 'y': torch.tensor([0, 1, 2, 3])}, f('xy.safetensors'))
        rc, out, err = run_cli('forward', '--config', small, '--weights', f('trained.safetensors'),
                               '--input', f('xy.safetensors'), '--out', f('fwd.safetensors'))
        fwd = load_file(f('fwd.safetensors')) if rc == 0 else {}
        check('cli forward', rc == 0 and list(fwd['eval'].shape) == [4, 10]
              and fwd['after_train.features.norm0.num_batches_tracked'].item() == 4
              and not torch.equal(fwd['eval'], fwd['train']), err)
        rc, out, err = run_cli('sgd-step', '--config', small, '--weights', f('trained.safetensors'),
                               '--input', f('xy.safetensors'), '--out', f('step.safetensors'))
        check('cli sgd-step', rc == 0 and 'loss' in load_file(f('step.safetensors')),
              'loss %s' % (out or {}).get('losses'))
        rc, out, err = run_cli('check-load', '--config', small, '--weights', f('trained.safetensors'))
        check('cli check-load ok', rc == 0 and out == {'ok': True}, err)
        rc, out, err = run_cli('check-load', '--weights', f('trained.safetensors'))
        check('cli check-load mismatch', rc == 0 and out['ok'] is False, (out or {}).get('error', err)[:80])
        rc, out, err = run_cli('batch', '--commands', json.dumps([
            ['repr', '--config', small], ['state-dict', '--config', small],
            ['check-load', '--config', small, '--weights', f('trained.safetensors')]]))
        config = reference.parse_config(small)
        singles = [reference.cmd_repr(None, config), reference.cmd_state_dict(None, config), {'ok': True}]
        singles = json.loads(json.dumps(singles))  # tuples -> lists, as they come out of the CLI
        check('cli batch = the single commands', rc == 0 and out == {'results': singles}, err)
        rc, out, err = run_cli('batch', '--commands', json.dumps([['repr'], ['params', '--config', '{"x": 1}']]))
        check('cli batch stops at a failing command', rc == 1 and out['error'].startswith(
            'RuntimeError: command 1 (params)'), (out or {}).get('error', err))
        rc, out, err = run_cli('params', '--config', json.dumps({'compress_rate': [2.0] + [0.0] * 12}))
        check('cli bad config -> exit 1 with error', rc == 1 and 'features.conv0' in out['error'],
              out and out['error'])

        # A process of its own: the exit codes and stdout of `python reference.py ...` are main's.
        bad = json.dumps({'compress_rate': [2.0] + [0.0] * 12})
        batch = json.dumps([['repr', '--config', small], ['params', '--config', bad]])
        in_process = run_cli('batch', '--commands', batch)
        rc, out, err = run_process('batch', '--commands', batch)
        check('real process: failing batch = in-process run', (rc, json.loads(out)) == in_process[:2]
              and rc == 1 and 'features.conv0' in in_process[1]['error'], err)

        # serve: one answer line per batch line, failures answered without stopping, exit 0 at EOF.
        good = json.dumps([['repr', '--config', small], ['state-dict', '--config', small]])
        rc, out, err = run_process('serve', stdin='%s\n%s\n\n%s\n' % (good, batch, good))
        answers = [json.loads(l) for l in out.splitlines()]
        want_good = run_cli('batch', '--commands', good)[1]
        check('serve answers each batch line', rc == 0 and answers == [want_good, in_process[1], want_good],
              err or '%d answers' % len(answers))

        # train --randomize-bn: the statistics and affine are redrawn per channel, seeded, and
        # eval-mode outputs still depend on the input (the statistics are the layers' own).
        for name, extra in (('plain', []), ('r1', ['--randomize-bn', '5']), ('r2', ['--randomize-bn', '5'])):
            rc, out, err = run_cli('train', '--config', small, '--seed', '1', '--steps', '1',
                                   *extra, '--out-prefix', f(name))
            check('cli train %s' % ' '.join(extra), rc == 0, err)
        plain, r1, r2 = (load_file(f(n + '.safetensors')) for n in ('plain', 'r1', 'r2'))
        check('randomize-bn: seeded', all(torch.equal(r1[k], r2[k]) for k in r1))
        bn = [k for k in r1 if k.rsplit('.', 1)[-1] in ('weight', 'bias', 'running_mean', 'running_var')
              and 'norm' in k]
        check('randomize-bn: every BatchNorm tensor redrawn', len(bn) == 4 * 4
              and all(not torch.equal(r1[k], plain[k]) for k in bn), str(len(bn)))
        check('randomize-bn: some scales negative', all(
            r1[k].min() < 0 < r1[k].max() for k in bn if k.endswith('.weight') and r1[k].numel() > 16))
        check('randomize-bn: num_batches_tracked kept', all(
            torch.equal(r1[k], plain[k]) for k in r1 if k.endswith('num_batches_tracked')))
        m = reference.build_model(reference.parse_config(small))
        m.load_state_dict(r1)
        with torch.no_grad():
            y = m.eval()(torch.randn(16, 3, 16, 16))
        spread = (y.std(0).max() / y.abs().max()).item()
        check('randomize-bn: eval outputs depend on the input', spread > 0.1, 'std/max %.3f' % spread)

    print('selfcheck: %s' % ('all passed' if not failures else '%d FAILED' % len(failures)))
    return 1 if failures else 0


if __name__ == '__main__':
    sys.exit(main())
