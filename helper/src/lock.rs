//! Locks that outlive the helper: held across the exec, released by the
//! kernel when systemctl exits, so two calls on the same instance cannot
//! interleave.
//!
//! Callers choose unit names freely, so a file per unit would let them fill
//! `/run` (3,300 calls of 256 names did). Instead every app has a fixed set
//! of [`SLOTS`] lock files, `/run/unitgate/locks/<app>/slot-000` … `slot-255`, and a
//! stable hash of the unit name picks its slot: at most 256 files per app,
//! whatever anyone sends. Two units sharing a slot merely serialise. The set
//! is per app so that a caller who stops its own call while holding slots
//! can only ever delay units of that app, never another app's.
//!
//! `enable` also takes the app directory itself as an app-wide lock: it
//! counts the app's enabled instances against `max_instances` and then adds
//! to them, and two enables of different units must not both count before
//! either adds.
//!
//! Nothing blocks: every lock is polled (`LOCK_NB`, back-off up to
//! [`MAX_BACKOFF`]) until one deadline, then the call fails as busy (75), so
//! a call a caller stopped (SIGTSTP to its sudo) cannot hang anyone else.

use crate::error::Error;
use crate::system::fs::{self, Held};
use nix::fcntl::OFlag;
use std::ffi::OsStr;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use unitgate_policy::trusted::{self, check_trusted};

/// The trusted directory under which the lock directory is created.
pub const LOCK_PARENT: &str = "/run";
/// In `<parent>/unitgate`: the lock between calls that defer their reload
/// (shared) and the reload that takes their markers (exclusive).
pub const RELOAD_LOCK: &str = "reload.lock";
/// In `<parent>/unitgate`: a deferred reload is due.
pub const RELOAD_PENDING: &str = "reload-pending";
/// In `<parent>/unitgate/locks/<app>`: the lock of task starts (no slot
/// file is named so: those are `slot-NNN`).
pub const TASKS_LOCK: &str = "tasks";
/// Lock files per app (the hash is folded to one byte, so at most 256).
pub const SLOTS: u32 = 256;
/// Longest pause between two attempts at a lock that is taken.
pub const MAX_BACKOFF: Duration = Duration::from_millis(50);
const FIRST_BACKOFF: Duration = Duration::from_millis(1);

const DIR_FLAGS: OFlag = OFlag::O_PATH
    .union(OFlag::O_DIRECTORY)
    .union(OFlag::O_NOFOLLOW)
    .union(OFlag::O_CLOEXEC);
/// Deliberately no `O_CLOEXEC` on what we lock: it must survive the exec.
const SLOT_FLAGS: OFlag = OFlag::O_RDWR.union(OFlag::O_CREAT).union(OFlag::O_NOFOLLOW);
const APP_LOCK_FLAGS: OFlag = OFlag::O_RDONLY
    .union(OFlag::O_DIRECTORY)
    .union(OFlag::O_NOFOLLOW);

/// What a call locks: its units' slots, and for `enable` the whole app.
#[derive(Clone, Copy, Debug)]
pub struct Request<'a> {
    pub app: &'a str,
    pub units: &'a [String],
    pub app_wide: bool,
    /// Whether systemctl, after the exec, changes enable links without a
    /// daemon-reload (a deferred `enable`): then the call also holds
    /// `/run/unitgate/reload.lock` shared, taken after every other lock, so
    /// the deferred reload (which takes it exclusively) waits for the change
    /// to be on disk before it takes the call's marker (see
    /// [`mark_reload_pending`]). A deferred `disable` makes its change
    /// before its marker and needs no lock.
    pub deferred_reload: bool,
    /// How long to keep trying before giving up as busy.
    pub wait: Duration,
}

/// The slot of `unit`: FNV-1a (32 bit) of its name, xor-folded to 8 bits
/// (FNV's low bits alone mix poorly). Stable across builds and runs, as it
/// must be for two helper versions to agree during an upgrade.
pub fn slot(unit: &str) -> u32 {
    let hash = unit.bytes().fold(0x811c_9dc5_u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    });
    (hash ^ (hash >> 8) ^ (hash >> 16) ^ (hash >> 24)) % SLOTS
}

