//! vggdsl: a small language for VGG-family networks, compiled to typed Rust code on tch.
//!
//! The pipeline shows in the modules: [`parse`] (the pest grammar) → [`ast`] → [`check`] →
//! [`spec`] → [`ir`] → [`analysis`] / [`init`] / [`repr`] / [`codegen`]. The CLI, the [`Builder`] for build scripts and the
//! `vgg!` macro are thin shells over [`load`] and [`codegen`], so they emit identical code.

pub mod analysis;
pub mod ast;
mod builder;
pub mod check;
pub mod codegen;
pub mod diagnostic;
pub mod init;
pub mod ir;
pub mod names;
pub mod parse;
pub mod presets;
pub mod repr;
pub mod rewrite;
pub mod spec;
mod write;

pub use builder::Builder;
pub use diagnostic::{Diagnostic, Diagnostics};
pub use ir::Network;
pub use write::{write_if_changed, GENERATED_HEADER};

/// Parses and checks source text; the diagnostics carry byte spans into `source`.
pub fn check_source(source: &str) -> Result<Vec<Network>, Vec<Diagnostic>> {
    let file = parse::parse(source).map_err(|d| vec![d])?;
    check::check(&file)
}

/// Parses and checks one file's text; errors come with the file's name for rendering.
pub fn load(source: &str, file_name: &str) -> Result<Vec<Network>, Diagnostics> {
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
