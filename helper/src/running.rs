//! Which tasks run now, as the kernel sees them: every task's unit is a
//! directory in the tasks slice's cgroup while it has processes (or is
//! stopping), and systemd removes it when the unit ends. Counting these
//! costs one directory listing and asks systemd nothing.

use crate::error::Error;
use crate::system::fs;
use nix::fcntl::OFlag;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use unitgate_policy::task::{self, Kind};

/// Where the kernel's cgroup file systems are mounted.
pub const CGROUP_FS: &str = "/sys/fs/cgroup";

const DIR_FLAGS: OFlag = OFlag::O_RDONLY
    .union(OFlag::O_DIRECTORY)
    .union(OFlag::O_NOFOLLOW)
    .union(OFlag::O_CLOEXEC);

/// The tasks slice's directory in the hierarchy systemd keeps its units in:
/// the unified one (at the top, or at `unified/` on a hybrid host), else
/// the named `systemd` one of a legacy host.
pub fn slice_dir(cgroup_fs: &Path) -> PathBuf {
    let base = if cgroup_fs.join("cgroup.controllers").exists() {
        cgroup_fs.to_path_buf()
    } else if cgroup_fs.join("unified/cgroup.controllers").exists() {
        cgroup_fs.join("unified")
    } else {
        cgroup_fs.join("systemd")
    };
    base.join("unitgate.slice").join(task::SLICE)
}

/// The units of `app`'s running tasks (any caller's).
pub fn of_app(cgroup_fs: &Path, app: &str) -> Result<Vec<String>, Error> {
    let dir = slice_dir(cgroup_fs);
    let fd = match fs::open(&dir, DIR_FLAGS) {
        Ok(fd) => fd,
        // No task has run since boot: the slice was never made.
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Vec::new()),
        Err(err) => {
            let what = format!("cannot open {}", dir.display());
            return Err(Error::Os { what, err });
        }
    };
    let names = fs::read_dir_names(fd).map_err(|err| Error::Os {
        what: format!("cannot list {}", dir.display()),
        err,
    })?;
    let ours = |n: &String| task::parse_unit(n).is_some_and(|(a, ..)| a == app);
    Ok(names
        .into_iter()
        .filter_map(|n| n.into_string().ok())
        .filter(ours)
        .collect())
}

/// The cgroup directory `unit` has while it runs.
pub fn unit_dir(cgroup_fs: &Path, unit: &str) -> PathBuf {
    slice_dir(cgroup_fs).join(unit)
}

/// The kinds of unit `base` (`<app>-task-<uid>-<id>`) runs as now.
pub fn kinds_of(cgroup_fs: &Path, base: &str) -> Vec<Kind> {
    [Kind::Service, Kind::Scope]
        .into_iter()
        .filter(|k| unit_dir(cgroup_fs, &format!("{base}{}", k.suffix())).is_dir())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    use unitgate_policy::testutil::TempTree;

    fn tree(unified: &str) -> (TempTree, PathBuf) {
        let t = TempTree::new();
        let top = t.path("cgroup");
        let base = top.join(unified);
        std::fs::create_dir_all(base.join("unitgate.slice/unitgate-tasks.slice")).unwrap();
        std::fs::write(base.join("cgroup.controllers"), "").unwrap();
        (t, top)
    }

    #[test]
    fn counts_only_the_apps_own_task_units() {
        for unified in ["", "unified"] {
            let (_t, top) = tree(unified);
            let slice = slice_dir(&top);
            assert!(slice.is_dir(), "{}", slice.display());
            for unit in [
                "demo-task-1000-a.service",
                "demo-task-1001-b.scope",
                "demo-x-task-1000-c.service",
                "other-task-1000-d.service",
                "demo-task-1000-e.socket",
            ] {
                std::fs::create_dir(slice.join(unit)).unwrap();
            }
            std::fs::write(slice.join("cgroup.procs"), "").unwrap();
            let mut units = of_app(&top, "demo").unwrap();
            units.sort();
            assert_eq!(
                units,
                ["demo-task-1000-a.service", "demo-task-1001-b.scope"]
            );
            assert_eq!(of_app(&top, "demo-x").unwrap().len(), 1);
            std::fs::create_dir(slice.join("demo-task-1001-b.service")).unwrap();
            assert_eq!(
                kinds_of(&top, "demo-task-1001-b"),
                [Kind::Service, Kind::Scope]
            );
            assert_eq!(kinds_of(&top, "demo-task-1000-a"), [Kind::Service]);
            assert_eq!(kinds_of(&top, "demo-task-1000-zz"), []);
        }
    }

    #[test]
    fn no_slice_yet_is_no_task_running() {
        let t = TempTree::new();
        let top = t.dir("cgroup", 0o755);
        std::fs::write(top.join("cgroup.controllers"), "").unwrap();
        assert!(of_app(&top, "demo").unwrap().is_empty());
    }
}
