//! A directory held open, and every operation inside it relative to that
//! descriptor, never following a symbolic link.
//!
//! The state directory belongs to the app's service account, so whatever is
//! in it may have been put there by the account: a link where we expect an
//! instance directory, a FIFO where we expect a lock file. Every name used
//! here is one path component (checked by [`component`]), resolved with
//! `O_NOFOLLOW` / `AT_SYMLINK_NOFOLLOW` relative to a directory we opened,
//! and every file we create is created with `O_EXCL`, so nothing here can
//! be redirected outside the directory or onto a file someone planted.

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use nix::dir::{Dir, Type};
use nix::errno::Errno;
use nix::fcntl::{openat, renameat, renameat2, AtFlags, OFlag, RenameFlags};
use nix::sys::stat::{fchmod, fchmodat, fstat, fstatat, mkdirat, FchmodatFlags, Mode, SFlag};
use nix::unistd::{fsync, unlinkat, UnlinkatFlags};

use crate::walk::file_type;

/// Deepest directory nesting [`DirFd::remove_tree`] descends into; deeper
/// trees are refused rather than exhausting descriptors.
pub const MAX_DEPTH: usize = 256;

const DIR_FLAGS: OFlag = OFlag::O_RDONLY
    .union(OFlag::O_DIRECTORY)
    .union(OFlag::O_NOFOLLOW)
    .union(OFlag::O_CLOEXEC);

/// What an entry is, looked at without following it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Dir,
    File,
    Link,
    Other,
}

#[derive(Debug)]
pub struct DirFd {
    fd: OwnedFd,
    /// Where it was when opened, for messages only: nothing is opened by it.
    path: PathBuf,
}

/// `name` must be a single path component: not empty, no `/`, not `.` or `..`.
pub fn component(name: &OsStr) -> io::Result<&OsStr> {
    let b = name.as_bytes();
    if b.is_empty() || b.contains(&b'/') || b.contains(&0) || b == b"." || b == b".." {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("'{}' is not a plain file name", name.to_string_lossy()),
        ));
    }
    Ok(name)
}

fn err(e: Errno) -> io::Error {
    io::Error::from(e)
}

fn mode(bits: u32) -> Mode {
    Mode::from_bits_truncate(bits)
}

