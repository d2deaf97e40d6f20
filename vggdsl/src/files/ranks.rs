//! The ranks file: `vggdsl rank` writes it, `vggdsl prune --ranks` and `vggdsl plot ranks` read it
//! (docs/language.md, "Ranks files"):
//! `{"model": NAME, "images": N, "ranks": {"conv0": [mean rank per filter, …], …}}`, the convs in
//! order and named as in the model.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::ordered::ConvLists;
use super::FormatError;
pub use super::ReadError;

/// Mean feature-map rank of every filter of every conv of a model.
#[derive(Debug, Clone, PartialEq)]
pub struct RanksFile {
    /// The model that was ranked.
    pub model: String,
    /// How many images the ranks are means over.
    pub images: i64,
    /// `(conv name, mean rank per filter)`, in conv order.
    pub convs: Vec<(String, Vec<f64>)>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    model: String,
    images: i64,
    #[serde(deserialize_with = "ranks")]
    ranks: ConvLists<f64>,
}

/// The `ranks` object: every conv with at least one rank, and at least one conv.
fn ranks<'de, D: serde::Deserializer<'de>>(d: D) -> Result<ConvLists<f64>, D::Error> {
    let lists = ConvLists::deserialize(d)?;
    if let Some((name, _)) = lists.0.iter().find(|(_, ranks)| ranks.is_empty()) {
        return Err(serde::de::Error::custom(format!("{name} has no ranks")));
    }
    if lists.0.is_empty() {
        return Err(serde::de::Error::custom("it ranks no conv"));
    }
    Ok(lists)
}

impl RanksFile {
    /// The file's text, pretty-printed.
    pub fn to_json(&self) -> String {
        let file = File {
            model: self.model.clone(),
            images: self.images,
            ranks: ConvLists(self.convs.clone()),
        };
        serde_json::to_string_pretty(&file).expect("ranks serialize") + "\n"
    }

    /// Reads the ranks file at `path`.
    pub fn read(path: &Path) -> Result<RanksFile, ReadError> {
        super::read(path, "a ranks file of `vggdsl rank`", RanksFile::from_json)
    }

    /// Reads a ranks file's text.
    pub fn from_json(text: &str) -> Result<RanksFile, FormatError> {
        let file: File = serde_json::from_str(text)?;
        Ok(RanksFile {
            model: file.model,
            images: file.images,
            convs: file.ranks.0,
        })
    }
}
