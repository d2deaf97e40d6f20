//! Running a plan's steps as child processes of this binary: up to `jobs` at a time, each writing
//! in its folder, with its output in `FOLDER.out.txt` and its messages in `FOLDER.log.txt` beside
//! it (the commands refuse folders holding files they did not write). A step that finished is
//! marked by `FOLDER.step.json`, written whole after its command succeeded; a rerun never runs it
//! again. A step's folder without the marker is what an interrupted run left: it is removed and
//! the step redone from the start.

use std::fs::File;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::plan::{Plan, Step};
use crate::exit::{FAILED, INTERRUPTED};
use crate::failure::Failure;
use crate::output;

/// The file beside a step's folder that marks it finished.
pub const MARKER: &str = "step.json";
/// The files beside a step's folder that hold its output and its messages.
const STDOUT: &str = "out.txt";
const STDERR: &str = "log.txt";

/// What a finished step's marker holds: its command line, its wall time and its output.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Done {
    pub args: Vec<String>,
    pub seconds: f64,
    pub stdout: String,
}

/// Raised by Ctrl-C or SIGTERM: the running steps are stopped and the study ends.
pub static STOP: AtomicBool = AtomicBool::new(false);

/// The marker of the step in `dir`, if it finished.
pub fn done(dir: &Path) -> Option<Done> {
    let text = std::fs::read_to_string(beside(dir, MARKER)).ok()?;
    serde_json::from_str(&text).ok()
}

/// `DIR.file`: a file of the runner's beside a step's folder `DIR`.
pub fn beside(dir: &Path, file: &str) -> PathBuf {
    let mut name = dir.file_name().unwrap_or_default().to_os_string();
    name.push(".");
    name.push(file);
    dir.with_file_name(name)
}

struct Running {
    index: usize,
    child: Child,
    started: Instant,
    args: Vec<String>,
}

/// Runs every step of `plan` not yet done under `out`, `jobs` at a time; the steps' results.
pub fn run(plan: &Plan, out: &Path, jobs: usize, threads: u32) -> Result<Vec<Done>, Failure> {
    let exe = std::env::current_exe()
        .map_err(|e| Failure::new(FAILED, format_args!("cannot find the vggdsl binary: {e}")))?;
    let n = plan.steps.len();
    let mut results: Vec<Option<Done>> =
        plan.steps.iter().map(|s| done(&out.join(&s.id))).collect();
    let already = results.iter().filter(|r| r.is_some()).count();
    if already > 0 {
        output::stderr(&format!(
            "study: {already} of {n} steps already done in {}\n",
            out.display()
        ));
    }
    let terminal = std::io::stderr().is_terminal();
    let mut started = vec![false; n];
    let mut failed: Vec<usize> = Vec::new();
    let mut running: Vec<Running> = Vec::new();
    loop {
        if STOP.load(Ordering::Relaxed) {
            stop(running);
            return Err(Failure::new(
                INTERRUPTED,
                "the study was interrupted; run it again to continue",
            ));
        }
        while running.len() < jobs {
            let ready = (0..n).find(|&i| {
                !started[i]
                    && results[i].is_none()
                    && plan.steps[i].after.iter().all(|&d| results[d].is_some())
            });
            let Some(i) = ready else { break };
            started[i] = true;
            let step = &plan.steps[i];
            if terminal {
                output::stderr(&format!("study: start {}\n", step.id));
            }
            running.push(launch(&exe, step, &out.join(&step.id), i, threads)?);
        }
        if running.is_empty() {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
        let mut k = 0;
        while k < running.len() {
            let Some(status) = running[k]
                .child
                .try_wait()
                .map_err(|e| Failure::new(FAILED, e))?
            else {
                k += 1;
                continue;
            };
            let r = running.swap_remove(k);
            let finished = results.iter().filter(|r| r.is_some()).count() + 1;
            match finish(r, status, plan, out, finished)? {
                (i, Some(marker)) => results[i] = Some(marker),
                (i, None) => failed.push(i),
            }
        }
    }
    match failed.first() {
        Some(&i) => Err(Failure::new(
            FAILED,
            format_args!(
                "{} of {n} steps failed, the first {}; the steps that need them did not run",
                failed.len(),
                plan.steps[i].id
            ),
        )),
        None => Ok(results
            .into_iter()
            .map(|r| r.expect("every step done"))
            .collect()),
    }
}

/// A step's process has ended: on success its marker is written (whole) and returned, the
/// `finished`th step; on failure it is said where its messages are.
fn finish(
    r: Running,
    status: std::process::ExitStatus,
    plan: &Plan,
    out: &Path,
    finished: usize,
) -> Result<(usize, Option<Done>), Failure> {
    let step = &plan.steps[r.index];
    let dir = out.join(&step.id);
    if !status.success() {
        output::stderr(&format!(
            "study: {} failed ({status}); its messages are in {}\n",
            step.id,
            beside(&dir, STDERR).display()
        ));
        return Ok((r.index, None));
    }
    let marker = Done {
        args: r.args,
        seconds: r.started.elapsed().as_secs_f64(),
        stdout: std::fs::read_to_string(beside(&dir, STDOUT)).unwrap_or_default(),
    };
    let json = serde_json::to_string_pretty(&marker).expect("a marker serializes") + "\n";
    let path = beside(&dir, MARKER);
    vggdsl::atomic::write(&path, json.as_bytes()).map_err(|e| Failure::write(path.display(), e))?;
    output::stderr(&format!(
        "study: [{finished}/{}] {} done in {:.1} s\n",
        plan.steps.len(),
        step.id,
        marker.seconds
    ));
    Ok((r.index, Some(marker)))
}

/// Starts a step in a fresh folder: what an interrupted run left there is removed first (the
/// command creates the folder if it writes one).
fn launch(
    exe: &Path,
    step: &Step,
    dir: &Path,
    index: usize,
    threads: u32,
) -> Result<Running, Failure> {
    if dir.exists() {
        std::fs::remove_dir_all(dir).map_err(|e| Failure::write(dir.display(), e))?;
    }
    if let Some(parent) = dir.parent() {
        std::fs::create_dir_all(parent).map_err(|e| Failure::write(parent.display(), e))?;
    }
    let args: Vec<String> = step.args.iter().map(|a| a.resolve()).collect();
    let file = |name: &str| {
        let path = beside(dir, name);
        File::create(&path).map_err(|e| Failure::write(path.display(), e))
    };
    let mut command = Command::new(exe);
    command
        .args(&args)
        .stdin(Stdio::null())
        .stdout(file(STDOUT)?)
        .stderr(file(STDERR)?)
        // prune has no --threads: libtorch takes its thread count from OpenMP's variable.
        .env("OMP_NUM_THREADS", threads.to_string());
    die_with_parent(&mut command);
    let child = command
        .spawn()
        .map_err(|e| Failure::new(FAILED, format_args!("cannot run {}: {e}", exe.display())))?;
    Ok(Running {
        index,
        child,
        started: Instant::now(),
        args,
    })
}

/// A step does not outlive the study: if the study is killed, so are its children, and a rerun
/// finds no orphan still writing in a folder it redoes.
fn die_with_parent(command: &mut Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: prctl is async-signal-safe and touches only the child's own state.
    unsafe {
        command.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
}

/// Asks the running steps to stop (SIGTERM: a training run saves its checkpoint) and waits.
fn stop(running: Vec<Running>) {
    for mut r in running {
        // SAFETY: signalling a child this process started and has not reaped.
        unsafe {
            libc::kill(r.child.id() as libc::pid_t, libc::SIGTERM);
        }
        let _ = r.child.wait();
    }
}