impl DirFd {
    pub fn new(fd: OwnedFd, path: PathBuf) -> DirFd {
        DirFd { fd, path }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn child_path(&self, name: impl AsRef<OsStr>) -> PathBuf {
        self.path.join(name.as_ref())
    }

    pub fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    pub fn owner(&self) -> io::Result<u32> {
        Ok(fstat(&self.fd).map_err(err)?.st_uid)
    }

    /// What `name` is, or `None` when it does not exist.
    pub fn kind(&self, name: &OsStr) -> io::Result<Option<Kind>> {
        match fstatat(&self.fd, component(name)?, AtFlags::AT_SYMLINK_NOFOLLOW) {
            Ok(st) => Ok(Some(match file_type(&st) {
                SFlag::S_IFDIR => Kind::Dir,
                SFlag::S_IFREG => Kind::File,
                SFlag::S_IFLNK => Kind::Link,
                _ => Kind::Other,
            })),
            Err(Errno::ENOENT) => Ok(None),
            Err(e) => Err(err(e)),
        }
    }

    /// The permission bits of `name` (not following a link).
    pub fn mode_of(&self, name: &OsStr) -> io::Result<u32> {
        let st = fstatat(&self.fd, component(name)?, AtFlags::AT_SYMLINK_NOFOLLOW).map_err(err)?;
        Ok(st.st_mode & 0o7777)
    }

    pub fn read_link(&self, name: &OsStr) -> io::Result<OsString> {
        nix::fcntl::readlinkat(&self.fd, component(name)?).map_err(err)
    }

    pub fn symlink(&self, target: &OsStr, name: &OsStr) -> io::Result<()> {
        nix::unistd::symlinkat(target, &self.fd, component(name)?).map_err(err)
    }

    pub fn is_dir(&self, name: &OsStr) -> bool {
        matches!(self.kind(name), Ok(Some(Kind::Dir)))
    }

    /// Opens the subdirectory `name`; `None` when absent. A link or a file
    /// in its place is an error (`ELOOP`/`ENOTDIR`), never followed.
    pub fn open_dir(&self, name: &OsStr) -> io::Result<Option<DirFd>> {
        match openat(&self.fd, component(name)?, DIR_FLAGS, Mode::empty()) {
            Ok(fd) => Ok(Some(DirFd::new(fd, self.child_path(name)))),
            Err(Errno::ENOENT) => Ok(None),
            Err(e) => Err(err(e)),
        }
    }

    /// Creates the subdirectory `name`, which must not exist yet, and opens
    /// it. It is then checked to be ours, so a directory someone else
    /// swapped in between the two calls is refused.
    pub fn create_dir(&self, name: &OsStr, bits: u32) -> io::Result<DirFd> {
        mkdirat(&self.fd, component(name)?, mode(bits)).map_err(err)?;
        let dir = self
            .open_dir(name)?
            .ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))?;
        if dir.owner()? != nix::unistd::geteuid().as_raw() {
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                format!("{} was replaced while being created", dir.path.display()),
            ));
        }
        Ok(dir)
    }

    /// Opens the subdirectory `name`, creating it first if absent.
    pub fn ensure_dir(&self, name: &OsStr, bits: u32) -> io::Result<DirFd> {
        if let Some(d) = self.open_dir(name)? {
            return Ok(d);
        }
        match mkdirat(&self.fd, component(name)?, mode(bits)) {
            Ok(()) | Err(Errno::EEXIST) => {}
            Err(e) => return Err(err(e)),
        }
        self.open_dir(name)?
            .ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))
    }

    /// Every entry but `.` and `..`, with its kind as the directory reports
    /// it (`None` when the file system does not say).
    pub fn entries(&self) -> io::Result<Vec<(OsString, Option<Kind>)>> {
        let mut dir = Dir::openat(&self.fd, ".", DIR_FLAGS, Mode::empty()).map_err(err)?;
        let mut out = Vec::new();
        for entry in dir.iter() {
            let entry = entry.map_err(err)?;
            let name = entry.file_name().to_bytes();
            if name == b"." || name == b".." {
                continue;
            }
            let kind = entry.file_type().map(|t| match t {
                Type::Directory => Kind::Dir,
                Type::File => Kind::File,
                Type::Symlink => Kind::Link,
                _ => Kind::Other,
            });
            out.push((OsStr::from_bytes(name).to_owned(), kind));
        }
        Ok(out)
    }

    /// Creates the file `name`, which must not exist yet (`O_EXCL`: a link
    /// or file already there is an error, never written through).
    pub fn create_file(&self, name: &OsStr, bits: u32) -> io::Result<File> {
        let flags =
            OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
        Ok(File::from(
            openat(&self.fd, component(name)?, flags, mode(bits)).map_err(err)?,
        ))
    }

    /// Writes `bytes` to a new file and renames it over `name` in one step,
    /// so readers see the old or the new content, never half of it.
    pub fn replace_file(&self, name: &OsStr, bits: u32, bytes: &[u8]) -> io::Result<()> {
        let tmp = self.create_temp(name, bits)?;
        let (file, tmp_name) = tmp;
        let written = (&file).write_all(bytes).and_then(|()| file.sync_all());
        let renamed = written.and_then(|()| self.rename(&tmp_name, name));
        if renamed.is_err() {
            let _ = self.unlink(&tmp_name);
        }
        renamed
    }

    /// A new, uniquely named hidden file beside `name`.
    fn create_temp(&self, name: &OsStr, bits: u32) -> io::Result<(File, OsString)> {
        let stamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        for attempt in 0..100u32 {
            let mut tmp = OsString::from(".");
            tmp.push(name);
            tmp.push(format!(".{}.{stamp:x}{attempt}", std::process::id()));
            match self.create_file(&tmp, bits) {
                Ok(f) => return Ok((f, tmp)),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(e),
            }
        }
        Err(io::Error::from(io::ErrorKind::AlreadyExists))
    }

    /// Reads the regular file `name` (at most `limit` bytes); `None` when
    /// absent. A link, FIFO or device there is an error, and a FIFO cannot
    /// make us hang (`O_NONBLOCK`, type checked before reading).
    pub fn read_file(&self, name: &OsStr, limit: u64) -> io::Result<Option<Vec<u8>>> {
        let file = match self.open_read(name) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let mut bytes = Vec::new();
        file.take(limit + 1).read_to_end(&mut bytes)?;
        if bytes.len() as u64 > limit {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "{} is larger than {limit} bytes",
                    self.child_path(name).display()
                ),
            ));
        }
        Ok(Some(bytes))
    }

    /// [`DirFd::read_file`], but only a file owned by `uid`: one that
    /// nobody else wrote (`None` for anybody else's).
    pub fn read_own_file(&self, name: &OsStr, limit: u64, uid: u32) -> io::Result<Option<Vec<u8>>> {
        let file = match self.open_read(name) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        if fstat(&file).map_err(err)?.st_uid != uid {
            return Ok(None);
        }
        let mut bytes = Vec::new();
        file.take(limit + 1).read_to_end(&mut bytes)?;
        Ok((bytes.len() as u64 <= limit).then_some(bytes))
    }

    /// Opens the regular file `name` for reading (see [`DirFd::read_file`]).
    pub fn open_read(&self, name: &OsStr) -> io::Result<File> {
        let flags = OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC;
        let fd = openat(&self.fd, component(name)?, flags, Mode::empty()).map_err(err)?;
        let st = fstat(&fd).map_err(err)?;
        if file_type(&st) != SFlag::S_IFREG {
            return Err(not_regular(&self.child_path(name)));
        }
        Ok(File::from(fd))
    }

    /// Opens (creating if needed) the lock file `name`: a regular file,
    /// never a link, FIFO or device someone put in its place.
    pub fn open_lock(&self, name: &OsStr, bits: u32) -> io::Result<File> {
        let flags = OFlag::O_RDWR
            | OFlag::O_CREAT
            | OFlag::O_NOFOLLOW
            | OFlag::O_NONBLOCK
            | OFlag::O_CLOEXEC;
        let fd = openat(&self.fd, component(name)?, flags, mode(bits)).map_err(err)?;
        let st = fstat(&fd).map_err(err)?;
        if file_type(&st) != SFlag::S_IFREG {
            return Err(not_regular(&self.child_path(name)));
        }
        Ok(File::from(fd))
    }

    pub fn rename(&self, from: &OsStr, to: &OsStr) -> io::Result<()> {
        renameat(&self.fd, component(from)?, &self.fd, component(to)?).map_err(err)
    }

    /// Renames `from` to `to`, failing with `AlreadyExists` if `to` exists.
    pub fn rename_noreplace(&self, from: &OsStr, to: &OsStr) -> io::Result<()> {
        let (from, to) = (component(from)?, component(to)?);
        match renameat2(&self.fd, from, &self.fd, to, RenameFlags::RENAME_NOREPLACE) {
            Ok(()) => Ok(()),
            // File systems without RENAME_NOREPLACE: callers hold the
            // entry's lock and checked `to` is absent.
            Err(Errno::EINVAL | Errno::ENOSYS) if self.kind(to)?.is_none() => self.rename(from, to),
            Err(e) => Err(err(e)),
        }
    }

    /// Swaps `a` and `b` in one step (`RENAME_EXCHANGE`): both must exist.
    pub fn exchange(&self, a: &OsStr, b: &OsStr) -> io::Result<()> {
        let (a, b) = (component(a)?, component(b)?);
        renameat2(&self.fd, a, &self.fd, b, RenameFlags::RENAME_EXCHANGE).map_err(err)
    }

    pub fn unlink(&self, name: &OsStr) -> io::Result<()> {
        unlinkat(&self.fd, component(name)?, UnlinkatFlags::NoRemoveDir).map_err(err)
    }

    pub fn sync(&self) -> io::Result<()> {
        fsync(&self.fd).map_err(err)
    }

    pub fn set_mode(&self, bits: u32) -> io::Result<()> {
        fchmod(&self.fd, mode(bits)).map_err(err)
    }

    /// Removes `name` and, if it is a directory, everything below it,
    /// without ever following a link (a link is removed as a link).
    /// Directories of ours that were made read-only are made writable
    /// first. Returns whether there was anything to remove.
    pub fn remove_tree(&self, name: &OsStr) -> io::Result<bool> {
        match self.kind(name)? {
            None => return Ok(false),
            Some(Kind::Dir) => {}
            Some(_) => return self.unlink(name).map(|()| true),
        }
        // Depth first with an explicit stack (a deep tree cannot overflow
        // ours): each frame is an open directory, its name in the frame
        // above, and the subdirectories still to empty.
        struct Frame {
            dir: DirFd,
            name: OsString,
            subdirs: Vec<OsString>,
        }
        let open = |parent: &DirFd, name: &OsStr| -> io::Result<Frame> {
            let dir = match parent.open_dir(name) {
                Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {
                    fchmodat(
                        parent.as_fd(),
                        name,
                        mode(0o700),
                        FchmodatFlags::NoFollowSymlink,
                    )
                    .map_err(err)?;
                    parent.open_dir(name)?
                }
                other => other?,
            }
            .ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))?;
            let mut subdirs = Vec::new();
            for (entry, kind) in dir.entries()? {
                let kind = match kind {
                    Some(k) => Some(k),
                    None => dir.kind(&entry)?,
                };
                match kind {
                    Some(Kind::Dir) => subdirs.push(entry),
                    Some(_) => dir.unlink_writable(&entry)?,
                    None => {}
                }
            }
            Ok(Frame {
                dir,
                name: name.to_owned(),
                subdirs,
            })
        };
        let mut stack = vec![open(self, name)?];
        while let Some(top) = stack.last_mut() {
            if let Some(sub) = top.subdirs.pop() {
                if stack.len() >= MAX_DEPTH {
                    return Err(io::Error::other(format!(
                        "{} is nested more than {MAX_DEPTH} directories deep; remove it by hand",
                        self.child_path(name).display()
                    )));
                }
                let frame = open(&stack.last().expect("top").dir, &sub)?;
                stack.push(frame);
                continue;
            }
            let done = stack.pop().expect("top");
            let parent = stack.last().map_or(self, |f| &f.dir);
            parent.rmdir_writable(&done.name)?;
        }
        Ok(true)
    }

    /// `unlink`, making this directory writable first if it was read-only.
    fn unlink_writable(&self, name: &OsStr) -> io::Result<()> {
        self.retry_writable(|d| d.unlink(name))
    }

    fn rmdir_writable(&self, name: &OsStr) -> io::Result<()> {
        self.retry_writable(|d| {
            unlinkat(&d.fd, component(name)?, UnlinkatFlags::RemoveDir).map_err(err)
        })
    }

    fn retry_writable(&self, op: impl Fn(&DirFd) -> io::Result<()>) -> io::Result<()> {
        match op(self) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {
                self.set_mode(0o700)?;
                op(self)
            }
            other => other,
        }
    }
}

