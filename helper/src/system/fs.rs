//! File-descriptor level file system calls: the `*at` family, `fstat`, `flock`.

use super::{check, cstring};
use std::ffi::{OsStr, OsString};
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStringExt;
use std::path::Path;

/// The parts of `struct stat` the helper looks at.
#[derive(Clone, Copy, Debug)]
pub struct Stat {
    pub uid: u32,
    pub mode: u32,
    pub size: u64,
}

impl Stat {
    fn file_type(&self) -> u32 {
        self.mode & libc::S_IFMT
    }
    pub fn is_dir(&self) -> bool {
        self.file_type() == libc::S_IFDIR
    }
    pub fn is_file(&self) -> bool {
        self.file_type() == libc::S_IFREG
    }
    pub fn is_symlink(&self) -> bool {
        self.file_type() == libc::S_IFLNK
    }
}

/// `open(2)` of an absolute path, used only for the trusted starting
/// directory and `/dev/null`.
pub fn open(path: &Path, flags: libc::c_int) -> io::Result<OwnedFd> {
    let c = cstring(path.as_os_str())?;
    // SAFETY: `c` is a valid NUL-terminated string that outlives the call;
    // the mode argument is ignored because O_CREAT is never passed here.
    let fd = check(unsafe { libc::open(c.as_ptr(), flags) })?;
    // SAFETY: `fd` was just returned by open(2), so we are its only owner.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `openat(2)` relative to `dir`. `mode` only matters with `O_CREAT`.
pub fn openat(
    dir: BorrowedFd<'_>,
    name: &OsStr,
    flags: libc::c_int,
    mode: libc::mode_t,
) -> io::Result<OwnedFd> {
    let c = cstring(name)?;
    // SAFETY: `dir` is a live descriptor for the duration of the borrow and
    // `c` is a valid NUL-terminated string; openat does not retain either.
    let fd = check(unsafe { libc::openat(dir.as_raw_fd(), c.as_ptr(), flags, mode) })?;
    // SAFETY: `fd` was just returned by openat(2), so we are its only owner.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `mkdirat(2)`; the process umask (022) still applies.
pub fn mkdirat(dir: BorrowedFd<'_>, name: &OsStr, mode: libc::mode_t) -> io::Result<()> {
    let c = cstring(name)?;
    // SAFETY: `dir` is live for the borrow and `c` is NUL-terminated.
    check(unsafe { libc::mkdirat(dir.as_raw_fd(), c.as_ptr(), mode) }).map(drop)
}

/// `fstat(2)` of an open descriptor (works on `O_PATH` descriptors too).
pub fn fstat(fd: BorrowedFd<'_>) -> io::Result<Stat> {
    let mut st = std::mem::MaybeUninit::<libc::stat>::uninit();
    // SAFETY: `st` points to writable memory large enough for a `struct stat`,
    // and `fd` is live for the borrow.
    check(unsafe { libc::fstat(fd.as_raw_fd(), st.as_mut_ptr()) })?;
    // SAFETY: fstat returned 0, so it fully initialised `st`.
    let st = unsafe { st.assume_init() };
    Ok(Stat {
        uid: st.st_uid,
        mode: st.st_mode,
        size: u64::try_from(st.st_size).unwrap_or(u64::MAX),
    })
}

/// Read the target of the symlink that `link` (an `O_PATH|O_NOFOLLOW`
/// descriptor) refers to, via `readlinkat(fd, "")`. Reading through the
/// descriptor guarantees we read the very link we opened and stat'ed.
pub fn readlink_fd(link: BorrowedFd<'_>) -> io::Result<OsString> {
    let mut buf = vec![0u8; libc::PATH_MAX as usize];
    // SAFETY: `buf` is writable for `buf.len()` bytes; the empty path is a
    // valid NUL-terminated string; `link` is live for the borrow.
    let n = unsafe {
        libc::readlinkat(
            link.as_raw_fd(),
            c"".as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    let n = usize::try_from(n).map_err(|_| io::Error::last_os_error())?;
    if n >= buf.len() {
        // Possibly truncated: refuse rather than follow a partial path.
        return Err(io::Error::from_raw_os_error(libc::ENAMETOOLONG));
    }
    buf.truncate(n);
    Ok(OsString::from_vec(buf))
}

/// Non-blocking exclusive `flock(2)` (`LOCK_EX | LOCK_NB`), retried on
/// `EINTR`: `Ok(false)` when another open file description holds it. The
/// caller polls with a deadline, so no caller can make us block forever.
pub fn try_flock_exclusive(fd: BorrowedFd<'_>) -> io::Result<bool> {
    loop {
        // SAFETY: `fd` is live for the borrow; flock takes no pointers.
        match check(unsafe { libc::flock(fd.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) }) {
            Ok(_) => return Ok(true),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
            Err(e) => return Err(e),
        }
    }
}
