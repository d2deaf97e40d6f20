//! Reads the `data.pkl` that `torch.save(model.state_dict(), f)` puts in its zip archive.
//!
//! Only the protocol-2 opcodes and the few callables that such a pickle uses are understood, so
//! arbitrary pickles are refused instead of executed; anything else, and any malformed or cut-off
//! input, is an [`Error`] naming the byte where it happened.
use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::rc::Rc;

use tch::Kind;

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
        Value::Dict(dict) => dict.borrow().clone(),
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
type List = Rc<RefCell<Vec<Value>>>;
type Dict = Rc<RefCell<Vec<(Value, Value)>>>;

/// A pickled object.
#[derive(Clone, Debug)]
enum Value {
    None,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(Rc<str>),
    Global(Rc<(String, String)>),
    Tuple(Rc<[Value]>),
    List(List),
    Dict(Dict),
    Storage(Rc<Storage>),
    Tensor(Rc<TensorRef>),
}

impl Value {
    /// For error messages.
    fn describe(&self) -> String {
        match self {
            Value::None => "None".into(),
            Value::Bool(b) => format!("the bool {}", if *b { "True" } else { "False" }),
            Value::Int(i) => format!("the int {i}"),
            Value::Float(f) => format!("the float {f}"),
            Value::Str(s) => format!("the string {s:?}"),
            Value::Global(g) => format!("{}.{}", g.0, g.1),
            Value::Tuple(_) => "a tuple".into(),
            Value::List(_) => "a list".into(),
            Value::Dict(_) => "a dict".into(),
            Value::Storage(_) => "a storage".into(),
            Value::Tensor(_) => "a tensor".into(),
        }
    }
}

/// The pickle virtual machine, restricted to what a state_dict needs.
struct Machine<'a> {
    data: &'a [u8],
    pos: usize,
    /// Position of the opcode being run, for messages.
    op_pos: usize,
    stack: Vec<Value>,
    /// Stack lengths at each MARK.
    marks: Vec<usize>,
    memo: HashMap<u32, Value>,
}

impl<'a> Machine<'a> {
    fn new(data: &'a [u8]) -> Self {
        Self {
            data,
            pos: 0,
            op_pos: 0,
            stack: Vec::new(),
            marks: Vec::new(),
            memo: HashMap::new(),
        }
    }

    fn corrupt(&self, what: impl std::fmt::Display) -> Error {
        Error::Corrupt(format!("{what} (pickle byte {})", self.op_pos))
    }

    fn unsupported(&self, what: impl std::fmt::Display) -> Error {
        Error::Unsupported(format!("{what} (pickle byte {})", self.op_pos))
    }

