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
    #[serde(deserialize_with = "images")]
    images: i64,
    #[serde(deserialize_with = "ranks")]
    ranks: ConvLists<f64>,
}

/// `images`: at least one, as the ranks are means over them.
fn images<'de, D: serde::Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    match i64::deserialize(d)? {
        n if n > 0 => Ok(n),
        n => Err(serde::de::Error::custom(format!(
            "images is {n}, but the ranks are means over at least 1 image"
        ))),
    }
}

/// The `ranks` object: every conv with at least one rank, each a finite number ≥ 0 (a matrix
/// rank's mean), and at least one conv.
fn ranks<'de, D: serde::Deserializer<'de>>(d: D) -> Result<ConvLists<f64>, D::Error> {
    let lists = ConvLists::<f64>::deserialize(d)?;
    if let Some((name, _)) = lists.0.iter().find(|(_, ranks)| ranks.is_empty()) {
        return Err(serde::de::Error::custom(format!("{name} has no ranks")));
    }
    for (name, ranks) in &lists.0 {
        if let Some((i, r)) = ranks
            .iter()
            .enumerate()
            .find(|(_, r)| !(r.is_finite() && **r >= 0.0))
        {
            return Err(serde::de::Error::custom(format!(
                "filter {i} of {name} has rank {r}, but a mean rank is a number ≥ 0"
            )));
        }
    }
    if lists.0.is_empty() {
        return Err(serde::de::Error::custom("it ranks no conv"));
    }
    Ok(lists)
}

/// What a ranks file is, as messages name it.
pub const WHAT: &str = "a ranks file of `vggdsl rank`";

/// The most bytes a ranks file of a network with `filters` conv filters is read to: generous
/// (a number's text takes a few dozen bytes), but finite, so that `/dev/zero` is refused at once.
pub fn max_bytes(filters: u64) -> u64 {
    (1 << 20) + 1024 * filters
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

    /// Reads the ranks file at `path`, refusing one of more than `max_bytes` ([`max_bytes`]).
    pub fn read(path: &Path, max_bytes: u64) -> Result<RanksFile, ReadError> {
        super::read(path, WHAT, max_bytes, RanksFile::from_json)
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
