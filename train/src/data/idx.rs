//! MNIST-format IDX files (MNIST, Fashion-MNIST), gzipped or not: a big-endian header (magic
//! `00 00 08 n`, 0x08 meaning u8 data and n the number of dimensions, then n u32 sizes) followed
//! by the data. The header is read first, and then at most the bytes it announces (and one more,
//! to see that nothing follows): a small gzip file that expands to gigabytes is refused without
//! being expanded.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;

use flate2::read::GzDecoder;

use super::{check_labels, find, DataError, Dataset, Follows, Raw, Split};

/// How a gzip stream starts; IDX files start with 00 00, so the two never clash.
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// The most deflate expands a byte to (its longest match, 258 bytes, coded in 2 bits): a gzip
/// file that announces more than this many times its size cannot hold it.
const MAX_GZIP_RATIO: u64 = 1032;

/// Below this many images, a set's mean brightness says little about which dataset it is.
const IMAGES_TO_TELL: usize = 100;

pub(super) fn read(dataset: Dataset, split: Split, dir: &Path) -> Result<Raw, DataError> {
    let (images_name, labels_name) = match split {
        Split::Train => ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
        Split::Test => ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
    };
    let images_path = find(dataset, dir, &[images_name, &format!("{images_name}.gz")])?;
    let labels_path = find(dataset, dir, &[labels_name, &format!("{labels_name}.gz")])?;

    let [_, height, width] = dataset.image_shape();
    let (dims, pixels) = read_idx(&images_path, "images", 3, |dims| {
        if [i64::from(dims[1]), i64::from(dims[2])] != [height, width] {
            return Err(DataError::IdxDims {
                path: images_path.clone(),
                dataset,
                height: dims[1],
                width: dims[2],
            });
        }
        if dims[0] == 0 {
            return Err(DataError::Empty {
                path: images_path.clone(),
            });
        }
        Ok(())
    })?;
    let (label_dims, labels) = read_idx(&labels_path, "labels", 1, |_| Ok(()))?;
    if label_dims[0] != dims[0] {
        return Err(DataError::CountMismatch {
            images_path,
            images: dims[0],
            labels_path,
            labels: label_dims[0],
        });
    }
    check_labels(dataset, &labels_path, &labels)?;
    check_pictures(dataset, &images_path, &pixels)?;
    Ok(Raw { pixels, labels })
}

/// Reads an IDX file of u8 data with `ndims` dimensions: its sizes, which `check` sees before
/// any data is read, and its data, checked against them. `kind` (`images`, `labels`) names the
/// contents in errors.
fn read_idx(
    path: &Path,
    kind: &'static str,
    ndims: u8,
    check: impl FnOnce(&[u32]) -> Result<(), DataError>,
) -> Result<(Vec<u32>, Vec<u8>), DataError> {
    let file = File::open(path).map_err(DataError::io(path))?;
    let file_len = file.metadata().map_err(DataError::io(path))?.len();
    let mut file = BufReader::new(file);
    let gzipped = file
        .fill_buf()
        .map_err(DataError::io(path))?
        .starts_with(&GZIP_MAGIC);
    let mut reader: Box<dyn Read> = if gzipped {
        Box::new(GzDecoder::new(file))
    } else {
        Box::new(file)
    };
    let read_error = |source| {
        if gzipped {
            DataError::Gzip {
                path: path.into(),
                source,
            }
        } else {
            DataError::Io {
                path: path.into(),
                source,
            }
        }
    };
    let dims = read_header(&mut reader, path, kind, ndims, read_error)?;
    let header_len = 4 + 4 * u64::from(ndims);
    check(&dims)?;
    // Saturating: a corrupt header's product can exceed u64, and then no file matches it anyway.
    let announced = dims
        .iter()
        .fold(1u64, |n, &d| n.saturating_mul(u64::from(d)));
    let size_error = |follows| DataError::IdxSize {
        path: path.into(),
        kind,
        count: dims[0],
        expected: announced,
        follows,
    };
    // A length shorter than the header just read is no file's size (a FIFO's is 0): then only
    // the bytes read below are counted.
    match file_len.checked_sub(header_len) {
        Some(follows) if !gzipped && follows != announced => {
            return Err(size_error(Follows::Exactly(follows)));
        }
        _ => {}
    }
    if gzipped && announced > file_len.saturating_mul(MAX_GZIP_RATIO) {
        return Err(size_error(Follows::Gzip(file_len)));
    }
    let mut data = Vec::new();
    reader
        .take(announced.saturating_add(1))
        .read_to_end(&mut data)
        .map_err(read_error)?;
    match data.len() as u64 {
        n if n > announced => Err(size_error(Follows::MoreThan(announced))),
        n if n < announced => Err(size_error(Follows::Exactly(n))),
        _ => Ok((dims, data)),
    }
}

