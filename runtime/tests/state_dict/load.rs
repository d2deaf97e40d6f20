//! Files PyTorch writes, loaded exactly: torch.save archives of every kind, safetensors, views
//! and every dtype, big-endian storages.

use super::*;

#[test]
fn loads_torch_save_state_dict_exactly() {
    if fixtures().is_none() {
        return;
    }
    let expected = expected("model.txt");
    let mut vs = model(10);
    let report = load_state_dict(&mut vs, fixture("model.pt")).unwrap();
    assert_loaded_exactly(&vs, &expected);
    // File order, which is the module's order; the int64 counter keeps its dtype.
    assert_eq!(
        report.loaded,
        expected.iter().map(|(k, _)| k.clone()).collect::<Vec<_>>()
    );
    assert!(report.skipped.is_empty());
    assert_eq!(
        vs.variables()["features.norm0.num_batches_tracked"].int64_value(&[]),
        7
    );
    assert_eq!(
        vs.variables()["features.norm0.num_batches_tracked"].kind(),
        Kind::Int64
    );
}

#[test]
fn loads_plain_dicts_parameters_and_safetensors_exactly() {
    if fixtures().is_none() {
        return;
    }
    let expected = expected("model.txt");
    for file in ["plain.pth", "params.pt", "model.safetensors"] {
        let mut vs = model(10);
        let report = load_state_dict(&mut vs, fixture(file)).unwrap();
        assert_eq!(report.loaded.len(), 11, "{file}");
        assert_loaded_exactly(&vs, &expected);
    }
}

#[test]
fn tells_the_format_by_content_not_extension() {
    if fixtures().is_none() {
        return;
    }
    let dir = tempdir();
    let (pt, st) = (
        dir.path().join("weights.safetensors"),
        dir.path().join("weights.pt"),
    );
    std::fs::copy(fixture("model.pt"), &pt).unwrap();
    std::fs::copy(fixture("model.safetensors"), &st).unwrap();
    for path in [pt, st] {
        let mut vs = model(10);
        load_state_dict(&mut vs, &path).unwrap();
        assert_loaded_exactly(&vs, &expected("model.txt"));
    }
}

#[test]
fn reads_views_offsets_and_every_dtype() {
    if fixtures().is_none() {
        return;
    }
    let expected = expected("views.txt");
    for file in ["views.pt", "views.safetensors"] {
        let tensors: BTreeMap<_, _> = read_state_dict(fixture(file))
            .unwrap()
            .into_iter()
            .map(|(k, t)| (k, Values::of(&t)))
            .collect();
        assert_eq!(tensors, expected.iter().cloned().collect());
    }
    // A transposed view also loads into a plain contiguous variable.
    let mut vs = store(&[("transposed".into(), vec![6, 4], Kind::Float)]);
    load_state_dict_with(&mut vs, fixture("views.pt"), LoadMode::Partial).unwrap();
    assert_eq!(value(&vs, "transposed"), expected[0].1);
}

#[test]
fn loads_protocol_4_pickles() {
    if fixtures().is_none() {
        return;
    }
    let mut vs = model(10);
    load_state_dict(&mut vs, fixture("protocol4.pt")).unwrap();
    assert_loaded_exactly(&vs, &expected("model.txt"));
}

#[test]
fn reads_big_endian_files() {
    if fixtures().is_none() {
        return;
    }
    // Every dtype (1, 2, 4 and 8 bytes), with views sharing a storage.
    let tensors: BTreeMap<_, _> = read_state_dict(fixture("big_endian.pt"))
        .unwrap()
        .into_iter()
        .map(|(k, t)| (k, Values::of(&t)))
        .collect();
    assert_eq!(tensors, expected("views.txt").into_iter().collect());
}
