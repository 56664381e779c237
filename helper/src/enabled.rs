//! Which instances of an app's template are enabled: what `max_instances`
//! bounds.
//!
//! `systemctl enable demo@x.service` puts a symlink named `demo@x.service`
//! into `/etc/systemd/system/<unit>.wants/` (or `.requires/`, `.upholds/`,
//! as the template's `[Install]` section says). PID 1 loads every such unit
//! at each boot and daemon-reload, so without a bound a caller could make it
//! load any number of them (20 calls left 5,381 links, PID 1 grew from 17 to
//! 110 MB and every daemon-reload took 3.6 s).
//!
//! The helper only reads names here, descriptor-relative: the unit directory
//! and every link directory are checked root-owned and not group- or
//! world-writable on the descriptor it reads; a link directory that is a
//! symlink is refused rather than followed (systemctl never makes one, and
//! links that systemctl writes through it would otherwise go uncounted).

use crate::error::Error;
use crate::system::fs;
use nix::fcntl::OFlag;
use std::collections::BTreeSet;
use std::ffi::OsStr;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use unitgate_policy::trusted::{self, check_trusted};

/// Where `systemctl enable` links units (the system-wide configuration).
pub const UNIT_DIR: &str = "/etc/systemd/system";
/// The link directories `systemctl enable` creates for `WantedBy=`,
/// `RequiredBy=` and `UpheldBy=`.
pub const LINK_DIR_SUFFIXES: &[&str] = &[".wants", ".requires", ".upholds"];
/// The one link directory of a guarded template (`WantedBy=multi-user.target`).
pub const WANTS_DIR: &str = "multi-user.target.wants";

const DIR_FLAGS: OFlag = OFlag::O_PATH
    .union(OFlag::O_DIRECTORY)
    .union(OFlag::O_CLOEXEC);
const PROBE_FLAGS: OFlag = OFlag::O_PATH
    .union(OFlag::O_NOFOLLOW)
    .union(OFlag::O_CLOEXEC);
const LIST_FLAGS: OFlag = OFlag::O_RDONLY
    .union(OFlag::O_DIRECTORY)
    .union(OFlag::O_CLOEXEC);

/// The distinct unit names `<prefix>@<instance>.service` (any non-empty
/// instance) linked in any link directory of `unit_dir`.
pub fn enabled_units(unit_dir: &Path, prefix: &str) -> Result<BTreeSet<Vec<u8>>, Error> {
    let head = format!("{prefix}@");
    let mut units = BTreeSet::new();
    for (dir, path) in link_dirs(unit_dir)? {
        for entry in list(&dir, &path)? {
            let bytes = entry.as_encoded_bytes();
            let instance = bytes
                .strip_prefix(head.as_bytes())
                .and_then(|rest| rest.strip_suffix(b".service"));
            if instance.is_some_and(|i| !i.is_empty()) {
                units.insert(bytes.to_vec());
            }
        }
    }
    Ok(units)
}

/// What `systemctl disable` does to `units`, at a cost independent of how
/// many units are enabled: remove the symlink named after each unit from
/// every link directory of `unit_dir` (systemd's `DisableUnitFiles` instead
/// reads every link there to find what points at them: 313 ms with 10,000
/// enabled). Only symlinks are removed; a missing one is not an error.
pub fn remove_links(unit_dir: &Path, units: &[String]) -> Result<(), Error> {
    for (dir, path) in link_dirs(unit_dir)? {
        for unit in units {
            let name = OsStr::new(unit);
            let is_link = fs::openat(dir.as_fd(), name, PROBE_FLAGS, 0)
                .and_then(|fd| fs::fstat(fd.as_fd()))
                .is_ok_and(|st| st.is_symlink());
            if !is_link {
                continue;
            }
            match fs::unlinkat(dir.as_fd(), name) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    let what = format!("cannot remove {}", path.join(unit).display());
                    return Err(os_error(what)(e));
                }
                _ => {}
            }
        }
    }
    Ok(())
}

