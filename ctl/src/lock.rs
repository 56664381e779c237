//! Advisory locks: one `flock` per instance, held for a whole command, and
//! one app-wide lock (for `install` and for port allocation).
//!
//! Lock files live in `<state_dir>/.locks/` and are never removed (removing
//! a lock file while someone waits on it would let two holders in). A wait
//! polls `LOCK_NB` with short sleeps until `--wait` runs out, then the
//! command exits 75 "busy". The kernel drops a lock when its holder dies,
//! so a killed command never leaves a stale lock.

use std::fs::{File, OpenOptions};
use std::os::fd::AsFd;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::app::App;
use crate::error::{Error, Result};
use crate::system;

pub const LOCK_DIR: &str = ".locks";
const APP_LOCK: &str = "app.lock";

/// A held lock; released when dropped (or when the process dies).
#[derive(Debug)]
pub struct Lock {
    _file: File,
}

/// Locks and how long to wait for them.
#[derive(Debug, Clone, Copy)]
pub struct Waiter {
    pub timeout: Duration,
}

impl Waiter {
    /// The instance's lock.
    pub fn instance(&self, app: &App, instance: &str) -> Result<Lock> {
        let path = lock_dir(app)?.join(format!("{instance}.lock"));
        self.acquire(&path, &format!("instance '{instance}'"))
    }

    /// Locks for several instances, taken in sorted order so that two bulk
    /// commands can never deadlock.
    pub fn instances(&self, app: &App, instances: &[String]) -> Result<Vec<Lock>> {
        let mut sorted: Vec<&String> = instances.iter().collect();
        sorted.sort();
        sorted.dedup();
        let deadline = Instant::now() + self.timeout;
        let mut held = Vec::with_capacity(sorted.len());
        for inst in sorted {
            let left = deadline.saturating_duration_since(Instant::now());
            let w = Waiter { timeout: left };
            match w.instance(app, inst) {
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
    pub fn app(&self, app: &App) -> Result<Lock> {
        let path = lock_dir(app)?.join(APP_LOCK);
        self.acquire(&path, &format!("app '{}'", app.name))
    }

    fn acquire(&self, path: &Path, what: &str) -> Result<Lock> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o660)
            .custom_flags(libc::O_CLOEXEC | libc::O_NOFOLLOW)
            .open(path)
            .map_err(|e| Error::io_path("open lock file", path, e))?;
        // Every caller of the app must be able to take it: group-writable
        // regardless of umask (access is still governed by the state dir).
        share_with_group(&file, 0o660);
        let start = Instant::now();
        let mut nap = Duration::from_millis(2);
        loop {
            match system::try_lock_exclusive(file.as_fd()) {
                Ok(true) => return Ok(Lock { _file: file }),
                Ok(false) => {}
                Err(err) => return Err(Error::io_path("lock", path, err)),
            }
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

/// `<state_dir>/.locks`, created (with the state dir) on first use.
pub fn lock_dir(app: &App) -> Result<PathBuf> {
    let dir = app.state_dir.join(LOCK_DIR);
    if dir.is_dir() {
        return Ok(dir);
    }
    ensure_state_dir(app)?;
    match std::fs::DirBuilder::new().mode(0o770).create(&dir) {
        Ok(()) => {
            if let Ok(f) = File::open(&dir) {
                share_with_group(&f, 0o770);
            }
            Ok(dir)
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(dir),
        Err(e) => Err(Error::io_path("create", &dir, e)),
    }
}

/// Creates the state directory if its parent lets us; otherwise explains
/// who must create it.
pub fn ensure_state_dir(app: &App) -> Result<()> {
    if app.state_dir.is_dir() {
        return Ok(());
    }
    match std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o750)
        .create(&app.state_dir)
    {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => Err(Error::NotPermitted {
            what: format!(
                "the state directory {} does not exist and cannot be created",
                app.state_dir.display()
            ),
            hint: "ask an administrator to create it, owned by the app's service account".into(),
        }),
        Err(e) => Err(Error::io_path("create", &app.state_dir, e)),
    }
}

/// Adds group read/write (and setgid on directories, inherited from a
/// setgid state dir) when we own the file; others' files are left alone.
fn share_with_group(file: &File, bits: u32) {
    use std::os::unix::fs::MetadataExt;
    let Ok(meta) = file.metadata() else { return };
    if meta.uid() != unitgate_helper::system::process::euid() {
        return;
    }
    let mode = meta.mode() & 0o7777;
    let wanted = mode | bits;
    if wanted != mode {
        // Best effort: a lock file others cannot open only makes them wait.
        let _ = system::fchmod(file.as_fd(), wanted);
    }
}