fn not_regular(path: &Path) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("{} is not a regular file", path.display()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{symlink, PermissionsExt};

    fn tmp(tag: &str) -> (PathBuf, DirFd) {
        let d = std::env::temp_dir().join(format!("unitgate-dirfd-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        let fd = nix::fcntl::open(&d, DIR_FLAGS, Mode::empty()).unwrap();
        (d.clone(), DirFd::new(fd, d))
    }

    #[test]
    fn names_must_be_one_component() {
        for bad in ["", ".", "..", "a/b", "/a", "a\0b"] {
            assert!(component(OsStr::new(bad)).is_err(), "{bad:?}");
        }
        assert!(component(OsStr::new(".locks")).is_ok());
    }

    #[test]
    fn nothing_is_written_or_read_through_a_planted_link() {
        let (d, dir) = tmp("links");
        let outside = d.join("outside");
        std::fs::write(&outside, "secret").unwrap();
        symlink(&outside, d.join("planted")).unwrap();
        let name = OsStr::new("planted");
        assert!(dir.create_file(name, 0o600).is_err());
        assert!(dir.read_file(name, 100).is_err());
        assert!(dir.open_lock(name, 0o600).is_err());
        assert!(dir.open_dir(name).is_err());
        dir.replace_file(name, 0o600, b"new").unwrap();
        assert_eq!(std::fs::read_to_string(&outside).unwrap(), "secret");
        assert_eq!(dir.read_file(name, 100).unwrap().unwrap(), b"new");
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn a_fifo_is_not_a_file_and_does_not_hang() {
        let (d, dir) = tmp("fifo");
        nix::unistd::mkfifo(&d.join("f"), Mode::from_bits_truncate(0o600)).unwrap();
        assert!(dir.read_file(OsStr::new("f"), 10).is_err());
        assert!(dir.open_lock(OsStr::new("f"), 0o600).is_err());
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn remove_tree_removes_links_not_their_targets_and_read_only_dirs() {
        let (d, dir) = tmp("tree");
        let keep = d.join("keep");
        std::fs::create_dir_all(keep.join("inner")).unwrap();
        std::fs::write(keep.join("inner/file"), "x").unwrap();
        let t = d.join("t");
        std::fs::create_dir_all(t.join("a/b/c")).unwrap();
        std::fs::write(t.join("a/b/c/f"), "x").unwrap();
        symlink(&keep, t.join("a/escape")).unwrap();
        symlink(keep.join("inner/file"), t.join("filelink")).unwrap();
        std::fs::set_permissions(t.join("a/b"), std::fs::Permissions::from_mode(0o500)).unwrap();
        std::fs::set_permissions(t.join("a/b/c"), std::fs::Permissions::from_mode(0o000)).unwrap();
        assert!(dir.remove_tree(OsStr::new("t")).unwrap());
        assert!(!t.exists());
        assert!(keep.join("inner/file").exists());
        assert!(!dir.remove_tree(OsStr::new("t")).unwrap());
        // A link in the tree's own place is removed as a link.
        symlink(&keep, d.join("top")).unwrap();
        assert!(dir.remove_tree(OsStr::new("top")).unwrap());
        assert!(keep.join("inner/file").exists());
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn a_deep_tree_is_refused_not_a_crash() {
        let (d, dir) = tmp("deep");
        // Paths this deep exceed PATH_MAX: build it relative, level by level.
        let mut cur = dir.ensure_dir(OsStr::new("deep"), 0o700).unwrap();
        for _ in 0..(MAX_DEPTH + 5) {
            cur = cur.ensure_dir(OsStr::new("d"), 0o700).unwrap();
        }
        let e = dir.remove_tree(OsStr::new("deep")).unwrap_err();
        assert!(e.to_string().contains("nested"), "{e}");
        let _ = std::process::Command::new("rm").arg("-rf").arg(&d).status();
    }
}
