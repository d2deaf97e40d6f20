"""The seed network (HRank's `models/vgg.py`, VGG-16-BN for CIFAR-10), made runnable and parameterised.

The module construction order, `_initialize_weights` and `forward` are the seed's, so that for the same
`torch.manual_seed` this builds bit-identical weights. Departures from the seed, each one deliberate:

- `compress_rate=None` means "no pruning" (the seed crashes on `None[cnt]`); a rate list one shorter than
  the number of convs is HRankPlus's form and gets 0.0 appended for the last conv.
- A conv's width is pruned to `int(v * (1 - rate))` (HRankPlus); later layers follow the pruned width.
- `batch_norm` is a parameter (the seed always passes True); without it the features have no norm
  layers and nothing is renumbered. The classifier's `norm1` BatchNorm1d is always there, as in the seed.
- linear1's in_features is inferred from `input_size` (the seed hard-codes `cfg[-2]`), by arithmetic on
  the built layers: that consumes no random numbers and, unlike a dummy forward, does not touch the
  BatchNorm running stats.
- `relucfg` / `covcfg` are derived from the built features instead of being typed in.
- `init_weights` also accepts 'default' (= True, the seed's init) and 'pytorch' (= False, PyTorch's own).
"""

import math
from collections import OrderedDict

import torch.nn as nn

norm_mean, norm_var = 0.0, 1.0  # unused; kept from the seed

defaultcfg = [64, 64, 'M', 128, 128, 'M', 256, 256, 256, 'M', 512, 512, 512, 'M', 512, 512, 512, 512]
# The seed's hard-coded positions (for defaultcfg with bn); `derive_positions` reproduces them.
relucfg = [2, 6, 9, 13, 16, 19, 23, 26, 29, 33, 36, 39]
convcfg = [0, 3, 7, 10, 14, 17, 20, 24, 27, 30, 34, 37]

# CIFAR variants: no pool after the last conv block (forward's AvgPool2d(2) is the head), and the last
# entry is the classifier's hidden width.
PRESETS = {
    'default': defaultcfg,
    'vgg11': [64, 'M', 128, 'M', 256, 256, 'M', 512, 512, 'M', 512, 512, 512],
    'vgg13': [64, 64, 'M', 128, 128, 'M', 256, 256, 'M', 512, 512, 'M', 512, 512, 512],
    'vgg16': defaultcfg,
    'vgg19': [64, 64, 'M', 128, 128, 'M', 256, 256, 256, 256, 'M', 512, 512, 512, 512, 'M',
              512, 512, 512, 512, 512],
}


def resolve_cfg(cfg):
    """A preset name or a cfg list -> a fresh, validated cfg list."""
    if cfg is None:
        cfg = 'default'
    if isinstance(cfg, str):
        if cfg not in PRESETS:
            raise ValueError('unknown cfg preset %r (known: %s)' % (cfg, ', '.join(sorted(PRESETS))))
        cfg = PRESETS[cfg]
    cfg = list(cfg)
    if len(cfg) < 2:
        raise ValueError('cfg needs at least one feature entry and the classifier width')
    for i, v in enumerate(cfg):
        if v == 'M' and i < len(cfg) - 1:
            continue
        # bool is an int subclass; reject it so `true` in JSON is not read as a width of 1.
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            where = 'classifier width' if i == len(cfg) - 1 else 'cfg[%d]' % i
            raise ValueError('%s must be a positive integer%s, got %r'
                             % (where, '' if i == len(cfg) - 1 else " or 'M'", v))
    if not any(v != 'M' for v in cfg[:-1]):
        raise ValueError('cfg has no conv layer')
    return cfg


def normalize_compress_rate(cfg_features, compress_rate):
    """One rate per conv: None -> all 0.0; HRankPlus's one-short list -> 0.0 appended. Validated."""
    conv_names = ['features.conv%d' % i for i, v in enumerate(cfg_features) if v != 'M']
    n = len(conv_names)
    if compress_rate is None:
        return [0.0] * n
    rates = list(compress_rate)
    if len(rates) == n - 1:
        rates.append(0.0)
    if len(rates) != n:
        raise ValueError('compress_rate has %d entries; this cfg has %d convs (give %d, or %d and the '
                         'last conv keeps its width)' % (len(compress_rate), n, n, n - 1))
    for name, rate in zip(conv_names, rates):
        if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not (0.0 <= rate < 1.0):
            raise ValueError('%s: compress rate %r is outside [0, 1)' % (name, rate))
    return [float(r) for r in rates]


def pruned_width(v, rate):
    return int(v * (1 - rate))


