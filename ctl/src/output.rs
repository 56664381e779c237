//! Everything a command prints on stdout goes through here.
//!
//! Under `--json` a command prints exactly one JSON document (its result,
//! or `{"error": …}`); otherwise text. A closed pipe is not an error of the
//! command's — `unitgate status | head -1` — so a write that fails with
//! `EPIPE` becomes [`Error::ClosedPipe`], which ends the command quietly
//! with exit 0, as ripgrep does; any other failed write (a full disk) is an
//! I/O error. Nothing here can panic.
//!
//! Colour is decided once per process ([`set_colour`], from `--color`) and
//! applies to human output only: text goes through an `anstream` stream
//! that passes escapes on or strips them, JSON never goes through it (its
//! strings carry no escapes anyway: serde writes control characters as
//! `\u001b`).

use std::io::{self, IsTerminal, Write};
use std::sync::OnceLock;

use serde::Serialize;

use crate::cli::Color;
use crate::error::{Error, Result};

/// How the command's result is printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Output {
    pub json: bool,
}

impl Output {
    /// Text on stdout: colour escapes kept only when colour is on.
    pub fn text(&self, text: &str) -> Result<()> {
        write_text(text.as_bytes())
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

static COLOUR: OnceLock<bool> = OnceLock::new();

/// Fixes the colour decision for this process (first call wins).
pub fn set_colour(choice: Color) {
    let _ = COLOUR.set(decide(
        choice,
        std::env::var_os("NO_COLOR").as_deref(),
        std::env::var_os("TERM").as_deref(),
        io::stdout().is_terminal(),
    ));
}

/// Whether human output on stdout is coloured.
pub fn colour() -> bool {
    *COLOUR.get_or_init(|| {
        decide(
            Color::Auto,
            std::env::var_os("NO_COLOR").as_deref(),
            std::env::var_os("TERM").as_deref(),
            io::stdout().is_terminal(),
        )
    })
}

/// `--color`, `NO_COLOR` (only when not empty, as no-color.org says),
/// `TERM=dumb` and a stdout that is no terminal, in that order: an
/// explicit `--color` wins over the environment.
pub fn decide(
    choice: Color,
    no_color: Option<&std::ffi::OsStr>,
    term: Option<&std::ffi::OsStr>,
    tty: bool,
) -> bool {
    match choice {
        Color::Always => true,
        Color::Never => false,
        Color::Auto => {
            !no_color.is_some_and(|v| !v.is_empty()) && !term.is_some_and(|t| t == "dumb") && tty
        }
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

fn write_text(bytes: &[u8]) -> Result<()> {
    let choice = if colour() {
        anstream::ColorChoice::Always
    } else {
        anstream::ColorChoice::Never
    };
    let mut out = anstream::AutoStream::new(io::stdout().lock(), choice);
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
/// The bytes are written as they are (a script, roff), never stripped.
pub fn through(f: impl FnOnce(&mut Vec<u8>) -> io::Result<()>) -> Result<()> {
    let mut buf = Vec::new();
    f(&mut buf).map_err(|e| Error::io("cannot render the output", e))?;
    write_stdout(&buf)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsStr;

    #[test]
    fn colour_rules() {
        let on = |c, nc: Option<&str>, term: Option<&str>, tty| {
            decide(c, nc.map(OsStr::new), term.map(OsStr::new), tty)
        };
        assert!(on(Color::Auto, None, Some("xterm"), true));
        assert!(!on(Color::Auto, None, Some("xterm"), false), "a pipe");
        assert!(!on(Color::Auto, Some("1"), Some("xterm"), true));
        assert!(
            on(Color::Auto, Some(""), Some("xterm"), true),
            "empty NO_COLOR"
        );
        assert!(!on(Color::Auto, None, Some("dumb"), true));
        assert!(on(Color::Always, Some("1"), Some("dumb"), false));
        assert!(!on(Color::Never, None, Some("xterm"), true));
    }
}
