//! The example and test models, compiled from `.vgg` files by `build.rs` through
//! `vggdsl::Builder`. Warnings are errors here so that generated code stays warning-free.
#![deny(warnings)]

vggdsl_runtime::include_vgg!("vgg16_bn");
vggdsl_runtime::include_vgg!("hrank_vgg16_pruned");
vggdsl_runtime::include_vgg!("variants");
