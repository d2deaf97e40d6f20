//! Reads the `data.pkl` that `torch.save(model.state_dict(), f)` puts in its zip archive.
//!
//! Only the opcodes of protocols 2 to 4 and the few callables that such a pickle uses are
//! understood, so arbitrary pickles are refused instead of executed; anything else, and any
//! malformed or cut-off input, is an [`Error`] naming the byte where it happened.
//!
//! Values nest at most [`MAX_DEPTH`] levels deep, and a list or dict can no longer change once it
//! is inside another value, so every depth stays exact, no cycle forms, and dropping a value never
//! recurses deeper than that.
use std::cell::RefCell;
use std::collections::HashSet;
use std::rc::Rc;

use tch::Kind;

use machine::Machine;

/// How deeply values may nest; a state_dict's pickle nests a few levels.
const MAX_DEPTH: usize = 1000;

/// Why a pickle could not be read.
#[derive(Debug)]
pub(crate) enum Error {
    /// Malformed or cut-off input.
    Corrupt(String),
    /// Well-formed, but holds something other than a flat dict of plain tensors.
    Unsupported(String),
}

/// The elements behind one or more tensors: the archive entry `<name>/data/<key>`.
#[derive(Debug)]
pub(crate) struct Storage {
    pub key: String,
    pub kind: Kind,
    pub numel: i64,
}

/// A strided view of a storage, already checked to stay inside it.
#[derive(Clone, Debug)]
pub(crate) struct TensorRef {
    pub storage: Rc<Storage>,
    pub offset: i64,
    pub size: Vec<i64>,
    pub stride: Vec<i64>,
}

/// Returns the pickled dict's entries in their pickled order (an `OrderedDict`'s order).
pub(crate) fn read_state_dict(data: &[u8]) -> Result<Vec<(String, TensorRef)>, Error> {
    let entries = match Machine::new(data).run()? {
        Value::Dict(dict) => dict.borrow().items.clone(),
        other => {
            let what = other.describe();
            return Err(Error::Unsupported(format!(
                "the pickle holds {what}, not a dict of tensors"
            )));
        }
    };
    let mut seen = HashSet::new();
    entries
        .into_iter()
        .map(|(key, value)| {
            let Value::Str(key) = key else {
                let what = key.describe();
                return Err(Error::Unsupported(format!(
                    "the dict has {what} as a key, not a name"
                )));
            };
            if !seen.insert(key.clone()) {
                return Err(Error::Corrupt(format!("key {key} appears twice")));
            }
            match value {
                Value::Tensor(t) => Ok((key.to_string(), (*t).clone())),
                Value::Dict(_) => Err(Error::Unsupported(format!(
                    "entry {key} holds a dict, not a tensor \
                     (a training checkpoint? save its model state_dict on its own)"
                ))),
                other => {
                    let what = other.describe();
                    Err(Error::Unsupported(format!(
                        "entry {key} holds {what}, not a tensor"
                    )))
                }
            }
        })
        .collect()
}

/// Lists and dicts are shared so that a memoized one sees later changes.
type List = Rc<RefCell<Items<Value>>>;
type Dict = Rc<RefCell<Items<(Value, Value)>>>;

/// The items of a list or dict.
#[derive(Debug)]
struct Items<T> {
    items: Vec<T>,
    /// 1 + the deepest item's depth.
    depth: usize,
    /// Put inside another value, after which it may not change (see [`Machine::nest`]).
    inside: bool,
}

impl<T> Default for Items<T> {
    fn default() -> Self {
        Self {
            items: Vec::new(),
            depth: 1,
            inside: false,
        }
    }
}

/// A pickled object.
#[derive(Clone, Debug)]
enum Value {
    None,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(Rc<str>),
    Global(Rc<(String, String)>),
    /// Items and depth.
    Tuple(Rc<[Value]>, usize),
    List(List),
    Dict(Dict),
    Storage(Rc<Storage>),
    Tensor(Rc<TensorRef>),
}

impl Value {
    /// How many containers deep the value is: 0 for scalars, 1 for an empty tuple.
    fn depth(&self) -> usize {
        match self {
            Value::Tuple(_, depth) => *depth,
            Value::List(list) => list.borrow().depth,
            Value::Dict(dict) => dict.borrow().depth,
            _ => 0,
        }
    }

    /// For error messages.
    fn describe(&self) -> String {
        match self {
            Value::None => "None".into(),
            Value::Bool(b) => format!("the bool {}", if *b { "True" } else { "False" }),
            Value::Int(i) => format!("the int {i}"),
            Value::Float(f) => format!("the float {f}"),
            Value::Str(s) => format!("the string {s:?}"),
            Value::Global(g) => format!("{}.{}", g.0, g.1),
            Value::Tuple(..) => "a tuple".into(),
            Value::List(_) => "a list".into(),
            Value::Dict(_) => "a dict".into(),
            Value::Storage(_) => "a storage".into(),
            Value::Tensor(_) => "a tensor".into(),
        }
    }
}

mod machine;
#[cfg(test)]
mod tests;
