//! Reading a `torch.save` archive: `<name>/data.pkl` describes the tensors, `<name>/data/<key>`
//! holds each storage's raw elements, in the byte order that `<name>/byteorder` names.

use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::fs::File;
use std::io::{BufReader, Read};
use std::path::Path;

use tch::{Kind, Tensor};
use zip::result::ZipError;

use super::{tensor_from_bytes, LoadError};
use crate::pickle;

/// The most bytes read for `<name>/data.pkl`: a state_dict's pickle takes a few hundred bytes per
/// tensor, and each of its bytes can become a value of tens of bytes.
const MAX_PICKLE_LEN: u64 = 256 << 20;

/// The most bytes read for `<name>/byteorder`, which holds `little` or `big`.
const MAX_BYTEORDER_LEN: u64 = 16;

/// What size an archive entry must have.
enum EntrySize {
    Exactly(u64),
    AtMost(u64),
}

/// Every tensor of the archive at `path`, in its saved order.
pub(super) fn read(path: &Path, file: File) -> Result<Vec<(String, Tensor)>, LoadError> {
    let mut archive = Archive::open(path, file)?;
    let name = archive.name.clone();
    let pickle = archive.entry(
        &format!("{name}/data.pkl"),
        EntrySize::AtMost(MAX_PICKLE_LEN),
    )?;
    let big_endian = archive.big_endian()?;
    let entries = pickle::read_state_dict(&pickle).map_err(|e| match e {
        pickle::Error::Corrupt(reason) => archive.corrupt(format!("{name}/data.pkl: {reason}")),
        pickle::Error::Unsupported(reason) => {
            archive.unsupported(format!("{name}/data.pkl: {reason}"))
        }
    })?;
    // Several tensors may view one storage: each is read once.
    let mut storages: HashMap<String, (Kind, i64, Tensor)> = HashMap::new();
    let mut tensors = Vec::with_capacity(entries.len());
    for (key, view) in entries {
        let storage = &view.storage;
        let (kind, numel, elements) = match storages.entry(storage.key.clone()) {
            Entry::Occupied(e) => e.into_mut(),
            Entry::Vacant(e) => {
                let elements = archive.storage(storage, big_endian)?;
                e.insert((storage.kind, storage.numel, elements))
            }
        };
        if (*kind, *numel) != (storage.kind, storage.numel) {
            return Err(archive.corrupt(format!(
                "storage {} is declared with two types or sizes",
                storage.key
            )));
        }
        let tensor = elements
            .f_as_strided(view.size.as_slice(), view.stride.as_slice(), view.offset)
            .map_err(|e| archive.corrupt(format!("{key}: {e}")))?;
        tensors.push((key, tensor));
    }
    Ok(tensors)
}

/// An open archive that holds `<name>/data.pkl`.
struct Archive<'a> {
    path: &'a Path,
    zip: zip::ZipArchive<BufReader<File>>,
    /// The archive's name: the folder of its first entry, as torch takes it.
    name: String,
    /// The file's length, which bounds what any entry can hold.
    file_len: u64,
}

