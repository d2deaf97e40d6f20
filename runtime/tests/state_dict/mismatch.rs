//! Weights of another model: every mismatch named at once and nothing loaded, or a partial load
//! that reports what it skipped.

use super::*;

#[test]
fn missing_key_is_an_error_and_loads_nothing() {
    if fixtures().is_none() {
        return;
    }
    let mut specs = specs(10);
    specs.push((
        "features.conv1.weight".into(),
        vec![4, 4, 3, 3],
        Kind::Float,
    ));
    let path = fixture("model.pt");
    let message = load_error(&mut store(&specs), &path);
    assert_eq!(
        message,
        format!(
            "{} does not match the model, so nothing was loaded:\n  missing key \
             features.conv1.weight: the model's float32 [4, 4, 3, 3] is not in the file",
            path.display()
        )
    );
}

#[test]
fn unexpected_key_is_an_error_and_loads_nothing() {
    if fixtures().is_none() {
        return;
    }
    let specs: Vec<_> = specs(10)
        .into_iter()
        .filter(|s| s.0 != "classifier.linear2.bias")
        .collect();
    let path = fixture("model.safetensors");
    let message = load_error(&mut store(&specs), &path);
    assert_eq!(
        message,
        format!(
            "{} does not match the model, so nothing was loaded:\n  unexpected key \
             classifier.linear2.bias: the file's float32 [10] is not in the model",
            path.display()
        )
    );
}

#[test]
fn wrong_shape_is_an_error_and_loads_nothing() {
    if fixtures().is_none() {
        return;
    }
    let path = fixture("model.pt");
    let message = load_error(&mut model(3), &path);
    assert_eq!(
        message,
        format!(
            "{} does not match the model, so nothing was loaded:\n  \
             shape mismatch for classifier.linear2.weight: the model expects [3, 6], the file has [10, 6]\n  \
             shape mismatch for classifier.linear2.bias: the model expects [3], the file has [10]",
            path.display()
        )
    );
}

#[test]
fn wrong_dtype_is_an_error_and_loads_nothing() {
    if fixtures().is_none() {
        return;
    }
    let mut specs = specs(10);
    specs[6].2 = Kind::Float; // num_batches_tracked
    specs[0].2 = Kind::Double;
    let path = fixture("model.pt");
    let message = load_error(&mut store(&specs), &path);
    assert_eq!(
        message,
        format!(
            "{} does not match the model, so nothing was loaded:\n  \
             dtype mismatch for features.conv0.weight: the model expects float64, the file has float32\n  \
             dtype mismatch for features.norm0.num_batches_tracked: the model expects float32, the file has int64",
            path.display()
        )
    );
}

#[test]
fn all_problems_are_reported_at_once() {
    if fixtures().is_none() {
        return;
    }
    let mut specs: Vec<_> = specs(3)
        .into_iter()
        .filter(|s| s.0 != "features.conv0.bias")
        .collect();
    specs[5].2 = Kind::Int; // num_batches_tracked
    specs.push((
        "features.conv1.weight".into(),
        vec![4, 4, 3, 3],
        Kind::Float,
    ));
    let mut vs = store(&specs);
    let before = snapshot(&vs);
    let Err(LoadError::Mismatch { path, mismatches }) =
        load_state_dict(&mut vs, fixture("model.pt"))
    else {
        panic!("expected a mismatch error")
    };
    assert_eq!(path, fixture("model.pt"));
    let keys: Vec<_> = mismatches.iter().map(|m| m.key()).collect();
    assert_eq!(
        keys,
        [
            "features.conv1.weight",
            "features.conv0.bias",
            "features.norm0.num_batches_tracked",
            "classifier.linear2.weight",
            "classifier.linear2.bias"
        ]
    );
    assert!(matches!(mismatches[0], Mismatch::Missing { .. }));
    assert!(matches!(mismatches[1], Mismatch::Unexpected { .. }));
    assert!(matches!(
        mismatches[2],
        Mismatch::Dtype {
            model: Kind::Int,
            file: Kind::Int64,
            ..
        }
    ));
    assert!(matches!(mismatches[3], Mismatch::Shape { .. }));
    assert_eq!(snapshot(&vs), before);
}

#[test]
fn partial_load_takes_the_backbone_and_reports_the_rest() {
    if fixtures().is_none() {
        return;
    }
    let expected = expected("model.txt");
    let mut vs = model(3);
    let report = load_state_dict_with(&mut vs, fixture("model.pt"), LoadMode::Partial).unwrap();
    assert_eq!(report.loaded.len(), 9);
    assert_eq!(
        report.skipped,
        [
            Mismatch::Shape {
                key: "classifier.linear2.weight".into(),
                model: vec![3, 6],
                file: vec![10, 6]
            },
            Mismatch::Shape {
                key: "classifier.linear2.bias".into(),
                model: vec![3],
                file: vec![10]
            },
        ]
    );
    assert_eq!(
        report.to_string(),
        "loaded 9 tensors, skipped 2\n  \
         shape mismatch for classifier.linear2.weight: the model expects [3, 6], the file has [10, 6]\n  \
         shape mismatch for classifier.linear2.bias: the model expects [3], the file has [10]"
    );
    for (key, values) in &expected {
        if key.starts_with("classifier.linear2") {
            assert!(
                value(&vs, key).values.iter().all(|&v| v == 0.0),
                "{key} changed"
            );
        } else {
            assert_eq!(&value(&vs, key), values, "{key}");
        }
    }
}

#[test]
fn partial_load_skips_dtype_mismatches_missing_and_unexpected_keys() {
    if fixtures().is_none() {
        return;
    }
    let mut specs: Vec<_> = specs(10)
        .into_iter()
        .filter(|s| s.0 != "classifier.linear1.bias")
        .collect();
    specs[0].2 = Kind::Half;
    specs.push(("extra.weight".into(), vec![2], Kind::Float));
    let mut vs = store(&specs);
    let report =
        load_state_dict_with(&mut vs, fixture("model.safetensors"), LoadMode::Partial).unwrap();
    assert_eq!(report.loaded.len(), 9);
    assert_eq!(
        report.skipped,
        [
            Mismatch::Missing {
                key: "extra.weight".into(),
                kind: Kind::Float,
                shape: vec![2]
            },
            // Safetensors entries come sorted by name.
            Mismatch::Unexpected {
                key: "classifier.linear1.bias".into(),
                kind: Kind::Float,
                shape: vec![6]
            },
            Mismatch::Dtype {
                key: "features.conv0.weight".into(),
                model: Kind::Half,
                file: Kind::Float
            },
        ]
    );
    assert_eq!(
        Values::of(&vs.variables()["features.conv0.weight"]).values,
        vec![0.0; 108]
    );
    assert_eq!(vs.variables()["features.conv0.weight"].kind(), Kind::Half);
    assert_eq!(
        value(&vs, "features.norm0.running_var"),
        expected("model.txt")[5].1
    );
}
