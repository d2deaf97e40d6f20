//! PyTorch, run by the tests as their reference: the scripts of this package's `python/` folder
//! (`reference.py`, the seed's code parameterised; `hrank.py`; `train_reference.py`; …) under
//! `$VGGDSL_PYTHON` (scripts/setup-libtorch.sh sets it; `python3` otherwise).
//!
//! Without PyTorch, every function here returns `None` after [`crate::skip`] said why (or failed,
//! under CI); the test then returns.

use std::ffi::OsStr;
use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, ChildStdout, Command, Output, Stdio};
use std::sync::{Mutex, OnceLock};

use serde_json::Value;

/// The interpreter the tests and benchmarks run: `$VGGDSL_PYTHON`, else `python3`.
pub fn interpreter() -> String {
    std::env::var("VGGDSL_PYTHON").unwrap_or_else(|_| "python3".into())
}

/// A reference script of this package, e.g. `script("hrank.py")`.
pub fn script(name: &str) -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/python")).join(name)
}

/// The Python that has torch and safetensors, probed once per test binary; `None` when there is
/// none ([`crate::skip`]).
pub fn python() -> Option<&'static str> {
    static PYTHON: OnceLock<Result<String, String>> = OnceLock::new();
    let probed = PYTHON.get_or_init(|| {
        let python = interpreter();
        let probe = Command::new(&python)
            .args(["-c", "import torch, safetensors"])
            .output();
        match probe {
            Ok(out) if out.status.success() => Ok(python),
            Ok(out) => Err(format!(
                "{python} cannot import torch and safetensors: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            )),
            Err(e) => Err(format!("cannot run {python}: {e}")),
        }
    });
    match probed {
        Ok(python) => Some(python),
        Err(reason) => {
            crate::skip(&format!(
                "{reason} (set VGGDSL_PYTHON; see scripts/setup-libtorch.sh)"
            ));
            None
        }
    }
}

/// Runs reference script `name` with `args`; its standard output. Panics with its stderr when
/// it fails.
pub fn run<I, S>(name: &str, args: I) -> Option<Vec<u8>>
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut command = Command::new(python()?);
    command.arg(script(name)).args(args);
    Some(checked(command, name))
}

/// [`run`], its output read as one JSON value.
pub fn run_json<I, S>(name: &str, args: I) -> Option<Value>
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let out = run(name, args)?;
    Some(serde_json::from_slice(&out).unwrap_or_else(|e| panic!("{name} printed no JSON: {e}")))
}

/// Runs Python source `code` with `args` (`python -c`); its standard output.
pub fn run_code<I, S>(code: &str, args: I) -> Option<Vec<u8>>
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut command = Command::new(python()?);
    command.arg("-c").arg(code).args(args);
    Some(checked(command, "python -c"))
}

/// The command's standard output, or a panic with everything it said.
fn checked(mut command: Command, what: &str) -> Vec<u8> {
    let out: Output = command
        .output()
        .unwrap_or_else(|e| panic!("cannot run {what}: {e}"));
    crate::assert_success(&out, what);
    out.stdout
}

/// One `reference.py` command line, e.g. `cmd(&["repr", "--config", "{}"])`.
pub fn cmd(args: &[&str]) -> Vec<String> {
    args.iter().map(|a| a.to_string()).collect()
}

/// `reference.py serve`, started by the first [`reference`] call of a test binary, so that
/// `import torch` (seconds) is paid once per binary; it ends when the binary does (its stdin
/// closes).
struct Server {
    _child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl Server {
    fn start(python: &str) -> Self {
        let mut child = Command::new(python)
            .arg(script("reference.py"))
            .arg("serve")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {python}: {e}"));
        let stdin = child.stdin.take().expect("piped");
        let stdout = BufReader::new(child.stdout.take().expect("piped"));
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
pub fn reference(commands: &[Vec<String>]) -> Option<Vec<Value>> {
    static SERVER: Mutex<Option<Server>> = Mutex::new(None);
    let python = python()?;
    let batch = serde_json::to_string(commands).expect("strings serialize");
    let answer = {
        let mut server = SERVER.lock().unwrap_or_else(|e| e.into_inner());
        let answer = server
            .get_or_insert_with(|| Server::start(python))
            .ask(&batch);
        if !matches!(&answer, Ok(line) if !line.is_empty()) {
            *server = None; // it died: the next call starts another
        }
        answer
    };
    let line = answer.unwrap_or_else(|e| panic!("reference.py serve: {e}"));
    assert!(
        !line.is_empty(),
        "reference.py serve ended without answering (its stderr is above)"
    );
    let json: Value = serde_json::from_str(&line).expect("reference.py answers JSON");
    if let Some(error) = json.get("error") {
        panic!("reference.py: {}", error.as_str().unwrap_or_default());
    }
    let results = json["results"].as_array().expect("a results list").clone();
    assert_eq!(results.len(), commands.len());
    Some(results)
}
