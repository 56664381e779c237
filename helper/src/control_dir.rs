//! The files systemd's `set-property` keeps for a unit:
//! `/etc/systemd/system.control/<unit>.d/50-<Property>.conf`, written by
//! PID 1. The helper counts the app's units that have such a directory
//! (the bound on `limit`) and removes its own three properties' files on a
//! reset. Everything here is root's: each directory is opened without
//! following links and checked root's and writable by no one else before
//! anything in it is read or removed.

use crate::error::Error;
use crate::system::fs;
use nix::fcntl::OFlag;
use std::collections::BTreeSet;
use std::ffi::{OsStr, OsString};
use std::io::ErrorKind;
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;
use unitgate_policy::trusted;

pub use unitgate_policy::instance_limits::CONTROL_DIR;

const DIR_FLAGS: OFlag = OFlag::O_RDONLY
    .union(OFlag::O_DIRECTORY)
    .union(OFlag::O_NOFOLLOW)
    .union(OFlag::O_CLOEXEC);

/// The units `<prefix>@<instance>.service` that have a directory of kept
/// properties in `dir` (none when `dir` does not exist).
pub fn units_of(dir: &Path, prefix: &str) -> Result<BTreeSet<Vec<u8>>, Error> {
    let Some(top) = open_checked(None, dir.as_os_str(), dir)? else {
        return Ok(BTreeSet::new());
    };
    let head = format!("{prefix}@");
    let names = list(&top, dir)?;
    Ok(names
        .iter()
        .filter_map(|n| {
            let unit = n.as_encoded_bytes().strip_suffix(b".d")?;
            let instance = unit
                .strip_prefix(head.as_bytes())?
                .strip_suffix(b".service")?;
            (!instance.is_empty()).then(|| unit.to_vec())
        })
        .collect())
}

/// Whether `unit` has a directory of kept properties in `dir`.
pub fn has(dir: &Path, unit: &str) -> Result<bool, Error> {
    let Some(top) = open_checked(None, dir.as_os_str(), dir)? else {
        return Ok(false);
    };
    let name = format!("{unit}.d");
    Ok(open_checked(Some(&top), OsStr::new(&name), &dir.join(&name))?.is_some())
}

/// Make `<dir>/<unit>.d` (and `dir`, as systemd would, when missing),
/// root's and 0755, for PID 1 to write into: made under the helper's lock
/// before systemctl runs, it counts for the next call's bound whenever PID
/// 1 gets to the request. Returns whether it made it (to undo on failure).
pub fn make(dir: &Path, unit: &str) -> Result<bool, Error> {
    let parent = dir.parent().unwrap_or(Path::new("/"));
    let missing = |p: &Path| {
        os(
            format!("cannot open {}", p.display()),
            ErrorKind::NotFound.into(),
        )
    };
    let up = open_checked(None, parent.as_os_str(), parent)?.ok_or_else(|| missing(parent))?;
    let leaf = dir.file_name().unwrap_or(dir.as_os_str());
    match fs::mkdirat(up.as_fd(), leaf, 0o755) {
        Err(e) if e.kind() != ErrorKind::AlreadyExists => {
            return Err(os(format!("cannot make {}", dir.display()), e));
        }
        _ => {}
    }
    let top = open_checked(Some(&up), leaf, dir)?.ok_or_else(|| missing(dir))?;
    let name = format!("{unit}.d");
    let path = dir.join(&name);
    let made = match fs::mkdirat(top.as_fd(), OsStr::new(&name), 0o755) {
        Ok(()) => true,
        Err(e) if e.kind() == ErrorKind::AlreadyExists => false,
        Err(e) => return Err(os(format!("cannot make {}", path.display()), e)),
    };
    // Whatever is there now must be a directory of root's alone.
    open_checked(Some(&top), OsStr::new(&name), &path)?.ok_or_else(|| missing(&path))?;
    Ok(made)
}

/// Remove `<dir>/<unit>.d` if it is empty (a [`make`] whose systemctl never
/// ran).
pub fn unmake(dir: &Path, unit: &str) {
    if let Ok(Some(top)) = open_checked(None, dir.as_os_str(), dir) {
        let _ = fs::rmdirat(top.as_fd(), OsStr::new(&format!("{unit}.d")));
    }
}

/// Remove `50-<P>.conf` of each of `props` from `<dir>/<unit>.d`, then the
/// directory if nothing else is left in it (another property someone set
/// stays, and so does its directory). Missing files are not an error.
/// Returns whether a file was removed.
pub fn remove(dir: &Path, unit: &str, props: &[&str]) -> Result<bool, Error> {
    let Some(top) = open_checked(None, dir.as_os_str(), dir)? else {
        return Ok(false);
    };
    let name = format!("{unit}.d");
    let path = dir.join(&name);
    let Some(sub) = open_checked(Some(&top), OsStr::new(&name), &path)? else {
        return Ok(false);
    };
    let mut removed = false;
    for p in props {
        let file = format!("50-{p}.conf");
        match fs::unlinkat(sub.as_fd(), OsStr::new(&file)) {
            Ok(()) => removed = true,
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => {
                let what = format!("cannot remove {}", path.join(&file).display());
                return Err(os(what, e));
            }
        }
    }
    if list(&sub, &path)?.is_empty() {
        match fs::rmdirat(top.as_fd(), OsStr::new(&name)) {
            // Someone put a file there meanwhile: it keeps the directory.
            Err(e) if !matches!(e.kind(), ErrorKind::NotFound | ErrorKind::DirectoryNotEmpty) => {
                return Err(os(format!("cannot remove {}", path.display()), e));
            }
            _ => {}
        }
    }
    Ok(removed)
}

