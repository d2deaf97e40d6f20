//! Damaged and foreign files: each one clear error, the model untouched.

use super::*;

#[test]
fn truncated_files_are_errors() {
    if fixtures().is_none() {
        return;
    }
    let dir = tempdir();
    let pt = std::fs::read(fixture("model.pt")).unwrap();
    let st = std::fs::read(fixture("model.safetensors")).unwrap();
    for (name, bytes, reason) in [
        (
            "half.pt",
            &pt[..pt.len() / 2],
            "the zip archive's central directory, at its end, is missing",
        ),
        (
            "tail.safetensors",
            &st[..st.len() - 16],
            "the tensor data is shorter or longer than the header says",
        ),
        ("head.safetensors", &st[..20], "the header is cut off"),
    ] {
        let path = dir.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        let message = load_error(&mut model(10), &path);
        assert_eq!(
            message,
            format!("{} is truncated or corrupt: {reason}", path.display())
        );
    }
    let path = fixture("cut_pickle.pt");
    let message = load_error(&mut model(10), &path);
    // The archive keeps the name of the file it was copied from.
    let prefix = format!(
        "{} is truncated or corrupt: model/data.pkl: the pickle ends early",
        path.display()
    );
    assert!(message.starts_with(&prefix), "{message}");
}

#[test]
fn files_that_hold_no_tensors_are_errors() {
    let dir = tempdir();
    // Deterministic noise from a linear congruential generator.
    let mut x = 12345u32;
    let noise: Vec<u8> = (0..4096)
        .map(|_| {
            x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            (x >> 24) as u8
        })
        .collect();
    for (name, bytes, reason) in [
        (
            "notes.pt",
            &b"{\n  \"weights\": [1, 2, 3]\n}\n"[..],
            "it starts with neither a zip nor a safetensors header",
        ),
        (
            "noise.safetensors",
            &noise[..],
            "it starts with neither a zip nor a safetensors header",
        ),
        ("empty.pth", &[][..], "the file is empty"),
    ] {
        let path = dir.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        let message = load_error(&mut model(10), &path);
        assert_eq!(
            message,
            format!(
                "{} is not a tensor file: {reason}; expected a .safetensors file or a torch.save archive (.pt, .pth)",
                path.display()
            )
        );
    }
}

#[test]
fn a_missing_file_is_an_error() {
    let path = std::env::temp_dir().join("vggdsl-state-dict-no-such-file.pt");
    let message = load_error(&mut model(10), &path);
    assert_eq!(
        message,
        format!(
            "cannot read {}: No such file or directory (os error 2)",
            path.display()
        )
    );
}

#[test]
fn legacy_files_and_checkpoints_are_refused_with_a_hint() {
    if fixtures().is_none() {
        return;
    }
    let path = fixture("legacy.pt");
    let message = load_error(&mut model(10), &path);
    assert!(
        message.starts_with(&format!(
            "{} is not supported: it is a bare pickle",
            path.display()
        )),
        "{message}"
    );
    let path = fixture("checkpoint.pt");
    let message = load_error(&mut model(10), &path);
    assert_eq!(
        message,
        format!(
            "{} is not supported: checkpoint/data.pkl: entry state_dict holds a dict, not a tensor \
             (a training checkpoint? save its model state_dict on its own)",
            path.display()
        )
    );
}

#[test]
fn duplicate_keys_are_an_error() {
    if fixtures().is_none() {
        return;
    }
    let path = fixture("twice.pt");
    let mut vs = store(&[("weight".into(), vec![1], Kind::Float)]);
    assert_eq!(
        load_error(&mut vs, &path),
        format!(
            "{} is truncated or corrupt: twice/data.pkl: key weight appears twice",
            path.display()
        )
    );
}

#[test]
fn deeply_nested_pickles_are_an_error() {
    if fixtures().is_none() {
        return;
    }
    let path = fixture("deep.pt");
    assert_eq!(
        load_error(&mut model(10), &path),
        format!(
            "{} is not supported: model/data.pkl: the pickle nests deeper than 1000 levels \
             (pickle byte 1002)",
            path.display()
        )
    );
}

#[test]
fn compressed_and_oversized_entries_are_refused() {
    if fixtures().is_none() {
        return;
    }
    for (name, reason) in [
        (
            "deflated.pt",
            "is not supported: model/data.pkl is compressed (Deflated); torch.save stores its \
             entries uncompressed",
        ),
        (
            "huge_pickle.pt",
            "is not supported: model/data.pkl is 314572800 bytes, more than the 268435456 this \
             reader accepts",
        ),
        (
            "huge_byteorder.pt",
            "is not supported: model/byteorder is 1073741824 bytes, more than the 16 this reader \
             accepts",
        ),
    ] {
        let path = fixture(name);
        let message = load_error(&mut model(10), &path);
        assert_eq!(message, format!("{} {reason}", path.display()));
    }
    // Read no further than the declared size: here one byte short of the real pickle.
    let path = fixture("short_pickle.pt");
    let message = load_error(&mut model(10), &path);
    let prefix = format!(
        "{} is truncated or corrupt: model/data.pkl does not hold the ",
        path.display()
    );
    assert!(
        message.starts_with(&prefix) && message.ends_with(" bytes its zip entry declares"),
        "{message}"
    );
}

#[test]
fn expanded_views_are_refused_by_every_reader() {
    if fixtures().is_none() {
        return;
    }
    // `torch.zeros(1).expand(2**62)`: one stored element, 2^62 in the view.
    let path = fixture("expanded.pt");
    let prefix = format!(
        "{} is not supported: expanded/data.pkl: tensor with size [4611686018427387904], stride \
         [0] has more elements than its storage of 1",
        path.display()
    );
    let message = read_state_dict(&path).unwrap_err().to_string();
    assert!(message.starts_with(&prefix), "{message}");
    let mut vs = store(&[("huge".into(), vec![4], Kind::Float)]);
    let message = load_error(&mut vs, &path);
    assert!(message.starts_with(&prefix), "{message}");
    let err = load_state_dict_with(&mut vs, &path, LoadMode::Partial).unwrap_err();
    assert!(err.to_string().starts_with(&prefix), "{err}");
}

#[test]
fn an_unreadable_byteorder_is_an_error() {
    if fixtures().is_none() {
        return;
    }
    let path = fixture("bad_byteorder.pt");
    assert_eq!(
        load_error(&mut model(10), &path),
        format!(
            "{} is truncated or corrupt: model/byteorder: Invalid checksum",
            path.display()
        )
    );
}
