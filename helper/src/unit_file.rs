//! Where systemd finds an app's template: the target of the enable links
//! the helper makes itself on the fast path (docs/design/constant-cost.md).
//!
//! `systemctl enable` links `multi-user.target.wants/<prefix>@<i>.service`
//! to the template's file, the first one of that name on the system unit
//! path. Asking PID 1 to do it (`EnableUnitFiles`) costs 7–12 ms with 1,000
//! instances enabled; finding the file is a few `openat`s.
//!
//! Only where systemctl would make exactly that link: the template is a
//! regular, non-empty file, root's and writable by no one else, in a
//! directory of the same kind, found first in `/etc/systemd/system`,
//! `/run/systemd/system` or `/usr/local/lib/systemd/system`; its `[Install]`
//! section (read as systemd reads sections) is exactly
//! `WantedBy=multi-user.target`, as the guard assumes; and no unit file of
//! the instance's own name exists anywhere on the path (a mask, or an
//! instance with its own `[Install]`). Past those three directories the
//! path differs between systemd builds (Debian 12 searches
//! `/lib/systemd/system` before `/usr/lib/systemd/system`, which merged
//! /usr makes one directory; Debian 13 only the latter), and the earlier
//! ones hold drop-ins, transient or generated units that systemctl refuses
//! to enable. Anything else gives `None`, and systemctl makes the link as
//! before.

use crate::system::fs;
use nix::fcntl::OFlag;
use std::ffi::OsStr;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

/// systemd's unit search path for the system manager (`systemd-analyze
/// unit-paths`: the same on systemd 252 and 257 up to
/// `/usr/local/lib/systemd/system`), highest priority first, each with
/// whether a template found there first gets its links from the helper
/// (`false`: drop-in only, transient, generated or portable units, and the
/// directories whose order differs between builds, left to systemctl).
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
    ("/lib/systemd/system", false),
    ("/usr/lib/systemd/system", false),
    ("/run/systemd/generator.late", false),
];

/// Largest template read for its `[Install]` section.
const MAX_TEMPLATE_SIZE: u64 = 64 * 1024;

const DIR_FLAGS: OFlag = OFlag::O_PATH
    .union(OFlag::O_DIRECTORY)
    .union(OFlag::O_CLOEXEC);
const PROBE_FLAGS: OFlag = OFlag::O_PATH
    .union(OFlag::O_NOFOLLOW)
    .union(OFlag::O_CLOEXEC);
const READ_FLAGS: OFlag = OFlag::O_RDONLY
    .union(OFlag::O_NOFOLLOW)
    .union(OFlag::O_NONBLOCK)
    .union(OFlag::O_CLOEXEC);

/// The template file the enable links of `units` (instances of `prefix`)
/// point at, if the helper may make them itself (see the module's
/// comment); `None` otherwise.
pub fn template(unit_path: &[(PathBuf, bool)], prefix: &str, units: &[String]) -> Option<PathBuf> {
    // A directory that does not exist holds nothing.
    let dirs: Vec<(&Path, bool, OwnedFd)> = unit_path
        .iter()
        .filter_map(|(p, linkable)| Some((p.as_path(), *linkable, fs::open(p, DIR_FLAGS).ok()?)))
        .collect();
    // A unit file of the instance's own name (a mask, or its own [Install])
    // is systemctl's to judge; so is one we cannot look for.
    let own_file = units.iter().any(|u| {
        dirs.iter()
            .any(|(_, _, dir)| !matches!(probe(dir, u), Ok(None)))
    });
    if own_file {
        return None;
    }
    let name = format!("{prefix}@.service");
    // The first directory holding the name decides, as for systemd.
    for (dir_path, linkable, dir) in &dirs {
        // Opened to be read, not following a link (a link there is a
        // linked or masked template): the descriptor checked is the one read.
        let file = match fs::openat(dir.as_fd(), OsStr::new(&name), READ_FLAGS, 0) {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(_) => return None,
        };
        let path = dir_path.join(&name);
        let ok = *linkable
            && fs::fstat(file.as_fd()).is_ok_and(|st| st.is_file())
            && fs::is_trusted(dir.as_fd(), dir_path)
            && fs::is_trusted(file.as_fd(), &path)
            && fs::read_at_most(file, MAX_TEMPLATE_SIZE)
                .is_some_and(|text| install_is_wanted_by_multi_user(&text));
        return ok.then_some(path);
    }
    None
}

/// `name` in `dir`, not following a link (a mask is a link): `Ok(None)`
/// when there is no such entry, `Err` when it cannot be looked at.
fn probe(dir: &OwnedFd, name: &str) -> Result<Option<OwnedFd>, ()> {
    match fs::openat(dir.as_fd(), OsStr::new(name), PROBE_FLAGS, 0) {
        Ok(entry) => Ok(Some(entry)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(_) => Err(()),
    }
}

/// The `[Install]` keys of unit file `text`, read as systemd reads
/// sections (blanks around a line trimmed, `#` and `;` comments, the same
/// section more than once), are exactly `WantedBy=multi-user.target`. A
/// continued line (ending in `\`) anywhere is not judged: `false`.
pub fn install_is_wanted_by_multi_user(text: &[u8]) -> bool {
    let Ok(text) = std::str::from_utf8(text) else {
        return false;
    };
    let mut section = "";
    let mut keys = Vec::new();
    for line in text.lines() {
        let line = line.trim_matches([' ', '\t', '\r']);
        if line.ends_with('\\') {
            return false;
        }
        if line.starts_with('[') {
            section = line;
        } else if section == "[Install]"
            && !line.is_empty()
            && !line.starts_with('#')
            && !line.starts_with(';')
        {
            keys.push(line);
        }
    }
    keys == ["WantedBy=multi-user.target"]
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
