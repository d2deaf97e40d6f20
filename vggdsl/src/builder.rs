//! The build.rs helper, in prost-build's style: `.vgg` files in, Rust files in `OUT_DIR` out.
//!
//! ```no_run
//! // in build.rs's main:
//! vggdsl::Builder::new().compile(&["models/vgg16_bn.vgg"]).unwrap();
//! ```
//! and in the crate: `vggdsl_runtime::include_vgg!("vgg16_bn");`.

use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Default)]
pub struct Builder {
    out_dir: Option<PathBuf>,
}

/// Why a build failed: a file could not be read or written, or it does not check.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("cannot write {path}: {source}")]
    Write {
        path: String,
        source: std::io::Error,
    },
    #[error("OUT_DIR is not set; call Builder::out_dir outside build scripts")]
    NoOutDir,
    #[error("{0}")]
    Invalid(crate::Diagnostics),
}

impl Builder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Where the Rust files go, created if missing; defaults to cargo's `OUT_DIR`.
    pub fn out_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.out_dir = Some(dir.into());
        self
    }

    /// Compiles each file to `<out_dir>/<file stem>.rs`, written as [`crate::write_if_changed`]
    /// does, and tells cargo to rerun when a source changes. Returns the paths written to.
    pub fn compile(&self, files: &[impl AsRef<Path>]) -> Result<Vec<PathBuf>, BuildError> {
        let out_dir = match &self.out_dir {
            Some(d) => d.clone(),
            None => std::env::var_os("OUT_DIR")
                .map(PathBuf::from)
                .ok_or(BuildError::NoOutDir)?,
        };
        std::fs::create_dir_all(&out_dir).map_err(|source| BuildError::Write {
            path: out_dir.display().to_string(),
            source,
        })?;
        let mut written = Vec::new();
        for file in files {
            let file = file.as_ref();
            let label = file.display().to_string();
            println!("cargo:rerun-if-changed={label}");
            let source = std::fs::read_to_string(file).map_err(|source| BuildError::Read {
                path: label.clone(),
                source,
            })?;
            let code = crate::compile(&source, &label).map_err(BuildError::Invalid)?;
            let stem = file
                .file_stem()
                .map_or_else(|| "model".into(), |s| s.to_string_lossy().into_owned());
            let out = out_dir.join(format!("{stem}.rs"));
            crate::write_if_changed(&out, &code).map_err(|source| BuildError::Write {
                path: out.display().to_string(),
                source,
            })?;
            written.push(out);
        }
        Ok(written)
    }
}
