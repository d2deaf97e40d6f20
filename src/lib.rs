//! Workspace-level tests and examples of vggdsl.
