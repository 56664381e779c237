//! Running a program whose output we show without lending it our terminal.
//!
//! The install command is the app's own code (a service account can often
//! change what it runs, e.g. a SteamCMD in its home). Given our terminal as
//! its controlling tty and its stdout/stderr, it could push keystrokes into
//! the shell of whoever ran `unitgate install` (TIOCSTI), read what they
//! type next, or rewrite their screen with escape sequences. So it runs in
//! a session of its own, with pipes for output that we copy line by line,
//! control characters removed.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use crate::system;

/// Longest line copied as one; longer ones are cut into pieces.
const MAX_LINE: usize = 64 * 1024;
/// How long to wait, after the program exits, for output it left in the
/// pipes (a daemon it started may hold them open forever).
const DRAIN: Duration = Duration::from_secs(2);

/// Where a program's output goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Out {
    Stdout,
    Stderr,
}

/// A running program and the threads copying its output.
pub struct Relayed {
    child: Child,
    copied: Receiver<()>,
    copiers: usize,
}

/// Starts `cmd` in a new session with stdin from /dev/null and its stdout
/// and stderr copied to `stdout_to` and our stderr.
pub fn spawn(mut cmd: Command, stdout_to: Out) -> io::Result<Relayed> {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    system::in_new_session(&mut cmd);
    let mut child = cmd.spawn()?;
    let (tx, copied) = mpsc::channel();
    let mut copiers = 0;
    let pipes: [(Option<Box<dyn Read + Send>>, Out); 2] = [
        (child.stdout.take().map(|p| Box::new(p) as _), stdout_to),
        (child.stderr.take().map(|p| Box::new(p) as _), Out::Stderr),
    ];
    for (pipe, to) in pipes {
        let Some(pipe) = pipe else { continue };
        let tx = tx.clone();
        copiers += 1;
        std::thread::spawn(move || {
            copy_lines(pipe, to);
            let _ = tx.send(());
        });
    }
    Ok(Relayed {
        child,
        copied,
        copiers,
    })
}

impl Relayed {
    /// The program's process id.
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// Waits for the program, calling `tick` every `every` while it runs,
    /// then lets the copiers finish what is left in the pipes, for at most
    /// [`DRAIN`].
    pub fn wait(self, every: Duration, tick: impl FnMut()) -> io::Result<ExitStatus> {
        self.wait_draining(every, tick, Some(DRAIN))
    }

    /// Waits for the program, then for the copiers to finish whatever time
    /// that takes: for a program whose whole output is the answer (a slow
    /// reader, `| less`, must not lose its end), and which starts nothing
    /// that keeps the pipes open.
    pub fn wait_to_end(self) -> io::Result<ExitStatus> {
        self.wait_draining(Duration::from_secs(3600), || {}, None)
    }

    fn wait_draining(
        self,
        every: Duration,
        mut tick: impl FnMut(),
        drain: Option<Duration>,
    ) -> io::Result<ExitStatus> {
        let Relayed {
            mut child,
            copied,
            copiers,
        } = self;
        // Waited for on a thread, so the tick is a channel timeout, not a
        // polling loop.
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(child.wait());
        });
        let status = loop {
            match rx.recv_timeout(every) {
                Ok(status) => break status,
                Err(RecvTimeoutError::Timeout) => tick(),
                Err(RecvTimeoutError::Disconnected) => {
                    break Err(io::Error::other("the program's waiter vanished"))
                }
            }
        };
        let deadline = drain.map(|d| Instant::now() + d);
        for _ in 0..copiers {
            let copied = match deadline {
                Some(at) => copied
                    .recv_timeout(at.saturating_duration_since(Instant::now()))
                    .is_ok(),
                None => copied.recv().is_ok(),
            };
            if !copied {
                break;
            }
        }
        status
    }
}

fn copy_lines(pipe: Box<dyn Read + Send>, to: Out) {
    let mut reader = BufReader::new(pipe);
    let mut line = Vec::new();
    loop {
        line.clear();
        match (&mut reader)
            .take(MAX_LINE as u64)
            .read_until(b'\n', &mut line)
        {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let mut text = printable(&line);
        if !text.ends_with('\n') {
            text.push('\n');
        }
        // A closed stdout or stderr of ours only ends the copy.
        let written = match to {
            Out::Stdout => io::stdout().lock().write_all(text.as_bytes()),
            Out::Stderr => io::stderr().lock().write_all(text.as_bytes()),
        };
        if written.is_err() {
            return;
        }
    }
}

/// The line as text without control characters (C0 but tab and newline,
/// DEL, C1): what is left cannot move a cursor or talk to a terminal.
pub fn printable(line: &[u8]) -> String {
    String::from_utf8_lossy(line)
        .chars()
        .filter(|&c| c == '\n' || c == '\t' || !c.is_control())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_sequences_and_control_bytes_are_dropped() {
        assert_eq!(printable(b"ok\tline\n"), "ok\tline\n");
        assert_eq!(
            printable(b"\x1b[2J\x1b]0;title\x07red\r\n"),
            "[2J]0;titlered\n"
        );
        assert_eq!(printable("c1\u{9b}31m".as_bytes()), "c131m");
        assert_eq!(printable(b"bad \xff utf8"), "bad \u{fffd} utf8");
    }
}
