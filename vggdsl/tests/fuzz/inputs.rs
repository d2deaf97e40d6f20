//! The fuzz test's inputs: a deterministic generator, the corpus (the example files and the
//! reference's snippets), mutations of it, and random models from the grammar.

use crate::common::read;

/// xorshift64*: small, fast and deterministic.
pub(crate) struct Rng(pub(crate) u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in `0..n` (n > 0).
    pub(crate) fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    pub(crate) fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }

    fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }
}

/// Tokens of the language and its neighbours, inserted at random.
pub(crate) const TOKENS: &[&str] = &[
    "[",
    "]",
    "{",
    "}",
    "(",
    ")",
    "<",
    ">",
    ",",
    ";",
    "=",
    ".",
    "*",
    "+",
    "-",
    "/",
    "M",
    "m",
    "model",
    "pub",
    "pub(crate)",
    "pub(in a::b)",
    "cfg",
    "bn",
    "init",
    "input",
    "num_classes",
    "compress_rate",
    "default",
    "pytorch",
    "true",
    "false",
    "vgg11",
    "vgg13",
    "vgg16",
    "vgg19",
    "conv",
    "norm2d",
    "norm1d",
    "linear",
    "weight",
    "bias",
    "normal",
    "uniform",
    "constant",
    "sqrt",
    "k",
    "in",
    "out",
    "fan_in",
    "fan_out",
    "Vgg",
    "A",
    "self",
    "Self",
    "struct",
    "fn",
    "r#type",
    "yield",
    "try",
    "box",
    "_",
    "//",
    "/*",
    "*/",
    "\n",
    "\t",
    " ",
    "\r\n",
    "0",
    "1",
    "2",
    "3",
    "8",
    "64",
    "512",
    "65536",
    "65537",
    "16384",
    "100000",
    "4294967296",
    "9223372036854775807",
    "9223372036854775808",
    "99999999999999999999999",
    "0.0",
    "0.5",
    "0.9999999999999999",
    "1.0",
    "1e999",
    "1e-999",
    "1e308",
    "-1",
    "-0",
    "-0.1",
    "2.5",
    "1e3",
    "64u8",
    "0x40",
    "1_000",
    "✓",
    "é",
    "日本",
    "\u{200b}",
    "\u{feff}",
    "🙂",
    "\u{0}",
    "\\",
    "\"",
    "'",
    "#",
    "@",
    "$",
];

/// Words that may land where a name, key or value goes: the language's own and Rust's keywords
/// (model names become Rust structs).
const WORDS: &[&str] = &[
    "A",
    "Vgg",
    "M",
    "m",
    "model",
    "pub",
    "crate",
    "self",
    "super",
    "Self",
    "in",
    "cfg",
    "bn",
    "init",
    "input",
    "num_classes",
    "compress_rate",
    "default",
    "pytorch",
    "true",
    "false",
    "vgg11",
    "vgg13",
    "vgg16",
    "vgg19",
    "conv",
    "norm2d",
    "norm1d",
    "linear",
    "weight",
    "bias",
    "running_var",
    "normal",
    "uniform",
    "constant",
    "sqrt",
    "k",
    "in",
    "out",
    "fan_in",
    "fan_out",
    "as",
    "async",
    "await",
    "break",
    "const",
    "continue",
    "dyn",
    "else",
    "enum",
    "extern",
    "fn",
    "for",
    "if",
    "impl",
    "let",
    "loop",
    "match",
    "mod",
    "move",
    "mut",
    "ref",
    "return",
    "static",
    "struct",
    "trait",
    "type",
    "unsafe",
    "use",
    "where",
    "while",
    "abstract",
    "become",
    "box",
    "do",
    "final",
    "gen",
    "macro",
    "override",
    "priv",
    "try",
    "typeof",
    "unsized",
    "virtual",
    "yield",
    "union",
    "macro_rules",
    "_",
    "__",
    "_0",
    "r",
    "AFeatures",
    "VggFeatures",
    "VggInference",
    "Option",
    "Vec",
    "Tensor",
    "Conv2d",
    "features",
    "classifier",
    "forward",
];

