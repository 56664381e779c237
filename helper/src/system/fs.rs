//! Descriptor-level file system calls (the `*at` family, `fstat`, `flock`,
//! directory listing), through nix, with `io::Result`s.

use nix::dir::Dir;
use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg, OFlag};
use nix::sys::stat::Mode;
use std::ffi::{OsStr, OsString};
use std::io;
use std::os::fd::{BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
pub use unitgate_policy::trusted::Stat;

fn err(e: Errno) -> io::Error {
    io::Error::from(e)
}

/// `open(2)` of an absolute path, used only for the trusted starting
/// directory and `/dev/null`.
pub fn open(path: &Path, flags: OFlag) -> io::Result<OwnedFd> {
    nix::fcntl::open(path, flags, Mode::empty()).map_err(err)
}

/// `openat(2)` relative to `dir`. `mode` only matters with `O_CREAT`.
pub fn openat(dir: BorrowedFd<'_>, name: &OsStr, flags: OFlag, mode: u32) -> io::Result<OwnedFd> {
    nix::fcntl::openat(dir, name, flags, Mode::from_bits_truncate(mode)).map_err(err)
}

/// `mkdirat(2)`; the process umask (022) still applies.
pub fn mkdirat(dir: BorrowedFd<'_>, name: &OsStr, mode: u32) -> io::Result<()> {
    nix::sys::stat::mkdirat(dir, name, Mode::from_bits_truncate(mode)).map_err(err)
}

/// `symlinkat(2)`: a link named `name` in `dir`, pointing at `target`
/// (never followed here; fails if `name` exists).
pub fn symlinkat(target: &Path, dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<()> {
    nix::unistd::symlinkat(target, dir, name).map_err(err)
}

/// `readlinkat(2)`: the target of the link `name` in `dir`.
pub fn readlinkat(dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<OsString> {
    nix::fcntl::readlinkat(dir, name).map_err(err)
}

/// Whether `fd` (opened for `path`, which names it in messages only) is
/// root's and writable by no one else.
pub fn is_trusted(fd: BorrowedFd<'_>, path: &Path) -> bool {
    fstat(fd).is_ok_and(|st| unitgate_policy::trusted::check_trusted(&st, path).is_ok())
}

/// The contents of the open file `file`, if it reads whole within `max`
/// bytes (one byte more is read, so a longer file gives `None`).
pub fn read_at_most(file: OwnedFd, max: u64) -> Option<Vec<u8>> {
    use std::io::Read;
    let mut bytes = Vec::new();
    std::fs::File::from(file)
        .take(max + 1)
        .read_to_end(&mut bytes)
        .ok()
        .filter(|&n| n as u64 <= max)
        .map(|_| bytes)
}

/// `fstat(2)` of an open descriptor (works on `O_PATH` descriptors too).
pub fn fstat(fd: BorrowedFd<'_>) -> io::Result<Stat> {
    nix::sys::stat::fstat(fd)
        .map(|st| Stat::of(&st))
        .map_err(err)
}

/// `unlinkat(2)` of a non-directory entry of `dir`.
pub fn unlinkat(dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<()> {
    nix::unistd::unlinkat(dir, name, nix::unistd::UnlinkatFlags::NoRemoveDir).map_err(err)
}

/// `unlinkat(2)` of an empty directory in `dir`.
pub fn rmdirat(dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<()> {
    nix::unistd::unlinkat(dir, name, nix::unistd::UnlinkatFlags::RemoveDir).map_err(err)
}

/// A lock taken: the descriptor stays open (and locked) while this lives,
/// across the exec of systemctl.
pub type Held = Flock<OwnedFd>;

/// Mark a held lock close-on-exec, so that a child we fork and exec does
/// not keep holding it.
pub fn close_on_exec(held: &Held) -> io::Result<()> {
    use nix::fcntl::{fcntl, FcntlArg, FdFlag};
    use std::os::fd::AsFd;
    fcntl(held.as_fd(), FcntlArg::F_SETFD(FdFlag::FD_CLOEXEC))
        .map(drop)
        .map_err(err)
}

/// Non-blocking exclusive `flock(2)` (`LOCK_EX | LOCK_NB`), retried on
/// `EINTR`: `Err(fd)` back when another open file description holds it. The
/// caller polls with a deadline, so no caller can make us block forever.
pub fn try_flock_exclusive(fd: OwnedFd) -> io::Result<Result<Held, OwnedFd>> {
    try_flock(fd, FlockArg::LockExclusiveNonblock)
}

/// Non-blocking shared `flock(2)` (`LOCK_SH | LOCK_NB`), as
/// [`try_flock_exclusive`].
pub fn try_flock_shared(fd: OwnedFd) -> io::Result<Result<Held, OwnedFd>> {
    try_flock(fd, FlockArg::LockSharedNonblock)
}

fn try_flock(fd: OwnedFd, how: FlockArg) -> io::Result<Result<Held, OwnedFd>> {
    let mut fd = fd;
    loop {
        match Flock::lock(fd, how) {
            Ok(held) => return Ok(Ok(held)),
            Err((back, Errno::EINTR)) => fd = back,
            Err((back, Errno::EWOULDBLOCK)) => return Ok(Err(back)),
            Err((_, e)) => return Err(err(e)),
        }
    }
}

/// The names in directory `dir` (an `O_RDONLY | O_DIRECTORY` descriptor,
/// consumed), without `.` and `..`, in the order the file system returns them.
pub fn read_dir_names(dir: OwnedFd) -> io::Result<Vec<OsString>> {
    let mut stream = Dir::from_fd(dir).map_err(err)?;
    let mut names = Vec::new();
    for entry in stream.iter() {
        let name = entry.map_err(err)?.file_name().to_bytes().to_vec();
        if name != b"." && name != b".." {
            names.push(OsStr::from_bytes(&name).to_owned());
        }
    }
    Ok(names)
}
