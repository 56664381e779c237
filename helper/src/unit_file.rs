//! Where systemd finds an app's template: the target of the enable links
//! the helper makes itself on the fast path (docs/design/constant-cost.md).
//!
//! `systemctl enable` links `multi-user.target.wants/<prefix>@<i>.service`
//! to the template's file, the first one of that name on the system unit
//! path. Asking PID 1 to do it (`EnableUnitFiles`) costs 7–12 ms with 1,000
//! instances enabled; finding the file is a few `openat`s.
//!
//! Only where the link's target is certain: a regular file, root's and
//! writable by no one else, in a directory of the same kind, found first in
//! `/etc/systemd/system`, `/run/systemd/system` or
//! `/usr/local/lib/systemd/system`. Past those the path differs between
//! systemd builds (Debian 12 searches `/lib/systemd/system` before
//! `/usr/lib/systemd/system`, which merged /usr makes one directory;
//! Debian 13 only the latter), and earlier directories hold drop-ins,
//! transient or generated units that systemctl refuses to enable. Anything
//! else gives `None`, and systemctl makes the link as before.

use crate::system::fs;
use nix::fcntl::OFlag;
use std::ffi::OsStr;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use unitgate_policy::trusted::check_trusted;

/// The head of systemd's unit search path for the system manager
/// (`systemd-analyze unit-paths`, the same on systemd 252 and 257), highest
/// priority first, each with whether a template found there first gets its
/// links from the helper (`false`: drop-in only, transient, generated or
/// portable units, left to systemctl). A template found in none of them is
/// left to systemctl too.
pub const SYSTEM_UNIT_PATH: &[(&str, bool)] = &[
    ("/etc/systemd/system.control", false),
    ("/run/systemd/system.control", false),
    ("/run/systemd/transient", false),
    ("/run/systemd/generator.early", false),
    ("/etc/systemd/system", true),
    ("/etc/systemd/system.attached", false),
    ("/run/systemd/system", true),
    ("/run/systemd/system.attached", false),
    ("/run/systemd/generator", false),
    ("/usr/local/lib/systemd/system", true),
];

const DIR_FLAGS: OFlag = OFlag::O_PATH
    .union(OFlag::O_DIRECTORY)
    .union(OFlag::O_CLOEXEC);
const PROBE_FLAGS: OFlag = OFlag::O_PATH
    .union(OFlag::O_NOFOLLOW)
    .union(OFlag::O_CLOEXEC);

/// The path of `<prefix>@.service` as systemd finds it on `unit_path`, if
/// it is found there first, in a directory marked linkable, as a file only
/// root can have written; `None` otherwise.
pub fn template(unit_path: &[(PathBuf, bool)], prefix: &str) -> Option<PathBuf> {
    let name = format!("{prefix}@.service");
    for (dir_path, linkable) in unit_path {
        let Ok(dir) = fs::open(dir_path, DIR_FLAGS) else {
            continue;
        };
        let entry = match fs::openat(dir.as_fd(), OsStr::new(&name), PROBE_FLAGS, 0) {
            Ok(fd) => fd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(_) => return None,
        };
        // The first directory holding the name decides, as for systemd.
        let path = dir_path.join(&name);
        let trusted = |fd: std::os::fd::BorrowedFd<'_>, p: &Path| {
            fs::fstat(fd).is_ok_and(|st| check_trusted(&st, p).is_ok())
        };
        let regular = fs::fstat(entry.as_fd()).is_ok_and(|st| st.is_file());
        let ok =
            *linkable && regular && trusted(dir.as_fd(), dir_path) && trusted(entry.as_fd(), &path);
        return ok.then_some(path);
    }
    None
}

/// The system unit path with the link flags, as the binary uses it.
pub fn system_unit_path() -> Vec<(PathBuf, bool)> {
    SYSTEM_UNIT_PATH
        .iter()
        .map(|(p, linkable)| (PathBuf::from(p), *linkable))
        .collect()
}

#[cfg(test)]
#[path = "unit_file_tests.rs"]
mod tests;
