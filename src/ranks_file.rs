//! The ranks file, one home for its format: `vggdsl rank` writes it, `vggdsl prune --ranks` and
//! `vggdsl plot ranks` read it (docs/language.md, "Ranks files"):
//! `{"model": NAME, "images": N, "ranks": {"conv0": [mean rank per filter, …], …}}`, the convs in
//! order and named as in the model.

use crate::failure::{Failure, FAILED, UNREADABLE};
use serde::de::{MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::path::Path;

/// A ranks file's contents.
#[derive(Debug, Clone, PartialEq)]
pub struct RanksFile {
    /// The model that was ranked.
    pub model: String,
    /// How many images the ranks are means over.
    pub images: i64,
    /// `(conv name, mean rank per filter)`, in conv order.
    pub convs: Vec<(String, Vec<f64>)>,
}

/// The `ranks` object, its keys in conv order (a map would sort `conv10` before `conv2`).
struct InOrder(Vec<(String, Vec<f64>)>);

impl Serialize for InOrder {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(self.0.iter().map(|(k, v)| (k, v)))
    }
}

impl<'de> Deserialize<'de> for InOrder {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Entries;
        impl<'de> Visitor<'de> for Entries {
            type Value = InOrder;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a map from conv names to lists of mean ranks")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<InOrder, A::Error> {
                let mut entries: Vec<(String, Vec<f64>)> = Vec::new();
                while let Some((name, ranks)) = map.next_entry::<String, Vec<f64>>()? {
                    if entries.iter().any(|(n, _)| *n == name) {
                        return Err(serde::de::Error::custom(format!("`{name}` appears twice")));
                    }
                    if ranks.is_empty() {
                        return Err(serde::de::Error::custom(format!("{name} has no ranks")));
                    }
                    entries.push((name, ranks));
                }
                if entries.is_empty() {
                    return Err(serde::de::Error::custom("it ranks no conv"));
                }
                Ok(InOrder(entries))
            }
        }
        d.deserialize_map(Entries)
    }
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    model: String,
    images: i64,
    ranks: InOrder,
}

impl RanksFile {
    /// The file's text, pretty-printed (what `vggdsl rank`, a libtorch command, writes).
    #[cfg(feature = "torch")]
    pub fn to_json(&self) -> String {
        let file = File {
            model: self.model.clone(),
            images: self.images,
            ranks: InOrder(self.convs.clone()),
        };
        serde_json::to_string_pretty(&file).expect("ranks serialize") + "\n"
    }

    /// Reads a ranks file; a file that cannot be read (exit 2) or is not a ranks file (exit 1)
    /// is one sentence.
    pub fn read(path: &Path) -> Result<RanksFile, Failure> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            Failure::new(
                UNREADABLE,
                format_args!("cannot read {}: {e}", path.display()),
            )
        })?;
        let file: File = serde_json::from_str(&text).map_err(|e| {
            Failure::new(
                FAILED,
                format_args!(
                    "{} is not a ranks file of `vggdsl rank`: {e}",
                    path.display()
                ),
            )
        })?;
        Ok(RanksFile {
            model: file.model,
            images: file.images,
            convs: file.ranks.0,
        })
    }
}
