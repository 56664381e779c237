//! Whether an app's template carries unitgate's guard drop-in, which is
//! what makes enabling and disabling without a daemon-reload safe (see
//! docs/design/constant-cost.md).
//!
//! The guard makes every start of an instance conditional on its enable
//! link in `multi-user.target.wants/`, checked on disk. Without a reload,
//! systemd may still hold a disabled instance in `multi-user.target`'s
//! `Wants=`; the guard is why a later start of that target skips it. So the
//! fast path is taken only when the guard is exactly ours and only root can
//! have put it there, and only while the reload it defers to is enabled;
//! anything else (missing, edited, a link, writable by someone else, no
//! reload timer) means the old `enable --now` / `disable --now`.

use crate::error::Error;
use crate::system::fs;
use nix::fcntl::OFlag;
use std::ffi::OsStr;
use std::os::fd::AsFd;
use std::path::Path;
use unitgate_policy::trusted::check_trusted;

/// The drop-in's file name in `<prefix>@.service.d/`.
pub const FILE_NAME: &str = "50-unitgate-guard.conf";
/// Its one accepted content, the file the installer copies.
pub const TEXT: &str = include_str!("../../deploy/systemd/50-unitgate-guard.conf");
/// Where `systemctl enable unitgate-reload.timer` links the timer that runs
/// the deferred reload: without it nothing would ever load the changes.
const TIMER_DIR: &str = "timers.target.wants";
const TIMER: &str = "unitgate-reload.timer";

const DIR_FLAGS: OFlag = OFlag::O_PATH
    .union(OFlag::O_DIRECTORY)
    .union(OFlag::O_NOFOLLOW)
    .union(OFlag::O_CLOEXEC);
const PROBE_FLAGS: OFlag = OFlag::O_PATH
    .union(OFlag::O_NOFOLLOW)
    .union(OFlag::O_CLOEXEC);
const FILE_FLAGS: OFlag = OFlag::O_RDONLY
    .union(OFlag::O_NOFOLLOW)
    .union(OFlag::O_NONBLOCK)
    .union(OFlag::O_CLOEXEC);

/// `<unit_dir>/<prefix>@.service.d/50-unitgate-guard.conf` is root's, not
/// writable by others, reached without following a link, and holds exactly
/// [`TEXT`], and the reload timer is enabled (its link in
/// `<unit_dir>/timers.target.wants/`, a directory of root's alone).
/// `Ok(false)` for every way it is not; `Err` only when the unit directory
/// itself is not root's (the helper refuses such a system).
pub fn installed(unit_dir: &Path, prefix: &str) -> Result<bool, Error> {
    let os = |err| Error::Os {
        what: format!("cannot open {}", unit_dir.display()),
        err,
    };
    let top = fs::open(unit_dir, DIR_FLAGS).map_err(os)?;
    check_trusted(&fs::fstat(top.as_fd()).map_err(os)?, unit_dir)?;
    let dir_name = format!("{prefix}@.service.d");
    let Ok(dir) = fs::openat(top.as_fd(), OsStr::new(&dir_name), DIR_FLAGS, 0) else {
        return Ok(false);
    };
    let dir_path = unit_dir.join(&dir_name);
    let trusted = fs::is_trusted;
    let Ok(timers) = fs::openat(top.as_fd(), OsStr::new(TIMER_DIR), DIR_FLAGS, 0) else {
        return Ok(false);
    };
    let timer_linked = trusted(timers.as_fd(), &unit_dir.join(TIMER_DIR))
        && fs::openat(timers.as_fd(), OsStr::new(TIMER), PROBE_FLAGS, 0)
            .and_then(|fd| fs::fstat(fd.as_fd()))
            .is_ok_and(|st| st.is_symlink());
    if !timer_linked {
        return Ok(false);
    }
    if !trusted(dir.as_fd(), &dir_path) {
        return Ok(false);
    }
    let Ok(file) = fs::openat(dir.as_fd(), OsStr::new(FILE_NAME), FILE_FLAGS, 0) else {
        return Ok(false);
    };
    let file_ok = fs::fstat(file.as_fd()).is_ok_and(|st| st.is_file());
    if !file_ok || !trusted(file.as_fd(), &dir_path.join(FILE_NAME)) {
        return Ok(false);
    }
    // A longer file is not ours either.
    Ok(fs::read_at_most(file, TEXT.len() as u64).is_some_and(|text| text == TEXT.as_bytes()))
}

#[cfg(test)]
#[path = "guard_tests.rs"]
mod tests;