    fn ends_early(&self) -> Error {
        let len = self.data.len();
        Error::Corrupt(format!(
            "the pickle ends early, after {len} bytes, without its STOP opcode"
        ))
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], Error> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&end| end <= self.data.len());
        let end = end.ok_or_else(|| self.ends_early())?;
        let bytes = &self.data[self.pos..end];
        self.pos = end;
        Ok(bytes)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], Error> {
        let mut bytes = [0; N];
        bytes.copy_from_slice(self.take(N)?);
        Ok(bytes)
    }

    fn byte(&mut self) -> Result<u8, Error> {
        Ok(self.array::<1>()?[0])
    }

    fn u16(&mut self) -> Result<u16, Error> {
        Ok(u16::from_le_bytes(self.array()?))
    }

    fn u32(&mut self) -> Result<u32, Error> {
        Ok(u32::from_le_bytes(self.array()?))
    }

    fn string(&mut self, len: usize) -> Result<Rc<str>, Error> {
        let bytes = self.take(len)?;
        std::str::from_utf8(bytes)
            .map(Rc::from)
            .map_err(|_| self.corrupt("a string is not valid UTF-8"))
    }

    /// A newline-terminated line, as GLOBAL's module and name are.
    fn line(&mut self) -> Result<String, Error> {
        let rest = &self.data[self.pos..];
        let len = rest
            .iter()
            .position(|&b| b == b'\n')
            .ok_or_else(|| self.ends_early())?;
        let line = self.string(len)?;
        self.pos += 1;
        Ok(line.to_string())
    }

    fn push(&mut self, value: Value) {
        self.stack.push(value);
    }

    /// The top value, which must lie above the last MARK.
    fn pop(&mut self) -> Result<Value, Error> {
        self.top()?;
        self.stack
            .pop()
            .ok_or_else(|| self.corrupt("the stack is empty"))
    }

    /// Everything pushed since the last MARK, which is removed.
    fn pop_mark(&mut self) -> Result<Vec<Value>, Error> {
        let mark = self
            .marks
            .pop()
            .ok_or_else(|| self.corrupt("no MARK to pop to"))?;
        Ok(self.stack.split_off(mark))
    }

    fn top(&self) -> Result<&Value, Error> {
        match self.stack.last() {
            Some(v) if self.stack.len() > self.marks.last().copied().unwrap_or(0) => Ok(v),
            _ => Err(self.corrupt("an opcode needs a value under it on the stack")),
        }
    }

    fn top_dict(&self) -> Result<Dict, Error> {
        match self.top()? {
            Value::Dict(d) => Ok(d.clone()),
            other => Err(self.unsupported(format!("setting items of {}", other.describe()))),
        }
    }

    fn top_list(&self) -> Result<List, Error> {
        match self.top()? {
            Value::List(l) => Ok(l.clone()),
            other => Err(self.unsupported(format!("appending to {}", other.describe()))),
        }
    }

    fn memo_get(&self, index: u32) -> Result<Value, Error> {
        self.memo
            .get(&index)
            .cloned()
            .ok_or_else(|| self.corrupt(format!("memo slot {index} read before being written")))
    }

    fn memo_put(&mut self, index: u32) -> Result<(), Error> {
        let value = self.top()?.clone();
        self.memo.insert(index, value);
        Ok(())
    }

    fn run(mut self) -> Result<Value, Error> {
        loop {
            self.op_pos = self.pos;
            match self.byte()? {
                0x80 => {
                    // PROTO: the opcodes that follow are checked one by one.
                    self.byte()?;
                }
                b'.' => return self.pop(), // STOP
                b'(' => self.marks.push(self.stack.len()),
                b'N' => self.push(Value::None),
                0x88 => self.push(Value::Bool(true)),
                0x89 => self.push(Value::Bool(false)),
                b'K' => {
                    let v = self.byte()?;
                    self.push(Value::Int(v.into()));
                }
                b'M' => {
                    let v = self.u16()?;
                    self.push(Value::Int(v.into()));
                }
                b'J' => {
                    let v = self.u32()? as i32;
                    self.push(Value::Int(v.into()));
                }
                0x8a => {
                    // LONG1: little-endian two's complement of up to 255 bytes.
                    let len = self.byte()? as usize;
                    let bytes = self.take(len)?;
                    if len > 8 {
                        return Err(self.unsupported(format!("an integer of {len} bytes")));
                    }
                    let fill = if bytes.last().is_some_and(|&b| b & 0x80 != 0) {
                        0xff
                    } else {
                        0
                    };
                    let mut le = [fill; 8];
                    le[..len].copy_from_slice(bytes);
                    self.push(Value::Int(i64::from_le_bytes(le)));
                }
                b'G' => {
                    let v = f64::from_be_bytes(self.array()?);
                    self.push(Value::Float(v));
                }
                b'X' => {
                    let len = self.u32()? as usize;
                    let s = self.string(len)?;
                    self.push(Value::Str(s));
                }
                0x8c => {
                    let len = self.byte()? as usize;
                    let s = self.string(len)?;
                    self.push(Value::Str(s));
                }
                b')' => self.push(Value::Tuple(Rc::new([]))),
                b't' => {
                    let items = self.pop_mark()?;
                    self.push(Value::Tuple(items.into()));
                }
                op @ 0x85..=0x87 => {
                    let n = usize::from(op - 0x84);
                    let items = (0..n).map(|_| self.pop()).collect::<Result<Vec<_>, _>>()?;
                    self.push(Value::Tuple(items.into_iter().rev().collect()));
                }
                b']' => self.push(Value::List(Rc::default())),
                b'a' => {
                    let v = self.pop()?;
                    self.top_list()?.borrow_mut().push(v);
                }
                b'e' => {
                    let items = self.pop_mark()?;
                    self.top_list()?.borrow_mut().extend(items);
                }
                b'}' => self.push(Value::Dict(Rc::default())),
                b's' => {
                    let v = self.pop()?;
                    let k = self.pop()?;
                    self.top_dict()?.borrow_mut().push((k, v));
                }
                b'u' => {
                    let items = self.pop_mark()?;
                    if items.len() % 2 != 0 {
                        return Err(self.corrupt("SETITEMS with an odd number of values"));
                    }
                    let dict = self.top_dict()?;
                    let mut items = items.into_iter();
                    while let (Some(k), Some(v)) = (items.next(), items.next()) {
                        dict.borrow_mut().push((k, v));
                    }
                }
                b'q' => {
                    let i = self.byte()?;
                    self.memo_put(i.into())?;
                }
                b'r' => {
                    let i = self.u32()?;
                    self.memo_put(i)?;
                }
                b'h' => {
                    let i = self.byte()?;
                    let v = self.memo_get(i.into())?;
                    self.push(v);
                }
                b'j' => {
                    let i = self.u32()?;
                    let v = self.memo_get(i)?;
                    self.push(v);
                }
                b'c' => {
                    let module = self.line()?;
                    let name = self.line()?;
                    self.push(Value::Global(Rc::new((module, name))));
                }
                b'Q' => {
                    let pid = self.pop()?;
                    let storage = self.persistent_load(pid)?;
                    self.push(Value::Storage(Rc::new(storage)));
                }
                b'R' => {
                    let args = self.pop()?;
                    let callable = self.pop()?;
                    let value = self.reduce(callable, args)?;
                    self.push(value);
                }
                b'b' => {
                    // BUILD: an `OrderedDict` gets its `_metadata` (module versions), not needed.
                    self.pop()?;
                    if !matches!(self.top()?, Value::Dict(_)) {
                        return Err(
                            self.unsupported(format!("BUILD of {}", self.top()?.describe()))
                        );
                    }
                }
                op => return Err(self.unsupported(format!("unsupported pickle opcode {op:#04x}"))),
            }
        }
    }

    /// `('storage', torch.FloatStorage, key, location, numel)`, as `torch.save` writes it.
    fn persistent_load(&self, pid: Value) -> Result<Storage, Error> {
        let bad = || self.unsupported(format!("persistent id {}", pid.describe()));
        let Value::Tuple(items) = &pid else {
            return Err(bad());
        };
        let [tag, class, key, _location, numel] = &items[..] else {
            return Err(bad());
        };
        let (Value::Str(tag), Value::Global(class), Value::Str(key), Value::Int(numel)) =
            (tag, class, key, numel)
        else {
            return Err(bad());
        };
        if &**tag != "storage" || *numel < 0 {
            return Err(bad());
        }
        let kind = match (class.0.as_str(), class.1.as_str()) {
            ("torch", "FloatStorage") => Kind::Float,
            ("torch", "DoubleStorage") => Kind::Double,
            ("torch", "HalfStorage") => Kind::Half,
            ("torch", "BFloat16Storage") => Kind::BFloat16,
            ("torch", "LongStorage") => Kind::Int64,
            ("torch", "IntStorage") => Kind::Int,
            ("torch", "ShortStorage") => Kind::Int16,
            ("torch", "CharStorage") => Kind::Int8,
            ("torch", "ByteStorage") => Kind::Uint8,
            ("torch", "BoolStorage") => Kind::Bool,
            (module, name) => return Err(self.unsupported(format!("storage type {module}.{name}"))),
        };
        Ok(Storage {
            key: key.to_string(),
            kind,
            numel: *numel,
        })
    }

    fn reduce(&self, callable: Value, args: Value) -> Result<Value, Error> {
        let (Value::Global(global), Value::Tuple(args)) = (&callable, &args) else {
            return Err(self.corrupt(format!(
                "REDUCE of {} with {}",
                callable.describe(),
                args.describe()
            )));
        };
        match (global.0.as_str(), global.1.as_str(), &args[..]) {
            ("collections", "OrderedDict", []) => Ok(Value::Dict(Rc::default())),
            ("torch._utils", "_rebuild_tensor_v2", args) => self.rebuild_tensor(args),
            (
                "torch._utils",
                "_rebuild_parameter",
                [tensor @ Value::Tensor(_), Value::Bool(_), _],
            ) => Ok(tensor.clone()),
            (module, name, _) => Err(self.unsupported(format!(
                "a call of {module}.{name}, which a state_dict of plain tensors does not hold"
            ))),
        }
    }

    /// `_rebuild_tensor_v2(storage, offset, size, stride, requires_grad, hooks[, metadata])`.
    fn rebuild_tensor(&self, args: &[Value]) -> Result<Value, Error> {
        let bad = || self.unsupported("_rebuild_tensor_v2 with unexpected arguments");
        let ([storage, offset, size, stride, _, _] | [storage, offset, size, stride, _, _, _]) =
            args
        else {
            return Err(bad());
        };
        let (Value::Storage(storage), Value::Int(offset), Value::Tuple(sz), Value::Tuple(st)) =
            (storage, offset, size, stride)
        else {
            return Err(bad());
        };
        let ints =
            |values: &[Value]| -> Result<Vec<i64>, Error> {
                values
                    .iter()
                    .map(|v| match v {
                        Value::Int(i) if *i >= 0 => Ok(*i),
                        other => Err(self
                            .corrupt(format!("tensor size or stride holds {}", other.describe()))),
                    })
                    .collect()
            };
        let (size, stride) = (ints(sz)?, ints(st)?);
        if size.len() != stride.len() || *offset < 0 {
            return Err(self.corrupt(format!(
                "tensor with size {size:?}, stride {stride:?}, offset {offset}"
            )));
        }
        // The last element a view reaches must lie in its storage (as torch checks); empty views
        // reach none.
        if !size.contains(&0) {
            let last = size.iter().zip(&stride).try_fold(*offset, |acc, (&n, &s)| {
                (n - 1).checked_mul(s)?.checked_add(acc)
            });
            if !matches!(last, Some(last) if last < storage.numel) {
                return Err(self.corrupt(format!(
                    "tensor with size {size:?}, stride {stride:?}, offset {offset} reaches past \
                     its storage of {} elements",
                    storage.numel
                )));
            }
        }
        Ok(Value::Tensor(Rc::new(TensorRef {
            storage: storage.clone(),
            offset: *offset,
            size,
            stride,
        })))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A hand-assembled pickle shaped like torch.save's of an `OrderedDict` (with `_metadata`)
    /// holding a transposed, offset float view and an int64 scalar.
    fn sample() -> Vec<u8> {
        let mut p = Vec::new();
        p.extend(b"\x80\x02ccollections\nOrderedDict\nq\x00)Rq\x01(");
        for (key, storage, class, numel, offset, size, stride) in [
            (
                "w",
                "0",
                "FloatStorage",
                6u8,
                1u8,
                &[2u8, 2][..],
                &[1u8, 3][..],
            ),
            ("n", "1", "LongStorage", 1, 0, &[][..], &[][..]),
        ] {
            let s = |p: &mut Vec<u8>, s: &str| {
                p.push(b'X');
                p.extend((s.len() as u32).to_le_bytes());
                p.extend(s.as_bytes());
            };
            s(&mut p, key);
            p.extend(b"ctorch._utils\n_rebuild_tensor_v2\n((");
            s(&mut p, "storage");
            p.extend(format!("ctorch\n{class}\n").as_bytes());
            s(&mut p, storage);
            s(&mut p, "cpu");
            p.extend([b'K', numel, b't', b'Q', b'K', offset, b'(']);
            size.iter().for_each(|&n| p.extend([b'K', n]));
            p.extend(b"t(");
            stride.iter().for_each(|&n| p.extend([b'K', n]));
            p.extend(b"t\x89h\x00)Rtq\x02R");
        }
        p.extend(b"u}q\x03X\x09\x00\x00\x00_metadatah\x00)R(");
        p.extend(b"X\x00\x00\x00\x00}X\x07\x00\x00\x00versionK\x01sus");
        p.extend(b"b.");
        p
    }

    #[test]
    fn reads_ordered_dict_with_views_and_metadata() {
        let entries = read_state_dict(&sample()).unwrap();
        let [(w, wt), (n, nt)] = &entries[..] else {
            panic!("{entries:?}")
        };
        assert_eq!(
            (
                w.as_str(),
                wt.storage.kind,
                wt.offset,
                &wt.size[..],
                &wt.stride[..]
            ),
            ("w", Kind::Float, 1, &[2, 2][..], &[1, 3][..])
        );
        assert_eq!(
            (n.as_str(), nt.storage.kind, &nt.size[..]),
            ("n", Kind::Int64, &[][..])
        );
        assert_eq!(nt.storage.key, "1");
    }

    #[test]
    fn every_cut_off_prefix_is_an_error() {
        let full = sample();
        for len in 0..full.len() {
            assert!(
                matches!(
                    read_state_dict(&full[..len]),
                    Err(Error::Corrupt(_) | Error::Unsupported(_))
                ),
                "{len}"
            );
        }
    }

    #[test]
    fn corrupted_bytes_give_errors_not_panics() {
        let full = sample();
        for i in 0..full.len() {
            for b in [0x00, 0x28, 0x2e, 0x52, 0x71, 0x74, 0x80, 0xff] {
                let mut p = full.clone();
                p[i] = b;
                let _ = read_state_dict(&p);
            }
        }
    }

    #[test]
    fn refuses_other_callables_and_opcodes() {
        let Err(Error::Unsupported(m)) =
            read_state_dict(b"\x80\x02cos\nsystem\nX\x02\x00\x00\x00ls\x85R.")
        else {
            panic!()
        };
        assert!(m.contains("os.system"), "{m}");
        let Err(Error::Unsupported(m)) = read_state_dict(b"\x80\x04\x95\x00") else {
            panic!()
        };
        assert!(m.contains("opcode 0x95"), "{m}");
    }

    #[test]
    fn views_past_their_storage_are_corrupt() {
        let p = sample();
        // Offset 1 → 5 in the first tensor: the last element (5 + 1 + 3 = 9) is past 6 elements.
        let at = p.windows(4).position(|w| w == b"QK\x01(").unwrap();
        let mut bad = p.clone();
        bad[at + 2] = 5;
        let Err(Error::Corrupt(m)) = read_state_dict(&bad) else {
            panic!()
        };
        assert!(m.contains("past its storage of 6 elements"), "{m}");
    }
}
