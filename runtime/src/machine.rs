//! Measurements kept per machine in small JSON files under the user's cache folder
//! (`$XDG_CACHE_HOME/vggdsl/KIND/`, else `~/.cache/vggdsl/KIND/`), a file per machine: the kernel
//! tuner's choices and the latency table of `vggdsl prune`'s targets, as cuDNN's benchmark mode
//! would keep them if it remembered. A file that can't be read, or holds another machine's
//! entries or another format, counts as empty; one that can't be written leaves the entries in
//! memory.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::ops;

/// A machine's entries of one kind, and the file they are kept in.
#[derive(Debug)]
pub struct MachineFile<V> {
    path: Option<PathBuf>,
    file: Entries<V>,
}

#[derive(Debug, Serialize, Deserialize)]
struct Entries<V> {
    /// [`machine`] of the machine the entries were measured on.
    machine: String,
    entries: BTreeMap<String, V>,
}

impl<V: Serialize + DeserializeOwned> MachineFile<V> {
    /// The entries kept in `path` for `machine` (none if `path` is `None`, missing, unreadable,
    /// or for another machine), to be kept there.
    pub fn open(path: Option<PathBuf>, machine: &str) -> Self {
        let file = path
            .as_deref()
            .and_then(|p| read(p, machine))
            .unwrap_or_else(|| Entries {
                machine: machine.to_owned(),
                entries: BTreeMap::new(),
            });
        MachineFile { path, file }
    }

    /// This machine's file of `kind` (`kernels`, `latency`) in the user's cache folder.
    pub fn for_this_machine(kind: &str) -> Self {
        let machine = machine();
        Self::open(
            cache_dir(kind).map(|d| d.join(file_name(&machine))),
            &machine,
        )
    }

    /// The file the entries are kept in, if any.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// The machine the entries were measured on.
    pub fn machine(&self) -> &str {
        &self.file.machine
    }

    /// The entry kept for `key`.
    pub fn get(&self, key: &str) -> Option<&V> {
        self.file.entries.get(key)
    }

    /// Keeps `value` for `key`, and writes the file anew with what other processes have added
    /// to it meanwhile, whole ([`vggdsl::atomic`]: readers see the old file or the new one).
    /// Returns whether the file was written.
    pub fn insert(&mut self, key: &str, value: V) -> bool {
        self.file.entries.insert(key.to_owned(), value);
        let Some(path) = &self.path else {
            return false;
        };
        if let Some(on_disk) = read::<V>(path, &self.file.machine) {
            for (k, v) in on_disk.entries {
                self.file.entries.entry(k).or_insert(v);
            }
        }
        write(path, &self.file).is_ok()
    }
}

/// The file's entries, if it holds this writer's format for `machine`.
fn read<V: DeserializeOwned>(path: &Path, machine: &str) -> Option<Entries<V>> {
    let text = std::fs::read_to_string(path).ok()?;
    let file: Entries<V> = serde_json::from_str(&text).ok()?;
    (file.machine == machine).then_some(file)
}

fn write<V: Serialize>(path: &Path, file: &Entries<V>) -> std::io::Result<()> {
    std::fs::create_dir_all(path.parent().unwrap_or(Path::new(".")))?;
    let text = serde_json::to_string_pretty(file).map_err(std::io::Error::other)? + "\n";
    vggdsl::atomic::write(path, text.as_bytes())
}

/// `$XDG_CACHE_HOME/vggdsl/KIND`, else `$HOME/.cache/vggdsl/KIND`.
fn cache_dir(kind: &str) -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
    Some(base.join("vggdsl").join(kind))
}

/// What a measurement depends on besides what it measured: the CPU model, the ISA aten, oneDNN
/// and MKL run (`ATEN_CPU_CAPABILITY`, `ONEDNN_MAX_CPU_ISA` and `MKL_ENABLE_INSTRUCTIONS` can
/// lower it) and libtorch's version.
pub fn machine() -> String {
    let ceiling = |vars: &[&str]| {
        vars.iter()
            .find_map(|v| std::env::var(v).ok())
            .map_or_else(|| "all".into(), |v| v.to_ascii_lowercase())
    };
    format!(
        "{}; aten {}; oneDNN max {}; MKL max {}; libtorch {}",
        cpu_model(),
        ops::cpu_capability(),
        ceiling(&["ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA"]),
        ceiling(&["MKL_ENABLE_INSTRUCTIONS"]),
        ops::torch_version()
    )
}

/// The CPU's model name, as `lscpu` shows it (Linux); "unknown CPU" elsewhere.
pub fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, name)| name.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into())
}

/// A file name for `machine`: its letters and digits, the rest as `-`.
fn file_name(machine: &str) -> String {
    let mut name = String::new();
    for c in machine.chars() {
        if c.is_ascii_alphanumeric() || c == '.' {
            name.push(c.to_ascii_lowercase());
        } else if !name.ends_with('-') {
            name.push('-');
        }
    }
    format!("{}.json", name.trim_matches('-'))
}
