//! Workspace-level tests and examples of vggdsl. The models below are compiled from `.vgg` files
//! by `build.rs` through `vggdsl::Builder`; this crate denies warnings so that generated code
//! stays warning-free (CI also runs clippy with `-D warnings` over it).
#![deny(warnings)]

vggdsl_runtime::include_vgg!("vgg16_bn");
vggdsl_runtime::include_vgg!("hrank_vgg16_pruned");
vggdsl_runtime::include_vgg!("variants");
