//! Everything a command prints on stdout goes through here.
//!
//! Under `--json` a command prints exactly one JSON document (its result,
//! or `{"error": …}`); otherwise text. A closed pipe is not an error of the
//! command's — `unitgate status | head -1` — so a write that fails with
//! `EPIPE` becomes [`Error::ClosedPipe`], which ends the command quietly
//! with exit 0, as ripgrep does; any other failed write (a full disk) is an
//! I/O error. Nothing here can panic.

use std::io::{self, Write};

use serde::Serialize;

use crate::error::{Error, Result};

/// How the command's result is printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Output {
    pub json: bool,
}

impl Output {
    /// Text on stdout, as is.
    pub fn text(&self, text: &str) -> Result<()> {
        write_stdout(text.as_bytes())
    }

    /// One JSON document on stdout (pretty, newline-terminated).
    pub fn json(&self, value: &impl Serialize) -> Result<()> {
        let mut text = serde_json::to_string_pretty(value)
            .map_err(|e| Error::io("cannot encode the output", io::Error::other(e)))?;
        text.push('\n');
        write_stdout(text.as_bytes())
    }

    /// One compact JSON document on one line (`watch --json`).
    pub fn json_line(&self, value: &impl Serialize) -> Result<()> {
        let mut text = serde_json::to_string(value)
            .map_err(|e| Error::io("cannot encode the output", io::Error::other(e)))?;
        text.push('\n');
        write_stdout(text.as_bytes())
    }
}

/// A line on stderr: progress and warnings. A closed or full stderr only
/// loses the line.
pub fn note(line: &str) {
    let mut err = io::stderr().lock();
    let _ = writeln!(err, "{line}");
}

fn write_stdout(bytes: &[u8]) -> Result<()> {
    let mut out = io::stdout().lock();
    out.write_all(bytes)
        .and_then(|()| out.flush())
        .map_err(|e| match e.kind() {
            io::ErrorKind::BrokenPipe => Error::ClosedPipe,
            _ => Error::io("cannot write the output", e),
        })
}

/// Writes `f`'s output into a buffer, then to stdout, so a generator that
/// writes to an `io::Write` (completions, the man page) gets the same
/// closed-pipe handling.
pub fn through(f: impl FnOnce(&mut Vec<u8>) -> io::Result<()>) -> Result<()> {
    let mut buf = Vec::new();
    f(&mut buf).map_err(|e| Error::io("cannot render the output", e))?;
    write_stdout(&buf)
}