/// The sizes of an IDX header of u8 data with `ndims` dimensions, checked against its magic;
/// `read_error` says why the file could not be read.
fn read_header(
    reader: &mut dyn Read,
    path: &Path,
    kind: &'static str,
    ndims: u8,
    read_error: impl FnOnce(std::io::Error) -> DataError,
) -> Result<Vec<u32>, DataError> {
    let header_len = 4 + 4 * u64::from(ndims);
    let mut header = Vec::new();
    reader
        .take(header_len)
        .read_to_end(&mut header)
        .map_err(read_error)?;
    let expected = u32::from_be_bytes([0, 0, 8, ndims]);
    let short = || DataError::IdxHeader { path: path.into() };
    let magic = header.first_chunk::<4>().ok_or_else(short)?;
    if *magic != expected.to_be_bytes() {
        return Err(DataError::IdxMagic {
            path: path.into(),
            kind,
            found: u32::from_be_bytes(*magic),
            expected,
        });
    }
    if (header.len() as u64) < header_len {
        return Err(short());
    }
    Ok(header[4..]
        .chunks_exact(4)
        .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
        .collect())
}

/// MNIST and Fashion-MNIST files are alike in format, sizes and names, and only their pictures
/// tell them apart: MNIST's mean pixel is 0.131 (white digits on black), Fashion-MNIST's 0.286.
/// A set of [`IMAGES_TO_TELL`] images or more whose mean is nearer the other dataset's is
/// refused, so that `--dataset mnist` on Fashion-MNIST files (or the reverse) does not train with
/// the wrong normalisation and augmentation.
fn check_pictures(dataset: Dataset, path: &Path, pixels: &[u8]) -> Result<(), DataError> {
    let other = match dataset {
        Dataset::Mnist => Dataset::FashionMnist,
        Dataset::FashionMnist => Dataset::Mnist,
        Dataset::Cifar10 | Dataset::Cifar100 => return Ok(()),
    };
    let [_, h, w] = dataset.image_shape();
    if pixels.len() < IMAGES_TO_TELL * (h * w) as usize {
        return Ok(());
    }
    let sum: u64 = pixels.iter().map(|&p| u64::from(p)).sum();
    let mean = sum as f64 / pixels.len() as f64 / 255.0;
    let distance = |d: Dataset| (mean - f64::from(d.mean()[0])).abs();
    if distance(other) < distance(dataset) {
        return Err(DataError::OtherDataset {
            path: path.into(),
            dataset,
            other,
            mean,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A FIFO at `path` holding the IDX labels `labels`: its length is 0, shorter than the
    /// header read from it.
    fn fifo(path: &Path, labels: &'static [u8]) {
        let _ = std::fs::remove_file(path);
        let made = std::process::Command::new("mkfifo").arg(path).status();
        assert!(made.unwrap().success());
        let path = path.to_owned();
        // Opening blocks until the reader opens the other end; a refusal may close it early.
        std::thread::spawn(move || {
            let mut bytes = vec![0, 0, 8, 1, 0, 0, 0, 3];
            bytes.extend(labels);
            let _ = std::fs::write(path, bytes);
        });
    }

    #[test]
    fn a_length_shorter_than_the_header_counts_the_bytes_read() {
        let dir = vggdsl_test_support::tempdir();
        let path = dir.path().join("labels");
        fifo(&path, &[1, 2, 3]);
        let (dims, data) = read_idx(&path, "labels", 1, |_| Ok(())).unwrap();
        assert_eq!((dims, data), (vec![3], vec![1, 2, 3]));
        fifo(&path, &[1, 2]);
        let error = read_idx(&path, "labels", 1, |_| Ok(())).unwrap_err();
        assert!(
            error
                .to_string()
                .ends_with("announces 3 labels (3 bytes) but 2 bytes follow it"),
            "{error}"
        );
    }
}
