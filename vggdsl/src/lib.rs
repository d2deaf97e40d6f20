//! vggdsl: a small language for VGG-family networks, compiled to typed Rust code on tch.
//!
//! The pipeline shows in the modules: [`parse`] (the pest grammar) → [`ast`] → [`check`] →
//! [`spec`] → [`ir`] → [`analysis`] / [`init`] / [`repr`] / [`codegen`]. The CLI, the
//! [`Builder`] for build scripts and the `vgg!` macro are thin shells over [`load`] and
//! [`codegen`], so they emit identical code.
//!
//! Beside the pipeline, the torch-free rules that every front end shares: choosing a file's model
//! ([`pick`]), which filters survive pruning ([`select`]), widths for a budget ([`budget`]),
//! rewriting a model's `compress_rate` ([`rewrite`]), writing files whole ([`atomic`]), the
//! folders a command writes, locked and written a set of files at a time ([`folder`]) and, with
//! the `serde` feature, the formats of the files the tools exchange ([`files`]).

pub mod analysis;
pub mod ast;
pub mod atomic;
pub mod budget;
mod builder;
pub mod check;
pub mod codegen;
pub mod diagnostic;
#[cfg(feature = "serde")]
pub mod files;
pub mod folder;
pub mod init;
pub mod ir;
pub mod names;
pub mod parse;
pub mod pick;
pub mod presets;
pub mod repr;
pub mod rewrite;
pub mod select;
pub mod spec;
mod write;

pub use builder::Builder;
pub use diagnostic::{Diagnostic, Diagnostics};
pub use ir::Architecture;
pub use pick::{pick, PickError};
pub use write::write_if_changed;

/// Parses and checks source text; the diagnostics carry byte spans into `source`.
pub fn check_source(source: &str) -> Result<Vec<Architecture>, Vec<Diagnostic>> {
    let file = parse::parse(source).map_err(|d| vec![d])?;
    check::check(&file)
}

/// Parses and checks one file's text; errors come with the file's name for rendering.
pub fn load(source: &str, file_name: &str) -> Result<Vec<Architecture>, Diagnostics> {
    check_source(source).map_err(|items| Diagnostics {
        file_name: file_name.to_owned(),
        source: source.to_owned(),
        items,
    })
}

/// Source text to the formatted Rust file that `vggdsl compile` writes.
pub fn compile(source: &str, file_name: &str) -> Result<String, Diagnostics> {
    let nets = load(source, file_name)?;
    Ok(codegen::file(
        &nets,
        &codegen::Origin {
            file: Some(file_name.to_owned()),
        },
    ))
}
