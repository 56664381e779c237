//! Advisory locks: one `flock` per instance, held for a whole command, and
//! one app-wide lock (for `install` and for port allocation).
//!
//! Lock files live in `<state_dir>/.locks/` and are never removed (removing
//! a lock file while someone waits on it would let two holders in). An
//! instance's is `instance.<name>.lock` and the app's `app.lock`: instance
//! names have no dots, so the two namespaces can never meet (an instance
//! named `app` once shared the app lock). A wait polls `LOCK_NB` with short
//! sleeps until `--wait` runs out, then the command exits 75 "busy". The
//! kernel drops a lock when its holder dies, so a killed command never
//! leaves a stale lock.

use std::ffi::OsStr;
use std::fs::File;
use std::os::fd::{AsFd, BorrowedFd};

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};
use nix::sys::stat::Mode;
use std::time::{Duration, Instant};

use crate::dirfd::DirFd;
use crate::error::{Error, Result};
use crate::name::InstanceName;
use crate::store::Store;

const APP_LOCK: &str = "app.lock";

/// The lock file of an instance.
pub fn instance_lock_name(instance: &InstanceName) -> String {
    format!("instance.{instance}.lock")
}

/// A held lock; released when dropped (or when the process dies).
#[derive(Debug)]
pub struct Lock {
    _held: Flock<File>,
}

/// Locks and how long to wait for them.
#[derive(Debug, Clone, Copy)]
pub struct Waiter {
    pub timeout: Duration,
}

impl Waiter {
    /// The instance's lock.
    pub fn instance(&self, store: &Store<'_>, instance: &InstanceName) -> Result<Lock> {
        let dir = store.lock_dir()?;
        self.acquire(
            &dir,
            &instance_lock_name(instance),
            &format!("instance '{instance}'"),
        )
    }

    /// Locks for several instances, taken in sorted order so that two bulk
    /// commands can never deadlock.
    pub fn instances(&self, store: &Store<'_>, instances: &[InstanceName]) -> Result<Vec<Lock>> {
        let mut sorted: Vec<&InstanceName> = instances.iter().collect();
        sorted.sort();
        sorted.dedup();
        let dir = store.lock_dir()?;
        let deadline = Instant::now() + self.timeout;
        let mut held = Vec::with_capacity(sorted.len());
        for inst in sorted {
            let left = deadline.saturating_duration_since(Instant::now());
            let w = Waiter { timeout: left };
            match w.acquire(
                &dir,
                &instance_lock_name(inst),
                &format!("instance '{inst}'"),
            ) {
                Ok(l) => held.push(l),
                Err(Error::Busy { what, .. }) => {
                    return Err(Error::Busy {
                        what,
                        waited_secs: self.timeout.as_secs(),
                    })
                }
                Err(e) => return Err(e),
            }
        }
        Ok(held)
    }

    /// The app-wide lock.
    pub fn app(&self, store: &Store<'_>) -> Result<Lock> {
        let dir = store.lock_dir()?;
        self.acquire(&dir, APP_LOCK, &format!("app '{}'", store.app.name))
    }

    fn acquire(&self, dir: &DirFd, name: &str, what: &str) -> Result<Lock> {
        let mut file = dir
            .open_lock(OsStr::new(name), 0o660)
            .map_err(|e| Error::io_path("open lock file", &dir.child_path(name), e))?;
        // Every caller of the app must be able to take it: group-writable
        // regardless of umask (access is still governed by the state dir).
        share_with_group(file.as_fd(), 0o660);
        let start = Instant::now();
        let mut nap = Duration::from_millis(2);
        loop {
            file = match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
                Ok(held) => return Ok(Lock { _held: held }),
                Err((file, Errno::EWOULDBLOCK | Errno::EINTR)) => file,
                Err((_, e)) => return Err(Error::io_path("lock", &dir.child_path(name), e.into())),
            };
            let elapsed = start.elapsed();
            if elapsed >= self.timeout {
                return Err(Error::Busy {
                    what: what.to_owned(),
                    waited_secs: self.timeout.as_secs(),
                });
            }
            std::thread::sleep(nap.min(self.timeout - elapsed));
            nap = (nap * 2).min(Duration::from_millis(50));
        }
    }
}

/// Adds the bits asked for (group read/write) when we own the file or
/// directory; others' are left alone, and so is a file with other names:
/// a hard link someone made to a file of ours elsewhere (where
/// `fs.protected_hardlinks` is off) must not have its mode changed.
pub fn share_with_group(fd: BorrowedFd<'_>, bits: u32) {
    let Ok(st) = nix::sys::stat::fstat(fd) else {
        return;
    };
    let is_dir = crate::walk::file_type(&st) == nix::sys::stat::SFlag::S_IFDIR;
    if st.st_uid != nix::unistd::geteuid().as_raw() || (!is_dir && st.st_nlink != 1) {
        return;
    }
    let mode = st.st_mode & 0o7777;
    let wanted = mode | bits;
    if wanted != mode {
        // Best effort: a lock file others cannot open only makes them wait.
        let _ = nix::sys::stat::fchmod(fd, Mode::from_bits_truncate(wanted));
    }
}