class VGG(nn.Module):
    def __init__(self, num_classes=10, init_weights=True, cfg=None, compress_rate=None,
                 batch_norm=True, input_size=(3, 32, 32)):
        super(VGG, self).__init__()
        self.features = nn.Sequential()

        cfg = resolve_cfg(cfg)
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
            raise ValueError('num_classes must be a positive integer, got %r' % (num_classes,))
        input_size = tuple(input_size)
        if len(input_size) != 3 or any(isinstance(d, bool) or not isinstance(d, int) or d < 1
                                       for d in input_size):
            raise ValueError('input_size must be (C, H, W) of positive integers, got %r' % (input_size,))
        if init_weights in ('default', True):
            init_weights = True
        elif init_weights in ('pytorch', False):
            init_weights = False
        else:
            raise ValueError("init_weights must be 'default' or 'pytorch', got %r" % (init_weights,))
        compress_rate = normalize_compress_rate(cfg[:-1], compress_rate)

        self.cfg = cfg
        self.input_size = input_size
        self.compress_rate = compress_rate

        self.features = self.make_layers(cfg[:-1], batch_norm, compress_rate, input_size[0])
        self.relucfg, self.covcfg = derive_positions(self.features)

        self.classifier = nn.Sequential(OrderedDict([
            ('linear1', nn.Linear(self.flat_features(), cfg[-1])),
            ('norm1', nn.BatchNorm1d(cfg[-1])),
            ('relu1', nn.ReLU(inplace=True)),
            ('linear2', nn.Linear(cfg[-1], num_classes)),
        ]))

        if init_weights:
            self._initialize_weights()

    def make_layers(self, cfg, batch_norm=True, compress_rate=None, in_channels=3):
        layers = nn.Sequential()
        cnt = 0
        for i, v in enumerate(cfg):
            if v == 'M':
                layers.add_module('pool%d' % i, nn.MaxPool2d(kernel_size=2, stride=2))
            else:
                x = pruned_width(v, compress_rate[cnt])
                if x < 1:
                    raise ValueError('features.conv%d: compress rate %r leaves 0 of %d channels'
                                     % (i, compress_rate[cnt], v))
                conv2d = nn.Conv2d(in_channels, x, kernel_size=3, padding=1)
                conv2d.cp_rate = compress_rate[cnt]
                cnt += 1

                layers.add_module('conv%d' % i, conv2d)
                if batch_norm:
                    layers.add_module('norm%d' % i, nn.BatchNorm2d(x))
                layers.add_module('relu%d' % i, nn.ReLU(inplace=True))
                in_channels = x
        return layers

    def features_out_shape(self):
        """(C, H, W) out of the features, by the layers' own size formulas (no forward, no RNG)."""
        c, h, w = self.input_size
        for name, m in self.features.named_children():
            if isinstance(m, (nn.Conv2d, nn.MaxPool2d)):
                k, s, p, d = (_pair(getattr(m, a)) for a in ('kernel_size', 'stride', 'padding', 'dilation'))
                h = (h + 2 * p[0] - d[0] * (k[0] - 1) - 1) // s[0] + 1
                w = (w + 2 * p[1] - d[1] * (k[1] - 1) - 1) // s[1] + 1
                if isinstance(m, nn.Conv2d):
                    c = m.out_channels
                if h < 1 or w < 1:
                    raise ValueError('features.%s: input %s is too small, the feature map shrinks to '
                                     '%dx%d' % (name, 'x'.join(map(str, self.input_size)), h, w))
        return c, h, w

    def flat_features(self):
        """linear1's in_features: C*H*W after forward's AvgPool2d(2) head."""
        c, h, w = self.features_out_shape()
        h, w = h // 2, w // 2
        if h < 1 or w < 1:
            raise ValueError('AvgPool2d(2) head: input %s is too small, the features end at %s'
                             % ('x'.join(map(str, self.input_size)),
                                'x'.join(map(str, self.features_out_shape()))))
        return c * h * w

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


def _pair(v):
    return tuple(v) if isinstance(v, (tuple, list)) else (v, v)


def derive_positions(features):
    """The seed's relucfg / covcfg, from the built features: positions in the flattened Sequential.

    For every conv but the last: covcfg holds the conv's position; relucfg the position of its block's
    output, i.e. its ReLU, or the pool directly after that ReLU (where HRank reads feature maps).
    """
    mods = list(features.children())
    conv_pos = [i for i, m in enumerate(mods) if isinstance(m, nn.Conv2d)]
    relu_pos = []
    for c in conv_pos[:-1]:
        r = next(i for i in range(c, len(mods)) if isinstance(mods[i], nn.ReLU))
        if r + 1 < len(mods) and isinstance(mods[r + 1], nn.MaxPool2d):
            r += 1
        relu_pos.append(r)
    return relu_pos, conv_pos[:-1]


def vgg_16_bn(compress_rate=None):
    return VGG(compress_rate=compress_rate)
