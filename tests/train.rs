//! `vggdsl train` and `vggdsl eval` through the binary.