/// `slot-042`.
pub fn slot_name(slot: u32) -> String {
    format!("slot-{slot:03}")
}

/// Create (if missing) and check `<parent>/unitgate` (0755),
/// `<parent>/unitgate/locks` and `…/locks/<app>` (0700), then take the
/// app-wide lock (if asked), the distinct slots of the units in ascending
/// order and the reload lock (if asked) — one fixed order for every call,
/// so none can deadlock.
/// `app` must be a validated app name whose policy exists.
pub fn lock(parent: &Path, req: &Request<'_>) -> Result<Vec<Held>, Error> {
    let deadline = Instant::now() + req.wait;
    let (base, base_path) = base_dir(parent)?;
    let locks_path = base_path.join("locks");
    let locks = ensure_dir(&base, &locks_path, "locks", 0o700)?;
    let app_path = locks_path.join(req.app);
    let app_dir = ensure_dir(&locks, &app_path, req.app, 0o700)?;

    let mut held = Vec::new();
    if req.app_wide {
        // "." of the checked O_PATH descriptor: the same directory, no
        // second lookup of its name.
        let fd = fs::openat(app_dir.as_fd(), OsStr::new("."), APP_LOCK_FLAGS, 0)
            .map_err(os_error(format!("cannot open {}", app_path.display())))?;
        let subject = format!("to enable instances of app {}", req.app);
        held.push(take(
            fd,
            Mode::Exclusive,
            &subject,
            &app_path,
            req.wait,
            deadline,
        )?);
    }
    let mut slots: Vec<u32> = req.units.iter().map(|u| slot(u)).collect();
    slots.sort_unstable();
    slots.dedup();
    for s in slots {
        let name = slot_name(s);
        let path = app_path.join(&name);
        let fd = open_slot(&app_dir, &name, &path)?;
        let unit = req.units.iter().find(|u| slot(u) == s);
        let subject = format!("for {}", unit.map_or(name.as_str(), String::as_str));
        held.push(take(
            fd,
            Mode::Exclusive,
            &subject,
            &path,
            req.wait,
            deadline,
        )?);
    }
    // Last: a call waiting for its units holds nothing the reload waits on.
    if req.deferred_reload {
        let path = base_path.join(RELOAD_LOCK);
        let fd = open_slot(&base, RELOAD_LOCK, &path)?;
        let subject = "for the deferred daemon-reload";
        held.push(take(fd, Mode::Shared, subject, &path, req.wait, deadline)?);
    }
    Ok(held)
}

/// The lock of `app`'s task starts, `<parent>/unitgate/locks/<app>/tasks`:
/// a `run` holds it from counting the running tasks until its own is
/// running (across the exec of systemd-run for a service, which keeps it
/// until the start is done).
pub fn tasks(parent: &Path, app: &str, wait: Duration) -> Result<Held, Error> {
    let deadline = Instant::now() + wait;
    let (base, base_path) = base_dir(parent)?;
    let locks_path = base_path.join("locks");
    let locks = ensure_dir(&base, &locks_path, "locks", 0o700)?;
    let app_path = locks_path.join(app);
    let app_dir = ensure_dir(&locks, &app_path, app, 0o700)?;
    let path = app_path.join(TASKS_LOCK);
    let fd = open_slot(&app_dir, TASKS_LOCK, &path)?;
    let subject = format!("to start a task of app {app}");
    take(fd, Mode::Exclusive, &subject, &path, wait, deadline)
}

