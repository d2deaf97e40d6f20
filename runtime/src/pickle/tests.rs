//! The pickle reader on hand-assembled pickles: a state_dict with views and metadata read whole;
//! cut-off, corrupted and foreign input, views outside their storage and deep nesting refused.

use super::*;

/// One tensor: key, storage key, storage class, storage numel, offset, size, stride.
type Spec<'a> = (&'a str, &'a str, &'a str, i64, i64, &'a [i64], &'a [i64]);

fn int(p: &mut Vec<u8>, v: i64) {
    match u8::try_from(v) {
        Ok(b) => p.extend([b'K', b]),
        Err(_) => {
            p.extend([0x8a, 8]);
            p.extend(v.to_le_bytes());
        }
    }
}

/// A hand-assembled pickle shaped like torch.save's of an `OrderedDict` (with `_metadata`).
fn state_dict(tensors: &[Spec]) -> Vec<u8> {
    let mut p = Vec::new();
    p.extend(b"\x80\x02ccollections\nOrderedDict\nq\x00)Rq\x01(");
    for &(key, storage, class, numel, offset, size, stride) in tensors {
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
        int(&mut p, numel);
        p.extend(b"tQ");
        int(&mut p, offset);
        p.push(b'(');
        size.iter().for_each(|&n| int(&mut p, n));
        p.extend(b"t(");
        stride.iter().for_each(|&n| int(&mut p, n));
        p.extend(b"t\x89h\x00)Rtq\x02R");
    }
    p.extend(b"u}q\x03X\x09\x00\x00\x00_metadatah\x00)R(");
    p.extend(b"X\x00\x00\x00\x00}X\x07\x00\x00\x00versionK\x01sus");
    p.extend(b"b.");
    p
}

/// A transposed, offset float view and an int64 scalar.
fn sample() -> Vec<u8> {
    state_dict(&[
        ("w", "0", "FloatStorage", 6, 1, &[2, 2], &[1, 3]),
        ("n", "1", "LongStorage", 1, 0, &[], &[]),
    ])
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
    let Err(Error::Unsupported(m)) = read_state_dict(b"\x80\x04\x8f.") else {
        panic!()
    };
    assert!(m.contains("opcode 0x8f"), "{m}");
}

#[test]
fn views_outside_their_storage_are_refused() {
    let huge = 1 << 62;
    for (offset, size, stride, message) in [
        // The last element, 5 + 1 + 3 = 9, is past 6 elements.
        (
            5,
            &[2, 2][..],
            &[1, 3][..],
            "reaches past its storage of 6 elements",
        ),
        (
            0,
            &[2, huge],
            &[3, 1],
            "reaches past its storage of 6 elements",
        ),
        (0, &[huge, huge], &[huge, huge], "reaches past its storage"),
        (-1, &[2], &[1], "offset -1"),
        (0, &[2, -1], &[1, 3], "holds the int -1"),
        (0, &[2, 2], &[-1, 3], "holds the int -1"),
        // Stride 0 reaches one element only, but the view has 2^62 of them.
        (0, &[huge], &[0], "has more elements than its storage of 6"),
        (
            0,
            &[huge, 4],
            &[0, 0],
            "has more elements than its storage of 6",
        ),
        (0, &[7], &[0], "has more elements than its storage of 6"),
    ] {
        let p = state_dict(&[("w", "0", "FloatStorage", 6, offset, size, stride)]);
        let m = match read_state_dict(&p) {
            Err(Error::Corrupt(m) | Error::Unsupported(m)) => m,
            Ok(_) => panic!("{size:?} {stride:?} {offset} was accepted"),
        };
        assert!(m.contains(message), "{m}");
    }
    // Stride 0 within the storage's size is a plain view.
    let p = state_dict(&[("w", "0", "FloatStorage", 6, 0, &[2, 3], &[0, 1])]);
    assert_eq!(read_state_dict(&p).unwrap()[0].1.size, [2, 3]);
}

fn pickle(body: &[u8]) -> Vec<u8> {
    [&b"\x80\x02"[..], body, b"."].concat()
}

fn nested(open: &[u8], level: &[u8], close: &[u8], n: usize) -> Vec<u8> {
    pickle(&[open, &level.repeat(n), &close.repeat(n)].concat())
}

#[test]
fn deep_nesting_is_refused_without_overflowing_the_stack() {
    let n = 1_000_000;
    for p in [
        // TUPLE1 around the tuple below.
        nested(b")", b"\x85", b"", n),
        // MARK … TUPLE.
        nested(b"", b"(", b"t", n),
        // A new list holding the previous one, which the memo keeps.
        nested(b"]q\x00", b"]h\x00aq\x00", b"", n),
        // A new dict holding the previous one.
        nested(b"}q\x00", b"}K\x00h\x00sq\x00", b"", n),
    ] {
        let Err(Error::Unsupported(m)) = read_state_dict(&p) else {
            panic!()
        };
        assert!(
            m.starts_with("the pickle nests deeper than 1000 levels"),
            "{m}"
        );
    }
    // An empty tuple is one level deep, each TUPLE1 adds one.
    let Err(Error::Unsupported(m)) = read_state_dict(&nested(b")", b"\x85", b"", 999)) else {
        panic!()
    };
    assert_eq!(m, "the pickle holds a tuple, not a dict of tensors");
    let Err(Error::Unsupported(m)) = read_state_dict(&nested(b")", b"\x85", b"", 1000)) else {
        panic!()
    };
    assert_eq!(
        m,
        "the pickle nests deeper than 1000 levels (pickle byte 1002)"
    );
}

#[test]
fn lists_and_dicts_cannot_change_once_inside_another_value() {
    for (body, what) in [
        // A list put in a tuple, then appended to through the memo.
        (&b"]q\x00\x85h\x00]a"[..], "a list"),
        // A list appended to itself.
        (b"]q\x00h\x00a", "a list"),
        // A dict holding a list that holds the dict.
        (b"}q\x00K\x00]h\x00as", "a dict"),
    ] {
        let Err(Error::Unsupported(m)) = read_state_dict(&pickle(body)) else {
            panic!()
        };
        assert!(
            m.starts_with(&format!(
                "the pickle changes {what} after putting it inside another value"
            )),
            "{m}"
        );
    }
}