/// What `systemctl enable --no-reload` does to `units` of a template whose
/// `[Install]` is exactly `WantedBy=multi-user.target` (the only kind that
/// gets the guard): a symlink named after each unit in
/// `<unit_dir>/multi-user.target.wants/`, pointing at `template`, made
/// descriptor-relative in a directory checked root's (created, as
/// systemctl would, when missing). A unit already linked there to the same
/// file is left as it is; anything else in the way is an error, as for
/// systemctl, and then the links made so far are removed again. Returns
/// the links it made.
pub fn make_links(
    unit_dir: &Path,
    template: &Path,
    units: &[String],
) -> Result<Vec<String>, Error> {
    let (dir, path) = open_wants_dir(unit_dir, true)?;
    let mut made = Vec::new();
    for unit in units {
        let name = OsStr::new(unit);
        let result = match fs::symlinkat(template, dir.as_fd(), name) {
            Ok(()) => {
                made.push(unit.clone());
                Ok(())
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                if links_to(&dir, name, template) {
                    Ok(())
                } else {
                    Err(e)
                }
            }
            Err(e) => Err(e),
        };
        if let Err(e) = result {
            let _ = unlink_names(&dir, &path, &made);
            return Err(os_error(format!(
                "cannot link {}",
                path.join(unit).display()
            ))(e));
        }
    }
    Ok(made)
}

/// Undoes [`make_links`]: removes the links it reported made (only those,
/// only from the wants directory, only if still symlinks).
pub fn remove_made(unit_dir: &Path, made: &[String]) -> Result<(), Error> {
    if made.is_empty() {
        return Ok(());
    }
    let (dir, path) = open_wants_dir(unit_dir, false)?;
    unlink_names(&dir, &path, made)
}

/// The wants directory of `unit_dir`, opened without following links and
/// checked; created 0755 first if `create` and missing.
fn open_wants_dir(unit_dir: &Path, create: bool) -> Result<(OwnedFd, PathBuf), Error> {
    let top = open_checked_dir(unit_dir)?;
    let name = OsStr::new(WANTS_DIR);
    let path = unit_dir.join(WANTS_DIR);
    if let Some(dir) = open_link_dir(&top, name, &path)? {
        return Ok((dir, path));
    }
    let missing = || Error::Os {
        what: format!("cannot open {}", path.display()),
        err: nix::errno::Errno::ENOTDIR.into(),
    };
    if !create {
        return Err(missing());
    }
    match fs::mkdirat(top.as_fd(), name, 0o755) {
        Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => {
            return Err(os_error(format!("cannot create {}", path.display()))(e));
        }
        _ => {}
    }
    let dir = open_link_dir(&top, name, &path)?.ok_or_else(missing)?;
    Ok((dir, path))
}

/// Whether the entry `name` of `dir` is a symlink to `template` (by name,
/// or to the same file, as systemctl accepts an existing link).
fn links_to(dir: &OwnedFd, name: &OsStr, template: &Path) -> bool {
    let Ok(target) = fs::readlinkat(dir.as_fd(), name) else {
        return false;
    };
    if Path::new(&target) == template {
        return true;
    }
    // Only stats, of paths root's own directory holds: nothing is opened.
    let same = |a: &std::fs::Metadata, b: &std::fs::Metadata| {
        use std::os::unix::fs::MetadataExt;
        a.dev() == b.dev() && a.ino() == b.ino()
    };
    matches!(
        (std::fs::metadata(&target), std::fs::metadata(template)),
        (Ok(a), Ok(b)) if Path::new(&target).is_absolute() && same(&a, &b)
    )
}

fn unlink_names(dir: &OwnedFd, path: &Path, names: &[String]) -> Result<(), Error> {
    for unit in names {
        let name = OsStr::new(unit);
        let is_link = fs::openat(dir.as_fd(), name, PROBE_FLAGS, 0)
            .and_then(|fd| fs::fstat(fd.as_fd()))
            .is_ok_and(|st| st.is_symlink());
        if is_link {
            fs::unlinkat(dir.as_fd(), name).map_err(os_error(format!(
                "cannot remove {}",
                path.join(unit).display()
            )))?;
        }
    }
    Ok(())
}

