//! Reading the command's inputs: a FILE argument (a path, or `-` for standard input), its model,
//! a ranks or sensitivity file.

use crate::exit::{FAILED, MODEL, UNREADABLE};
use crate::failure::Failure;
use crate::FileArg;
use std::io::Read;
use std::path::Path;
use vggdsl::files::ranks::{self, RanksFile};
use vggdsl::files::sensitivity::SensitivityFile;
use vggdsl::files::ReadError;
use vggdsl::Architecture;
use vggdsl::PickError;

/// The most a FILE may hold. Models take a few hundred bytes each; the bound stops devices such
/// as `/dev/zero` from being read until memory runs out.
const MAX_BYTES: u64 = 1 << 20;

/// The most a data file (metrics, benchmark results, a ranks file read without its model) may
/// hold.
pub const MAX_DATA_BYTES: u64 = 256 << 20;

/// A FILE's text and the name its diagnostics show.
pub struct Source {
    pub name: String,
    pub text: String,
}

pub fn read(file: &FileArg) -> Result<Source, Failure> {
    read_up_to(file, MAX_BYTES)
}

/// A file's text, refused when it holds more than `max_bytes`.
pub fn read_up_to(file: &FileArg, max_bytes: u64) -> Result<Source, Failure> {
    let name = match file {
        FileArg::Std => "<stdin>".to_owned(),
        FileArg::Path(path) => path.display().to_string(),
    };
    let cannot = |why: &dyn std::fmt::Display| {
        Failure::new(UNREADABLE, format_args!("cannot read {name}: {why}"))
    };
    let mut bytes = Vec::new();
    match file {
        FileArg::Std => std::io::stdin()
            .lock()
            .take(max_bytes + 1)
            .read_to_end(&mut bytes),
        FileArg::Path(path) => {
            std::fs::File::open(path).and_then(|f| f.take(max_bytes + 1).read_to_end(&mut bytes))
        }
    }
    .map_err(|e| cannot(&e))?;
    if bytes.len() as u64 > max_bytes {
        return Err(cannot(&format_args!(
            "it is larger than {}",
            vggdsl::files::size(max_bytes)
        )));
    }
    let text = String::from_utf8(bytes).map_err(|e| {
        let valid = String::from_utf8_lossy(&e.as_bytes()[..e.utf8_error().valid_up_to()]);
        let (line, column) = vggdsl::diagnostic::line_col(&valid, valid.len());
        cannot(&format_args!(
            "it is not UTF-8 text (line {line}, column {column})"
        ))
    })?;
    Ok(Source { name, text })
}

/// The checked networks of a FILE.
pub fn load(file: &FileArg) -> Result<Vec<Architecture>, Failure> {
    let source = read(file)?;
    vggdsl::load(&source.text, &source.name).map_err(|d| Failure::invalid(&d))
}

/// The model of `models` (FILE's, which goes by `file`) that `--model NAME` names, or FILE's
/// only model without it.
pub fn model<'a>(
    models: &'a [Architecture],
    name: Option<&str>,
    file: &str,
) -> Result<&'a Architecture, Failure> {
    vggdsl::pick(models, name, file).map_err(|e| match e {
        PickError::Several { .. } => {
            Failure::new(MODEL, format_args!("{e}; choose one with --model NAME"))
        }
        PickError::NoSuchModel { .. } => Failure::new(MODEL, e),
    })
}

/// A ranks file of `vggdsl rank`, refused beyond `max_bytes` ([`vggdsl::files::ranks::max_bytes`]).
pub fn ranks(file: &FileArg, max_bytes: u64) -> Result<RanksFile, Failure> {
    let source = read_up_to(file, max_bytes)?;
    RanksFile::from_json(&source.text).map_err(|source_error| {
        read_failure(ReadError::Format {
            path: source.name.into(),
            what: ranks::WHAT,
            source: source_error,
        })
    })
}

/// A sensitivity file of `vggdsl sensitivity`.
pub fn sensitivity(path: &Path) -> Result<SensitivityFile, Failure> {
    SensitivityFile::read(path).map_err(read_failure)
}

/// A file of vggdsl's formats that cannot be read is exit 2, one that is not its format exit 1.
pub fn read_failure(error: ReadError) -> Failure {
    match error {
        ReadError::Io { .. } | ReadError::TooLarge { .. } => Failure::new(UNREADABLE, error),
        ReadError::Format { .. } => Failure::new(FAILED, error),
    }
}
