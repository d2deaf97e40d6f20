//! MNIST-format IDX files (MNIST, Fashion-MNIST), gzipped or not: a big-endian header (magic
//! `00 00 08 n`, 0x08 meaning u8 data and n the number of dimensions, then n u32 sizes) followed
//! by the data.

use std::io::Read;
use std::path::Path;

use flate2::read::GzDecoder;

use super::{check_labels, find, DataError, Dataset, Raw, Split};

/// How a gzip stream starts; IDX files start with 00 00, so the two never clash.
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

pub(super) fn read(dataset: Dataset, split: Split, dir: &Path) -> Result<Raw, DataError> {
    let (images_name, labels_name) = match split {
        Split::Train => ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
        Split::Test => ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
    };
    let images_path = find(dataset, dir, &[images_name, &format!("{images_name}.gz")])?;
    let labels_path = find(dataset, dir, &[labels_name, &format!("{labels_name}.gz")])?;

    let (dims, pixels) = read_idx(&images_path, "images", 3)?;
    let [_, height, width] = dataset.image_shape();
    if [i64::from(dims[1]), i64::from(dims[2])] != [height, width] {
        return Err(DataError::IdxDims {
            path: images_path,
            dataset,
            height: dims[1],
            width: dims[2],
        });
    }
    if dims[0] == 0 {
        return Err(DataError::Empty { path: images_path });
    }
    let (label_dims, labels) = read_idx(&labels_path, "labels", 1)?;
    if label_dims[0] != dims[0] {
        return Err(DataError::CountMismatch {
            images_path,
            images: dims[0],
            labels_path,
            labels: label_dims[0],
        });
    }
    check_labels(dataset, &labels_path, &labels)?;
    Ok(Raw { pixels, labels })
}

/// Reads an IDX file of u8 data with `ndims` dimensions: its sizes and its data, checked
/// against each other. `kind` (`images`, `labels`) names the contents in errors.
fn read_idx(path: &Path, kind: &'static str, ndims: u8) -> Result<(Vec<u32>, Vec<u8>), DataError> {
    let mut bytes = read_maybe_gzipped(path)?;
    let header = 4 + 4 * usize::from(ndims);
    let expected = u32::from_be_bytes([0, 0, 8, ndims]);
    let Some(magic) = bytes.first_chunk::<4>() else {
        return Err(DataError::IdxHeader { path: path.into() });
    };
    if *magic != expected.to_be_bytes() {
        return Err(DataError::IdxMagic {
            path: path.into(),
            kind,
            found: u32::from_be_bytes(*magic),
            expected,
        });
    }
    if bytes.len() < header {
        return Err(DataError::IdxHeader { path: path.into() });
    }
    let dims: Vec<u32> = bytes[4..header]
        .chunks_exact(4)
        .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    // Saturating: a corrupt header's product can exceed u64, and then no file matches it anyway.
    let expected_len = dims
        .iter()
        .fold(1u64, |n, &d| n.saturating_mul(u64::from(d)));
    let actual = (bytes.len() - header) as u64;
    if actual != expected_len {
        return Err(DataError::IdxSize {
            path: path.into(),
            kind,
            count: dims[0],
            expected: expected_len,
            actual,
        });
    }
    bytes.drain(..header);
    Ok((dims, bytes))
}

/// The file's bytes, decompressed if it is gzip (whatever its name).
fn read_maybe_gzipped(path: &Path) -> Result<Vec<u8>, DataError> {
    let bytes = std::fs::read(path).map_err(DataError::io(path))?;
    if !bytes.starts_with(&GZIP_MAGIC) {
        return Ok(bytes);
    }
    let mut out = Vec::new();
    GzDecoder::new(bytes.as_slice())
        .read_to_end(&mut out)
        .map_err(|source| DataError::Gzip {
            path: path.into(),
            source,
        })?;
    Ok(out)
}
