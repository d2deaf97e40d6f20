//! `kept.json`, which `vggdsl prune` writes beside the pruned model: the surviving filter indices
//! of every conv, `{"conv0": [0, 1, 2, 5, 6], "conv2": […], …}`, the convs in order, one a line.

use super::ordered::ConvLists;
use super::FormatError;

/// The filters each conv kept, by index into the unpruned conv, ascending.
#[derive(Debug, Clone, PartialEq)]
pub struct KeptFile {
    /// `(conv name, kept filter indices)`, in conv order.
    pub convs: Vec<(String, Vec<i64>)>,
}

impl KeptFile {
    /// The file's text: one line per conv.
    pub fn to_json(&self) -> String {
        let entries: Vec<String> = self
            .convs
            .iter()
            .map(|(name, kept)| {
                let name = serde_json::to_string(name).expect("a string serializes");
                let kept = serde_json::to_string(kept).expect("integers serialize");
                format!("  {name}: {kept}")
            })
            .collect();
        format!("{{\n{}\n}}\n", entries.join(",\n"))
    }

    /// Reads a kept file's text.
    pub fn from_json(text: &str) -> Result<KeptFile, FormatError> {
        let lists: ConvLists<i64> = serde_json::from_str(text)?;
        Ok(KeptFile { convs: lists.0 })
    }
}
