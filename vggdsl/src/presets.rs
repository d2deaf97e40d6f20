//! The cfg presets: CIFAR VGG variants as HRank and Network Slimming write them (features without
//! a trailing pool; the last entry is the classifier's hidden width).

use crate::spec::CfgItem::{self, Conv, Pool as M};

/// `(name, cfg)` for every preset, in the order the reference lists them.
pub const PRESETS: &[(&str, &[CfgItem])] = &[
    ("default", VGG16),
    ("vgg11", VGG11),
    ("vgg13", VGG13),
    ("vgg16", VGG16),
    ("vgg19", VGG19),
];

const VGG11: &[CfgItem] = &[
    Conv(64),
    M,
    Conv(128),
    M,
    Conv(256),
    Conv(256),
    M,
    Conv(512),
    Conv(512),
    M,
    Conv(512),
    Conv(512),
    Conv(512),
];

const VGG13: &[CfgItem] = &[
    Conv(64),
    Conv(64),
    M,
    Conv(128),
    Conv(128),
    M,
    Conv(256),
    Conv(256),
    M,
    Conv(512),
    Conv(512),
    M,
    Conv(512),
    Conv(512),
    Conv(512),
];

/// The seed's `defaultcfg`.
const VGG16: &[CfgItem] = &[
    Conv(64),
    Conv(64),
    M,
    Conv(128),
    Conv(128),
    M,
    Conv(256),
    Conv(256),
    Conv(256),
    M,
    Conv(512),
    Conv(512),
    Conv(512),
    M,
    Conv(512),
    Conv(512),
    Conv(512),
    Conv(512),
];

const VGG19: &[CfgItem] = &[
    Conv(64),
    Conv(64),
    M,
    Conv(128),
    Conv(128),
    M,
    Conv(256),
    Conv(256),
    Conv(256),
    Conv(256),
    M,
    Conv(512),
    Conv(512),
    Conv(512),
    Conv(512),
    M,
    Conv(512),
    Conv(512),
    Conv(512),
    Conv(512),
    Conv(512),
];

pub fn preset(name: &str) -> Option<&'static [CfgItem]> {
    PRESETS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, cfg)| *cfg)
}
