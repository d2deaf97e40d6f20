//! A JSON object from conv names to lists, its keys kept in file order: serde_json's map would
//! sort `conv10` before `conv2`.

use std::fmt;
use std::marker::PhantomData;

use serde::de::{self, MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// What the lists of a file hold, as its parse errors name them.
pub(crate) trait Listed {
    const WHAT: &'static str;
}

/// Mean ranks (ranks files).
impl Listed for f64 {
    const WHAT: &'static str = "mean ranks";
}

/// Filter indices (kept files).
impl Listed for i64 {
    const WHAT: &'static str = "filter indices";
}

/// `(conv name, list)` in file order; a name given twice is refused.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ConvLists<T>(pub Vec<(String, Vec<T>)>);

impl<T: Serialize> Serialize for ConvLists<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(self.0.iter().map(|(k, v)| (k, v)))
    }
}

impl<'de, T: Deserialize<'de> + Listed> Deserialize<'de> for ConvLists<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Entries<T>(PhantomData<T>);
        impl<'de, T: Deserialize<'de> + Listed> Visitor<'de> for Entries<T> {
            type Value = ConvLists<T>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                write!(f, "a map from conv names to lists of {}", T::WHAT)
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut entries: Vec<(String, Vec<T>)> = Vec::new();
                while let Some((name, list)) = map.next_entry::<String, Vec<T>>()? {
                    if entries.iter().any(|(n, _)| *n == name) {
                        return Err(de::Error::custom(format!("`{name}` appears twice")));
                    }
                    entries.push((name, list));
                }
                Ok(ConvLists(entries))
            }
        }
        d.deserialize_map(Entries(PhantomData))
    }
}
