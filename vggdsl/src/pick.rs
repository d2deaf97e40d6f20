//! Choosing the model of a file: the one named, or the file's only one. Every front door that
//! takes a file and a model name (the run-time network, `vggdsl train`, `eval`, `rank`, `prune`,
//! `plot ranks --model`) picks through [`pick`], so they accept and refuse the same.

use crate::ir::Architecture;

/// Why no model was picked; `file` is the name the file goes by.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PickError {
    #[error("{file} has no model `{name}`; it has {}", available.join(", "))]
    NoSuchModel {
        file: String,
        name: String,
        available: Vec<String>,
    },
    /// No name was given and the file declares several models.
    #[error("{file} declares several models ({})", available.join(", "))]
    Several {
        file: String,
        available: Vec<String>,
    },
}

/// The model of `models` (a file's, in order) named `name`, or the only one when `name` is
/// `None`.
pub fn pick<'a>(
    models: &'a [Architecture],
    name: Option<&str>,
    file: &str,
) -> Result<&'a Architecture, PickError> {
    let available = || models.iter().map(|m| m.spec.name.clone()).collect();
    match (name, models) {
        (None, [only]) => Ok(only),
        (None, _) => Err(PickError::Several {
            file: file.to_owned(),
            available: available(),
        }),
        (Some(name), _) => {
            models
                .iter()
                .find(|m| m.spec.name == name)
                .ok_or_else(|| PickError::NoSuchModel {
                    file: file.to_owned(),
                    name: name.to_owned(),
                    available: available(),
                })
        }
    }
}
