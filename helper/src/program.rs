//! The program a task runs must be root's all the way down: the file and
//! every directory above it owned by root and writable by no one else, no
//! symbolic link on the way. A policy that lists `/opt/jobs/` trusts what
//! root put there; if a service account could write there (or replace a
//! directory above it), it could plant a program that every other caller's
//! task would then run as that caller. Checked descriptor by descriptor
//! from `/`, so nothing can be swapped between two checks; once the walk
//! passes, only root can change what the path names when systemd execs it.

use crate::error::Error;
use crate::system::fs;
use nix::fcntl::OFlag;
use std::ffi::OsStr;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

const STEP: OFlag = OFlag::O_PATH
    .union(OFlag::O_NOFOLLOW)
    .union(OFlag::O_CLOEXEC);

/// Whether `command` (an absolute path in its one spelling) is a regular
/// file whose every step from `root` (`/` but in tests) is root's and
/// writable by root alone.
pub fn check_trusted(root: &Path, command: &str) -> Result<(), Error> {
    let untrusted = |path: &Path, why: String| Error::UntrustedCommand {
        command: command.as_bytes().to_vec(),
        why: format!("{}: {why}", path.display()),
    };
    let mut dir = fs::open(root, STEP.union(OFlag::O_DIRECTORY))
        .map_err(|e| untrusted(root, e.to_string()))?;
    let mut path = PathBuf::from("/");
    let parts: Vec<&str> = command.trim_start_matches('/').split('/').collect();
    for (i, part) in parts.iter().enumerate() {
        let st = fs::fstat(dir.as_fd()).map_err(|e| untrusted(&path, e.to_string()))?;
        unitgate_policy::trusted::check_trusted(&st, &path)
            .map_err(|e| untrusted(&path, e.to_string()))?;
        path.push(part);
        let next = fs::openat(dir.as_fd(), OsStr::new(part), STEP, 0)
            .map_err(|e| untrusted(&path, e.to_string()))?;
        let st = fs::fstat(next.as_fd()).map_err(|e| untrusted(&path, e.to_string()))?;
        let last = i + 1 == parts.len();
        if st.is_symlink() {
            return Err(untrusted(
                &path,
                "a symbolic link (list its target instead)".into(),
            ));
        }
        if last {
            if !st.is_file() {
                return Err(untrusted(&path, "not a regular file".into()));
            }
            return unitgate_policy::trusted::check_trusted(&st, &path)
                .map_err(|e| untrusted(&path, e.to_string()));
        }
        if !st.is_dir() {
            return Err(untrusted(&path, "not a directory".into()));
        }
        dir = next;
    }
    Err(untrusted(&path, "empty path".into()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use unitgate_policy::testutil::{chown, is_root, set_mode, TempTree};

    #[test]
    fn a_program_is_trusted_only_if_every_step_is_roots_alone() {
        if !is_root() {
            return;
        }
        let t = TempTree::new();
        let root = t.dir("r", 0o755);
        t.dir("r/opt", 0o755);
        t.dir("r/opt/jobs", 0o755);
        t.file("r/opt/jobs/run", b"#!/bin/sh\n", 0o755);
        assert!(check_trusted(&root, "/opt/jobs/run").is_ok());
        t.link("r/opt/jobs/link", "/bin/true");
        t.dir("r/opt/jobs/sub", 0o755);
        for (cmd, why) in [
            ("/opt/jobs/link", "symbolic link"),
            ("/opt/jobs/sub", "not a regular file"),
            ("/opt/jobs/none", "No such file"),
            ("/opt/jobs/run/x", "not a directory"),
        ] {
            let e = check_trusted(&root, cmd).expect_err(cmd).to_string();
            assert!(e.contains(why), "{cmd}: {e}");
        }
        set_mode(&t.path("r/opt/jobs/run"), 0o775);
        let e = check_trusted(&root, "/opt/jobs/run")
            .expect_err("g+w")
            .to_string();
        assert!(e.contains("group-writable"), "{e}");
        set_mode(&t.path("r/opt/jobs/run"), 0o755);
        chown(&t.path("r/opt/jobs"), 1);
        let e = check_trusted(&root, "/opt/jobs/run")
            .expect_err("uid 1")
            .to_string();
        assert!(e.contains("owned by uid 1"), "{e}");
        chown(&t.path("r/opt/jobs"), 0);
        set_mode(&t.path("r/opt"), 0o777);
        let e = check_trusted(&root, "/opt/jobs/run")
            .expect_err("o+w")
            .to_string();
        assert!(e.contains("world-writable"), "{e}");
    }
}
