//! What the root package's tests share: the repository's files, libtorch's global generator, and
//! PyTorch itself, through `tests/python/reference.py` (the seed's code, parameterised) running
//! in one process per test binary, so that `import torch` (seconds) is paid once per binary.
#![allow(dead_code)] // each test binary uses its part

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};

use serde_json::Value;

#[cfg(feature = "torch")]
pub mod models;

/// The path of `rel` in the repository, as the text a command line takes.
pub fn repo(rel: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join(rel)
        .display()
        .to_string()
}

/// A text file of the repository.
pub fn read(rel: &str) -> String {
    let path = repo(rel);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

// ---- libtorch's global generator -------------------------------------------------------------

/// libtorch's random generator is global and the tests run on parallel threads: whatever draws
/// random numbers (building a model, `randn`) holds this lock, so that a seeded draw sees no
/// foreign draws between `manual_seed` and its last tensor.
pub fn rng() -> MutexGuard<'static, ()> {
    static RNG: Mutex<()> = Mutex::new(());
    RNG.lock().unwrap_or_else(|e| e.into_inner())
}

// ---- PyTorch ---------------------------------------------------------------------------------

const SETUP: &str = "run `eval \"$(bash scripts/setup-libtorch.sh)\"` first";

/// One `reference.py` command line, e.g. `cmd(&["repr", "--config", "{}"])`.
pub fn cmd(args: &[&str]) -> Vec<String> {
    args.iter().map(|a| a.to_string()).collect()
}

/// `reference.py serve`, started by the first [`reference`] call of a test binary; it ends when
/// the binary does (its stdin closes).
struct Server {
    _child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl Server {
    fn start() -> Self {
        let python = std::env::var("VGGDSL_PYTHON").unwrap_or_else(|_| "python3".into());
        let mut child = Command::new(&python)
            .arg(repo("tests/python/reference.py"))
            .arg("serve")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {python}: {e}; {SETUP}"));
        let stdin = child.stdin.take().unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        Server {
            _child: child,
            stdin,
            stdout,
        }
    }

    /// Sends one batch, reads its answer line.
    fn ask(&mut self, batch: &str) -> std::io::Result<String> {
        writeln!(self.stdin, "{batch}")?;
        self.stdin.flush()?;
        let mut line = String::new();
        self.stdout.read_line(&mut line)?;
        Ok(line)
    }
}

/// Runs the command lines in order in this binary's `reference.py serve` process and returns each
/// one's JSON. A failing command panics with PyTorch's message.
pub fn reference(commands: &[Vec<String>]) -> Vec<Value> {
    static SERVER: Mutex<Option<Server>> = Mutex::new(None);
    let batch = serde_json::to_string(commands).unwrap();
    let answer = {
        let mut server = SERVER.lock().unwrap_or_else(|e| e.into_inner());
        let answer = server.get_or_insert_with(Server::start).ask(&batch);
        if !matches!(&answer, Ok(line) if !line.is_empty()) {
            *server = None; // it died: the next call starts another
        }
        answer
    };
    let line = answer.unwrap_or_else(|e| panic!("reference.py serve: {e}"));
    assert!(
        !line.is_empty(),
        "reference.py serve ended without answering (is torch installed? {SETUP}; its stderr is above)"
    );
    let json: Value = serde_json::from_str(&line).expect("reference.py answers JSON");
    if let Some(error) = json.get("error") {
        panic!("reference.py: {}", error.as_str().unwrap_or_default());
    }
    let results = json["results"].as_array().expect("a results list").clone();
    assert_eq!(results.len(), commands.len());
    results
}

/// A fresh directory under the system temp dir, removed when dropped.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(name: &str) -> Self {
        static COUNT: AtomicUsize = AtomicUsize::new(0);
        let n = COUNT.fetch_add(1, Ordering::Relaxed);
        let dir =
            std::env::temp_dir().join(format!("vggdsl-test-{name}-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }

    /// The path of `name` in the directory, as a string for `reference.py`.
    pub fn path(&self, name: &str) -> String {
        self.0.join(name).to_str().unwrap().to_owned()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
