//! Per-unit locks that outlive the helper: held across the exec, released
//! by the kernel when systemctl exits, so two calls on the same instance
//! cannot interleave.

use crate::error::Error;
use crate::policy::open::check_trusted;
use crate::system::fs;
use std::ffi::OsStr;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

/// The trusted directory under which the lock directory is created.
pub const LOCK_PARENT: &str = "/run";
/// `<LOCK_PARENT>/unitgate/locks`: one file per unit, named after it.
pub const LOCK_DIR: &str = "/run/unitgate/locks";

const DIR_FLAGS: libc::c_int =
    libc::O_PATH | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC;
/// Deliberately no `O_CLOEXEC`: the descriptor must survive the exec.
const LOCK_FLAGS: libc::c_int = libc::O_RDWR | libc::O_CREAT | libc::O_NOFOLLOW;

fn os_error(what: String) -> impl FnOnce(std::io::Error) -> Error {
    move |err| Error::Os { what, err }
}

/// Create (if missing) and check `<parent>/unitgate` (0755) and
/// `<parent>/unitgate/locks` (0700), then take an exclusive lock on each unit
/// in sorted order — a fixed order, so two calls cannot deadlock.
pub fn lock_units(parent: &Path, units: &[String]) -> Result<Vec<OwnedFd>, Error> {
    let top = fs::open(parent, DIR_FLAGS)
        .map_err(os_error(format!("cannot open {}", parent.display())))?;
    let st =
        fs::fstat(top.as_fd()).map_err(os_error(format!("cannot stat {}", parent.display())))?;
    check_trusted(&st, parent)?;
    let base = ensure_dir(&top, parent, "unitgate", 0o755)?;
    let dir = ensure_dir(&base, &parent.join("unitgate"), "locks", 0o700)?;
    let mut sorted: Vec<&String> = units.iter().collect();
    sorted.sort();
    sorted.dedup();
    sorted
        .into_iter()
        .map(|unit| lock_one(&dir, unit))
        .collect()
}

/// `mkdirat` then open with `O_NOFOLLOW` and check what we opened: if
/// someone else created it first, it must still be root's and not writable
/// by others (errors of this kind are 78, "insecure lock directory").
fn ensure_dir(
    parent: &OwnedFd,
    parent_path: &Path,
    name: &str,
    mode: libc::mode_t,
) -> Result<OwnedFd, Error> {
    let path: PathBuf = parent_path.join(name);
    match fs::mkdirat(parent.as_fd(), OsStr::new(name), mode) {
        Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => {
            return Err(os_error(format!("cannot create {}", path.display()))(e));
        }
        _ => {}
    }
    let fd = fs::openat(parent.as_fd(), OsStr::new(name), DIR_FLAGS, 0).map_err(|e| {
        Error::Insecure {
            path: path.clone(),
            why: format!("not a directory we can open without following links: {e}"),
        }
    })?;
    let st = fs::fstat(fd.as_fd()).map_err(os_error(format!("cannot stat {}", path.display())))?;
    check_trusted(&st, &path)?;
    Ok(fd)
}

fn lock_one(dir: &OwnedFd, unit: &str) -> Result<OwnedFd, Error> {
    let what = || format!("cannot lock {unit}");
    let fd =
        fs::openat(dir.as_fd(), OsStr::new(unit), LOCK_FLAGS, 0o600).map_err(os_error(what()))?;
    fs::flock_exclusive(fd.as_fd()).map_err(os_error(what()))?;
    Ok(fd)
}
