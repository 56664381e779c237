//! Every libc call the CLI makes, each wrapped once, each `unsafe` with the
//! reason it is sound. The rest of the crate is safe Rust.

use std::ffi::{CString, OsStr};
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

fn c_path(p: &Path) -> io::Result<CString> {
    CString::new(p.as_os_str().as_bytes()).map_err(|_| io::ErrorKind::InvalidInput.into())
}

fn check(r: libc::c_int) -> io::Result<libc::c_int> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

/// Real uid and gid of the process.
pub fn real_ids() -> (u32, u32) {
    // SAFETY: getuid/getgid have no preconditions and cannot fail.
    unsafe { (libc::getuid(), libc::getgid()) }
}

/// `renameat2(RENAME_NOREPLACE)`: fails with EEXIST instead of replacing.
pub fn rename_noreplace(from: &Path, to: &Path) -> io::Result<()> {
    let (a, b) = (c_path(from)?, c_path(to)?);
    // SAFETY: two valid NUL-terminated paths that outlive the call;
    // renameat2 only reads them.
    let r = unsafe {
        libc::syscall(
            libc::SYS_renameat2,
            libc::AT_FDCWD,
            a.as_ptr(),
            libc::AT_FDCWD,
            b.as_ptr(),
            libc::RENAME_NOREPLACE,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// `access(2)` with the real ids: may we open `p` with `mode`?
pub fn access(p: &Path, mode: libc::c_int) -> bool {
    let Ok(c) = c_path(p) else { return false };
    // SAFETY: a valid NUL-terminated path; access only reads it.
    unsafe { libc::access(c.as_ptr(), mode) == 0 }
}

/// Non-blocking exclusive `flock`: `Ok(false)` when someone else holds it.
pub fn try_lock_exclusive(fd: BorrowedFd<'_>) -> io::Result<bool> {
    // SAFETY: flock on a live descriptor; no memory is involved.
    match check(unsafe { libc::flock(fd.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) }) {
        Ok(_) => Ok(true),
        Err(e) if matches!(e.raw_os_error(), Some(libc::EWOULDBLOCK | libc::EINTR)) => Ok(false),
        Err(e) => Err(e),
    }
}

/// `fchmod(2)`, best effort (the caller decides whether it matters).
pub fn fchmod(fd: BorrowedFd<'_>, mode: u32) -> io::Result<()> {
    // SAFETY: fchmod on a live descriptor; no memory is involved.
    check(unsafe { libc::fchmod(fd.as_raw_fd(), mode as libc::mode_t) }).map(drop)
}

/// Makes `cmd`'s child start a session of its own (`setsid` between fork
/// and exec): it has no controlling terminal, so it cannot reach ours.
pub fn in_new_session(cmd: &mut std::process::Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: the closure only calls setsid(2), which is async-signal-safe
    // and touches nothing of the parent's memory.
    unsafe {
        cmd.pre_exec(|| {
            if libc::setsid() < 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// Lifts the soft limit on open files to the hard one.
pub fn raise_fd_limit() {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit with a valid pointer to a local struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}

/// A set of signals.
pub fn signal_set(signals: &[libc::c_int]) -> libc::sigset_t {
    // SAFETY: sigemptyset initialises the zeroed local set, sigaddset fills
    // it; both only touch that set.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for &s in signals {
            libc::sigaddset(&mut set, s);
        }
        set
    }
}

/// Blocks `set` in the calling thread (and the threads it starts later).
pub fn block_signals(set: &libc::sigset_t) {
    // SAFETY: a valid sigset_t; no old mask is asked for.
    unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, set, std::ptr::null_mut()) };
}

/// Waits for one of the (blocked) signals in `set`.
pub fn wait_signal(set: &libc::sigset_t) -> io::Result<libc::c_int> {
    let mut sig: libc::c_int = 0;
    // SAFETY: a valid sigset_t and a pointer to a local int.
    match unsafe { libc::sigwait(set, &mut sig) } {
        0 => Ok(sig),
        e => Err(io::Error::from_raw_os_error(e)),
    }
}

/// Blocks until `fd` reports an error or hang-up (for a pipe: its reader
/// is gone). Returns the `revents` seen.
pub fn poll_hangup(fd: RawFd) -> io::Result<libc::c_short> {
    loop {
        let mut pfd = libc::pollfd {
            fd,
            events: 0,
            revents: 0,
        };
        // SAFETY: one valid pollfd on our stack.
        match check(unsafe { libc::poll(&mut pfd, 1, -1) }) {
            Ok(_) => return Ok(pfd.revents),
            Err(e) if e.raw_os_error() == Some(libc::EINTR) => continue,
            Err(e) => return Err(e),
        }
    }
}

/// An inotify instance.
pub struct Inotify(OwnedFd);

impl Inotify {
    pub fn new() -> io::Result<Inotify> {
        // SAFETY: plain syscall; on success we own the returned descriptor.
        let fd = check(unsafe { libc::inotify_init1(libc::IN_CLOEXEC) })?;
        // SAFETY: `fd` is a fresh descriptor nobody else owns.
        Ok(Inotify(unsafe { OwnedFd::from_raw_fd(fd) }))
    }

    /// Watches `dir` for `mask`; returns the watch descriptor.
    pub fn add_watch(&self, dir: &OsStr, mask: u32) -> io::Result<libc::c_int> {
        let c = c_path(Path::new(dir))?;
        // SAFETY: a live descriptor and a NUL-terminated path.
        check(unsafe { libc::inotify_add_watch(self.0.as_raw_fd(), c.as_ptr(), mask) })
    }

    pub fn rm_watch(&self, wd: libc::c_int) {
        // SAFETY: plain syscall on our descriptor and a watch id.
        unsafe { libc::inotify_rm_watch(self.0.as_raw_fd(), wd) };
    }

    /// Reads whole events into `buf` (retrying on EINTR); returns the length.
    pub fn read(&self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            // SAFETY: reading into a buffer we own, at most its length.
            let n = unsafe { libc::read(self.0.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
            if n >= 0 {
                return Ok(n as usize);
            }
            let e = io::Error::last_os_error();
            if e.raw_os_error() != Some(libc::EINTR) {
                return Err(e);
            }
        }
    }
}

/// One event from an inotify buffer at `off`: (event, name, next offset).
/// `None` when no whole event header is left.
pub fn inotify_event(buf: &[u8], off: usize) -> Option<(libc::inotify_event, &[u8], usize)> {
    let head = std::mem::size_of::<libc::inotify_event>();
    if off + head > buf.len() {
        return None;
    }
    // SAFETY: at least `head` bytes are in bounds at `off`; read_unaligned
    // copes with the byte buffer's alignment.
    let ev: libc::inotify_event = unsafe { std::ptr::read_unaligned(buf[off..].as_ptr().cast()) };
    let end = (off + head + ev.len as usize).min(buf.len());
    let name = buf[off + head..end]
        .split(|&b| b == 0)
        .next()
        .unwrap_or(&[]);
    Some((ev, name, off + head + ev.len as usize))
}
