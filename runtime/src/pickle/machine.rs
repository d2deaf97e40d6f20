//! The pickle virtual machine, restricted to what a state_dict needs. [`Machine::run`] is one
//! match with an arm per opcode: the opcode table, read top to bottom against the pickle
//! protocol's, and so the one function of the reader longer than a screen; splitting it would
//! scatter the table.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use tch::Kind;

use super::{Dict, Error, Items, List, Storage, TensorRef, Value, MAX_DEPTH};

/// The machine's state as it runs a pickle.
pub(super) struct Machine<'a> {
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
    pub(super) fn new(data: &'a [u8]) -> Self {
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

    /// The depth of a new container holding `items`. Lists and dicts among them are marked as
    /// inside it, so that their depth, and so its own, cannot grow later.
    fn nest<'v>(&self, items: impl IntoIterator<Item = &'v Value>) -> Result<usize, Error> {
        let mut depth = 1;
        for item in items {
            match item {
                Value::List(list) => list.borrow_mut().inside = true,
                Value::Dict(dict) => dict.borrow_mut().inside = true,
                _ => {}
            }
            depth = depth.max(item.depth() + 1);
        }
        if depth > MAX_DEPTH {
            return Err(
                self.unsupported(format!("the pickle nests deeper than {MAX_DEPTH} levels"))
            );
        }
        Ok(depth)
    }

    fn tuple(&self, items: Vec<Value>) -> Result<Value, Error> {
        let depth = self.nest(&items)?;
        Ok(Value::Tuple(items.into(), depth))
    }

    /// Adds to a list or dict that is not inside another value (which also refuses cycles).
    fn extend<T>(
        &self,
        into: &RefCell<Items<T>>,
        what: &str,
        depth: usize,
        items: impl IntoIterator<Item = T>,
    ) -> Result<(), Error> {
        let mut into = into.borrow_mut();
        if into.inside {
            return Err(self.unsupported(format!(
                "the pickle changes {what} after putting it inside another value"
            )));
        }
        into.depth = into.depth.max(depth);
        into.items.extend(items);
        Ok(())
    }

    fn append(&self, items: Vec<Value>) -> Result<(), Error> {
        let depth = self.nest(&items)?;
        let list = self.top_list()?;
        self.extend(&list, "a list", depth, items)
    }

    fn set_items(&self, items: Vec<(Value, Value)>) -> Result<(), Error> {
        let depth = self.nest(items.iter().flat_map(|(k, v)| [k, v]))?;
        let dict = self.top_dict()?;
        self.extend(&dict, "a dict", depth, items)
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

    pub(super) fn run(mut self) -> Result<Value, Error> {
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
                b')' => self.push(Value::Tuple(Rc::new([]), 1)),
                b't' => {
                    let items = self.pop_mark()?;
                    let tuple = self.tuple(items)?;
                    self.push(tuple);
                }
                op @ 0x85..=0x87 => {
                    let n = usize::from(op - 0x84);
                    let mut items = (0..n).map(|_| self.pop()).collect::<Result<Vec<_>, _>>()?;
                    items.reverse();
                    let tuple = self.tuple(items)?;
                    self.push(tuple);
                }
                b']' => self.push(Value::List(Rc::default())),
                b'a' => {
                    let v = self.pop()?;
                    self.append(vec![v])?;
                }
                b'e' => {
                    let items = self.pop_mark()?;
                    self.append(items)?;
                }
                b'}' => self.push(Value::Dict(Rc::default())),
                b's' => {
                    let v = self.pop()?;
                    let k = self.pop()?;
                    self.set_items(vec![(k, v)])?;
                }
                b'u' => {
                    let items = self.pop_mark()?;
                    if items.len() % 2 != 0 {
                        return Err(self.corrupt("SETITEMS with an odd number of values"));
                    }
                    let mut items = items.into_iter();
                    let pairs = std::iter::from_fn(|| Some((items.next()?, items.next()?)));
                    self.set_items(pairs.collect())?;
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
                0x93 => {
                    // STACK_GLOBAL (protocol 4): module and name are strings on the stack.
                    let (Value::Str(name), Value::Str(module)) = (self.pop()?, self.pop()?) else {
                        return Err(self.corrupt("STACK_GLOBAL of values other than strings"));
                    };
                    self.push(Value::Global(Rc::new((
                        module.to_string(),
                        name.to_string(),
                    ))));
                }
                0x94 => {
                    // MEMOIZE (protocol 4): into the next free slot.
                    let index = u32::try_from(self.memo.len())
                        .map_err(|_| self.corrupt("the memo is full"))?;
                    self.memo_put(index)?;
                }
                0x95 => {
                    // FRAME (protocol 4): the length of the opcodes that follow, a reading hint.
                    self.array::<8>()?;
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
        let Value::Tuple(items, _) = &pid else {
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
        let (Value::Global(global), Value::Tuple(args, _)) = (&callable, &args) else {
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
        let (Value::Storage(storage), Value::Int(offset), Value::Tuple(sz, _), Value::Tuple(st, _)) =
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
        // Nor more elements than the storage holds: an expanded view (stride 0) can be far larger
        // than its storage, and any copy of it would allocate all of them.
        let numel = size.iter().try_fold(1i64, |n, &d| n.checked_mul(d));
        if !matches!(numel, Some(numel) if numel <= storage.numel) {
            return Err(self.unsupported(format!(
                "tensor with size {size:?}, stride {stride:?} has more elements than its storage \
                 of {} (an expanded view? save it after .contiguous())",
                storage.numel
            )));
        }
        Ok(Value::Tensor(Rc::new(TensorRef {
            storage: storage.clone(),
            offset: *offset,
            size,
            stride,
        })))
    }
}
