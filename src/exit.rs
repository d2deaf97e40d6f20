//! The command's exit codes: the codes, and one table per command of what each means there, from
//! which `--help` prints its "Exit codes:" (the user's pages repeat each table word for word:
//! tests/docs.rs compares them, and rewrites them with `UPDATE_DOCS=1`).

/// A FILE is invalid, or an output cannot be written.
pub const FAILED: u8 = 1;
/// A FILE cannot be read. Higher than [`FAILED`]: `check` exits with the highest code of its files.
pub const UNREADABLE: u8 = 2;
/// The command line is wrong (clap's own usage errors exit with it too).
pub const USAGE: u8 = 2;
/// The file has no model of the name asked for, or several and none is named: the command line
/// must say which, in every command that takes a model.
pub const MODEL: u8 = USAGE;
/// Stopped by Ctrl-C (128 + SIGINT, as shells report it).
#[cfg(feature = "torch")]
pub const INTERRUPTED: u8 = 130;

/// A command's exit codes and what each means; a meaning's `\n` continues it on the next line.
pub type Table = &'static [(u8, &'static str)];

/// `check`, `summary`, `compile`, `plot` and `vggdsl` itself.
pub const COMPILER: Table = &[
    (
        0,
        "success, also when the reader of standard output stops early (`| head`)",
    ),
    (
        FAILED,
        "a FILE is invalid (diagnostics on stderr), or the output cannot be written",
    ),
    (USAGE, "a FILE cannot be read, or the command line is wrong"),
];

/// `export`.
pub const EXPORT: Table = &[
    (0, "success"),
    (
        FAILED,
        "FILE or the weights are invalid or do not fit one another, or OUT cannot be written\n\
         (nothing is written)",
    ),
    (USAGE, "a file cannot be read, or the command line is wrong"),
];

/// `train`.
#[cfg(feature = "torch")]
pub const TRAIN: Table = &[
    (0, "success"),
    (
        FAILED,
        "FILE, the data or a weights file is invalid, RUN_DIR cannot be written or is in use, or\n\
         training failed (the last checkpoint stays)",
    ),
    (USAGE, "a FILE cannot be read, or the command line is wrong"),
    (
        INTERRUPTED,
        "interrupted by Ctrl-C or SIGTERM (once training has begun, a checkpoint is saved\n\
         first)",
    ),
];

/// `eval`.
#[cfg(feature = "torch")]
pub const EVAL: Table = &[
    (0, "success"),
    (
        FAILED,
        "FILE, the data or the weights are invalid (NaN or infinite weights included)",
    ),
    (USAGE, "a FILE cannot be read, or the command line is wrong"),
];

/// `rank`.
#[cfg(feature = "torch")]
pub const RANK: Table = &[
    (0, "success"),
    (
        FAILED,
        "FILE, the data or the weights are invalid, or RANKS_DIR cannot be written or is in use\n\
         (nothing is written)",
    ),
    (USAGE, "a FILE cannot be read, or the command line is wrong"),
];

/// `prune`.
#[cfg(feature = "torch")]
pub const PRUNE: Table = &[
    (0, "success"),
    (
        FAILED,
        "FILE, the weights, the ranks or the sensitivity file are invalid or do not fit one\n\
         another, a target cannot be met, or DIR cannot be written, is in use or holds files\n\
         prune did not write (nothing is written)",
    ),
    (
        USAGE,
        "a file cannot be read, or the command line is wrong (--compress-rate included)",
    ),
];

/// `study`.
#[cfg(feature = "torch")]
pub const STUDY: Table = &[
    (
        0,
        "success: every step done, results.json and results.md written",
    ),
    (
        FAILED,
        "the study file or its model is invalid, or a step failed (the others that could ran;\n\
         run the study again to retry it)",
    ),
    (USAGE, "a file cannot be read, or the command line is wrong"),
    (
        INTERRUPTED,
        "interrupted by Ctrl-C or SIGTERM (the finished steps stay done)",
    ),
];

/// `sensitivity`.
#[cfg(feature = "torch")]
pub const SENSITIVITY: Table = &[
    (0, "success"),
    (
        FAILED,
        "FILE, the data, the weights or the ranks are invalid or do not fit one another, or DIR\n\
         cannot be written (nothing is written)",
    ),
    (USAGE, "a file cannot be read, or the command line is wrong"),
];

/// A table as `--help` prints it: `Exit codes:`, then a line per code, the meanings aligned.
pub fn help(table: Table) -> String {
    let width = table
        .iter()
        .map(|(code, _)| code.to_string().len())
        .max()
        .unwrap_or(1);
    let mut text = String::from("Exit codes:");
    for (code, meaning) in table {
        for (i, line) in meaning.lines().enumerate() {
            let code = if i == 0 {
                code.to_string()
            } else {
                String::new()
            };
            text += &format!("\n  {code:<width$}  {line}");
        }
    }
    text
}