/// Small programs, valid and not, from every corner of the grammar.
const SNIPPETS: &[&str] = &[
    "model A { cfg = [8, M, 16] input = [3, 8, 8] }",
    "pub Vgg<cfg = vgg11, bn = false, num_classes = 100>",
    "pub(crate) model B { cfg = [4, 4, M, 8] compress_rate = [0.5, 0.25] bn = false }",
    "model C { init = { conv.weight = uniform(-1 / sqrt(fan_in), 1 / sqrt(fan_in)) norm1d.bias = constant(0.1) } }",
    "model D { cfg = [16] * 3 + [M] + [32, 64] input = [1, 7, 9] init = pytorch }",
    "model E { cfg = vgg19 compress_rate = [0.5] * 15 num_classes = 1 }",
    "model F { input = [3, 2, 2] cfg = [1, M, 1] compress_rate = [0.0] }",
    "pub(in crate::models) G<>",
    "pub(in super::super) H<cfg = vgg13> pub(self) I<> pub(super) J<>",
    "model K {} model KFeatures { cfg = [2, 2] input = [1, 2, 2] }",
];

/// The inputs the mutations start from: examples, test models, the reference's snippets.
pub(crate) fn corpus() -> Vec<String> {
    let mut out: Vec<String> = SNIPPETS.iter().map(|s| s.to_string()).collect();
    for file in [
        "examples/vgg16_bn.vgg",
        "examples/hrank_vgg16_pruned.vgg",
        "tests/models/variants.vgg",
    ] {
        out.push(read(file));
    }
    let doc = read("docs/language.md");
    let mut block: Option<String> = None;
    for line in doc.lines() {
        match &mut block {
            None if line.trim_start().starts_with("```vgg") => block = Some(String::new()),
            Some(b) if line.trim_start().starts_with("```") => {
                out.push(std::mem::take(b));
                block = None;
            }
            Some(b) => {
                b.push_str(line);
                b.push('\n');
            }
            None => {}
        }
    }
    out
}

/// Splits text into words, numbers, single symbols and runs of white space, so that the
/// mutations below act on tokens.
fn tokens(s: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut chars = s.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        let class = |c: char| {
            if c.is_alphanumeric() || c == '_' || c == '.' {
                0
            } else if c.is_whitespace() {
                1
            } else {
                2
            }
        };
        let k = class(c);
        let end = if k == 2 {
            i + c.len_utf8()
        } else {
            while chars.peek().is_some_and(|(_, n)| class(*n) == k) {
                chars.next();
            }
            chars.peek().map_or(s.len(), |(j, _)| *j)
        };
        out.push(&s[start.max(i)..end]);
        start = end;
    }
    out
}

fn random_number(rng: &mut Rng) -> String {
    match rng.below(6) {
        0 => rng.below(10).to_string(),
        1 => rng.below(1000).to_string(),
        2 => (rng.next() >> rng.below(64)).to_string(),
        3 => format!("0.{}", rng.below(100_000)),
        4 => format!("{}e{}", rng.below(10), rng.below(700) as i64 - 350),
        _ => "9".repeat(1 + rng.below(40)),
    }
}

pub(crate) fn mutate(rng: &mut Rng, input: &str) -> String {
    let mut text = input.to_owned();
    for _ in 0..1 + rng.below(4) {
        let toks = tokens(&text);
        if toks.is_empty() {
            let token: &&str = rng.pick(TOKENS);
            text.push_str(token);
            continue;
        }
        let i = rng.below(toks.len());
        let mut t: Vec<String> = toks.iter().map(|s| s.to_string()).collect();
        match rng.below(10) {
            // Flip a byte (an invalid UTF-8 result is repaired lossily).
            0 => {
                let mut bytes = text.into_bytes();
                let at = rng
                    .below(bytes.len().max(1))
                    .min(bytes.len().saturating_sub(1));
                if let Some(b) = bytes.get_mut(at) {
                    *b ^= 1 << rng.below(8);
                }
                text = String::from_utf8_lossy(&bytes).into_owned();
                continue;
            }
            1 => {
                t.remove(i);
            }
            2 => {
                let dup = t[i].clone();
                t.insert(i, dup);
            }
            3 => {
                let j = rng.below(t.len());
                t.swap(i, j);
            }
            4 => t.insert(i, format!(" {} ", rng.pick(TOKENS))),
            // Replace a word by another (a name by a keyword, a key by another key, …).
            5 | 9 => {
                let words: Vec<usize> = (0..t.len())
                    .filter(|&j| t[j].starts_with(|c: char| c.is_alphabetic() || c == '_'))
                    .collect();
                if !words.is_empty() {
                    let j = words[rng.below(words.len())];
                    t[j] = rng.pick(WORDS).to_string();
                }
            }
            6 => {
                t[i] = if rng.chance(50) {
                    random_number(rng)
                } else {
                    rng.pick(WORDS).to_string()
                }
            }
            // Repeat a token many times (long lists, deep nesting, long expressions).
            7 => {
                let n = 1 + rng.below(300);
                t[i] = t[i].repeat(n);
            }
            // Splice a piece of another input in.
            _ => {
                let j = rng.below(t.len());
                let (a, b) = (i.min(j), i.max(j));
                let piece: String = t[a..=b].concat();
                let at = rng.below(t.len());
                t.insert(at, piece);
            }
        }
        text = t.concat();
        if text.len() > 64 * 1024 {
            text.truncate(text.floor_char_boundary_compat(64 * 1024));
        }
    }
    text
}

