//! File-descriptor level file system calls: the `*at` family, `fstat`,
//! `flock`, directory listing.

use super::{check, cstring};
use std::ffi::{CStr, OsStr, OsString};
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, IntoRawFd, OwnedFd};
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

/// The names in directory `dir` (an `O_RDONLY | O_DIRECTORY` descriptor,
/// consumed), without `.` and `..`, in the order the file system returns them.
pub fn read_dir_names(dir: OwnedFd) -> io::Result<Vec<OsString>> {
    let raw = dir.into_raw_fd();
    // SAFETY: `raw` is an open directory descriptor we own; on success the
    // DIR stream owns it (closedir closes it), on failure we still do.
    let stream = unsafe { libc::fdopendir(raw) };
    if stream.is_null() {
        let err = io::Error::last_os_error();
        // SAFETY: fdopendir failed, so `raw` is still ours to close.
        unsafe { libc::close(raw) };
        return Err(err);
    }
    let mut names = Vec::new();
    let result = loop {
        // SAFETY: errno is thread-local; readdir signals errors only through
        // it, so it must be cleared first to tell an error from the end.
        unsafe { *libc::__errno_location() = 0 };
        // SAFETY: `stream` is a live DIR stream until closedir below.
        let entry = unsafe { libc::readdir(stream) };
        if entry.is_null() {
            let err = io::Error::last_os_error();
            break match err.raw_os_error() {
                Some(0) | None => Ok(()),
                Some(_) => Err(err),
            };
        }
        // SAFETY: readdir returned a valid entry whose d_name is a
        // NUL-terminated string, valid until the next readdir; copied now.
        let name = unsafe { CStr::from_ptr((*entry).d_name.as_ptr()) }.to_bytes();
        if name != b"." && name != b".." {
            names.push(OsString::from_vec(name.to_vec()));
        }
    };
    // SAFETY: `stream` is live and closed exactly once.
    unsafe { libc::closedir(stream) };
    result.map(|()| names)
}
