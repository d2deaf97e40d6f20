//! The tuner's choices, kept per machine in a small JSON file under the user's cache folder
//! (`$XDG_CACHE_HOME/vggdsl/kernels/`, else `~/.cache/vggdsl/kernels/`), as cuDNN's benchmark
//! mode would if it remembered: a file per CPU model, ISA in effect and libtorch, an entry per
//! thread count, layer shape and batch-size class. A file that can't be read, or is not what
//! this writes, counts as empty; a file that can't be written leaves the choices in memory.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::Kernel;
use crate::ops;

/// The tuner's choices for one machine, and the file they are kept in.
#[derive(Debug)]
pub struct KernelCache {
    path: Option<PathBuf>,
    file: CacheFile,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct CacheFile {
    /// [`machine`] of the machine the choices were measured on.
    machine: String,
    /// Kernel names by [`KernelCache::get`]'s key.
    choices: BTreeMap<String, String>,
}

impl KernelCache {
    /// The choices kept in `path` for `machine` (none if `path` is `None`, missing, unreadable,
    /// or for another machine), to be kept there.
    pub fn open(path: Option<PathBuf>, machine: &str) -> Self {
        let file = path
            .as_deref()
            .and_then(|p| read(p, machine))
            .unwrap_or_else(|| CacheFile {
                machine: machine.to_owned(),
                choices: BTreeMap::new(),
            });
        KernelCache { path, file }
    }

    /// The cache of this machine in the user's cache folder.
    pub fn for_this_machine() -> Self {
        let machine = machine();
        Self::open(default_dir().map(|d| d.join(file_name(&machine))), &machine)
    }

    /// The file the choices are kept in, if any.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// The kernel kept for `key`, if it names one.
    pub fn get(&self, key: &str) -> Option<Kernel> {
        self.file
            .choices
            .get(key)
            .and_then(|k| Kernel::from_name(k))
    }

    /// Keeps `kernel` for `key`, and writes the file anew with what other processes have added
    /// to it meanwhile. Returns whether the file was written.
    pub fn insert(&mut self, key: &str, kernel: Kernel) -> bool {
        self.file
            .choices
            .insert(key.to_owned(), kernel.name().to_owned());
        let Some(path) = &self.path else {
            return false;
        };
        if let Some(on_disk) = read(path, &self.file.machine) {
            for (k, v) in on_disk.choices {
                self.file.choices.entry(k).or_insert(v);
            }
        }
        write(path, &self.file).is_ok()
    }
}

/// The file's choices, if it holds this writer's format for `machine`.
fn read(path: &Path, machine: &str) -> Option<CacheFile> {
    let text = std::fs::read_to_string(path).ok()?;
    let file: CacheFile = serde_json::from_str(&text).ok()?;
    (file.machine == machine).then_some(file)
}

/// Writes `file` whole ([`vggdsl::atomic`]): readers see the old file or the new one.
fn write(path: &Path, file: &CacheFile) -> std::io::Result<()> {
    std::fs::create_dir_all(path.parent().unwrap_or(Path::new(".")))?;
    let text = serde_json::to_string_pretty(file).map_err(std::io::Error::other)?;
    vggdsl::atomic::write(path, text.as_bytes())
}

/// `$XDG_CACHE_HOME/vggdsl/kernels`, else `$HOME/.cache/vggdsl/kernels`.
fn default_dir() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
    Some(base.join("vggdsl").join("kernels"))
}

/// What a kernel's speed depends on besides the layer: the CPU model, the ISA aten, oneDNN and
/// MKL run (`ATEN_CPU_CAPABILITY`, `ONEDNN_MAX_CPU_ISA` and `MKL_ENABLE_INSTRUCTIONS` can lower
/// it) and libtorch's version.
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