/// Every link directory (`*.wants`, `*.requires`, `*.upholds`) of
/// `unit_dir`, each opened without following links and checked.
fn link_dirs(unit_dir: &Path) -> Result<Vec<(OwnedFd, PathBuf)>, Error> {
    let top = open_checked_dir(unit_dir)?;
    let mut dirs = Vec::new();
    for name in list(&top, unit_dir)? {
        let is_link_dir = LINK_DIR_SUFFIXES
            .iter()
            .any(|s| name.as_encoded_bytes().ends_with(s.as_bytes()));
        if !is_link_dir {
            continue;
        }
        let path = unit_dir.join(&name);
        if let Some(dir) = open_link_dir(&top, &name, &path)? {
            dirs.push((dir, path));
        }
    }
    Ok(dirs)
}

/// Refuse an enable of `units` that would take the app past `max` enabled
/// instances. Units already enabled are not counted twice, and a call that
/// adds none is never refused: it cannot grow the set, and instances that
/// are enabled (say, above a limit lowered since) can still be started.
pub fn check_room(
    app: &str,
    max: u32,
    enabled: &BTreeSet<Vec<u8>>,
    units: &[String],
) -> Result<(), Error> {
    let adding = units
        .iter()
        .filter(|u| !enabled.contains(u.as_bytes()))
        .count();
    if adding == 0 || enabled.len() + adding <= max as usize {
        return Ok(());
    }
    Err(Error::TooManyEnabled {
        app: app.to_owned(),
        max,
        enabled: enabled.len(),
        adding,
    })
}

fn os_error(what: String) -> impl FnOnce(std::io::Error) -> Error {
    move |err| Error::Os { what, err }
}

fn open_checked_dir(path: &Path) -> Result<OwnedFd, Error> {
    let fd =
        fs::open(path, DIR_FLAGS).map_err(os_error(format!("cannot open {}", path.display())))?;
    let st = fs::fstat(fd.as_fd()).map_err(os_error(format!("cannot stat {}", path.display())))?;
    check_trusted(&st, path)?;
    Ok(fd)
}

/// A link directory opened without following links and checked, or `None`
/// for a name with a link-directory suffix that is neither a directory nor
/// a symlink (systemctl cannot link into it, systemd ignores it).
fn open_link_dir(top: &OwnedFd, name: &OsStr, path: &Path) -> Result<Option<OwnedFd>, Error> {
    let what = || format!("cannot open {}", path.display());
    let probe = match fs::openat(top.as_fd(), name, PROBE_FLAGS, 0) {
        Ok(fd) => fd,
        // Removed since we listed the directory: nothing linked there.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(os_error(what())(e)),
    };
    let st = fs::fstat(probe.as_fd()).map_err(os_error(what()))?;
    if st.is_symlink() {
        return Err(Error::Untrusted(trusted::Error::Insecure {
            path: path.to_owned(),
            why: "a symlink; enabled instances are only counted in real directories".into(),
        }));
    }
    if !st.is_dir() {
        return Ok(None);
    }
    check_trusted(&st, path)?;
    Ok(Some(probe))
}

/// The names in a directory we hold a descriptor of (reopened as `.`, so
/// the very directory that was checked is read).
fn list(dir: &OwnedFd, path: &Path) -> Result<Vec<std::ffi::OsString>, Error> {
    let what = || format!("cannot list {}", path.display());
    let fd = fs::openat(dir.as_fd(), OsStr::new("."), LIST_FLAGS, 0).map_err(os_error(what()))?;
    fs::read_dir_names(fd).map_err(os_error(what()))
}

#[cfg(test)]
#[path = "enabled_tests.rs"]
mod tests;
