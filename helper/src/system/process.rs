//! Process state: credentials, descriptors, umask, cwd, signals, execve.

use super::{check, cstring};
use std::ffi::{CString, OsStr};
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, RawFd};

/// `getauxval(AT_SECURE)`: non-zero when the kernel started us setuid/setgid
/// or with file capabilities, i.e. when our caller is not who we run as.
pub fn at_secure() -> bool {
    // SAFETY: getauxval only reads the auxiliary vector; it takes no pointers.
    unsafe { libc::getauxval(libc::AT_SECURE) != 0 }
}

pub fn euid() -> u32 {
    // SAFETY: geteuid cannot fail and takes no arguments.
    unsafe { libc::geteuid() }
}

pub fn uid() -> u32 {
    // SAFETY: getuid cannot fail and takes no arguments.
    unsafe { libc::getuid() }
}

pub fn gid() -> u32 {
    // SAFETY: getgid cannot fail and takes no arguments.
    unsafe { libc::getgid() }
}

/// Whether descriptor `fd` is open (`fcntl(F_GETFD)` succeeds).
pub fn fd_is_open(fd: RawFd) -> bool {
    // SAFETY: F_GETFD only queries the descriptor table; no pointers.
    unsafe { libc::fcntl(fd, libc::F_GETFD) != -1 }
}

/// `dup2(2)`: make `target` refer to the same file as `src`.
pub fn dup2(src: BorrowedFd<'_>, target: RawFd) -> io::Result<()> {
    // SAFETY: `src` is live for the borrow; dup2 takes no pointers. Replacing
    // `target` is the purpose of the call (only 0..=2 are ever passed).
    check(unsafe { libc::dup2(src.as_raw_fd(), target) }).map(drop)
}

/// Close every descriptor above 2. Uses `close_range(2)` and falls back to a
/// loop up to `RLIMIT_NOFILE` on kernels older than 5.9.
pub fn close_fds_above_2() {
    // SAFETY: close_range takes only integers. Nothing in this process holds
    // a descriptor above 2 yet (this runs first thing in main), so closing
    // them cannot invalidate a Rust-owned fd.
    let ret = unsafe { libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, 0u32) };
    if ret == 0 {
        return;
    }
    // SAFETY: sysconf takes no pointers.
    let max = unsafe { libc::sysconf(libc::_SC_OPEN_MAX) };
    let max = if max <= 0 { 65536 } else { max.min(1 << 20) };
    for fd in 3..max as RawFd {
        // SAFETY: as above; errors (EBADF) for unused numbers are expected.
        unsafe { libc::close(fd) };
    }
}

pub fn set_umask(mask: libc::mode_t) {
    // SAFETY: umask takes an integer and cannot fail.
    unsafe { libc::umask(mask) };
}

pub fn chdir(path: &OsStr) -> io::Result<()> {
    let c = cstring(path)?;
    // SAFETY: `c` is a valid NUL-terminated string for the call.
    check(unsafe { libc::chdir(c.as_ptr()) }).map(drop)
}

/// Unblock every signal and restore every disposition to `SIG_DFL`, so that
/// neither our caller's signal state nor Rust's runtime (which ignores
/// SIGPIPE) leaks into systemctl.
pub fn reset_signals() {
    let mut set = std::mem::MaybeUninit::<libc::sigset_t>::uninit();
    // SAFETY: sigemptyset initialises the set we point it at; sigprocmask
    // reads it and ignores the NULL old-set pointer.
    unsafe {
        libc::sigemptyset(set.as_mut_ptr());
        libc::sigprocmask(libc::SIG_SETMASK, set.as_ptr(), std::ptr::null_mut());
    }
    for sig in 1..=libc::SIGRTMAX() {
        if sig == libc::SIGKILL || sig == libc::SIGSTOP {
            continue;
        }
        // SAFETY: SIG_DFL is always a valid disposition; numbers reserved by
        // libc return EINVAL, which is harmless and ignored.
        unsafe { libc::signal(sig, libc::SIG_DFL) };
    }
}

/// `execve(2)`. Only returns on failure.
pub fn execve(path: &OsStr, argv: &[CString], envp: &[CString]) -> io::Error {
    let path = match cstring(path) {
        Ok(p) => p,
        Err(e) => return e,
    };
    let argv_ptrs = null_terminated(argv);
    let envp_ptrs = null_terminated(envp);
    // SAFETY: `path` and every element of `argv`/`envp` are NUL-terminated
    // C strings that outlive the call, and both pointer arrays end with NULL.
    unsafe { libc::execve(path.as_ptr(), argv_ptrs.as_ptr(), envp_ptrs.as_ptr()) };
    io::Error::last_os_error()
}

fn null_terminated(strings: &[CString]) -> Vec<*const libc::c_char> {
    let mut ptrs: Vec<*const libc::c_char> = strings.iter().map(|s| s.as_ptr()).collect();
    ptrs.push(std::ptr::null());
    ptrs
}