/// `<parent>/unitgate` (0755), created if missing, on a checked `parent`:
/// the directory every lock and the reload marker live in.
fn base_dir(parent: &Path) -> Result<(OwnedFd, PathBuf), Error> {
    let top = fs::open(parent, DIR_FLAGS)
        .map_err(os_error(format!("cannot open {}", parent.display())))?;
    let st =
        fs::fstat(top.as_fd()).map_err(os_error(format!("cannot stat {}", parent.display())))?;
    check_trusted(&st, parent)?;
    let base_path = parent.join("unitgate");
    let base = ensure_dir(&top, &base_path, "unitgate", 0o755)?;
    Ok((base, base_path))
}

fn os_error(what: String) -> impl FnOnce(std::io::Error) -> Error {
    move |err| Error::Os { what, err }
}

/// `mkdirat` then open with `O_NOFOLLOW` and check what we opened: if
/// someone else created it first, it must still be root's and not writable
/// by others (errors of this kind are 78, "insecure lock directory").
fn ensure_dir(parent: &OwnedFd, path: &Path, name: &str, mode: u32) -> Result<OwnedFd, Error> {
    match fs::mkdirat(parent.as_fd(), OsStr::new(name), mode) {
        Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => {
            return Err(os_error(format!("cannot create {}", path.display()))(e));
        }
        _ => {}
    }
    let fd = fs::openat(parent.as_fd(), OsStr::new(name), DIR_FLAGS, 0).map_err(|e| {
        trusted::Error::Insecure {
            path: path.to_owned(),
            why: format!("not a directory we can open without following links: {e}"),
        }
    })?;
    let st = fs::fstat(fd.as_fd()).map_err(os_error(format!("cannot stat {}", path.display())))?;
    check_trusted(&st, path)?;
    Ok(fd)
}

/// Open (creating it 0600) one slot file inside the checked, root-only app
/// directory, and check it is a plain file of root's.
fn open_slot(app_dir: &OwnedFd, name: &str, path: &Path) -> Result<OwnedFd, Error> {
    let what = || format!("cannot open {}", path.display());
    let fd = fs::openat(app_dir.as_fd(), OsStr::new(name), SLOT_FLAGS, 0o600)
        .map_err(os_error(what()))?;
    let st = fs::fstat(fd.as_fd()).map_err(os_error(what()))?;
    if !st.is_file() {
        return Err(Error::Untrusted(trusted::Error::Insecure {
            path: path.to_owned(),
            why: "not a regular file".into(),
        }));
    }
    check_trusted(&st, path)?;
    Ok(fd)
}

#[derive(Clone, Copy)]
enum Mode {
    Exclusive,
    Shared,
}

/// Create `<parent>/unitgate/reload-pending`, the marker that makes
/// `unitgate-reload.service` run `daemon-reload` within its interval. Called
/// after every check, right before the exec: for an `enable` while [`lock`]
/// holds the reload lock shared (the reload renames the marker only while no
/// such call is between its marker and the end of its systemctl); for a
/// `disable` once its links are gone.
pub fn mark_reload_pending(parent: &Path) -> Result<(), Error> {
    let (base, base_path) = base_dir(parent)?;
    let path = base_path.join(RELOAD_PENDING);
    open_slot(&base, RELOAD_PENDING, &path).map(drop)
}

/// Poll a lock until `deadline`; `subject` ("for demo@x.service")
/// and `path` name it in the busy error.
fn take(
    fd: OwnedFd,
    mode: Mode,
    subject: &str,
    path: &Path,
    wait: Duration,
    deadline: Instant,
) -> Result<Held, Error> {
    let mut backoff = FIRST_BACKOFF;
    let mut fd = fd;
    loop {
        let tried = match mode {
            Mode::Exclusive => fs::try_flock_exclusive(fd),
            Mode::Shared => fs::try_flock_shared(fd),
        };
        match tried.map_err(os_error(format!("cannot lock {}", path.display())))? {
            Ok(held) => return Ok(held),
            Err(back) => fd = back,
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(Error::Busy {
                subject: subject.to_owned(),
                lock: PathBuf::from(path),
                waited: wait.as_secs(),
            });
        }
        std::thread::sleep(backoff.min(left));
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

#[cfg(test)]
#[path = "lock_tests.rs"]
mod tests;