/// `name` opened as a directory (in `parent`, or from the root for an
/// absolute path), never through a symlink, and checked root's alone;
/// `None` if it does not exist.
fn open_checked(
    parent: Option<&OwnedFd>,
    name: &OsStr,
    path: &Path,
) -> Result<Option<OwnedFd>, Error> {
    let opened = match parent {
        Some(p) => fs::openat(p.as_fd(), name, DIR_FLAGS, 0),
        None => fs::open(path, DIR_FLAGS),
    };
    let fd = match opened {
        Ok(fd) => fd,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(os(format!("cannot open {}", path.display()), e)),
    };
    let st = fs::fstat(fd.as_fd()).map_err(|e| os(format!("cannot stat {}", path.display()), e))?;
    trusted::check_trusted(&st, path)?;
    Ok(Some(fd))
}

fn list(dir: &OwnedFd, path: &Path) -> Result<Vec<OsString>, Error> {
    let what = || format!("cannot list {}", path.display());
    let fd = fs::openat(dir.as_fd(), OsStr::new("."), DIR_FLAGS, 0).map_err(|e| os(what(), e))?;
    fs::read_dir_names(fd).map_err(|e| os(what(), e))
}

fn os(what: String, err: std::io::Error) -> Error {
    Error::Os { what, err }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;
    use unitgate_policy::testutil::{is_root, TempTree};

    /// A control directory as root would have it, in a temporary place
    /// (`None`: not root, and the directories must be root's).
    fn control() -> Option<TempTree> {
        is_root().then(TempTree::new)
    }

    #[test]
    fn counts_the_apps_instances_with_kept_properties() {
        let Some(t) = control() else { return };
        for d in [
            "demo@a.service.d",
            "demo@b.service.d",
            "demo@.service.d",
            "other@a.service.d",
        ] {
            std::fs::create_dir(t.root.as_path().join(d)).unwrap();
        }
        std::fs::write(t.root.as_path().join("demo@c.service.d"), "").unwrap();
        let units: Vec<String> = units_of(t.root.as_path(), "demo")
            .unwrap()
            .into_iter()
            .map(|u| String::from_utf8(u).unwrap())
            .collect();
        // (a file of that name is counted too: it is a name systemd reads)
        assert_eq!(
            units,
            ["demo@a.service", "demo@b.service", "demo@c.service"]
        );
        assert!(units_of(&t.root.as_path().join("missing"), "demo")
            .unwrap()
            .is_empty());
    }

    #[test]
    fn removes_its_files_and_an_emptied_directory_only() {
        let Some(t) = control() else { return };
        let d = t.root.as_path().join("demo@a.service.d");
        std::fs::create_dir(&d).unwrap();
        for f in ["50-CPUQuota.conf", "50-MemoryMax.conf"] {
            std::fs::write(d.join(f), "[Service]\n").unwrap();
        }
        assert!(has(t.root.as_path(), "demo@a.service").unwrap());
        remove(
            t.root.as_path(),
            "demo@a.service",
            &["CPUQuota", "MemoryMax", "TasksMax"],
        )
        .unwrap();
        assert!(!d.exists());
        assert!(!has(t.root.as_path(), "demo@a.service").unwrap());
        // Nothing of its own there: nothing removed (and no reload).
        std::fs::create_dir(&d).unwrap();
        std::fs::write(d.join("50-CPUWeight.conf"), "").unwrap();
        assert!(!remove(t.root.as_path(), "demo@a.service", &["CPUQuota"]).unwrap());
        std::fs::remove_dir_all(&d).unwrap();
        // Another property's file keeps the directory.
        std::fs::create_dir(&d).unwrap();
        std::fs::write(d.join("50-CPUQuota.conf"), "").unwrap();
        std::fs::write(d.join("50-IOWeight.conf"), "").unwrap();
        assert!(remove(t.root.as_path(), "demo@a.service", &["CPUQuota"]).unwrap());
        assert!(d.join("50-IOWeight.conf").exists() && !d.join("50-CPUQuota.conf").exists());
    }

    #[test]
    fn makes_the_units_directory_as_root_would_and_undoes_it() {
        let Some(t) = control() else { return };
        let dir = t.root.join("system.control");
        assert!(make(&dir, "demo@a.service").unwrap());
        assert!(!make(&dir, "demo@a.service").unwrap());
        assert!(has(&dir, "demo@a.service").unwrap());
        unmake(&dir, "demo@a.service");
        assert!(!has(&dir, "demo@a.service").unwrap());
        // A symlink in its place is refused, not followed.
        std::fs::create_dir(t.root.join("elsewhere")).unwrap();
        std::os::unix::fs::symlink(t.root.join("elsewhere"), dir.join("demo@b.service.d")).unwrap();
        assert!(make(&dir, "demo@b.service").is_err());
    }

    #[test]
    fn refuses_a_directory_others_can_write_or_a_symlink() {
        let Some(t) = control() else { return };
        let d = t.root.as_path().join("demo@a.service.d");
        std::fs::create_dir(&d).unwrap();
        std::fs::write(d.join("50-CPUQuota.conf"), "").unwrap();
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o777)).unwrap();
        assert!(remove(t.root.as_path(), "demo@a.service", &["CPUQuota"]).is_err());
        assert!(d.join("50-CPUQuota.conf").exists());
        let elsewhere = t.root.join("elsewhere");
        std::fs::create_dir(&elsewhere).unwrap();
        std::fs::write(elsewhere.join("50-CPUQuota.conf"), "").unwrap();
        std::os::unix::fs::symlink(&elsewhere, t.root.join("demo@b.service.d")).unwrap();
        assert!(remove(t.root.as_path(), "demo@b.service", &["CPUQuota"]).is_err());
        assert!(elsewhere.join("50-CPUQuota.conf").exists());
    }
}