/// `str::floor_char_boundary` is unstable; the same for the truncation above.
trait FloorCharBoundary {
    fn floor_char_boundary_compat(&self, i: usize) -> usize;
}

impl FloorCharBoundary for String {
    fn floor_char_boundary_compat(&self, mut i: usize) -> usize {
        while !self.is_char_boundary(i) {
            i -= 1;
        }
        i
    }
}

/// A size up to `small`, or, for a model at the limits, one near `limit` (at it, just below, or
/// a power of two), where overflow bugs hide.
fn size(rng: &mut Rng, at_limits: bool, small: usize, limit: usize) -> usize {
    if !at_limits || rng.chance(30) {
        return 1 + rng.below(small);
    }
    match rng.below(3) {
        0 => limit,
        1 => limit - rng.below(3),
        _ => limit >> rng.below(4),
    }
}

/// A random model from the grammar, mostly valid, so that codegen and summary see many networks;
/// one in five sits at the size limits (widths near 65,536, inputs near 16,384, with rates).
pub(crate) fn generate(rng: &mut Rng) -> String {
    let mut s = String::new();
    for m in 0..1 + rng.below(2) {
        let mut settings = Vec::new();
        let big = rng.chance(20);
        let c = size(rng, big, 4, 65536);
        let (h, w) = (size(rng, big, 70, 16384), size(rng, big, 70, 16384));
        if big || rng.chance(60) {
            settings.push(format!("input = [{c}, {h}, {w}]"));
        }
        let mut convs = 0;
        if rng.chance(85) {
            let mut items = Vec::new();
            for _ in 0..1 + rng.below(8) {
                if rng.chance(25) {
                    items.push("M".to_owned());
                } else {
                    convs += 1;
                    items.push(size(rng, big, 80, 65536).to_string());
                }
            }
            items.push(size(rng, big, 100, 65536).to_string());
            settings.push(format!("cfg = [{}]", items.join(", ")));
        } else {
            let preset = *rng.pick(&["default", "vgg11", "vgg13", "vgg16", "vgg19"]);
            convs = match preset {
                "vgg11" => 8,
                "vgg13" => 10,
                "vgg19" => 16,
                _ => 13,
            };
            settings.push(format!("cfg = {preset}"));
        }
        if rng.chance(50) {
            settings.push(format!("bn = {}", rng.chance(50)));
        }
        if rng.chance(30) {
            settings.push(format!("num_classes = {}", 1 + rng.below(1000)));
        }
        if (big || rng.chance(40)) && convs > 0 {
            let n = if rng.chance(50) { convs } else { convs - 1 };
            let rates: Vec<String> = (0..n).map(|_| format!("0.{}", rng.below(100))).collect();
            settings.push(format!("compress_rate = [{}]", rates.join(", ")));
        }
        if rng.chance(40) {
            let mut rules = Vec::new();
            for _ in 0..rng.below(5) {
                let kind = *rng.pick(&["conv", "norm2d", "norm1d", "linear"]);
                let tensor = *rng.pick(&["weight", "bias"]);
                let var = *rng.pick(&["k", "in", "out", "fan_in", "fan_out"]);
                let call = match rng.below(3) {
                    0 => format!("normal(0, sqrt(2 / {var}))"),
                    1 => format!("uniform(-1 / sqrt({var}), 1 / sqrt({var}))"),
                    _ => format!("constant({})", random_number(rng)),
                };
                rules.push(format!("{kind}.{tensor} = {call}"));
            }
            settings.push(format!("init = {{ {} }}", rules.join("\n")));
        }
        if rng.chance(50) {
            s.push_str(&format!("model M{m} {{ {} }}\n", settings.join("\n")));
        } else {
            s.push_str(&format!("pub M{m}<{}>\n", settings.join(", ")));
        }
    }
    s
}
