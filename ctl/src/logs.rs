//! `logs`: an instance's journal, through `journalctl`.
//!
//! Reading other units' journal entries needs membership in
//! `systemd-journal` (or `adm`), or an ACL on the journal files; without it
//! journalctl silently shows nothing, so we check first and explain.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use nix::unistd::AccessFlags;

use crate::error::{Error, Result};

const JOURNALCTL: &[&str] = &["/usr/bin/journalctl", "/bin/journalctl"];
const JOURNAL_GROUPS: &[&str] = &["systemd-journal", "adm", "wheel"];

/// Execs journalctl for an instance's or a task's unit (replaces this
/// process, so `-f` and Ctrl-C behave as with journalctl itself).
/// With `json`, the journal's own JSON export format, one object per line.
pub fn show(unit: &str, follow: bool, lines: u32, json: bool) -> Result<()> {
    let journalctl = JOURNALCTL
        .iter()
        .map(Path::new)
        .find(|p| p.exists())
        .ok_or_else(|| Error::Unavailable {
            what: "journalctl is not installed".into(),
            hint: "install systemd's journalctl".into(),
        })?;
    check_access()?;
    let mut cmd = Command::new(journalctl);
    let format = if json {
        "--output=json"
    } else {
        "--output=short-iso"
    };
    cmd.args(["--no-pager", format, "--unit"])
        .arg(unit)
        .arg(format!("--lines={lines}"));
    if follow {
        cmd.arg("--follow");
    }
    // journalctl colours by its own terminal test; --color decides here
    // as for the rest of unitgate's human output.
    cmd.env(
        "SYSTEMD_COLORS",
        if crate::output::colour() { "1" } else { "0" },
    );
    let err = cmd.exec();
    Err(Error::io(
        format!("cannot run {}", journalctl.display()),
        err,
    ))
}

/// The unit's last `n` journal lines (messages only, control characters
/// removed), or nothing when the caller may not read the journal: for the
/// error of an instance that did not stay up.
pub fn last_lines(unit: &str, n: u32) -> Vec<String> {
    let Some(journalctl) = JOURNALCTL.iter().map(Path::new).find(|p| p.exists()) else {
        return Vec::new();
    };
    if check_access().is_err() {
        return Vec::new();
    }
    let out = Command::new(journalctl)
        .args(["--no-pager", "--output=cat", "--unit"])
        .arg(unit)
        .arg(format!("--lines={n}"))
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .output();
    let Ok(out) = out else { return Vec::new() };
    out.stdout
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .map(crate::relay::printable)
        .collect()
}

/// Root, a journal group, or a readable system journal file: fine.
/// Otherwise a 77 that says how to grant access.
fn check_access() -> Result<()> {
    if nix::unistd::geteuid().is_root() || in_any_group(JOURNAL_GROUPS) {
        return Ok(());
    }
    // Per-machine journal directories (`<base>/<machine-id>/`): readable
    // if we can list one and read its system.journal (group or ACL).
    let dirs = journal_dirs();
    let readable_one = dirs.iter().any(|d| {
        readable(d, AccessFlags::R_OK | AccessFlags::X_OK)
            && readable(&d.join("system.journal"), AccessFlags::R_OK)
    });
    if dirs.is_empty() || readable_one {
        return Ok(());
    }
    let user = crate::helper::current_user_name();
    Err(Error::NotPermitted {
        what: format!("{user} cannot read the system journal"),
        hint: format!(
            "an administrator can grant it with `usermod -aG systemd-journal {user}` (then log in again), or use `sudo journalctl -u UNIT`"
        ),
    })
}

fn journal_dirs() -> Vec<PathBuf> {
    let mut out = Vec::new();
    for base in ["/var/log/journal", "/run/log/journal"] {
        let Ok(dirs) = std::fs::read_dir(base) else {
            continue;
        };
        out.extend(dirs.flatten().map(|d| d.path()).filter(|p| p.is_dir()));
    }
    out
}

fn readable(p: &Path, mode: AccessFlags) -> bool {
    nix::unistd::access(p, mode).is_ok()
}

fn in_any_group(names: &[&str]) -> bool {
    crate::app::caller()
        .map(|me| me.groups.iter().any(|g| names.contains(&g.as_str())))
        .unwrap_or(false)
}
