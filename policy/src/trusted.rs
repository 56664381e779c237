//! Opening a root-trusted file without trusting the path to it.
//!
//! The walk starts at a trusted directory (`/` in production) and opens one
//! component at a time with `openat(O_PATH|O_NOFOLLOW)`, checking every
//! directory it actually traverses: owned by root and not group- or
//! world-writable (the rule sudo and sshd apply). Symlinks are followed by
//! hand — absolute targets restart at the trusted directory, relative ones
//! continue where the link was — so a link into a caller-owned directory
//! fails the same check. The final file is opened once and every check is
//! made on that open descriptor, so there is no check-then-open race.

use crate::escape::quoted;
use nix::errno::Errno;
use nix::fcntl::{open, openat, readlinkat, OFlag};
use nix::sys::stat::{fstat, FileStat, Mode, SFlag};
use std::collections::VecDeque;
use std::ffi::{OsStr, OsString};
use std::io::Read;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Component, Path, PathBuf};

/// Same limit as the kernel's own path resolution.
pub const MAX_SYMLINKS: usize = 40;

const DIR_FLAGS: OFlag = OFlag::O_PATH
    .union(OFlag::O_DIRECTORY)
    .union(OFlag::O_CLOEXEC);
const PROBE_FLAGS: OFlag = OFlag::O_PATH
    .union(OFlag::O_NOFOLLOW)
    .union(OFlag::O_CLOEXEC);
/// `O_NONBLOCK` so that a FIFO cannot make us hang before we see its type.
const READ_FLAGS: OFlag = OFlag::O_RDONLY
    .union(OFlag::O_NOFOLLOW)
    .union(OFlag::O_CLOEXEC)
    .union(OFlag::O_NONBLOCK);

fn shown(p: &Path) -> String {
    quoted(p.as_os_str().as_encoded_bytes())
}

/// Why a file or directory we must trust cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A component does not exist.
    #[error("cannot open {} (not found)", shown(.0))]
    NotFound(PathBuf),
    /// Not owned by root, writable by others, of the wrong type or size,
    /// or a symlink loop.
    #[error("refusing insecure path {} ({why})", shown(path))]
    Insecure { path: PathBuf, why: String },
    #[error("cannot read {} ({err})", shown(path))]
    Unreadable { path: PathBuf, err: std::io::Error },
}

/// What the checks look at in a `stat`.
#[derive(Clone, Copy, Debug)]
pub struct Stat {
    pub uid: u32,
    pub mode: u32,
    pub size: u64,
}

impl Stat {
    pub fn of(st: &FileStat) -> Stat {
        Stat {
            uid: st.st_uid,
            mode: st.st_mode,
            size: u64::try_from(st.st_size).unwrap_or(u64::MAX),
        }
    }
    fn file_type(&self) -> SFlag {
        SFlag::from_bits_truncate(self.mode & SFlag::S_IFMT.bits())
    }
    pub fn is_dir(&self) -> bool {
        self.file_type() == SFlag::S_IFDIR
    }
    pub fn is_file(&self) -> bool {
        self.file_type() == SFlag::S_IFREG
    }
    pub fn is_symlink(&self) -> bool {
        self.file_type() == SFlag::S_IFLNK
    }
}

/// `fstat` of a descriptor we hold.
pub fn stat(fd: &OwnedFd, path: &Path) -> Result<Stat, Error> {
    fstat(fd)
        .map(|st| Stat::of(&st))
        .map_err(|e| io_error(path.to_owned(), e))
}

/// Refuse anything not owned by root or writable by group or others.
pub fn check_trusted(st: &Stat, path: &Path) -> Result<(), Error> {
    let why = if st.uid != 0 {
        format!("owned by uid {}, not root", st.uid)
    } else if st.mode & 0o002 != 0 {
        format!("world-writable (mode {:04o})", st.mode & 0o7777)
    } else if st.mode & 0o020 != 0 {
        format!("group-writable (mode {:04o})", st.mode & 0o7777)
    } else {
        return Ok(());
    };
    Err(Error::Insecure {
        path: path.to_owned(),
        why,
    })
}

fn insecure(path: &Path, why: impl Into<String>) -> Error {
    Error::Insecure {
        path: path.to_owned(),
        why: why.into(),
    }
}

fn io_error(path: PathBuf, err: Errno) -> Error {
    if err == Errno::ENOENT {
        Error::NotFound(path)
    } else {
        Error::Unreadable {
            path,
            err: err.into(),
        }
    }
}

