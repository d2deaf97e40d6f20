//! What the root package's tests share beyond `vggdsl-test-support`: the repository's files, the
//! `vggdsl` binary run as a user runs it, and the models its tests compare.
#![allow(dead_code)] // each test binary uses its part

use std::io::Write;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

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

// ---- the vggdsl binary -----------------------------------------------------------------------

/// The command with every stream piped; the caller may redirect one before spawning.
pub fn command(args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_vggdsl"));
    cmd.args(args)
        .env("NO_COLOR", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

/// Feeds `stdin` and collects the output. Some of the bugs guarded against here are hangs, so a
/// run that takes more than a minute is killed and fails the test instead of blocking it.
pub fn finish(mut child: Child, stdin: &[u8]) -> Output {
    let mut input = child.stdin.take().expect("stdin is piped");
    let data = stdin.to_vec();
    // vggdsl may exit without reading; the error that gives the writer is not the test's concern.
    std::thread::spawn(move || input.write_all(&data));
    let pid = child.id();
    let (done, result) = std::sync::mpsc::channel();
    std::thread::spawn(move || done.send(child.wait_with_output()));
    match result.recv_timeout(Duration::from_secs(60)) {
        Ok(out) => out.expect("vggdsl's output is collected"),
        Err(_) => {
            let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
            panic!("vggdsl did not finish within a minute");
        }
    }
}

pub fn vggdsl(args: &[&str]) -> Output {
    vggdsl_with_stdin(args, b"")
}

pub fn vggdsl_with_stdin(args: &[&str], stdin: &[u8]) -> Output {
    finish(
        command(args).spawn().expect("the vggdsl binary runs"),
        stdin,
    )
}

/// The "Exit codes:" block that `vggdsl COMMAND --help` ends with.
pub fn exit_codes(command: &str) -> String {
    let help = text(&vggdsl(&[command, "--help"]).stdout);
    let at = help
        .find("Exit codes:")
        .expect("the help lists the exit codes");
    help[at..].trim_end().to_owned()
}

pub fn text(bytes: &[u8]) -> String {
    String::from_utf8(bytes.to_vec()).expect("UTF-8 output")
}

/// A path as the text a command line takes.
pub fn path(p: &Path) -> &str {
    p.to_str().expect("a UTF-8 path")
}