impl<'a> Archive<'a> {
    fn open(path: &'a Path, file: File) -> Result<Archive<'a>, LoadError> {
        let file_len = file
            .metadata()
            .map_err(|source| LoadError::Io {
                path: path.into(),
                source,
            })?
            .len();
        let mut archive = Archive {
            path,
            zip: zip::ZipArchive::new(BufReader::new(file)).map_err(|e| zip_error(path, e))?,
            name: String::new(),
            file_len,
        };
        let first = archive.zip.by_index(0).map_err(|e| zip_error(path, e))?;
        archive.name = first
            .name()
            .split('/')
            .next()
            .unwrap_or_default()
            .to_string();
        drop(first);
        if !archive.has(&format!("{}/data.pkl", archive.name)) {
            return Err(LoadError::NotTensorFile {
                path: path.into(),
                reason: "it is a zip archive without the <name>/data.pkl that torch.save writes"
                    .into(),
            });
        }
        Ok(archive)
    }

    fn has(&self, entry: &str) -> bool {
        self.zip.file_names().any(|name| name == entry)
    }

    fn corrupt(&self, reason: String) -> LoadError {
        LoadError::Corrupt {
            path: self.path.into(),
            reason,
        }
    }

    fn unsupported(&self, reason: String) -> LoadError {
        LoadError::Unsupported {
            path: self.path.into(),
            reason,
        }
    }

    /// Whether the storages are big-endian; files from before torch wrote `byteorder` are
    /// little-endian.
    fn big_endian(&mut self) -> Result<bool, LoadError> {
        let byteorder = format!("{}/byteorder", self.name);
        if !self.has(&byteorder) {
            return Ok(false);
        }
        match &self.entry(&byteorder, EntrySize::AtMost(MAX_BYTEORDER_LEN))?[..] {
            b"little" => Ok(false),
            b"big" => Ok(true),
            order => Err(self.corrupt(format!(
                "{byteorder} names no byte order: {:?}",
                String::from_utf8_lossy(order)
            ))),
        }
    }

    /// A storage's elements, in this machine's byte order.
    fn storage(
        &mut self,
        storage: &pickle::Storage,
        big_endian: bool,
    ) -> Result<Tensor, LoadError> {
        let entry = format!("{}/data/{}", self.name, storage.key);
        let len = (storage.numel as u64).checked_mul(storage.kind.elt_size_in_bytes() as u64);
        let len = len.ok_or_else(|| self.corrupt(format!("{entry} is too large")))?;
        let mut bytes = self.entry(&entry, EntrySize::Exactly(len))?;
        if big_endian {
            let elt_size = storage.kind.elt_size_in_bytes();
            bytes.chunks_exact_mut(elt_size).for_each(<[u8]>::reverse);
        }
        tensor_from_bytes(&bytes, &[storage.numel], storage.kind)
            .ok_or_else(|| self.corrupt(format!("{entry}'s data")))
    }

    /// An entry's bytes. Reads no more than the entry declares, and only uncompressed entries,
    /// as torch.save writes them, so that what is read is bounded by the file's length (a
    /// compressed entry could expand without bound: a zip bomb).
    fn entry(&mut self, entry: &str, expected: EntrySize) -> Result<Vec<u8>, LoadError> {
        let path = self.path;
        let corrupt = |reason: String| LoadError::Corrupt {
            path: path.into(),
            reason,
        };
        let file = self.zip.by_name(entry).map_err(|e| match e {
            ZipError::FileNotFound => corrupt(format!("the archive has no {entry}")),
            e => zip_error(path, e),
        })?;
        if file.compression() != zip::CompressionMethod::Stored {
            return Err(LoadError::Unsupported {
                path: path.into(),
                reason: format!(
                    "{entry} is compressed ({}); torch.save stores its entries uncompressed",
                    file.compression()
                ),
            });
        }
        let size = file.size();
        match expected {
            EntrySize::Exactly(len) if len != size => {
                return Err(corrupt(format!(
                    "{entry} holds {size} bytes, its tensors need {len}"
                )))
            }
            EntrySize::AtMost(max) if size > max => {
                return Err(LoadError::Unsupported {
                    path: path.into(),
                    reason: format!(
                        "{entry} is {size} bytes, more than the {max} this reader accepts"
                    ),
                })
            }
            _ => {}
        }
        let mut bytes = Vec::with_capacity(size.min(self.file_len) as usize);
        // One byte more than declared tells an entry longer than its header says.
        file.take(size.saturating_add(1))
            .read_to_end(&mut bytes)
            .map_err(|e| corrupt(format!("{entry}: {e}")))?;
        if bytes.len() as u64 != size {
            return Err(corrupt(format!(
                "{entry} does not hold the {size} bytes its zip entry declares"
            )));
        }
        Ok(bytes)
    }
}

/// A zip reader's error, said of the archive at `path`.
fn zip_error(path: &Path, e: ZipError) -> LoadError {
    let (corrupt, reason) = match e {
        ZipError::InvalidArchive("Could not find central directory end") => (
            true,
            "the zip archive's central directory, at its end, is missing".to_owned(),
        ),
        ZipError::UnsupportedArchive(what) => (false, format!("zip archive: {what}")),
        e => (true, format!("zip archive: {e}")),
    };
    let path = path.into();
    if corrupt {
        LoadError::Corrupt { path, reason }
    } else {
        LoadError::Unsupported { path, reason }
    }
}