/// Read `rel` below the trusted directory `root`, at most `limit` bytes.
pub fn read_trusted(root: &Path, rel: &Path, limit: u64) -> Result<Vec<u8>, Error> {
    let root_fd = open(root, DIR_FLAGS, Mode::empty()).map_err(|e| io_error(root.to_owned(), e))?;
    check_trusted(&stat(&root_fd, root)?, root)?;
    let mut walk = Walk {
        root: (root_fd, root.to_owned()),
        dirs: Vec::new(),
        pending: VecDeque::new(),
        links: 0,
    };
    walk.push_path(rel.as_os_str());
    walk.run(limit)
}

struct Walk {
    /// The trusted starting directory, already checked.
    root: (OwnedFd, PathBuf),
    /// The directories traversed below it, each checked; the last is current.
    dirs: Vec<(OwnedFd, PathBuf)>,
    /// Components still to resolve.
    pending: VecDeque<OsString>,
    links: usize,
}

impl Walk {
    fn current(&self) -> (&OwnedFd, &Path) {
        let (fd, path) = self.dirs.last().unwrap_or(&self.root);
        (fd, path)
    }

    /// Queue a path (or symlink target) before whatever is still pending.
    /// Absolute paths go back to the trusted root.
    fn push_path(&mut self, path: &OsStr) {
        let path = Path::new(path);
        if path.is_absolute() {
            self.dirs.clear();
        }
        let mut parts: Vec<OsString> = Vec::new();
        for c in path.components() {
            match c {
                Component::Normal(n) => parts.push(n.to_owned()),
                Component::ParentDir => parts.push("..".into()),
                Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
            }
        }
        for part in parts.into_iter().rev() {
            self.pending.push_front(part);
        }
    }

    fn run(&mut self, limit: u64) -> Result<Vec<u8>, Error> {
        while let Some(name) = self.pending.pop_front() {
            if name == ".." {
                // Never above the trusted root, like path resolution in a chroot.
                self.dirs.pop();
                continue;
            }
            let last = self.pending.is_empty();
            let (dir, dir_path) = self.current();
            let path = dir_path.join(&name);
            let probe = openat(dir.as_fd(), name.as_os_str(), PROBE_FLAGS, Mode::empty())
                .map_err(|e| io_error(path.clone(), e))?;
            let st = stat(&probe, &path)?;
            if st.is_symlink() {
                self.follow(&probe, &path)?;
            } else if last {
                return read_file(dir, &name, &path, limit);
            } else if st.is_dir() {
                self.enter(&name, path)?;
            } else {
                return Err(insecure(&path, "not a directory"));
            }
        }
        let (_, path) = self.current();
        Err(insecure(path, "is a directory, not a regular file"))
    }

    fn follow(&mut self, link: &OwnedFd, path: &Path) -> Result<(), Error> {
        self.links += 1;
        if self.links > MAX_SYMLINKS {
            return Err(insecure(
                path,
                format!("more than {MAX_SYMLINKS} symbolic links"),
            ));
        }
        // Through the descriptor: the very link we opened and stat'ed.
        let target = readlinkat(link, "").map_err(|e| io_error(path.to_owned(), e))?;
        self.push_path(&target);
        Ok(())
    }

    /// Open a directory component and check it before going any further.
    fn enter(&mut self, name: &OsStr, path: PathBuf) -> Result<(), Error> {
        let (dir, _) = self.current();
        let fd = openat(
            dir.as_fd(),
            name,
            DIR_FLAGS | OFlag::O_NOFOLLOW,
            Mode::empty(),
        )
        .map_err(|e| io_error(path.clone(), e))?;
        check_trusted(&stat(&fd, &path)?, &path)?;
        self.dirs.push((fd, path));
        Ok(())
    }
}

/// Open the final component for reading and check what was opened.
fn read_file(dir: &OwnedFd, name: &OsStr, path: &Path, limit: u64) -> Result<Vec<u8>, Error> {
    let fd = openat(dir.as_fd(), name, READ_FLAGS, Mode::empty())
        .map_err(|e| io_error(path.to_owned(), e))?;
    let st = stat(&fd, path)?;
    if !st.is_file() {
        let kind = if st.is_dir() {
            "is a directory"
        } else {
            "not a regular file"
        };
        return Err(insecure(path, kind));
    }
    check_trusted(&st, path)?;
    if st.size > limit {
        return Err(insecure(
            path,
            format!("{} bytes, more than the {limit} allowed", st.size),
        ));
    }
    let mut bytes = Vec::new();
    let mut file = std::fs::File::from(fd).take(limit + 1);
    file.read_to_end(&mut bytes)
        .map_err(|err| Error::Unreadable {
            path: path.to_owned(),
            err,
        })?;
    if bytes.len() as u64 > limit {
        return Err(insecure(
            path,
            format!("more than the {limit} bytes allowed"),
        ));
    }
    Ok(bytes)
}

#[cfg(test)]
#[path = "trusted_tests.rs"]
mod tests;
