//! CIFAR-10 and CIFAR-100, binary version: files of fixed-size records, each the label byte(s)
//! then 3072 pixel bytes (the red, green and blue 32×32 planes, rows top to bottom).

use std::path::Path;

use super::{check_labels, find, DataError, Dataset, Raw, Split};

const PIXELS: usize = 3 * 32 * 32;

/// A split's files, in the order their records are concatenated.
fn files(dataset: Dataset, split: Split) -> &'static [&'static str] {
    match (dataset, split) {
        (Dataset::Cifar100, Split::Train) => &["train.bin"],
        (Dataset::Cifar100, Split::Test) => &["test.bin"],
        (_, Split::Train) => &[
            "data_batch_1.bin",
            "data_batch_2.bin",
            "data_batch_3.bin",
            "data_batch_4.bin",
            "data_batch_5.bin",
        ],
        (_, Split::Test) => &["test_batch.bin"],
    }
}

/// Label bytes before the pixels: CIFAR-100 has the coarse then the fine label; the fine one
/// (100 classes), the last, is used.
fn label_bytes(dataset: Dataset) -> usize {
    match dataset {
        Dataset::Cifar100 => 2,
        _ => 1,
    }
}

pub(super) fn read(dataset: Dataset, split: Split, dir: &Path) -> Result<Raw, DataError> {
    let labels_len = label_bytes(dataset);
    let record = labels_len + PIXELS;
    let mut raw = Raw {
        pixels: Vec::new(),
        labels: Vec::new(),
    };
    for name in files(dataset, split) {
        let path = find(dataset, dir, &[name])?;
        let bytes = std::fs::read(&path).map_err(DataError::io(&path))?;
        if bytes.is_empty() {
            return Err(DataError::Empty { path });
        }
        if bytes.len() % record != 0 {
            return Err(DataError::RecordSize {
                path,
                dataset,
                len: bytes.len(),
                record,
            });
        }
        let n = bytes.len() / record;
        raw.pixels.reserve(n * PIXELS);
        raw.labels.reserve(n);
        let first = raw.labels.len();
        for rec in bytes.chunks_exact(record) {
            raw.labels.push(rec[labels_len - 1]);
            raw.pixels.extend_from_slice(&rec[labels_len..]);
        }
        check_labels(dataset, &path, &raw.labels[first..])?;
    }
    Ok(raw)
}
