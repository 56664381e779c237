//! A cgroup of each machine's own, in every hierarchy the container's
//! systemd tracks processes in.
//!
//! nspawn runs with `--keep-unit` (the host may have no systemd to ask for a
//! scope), so the container's cgroup is whatever cgroup nspawn starts in.
//! Left in the test process's, every machine on the host — parallel tests',
//! other checkouts' — would get the same cgroup, and units of the same name
//! in two machines (`dbus.service`, `runner-pool@w1.service`) would be one
//! cgroup: a stop in one machine then reads the other machine's processes,
//! which it cannot see, as pid 0, fails to kill the group ("Failed to kill
//! control group ... Input/output error") and completes with the unit's
//! children still running; a unit's cgroup is not empty while the other
//! machine's is running. So nspawn is moved, before it execs, into a new
//! cgroup named after the machine, below the test process's own.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// The machine's cgroup directories, one per hierarchy.
pub struct Own {
    dirs: Vec<PathBuf>,
    entry: Entry,
}

/// What a forked child needs to move itself into a machine's cgroups.
#[derive(Clone)]
pub struct Entry {
    /// `<dir>/cgroup.procs` of each of the machine's cgroups.
    procs: Vec<CString>,
}

impl Own {
    /// Creates `<hierarchy>/<our cgroup>/<name>` in the cgroup v2 hierarchy
    /// and in systemd's v1 `name=systemd` one where mounted (the hybrid
    /// layout). Panics when that is impossible: machines sharing a cgroup
    /// interfere with each other, which would fail tests at random.
    pub fn create(name: &str) -> Own {
        let mut own = Own {
            dirs: Vec::new(),
            entry: Entry { procs: Vec::new() },
        };
        for parent in parents() {
            let dir = parent.join(name);
            if let Err(e) = std::fs::create_dir(&dir) {
                panic!(
                    "test bed: cannot create the machine's cgroup {}: {e}",
                    dir.display()
                );
            }
            let procs = dir.join("cgroup.procs");
            own.entry
                .procs
                .push(CString::new(procs.as_os_str().as_bytes()).expect("no NUL in a path"));
            own.dirs.push(dir);
        }
        assert!(
            !own.dirs.is_empty(),
            "test bed: no cgroup hierarchy found in /proc/self/mountinfo"
        );
        own
    }

    /// For the child that becomes nspawn (see [`Entry::enter`]).
    pub fn entry(&self) -> Entry {
        self.entry.clone()
    }

    /// Removes the cgroups once the machine is down (its systemd left its
    /// own cgroups below them: empty, but directories until removed).
    pub fn remove(&self) {
        for dir in &self.dirs {
            if let Err(e) = remove_tree(dir) {
                eprintln!("testbed: could not remove cgroup {}: {e}", dir.display());
            }
        }
    }
}

impl Entry {
    /// Moves the calling process into the machine's cgroups. Runs in the
    /// forked child before it execs nspawn, so it only makes
    /// async-signal-safe calls (open, write, close) on prepared buffers.
    pub fn enter(&self) -> std::io::Result<()> {
        for procs in &self.procs {
            // SAFETY: `procs` is NUL-terminated; the descriptor is closed
            // before the next iteration.
            let fd = unsafe { libc::open(procs.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC) };
            if fd < 0 {
                return Err(std::io::Error::last_os_error());
            }
            // Writing 0 moves the writer itself.
            // SAFETY: a static one-byte buffer.
            let wrote = unsafe { libc::write(fd, b"0".as_ptr().cast(), 1) };
            let err = std::io::Error::last_os_error();
            // SAFETY: `fd` is ours and closed once.
            unsafe { libc::close(fd) };
            if wrote != 1 {
                return Err(err);
            }
        }
        Ok(())
    }
}

/// Removes machine cgroups named `ug-…` whose test process is gone
/// (`is_stale` decides by name), left by a killed run.
pub fn remove_stale(is_stale: impl Fn(&str) -> bool) {
    for parent in parents() {
        for entry in std::fs::read_dir(&parent).into_iter().flatten().flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with("ug-") && entry.path().is_dir() && is_stale(&name) {
                let _ = remove_tree(&entry.path());
            }
        }
    }
}

/// A cgroup's directory, child cgroups first. A cgroup's files cannot be
/// unlinked, only the empty directory removed, and only once no process is
/// in it.
fn remove_tree(dir: &Path) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)?.flatten() {
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            remove_tree(&entry.path())?;
        }
    }
    std::fs::remove_dir(dir)
}

/// The test process's own cgroup directory in each hierarchy that matters:
/// cgroup v2 (`0::PATH` in /proc/self/cgroup) and v1 `name=systemd`.
fn parents() -> Vec<PathBuf> {
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let memberships = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
    let own_path = |prefix: &str| {
        memberships
            .lines()
            .find_map(|l| l.strip_prefix(prefix))
            .map(|p| p.trim_start_matches('/').to_owned())
    };
    let mut parents = Vec::new();
    for line in mounts.lines() {
        let fields: Vec<&str> = line.split(' ').collect();
        let Some(dash) = fields.iter().position(|f| *f == "-") else {
            continue;
        };
        let (Some(point), Some(fstype), Some(options)) =
            (fields.get(4), fields.get(dash + 1), fields.get(dash + 3))
        else {
            continue;
        };
        let own = match *fstype {
            "cgroup2" => own_path("0::"),
            "cgroup" if options.split(',').any(|o| o == "name=systemd") => {
                memberships.lines().find_map(|l| {
                    let (_, rest) = l.split_once(':')?;
                    let p = rest.strip_prefix("name=systemd:")?;
                    Some(p.trim_start_matches('/').to_owned())
                })
            }
            _ => None,
        };
        if let Some(own) = own {
            assert!(
                !own.split('/').any(|c| c == ".."),
                "test bed: the test process's cgroup ({own}) is outside its cgroup namespace"
            );
            parents.push(Path::new(point).join(own));
        }
    }
    parents
}
