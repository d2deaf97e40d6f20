//! The syntax tree: what the text says, with the byte span of every piece for diagnostics.

use std::ops::Range;

/// Byte range into the source text.
pub type Span = Range<usize>;

/// A value with the span of the text it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct Spanned<T> {
    pub node: T,
    pub span: Span,
}

impl<T> Spanned<T> {
    pub fn new(node: T, span: Span) -> Self {
        Self { node, span }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct File {
    pub models: Vec<Model>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Model {
    /// Visibility as written (`pub`, `pub(crate)`, …); `None` for private.
    pub visibility: Option<Spanned<String>>,
    pub name: Spanned<String>,
    pub settings: Vec<Setting>,
    /// `train { … }` blocks (one is allowed; the checker says so).
    pub train: Vec<TrainBlock>,
    pub span: Span,
}

/// `train { key = value … }`.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainBlock {
    /// The `train` keyword.
    pub keyword: Span,
    pub settings: Vec<Setting>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Setting {
    pub key: Spanned<String>,
    pub value: Spanned<Value>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// A bare word: a preset, `true`, `default`, …
    Word(String),
    Number(Number),
    /// `[a, b] * n + [c]`: the terms of a list sum.
    List(Vec<ListTerm>),
    /// `{ rule … }`: init rules.
    Block(Vec<Rule>),
}

impl Value {
    /// What the value is, for "expected X, found Y" messages.
    pub fn describe(&self) -> &'static str {
        match self {
            Value::Word(_) => "a word",
            Value::Number(Number::Int(_)) => "an integer",
            Value::Number(Number::Float(_)) => "a number",
            Value::List(_) => "a list",
            Value::Block(_) => "a block",
        }
    }
}

/// A number as written: integers keep their text so overflow is reported, not wrapped.
#[derive(Debug, Clone, PartialEq)]
pub enum Number {
    Int(String),
    Float(f64),
}

#[derive(Debug, Clone, PartialEq)]
pub struct ListTerm {
    pub items: Vec<Spanned<Item>>,
    /// `* n`; `None` when absent.
    pub repeat: Option<Spanned<String>>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Item {
    Number(Number),
    Word(String),
}

/// `kind.tensor = dist(args…)`
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    pub layer: Spanned<String>,
    pub tensor: Spanned<String>,
    pub call: Spanned<Call>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Call {
    pub name: Spanned<String>,
    pub args: Vec<Spanned<Expr>>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    Number(Number),
    Var(String),
    Neg(Box<Spanned<Expr>>),
    Binary(Box<Spanned<Expr>>, BinOp, Box<Spanned<Expr>>),
    Call(Call),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinOp {
    Add,
    Sub,
    Mul,
    Div,
}
