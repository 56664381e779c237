//! Process state: credentials, descriptors, umask, cwd, signals, execve,
//! and the one child the helper ever waits for (a task's systemd-run).
//!
//! The calls nix has no safe wrapper for are here, each with the reason it
//! is sound.

use nix::sys::stat::Mode;
use std::ffi::{CString, OsStr};
use std::io;
use std::os::fd::{BorrowedFd, RawFd};

/// `getauxval(AT_SECURE)`: non-zero when the kernel started us setuid/setgid
/// or with file capabilities, i.e. when our caller is not who we run as.
pub fn at_secure() -> bool {
    // SAFETY: getauxval only reads the auxiliary vector; it takes no pointers.
    unsafe { libc::getauxval(libc::AT_SECURE) != 0 }
}

pub fn euid() -> u32 {
    nix::unistd::geteuid().as_raw()
}

pub fn uid() -> u32 {
    nix::unistd::getuid().as_raw()
}

pub fn gid() -> u32 {
    nix::unistd::getgid().as_raw()
}

/// Whether descriptor `fd` (0, 1 or 2) is open (`fcntl(F_GETFD)` succeeds).
pub fn fd_is_open(fd: RawFd) -> bool {
    // SAFETY: F_GETFD only queries the descriptor table; no pointers. A
    // closed number is an error, not undefined behaviour.
    unsafe { libc::fcntl(fd, libc::F_GETFD) != -1 }
}

/// Make standard descriptor `target` (0, 1 or 2) refer to the same file as
/// `src`.
pub fn dup2_std(src: BorrowedFd<'_>, target: RawFd) -> io::Result<()> {
    let done = match target {
        0 => nix::unistd::dup2_stdin(src),
        1 => nix::unistd::dup2_stdout(src),
        2 => nix::unistd::dup2_stderr(src),
        _ => Err(nix::errno::Errno::EBADF),
    };
    done.map_err(io::Error::from)
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
    let max = nix::unistd::sysconf(nix::unistd::SysconfVar::OPEN_MAX)
        .ok()
        .flatten()
        .filter(|&m| m > 0)
        .map_or(65536, |m| m.min(1 << 20));
    for fd in 3..max as RawFd {
        // SAFETY: as above; errors (EBADF) for unused numbers are expected.
        unsafe { libc::close(fd) };
    }
}

pub fn set_umask(mask: u32) {
    nix::sys::stat::umask(Mode::from_bits_truncate(mask));
}

pub fn chdir(path: &OsStr) -> io::Result<()> {
    nix::unistd::chdir(path).map_err(io::Error::from)
}

/// Unblock every signal and restore every disposition to `SIG_DFL`, so that
/// neither our caller's signal state nor Rust's runtime (which ignores
/// SIGPIPE) leaks into systemctl. nix names the standard signals only; the
/// real-time ones up to `SIGRTMAX` need libc.
pub fn reset_signals() {
    let _ = nix::sys::signal::sigprocmask(
        nix::sys::signal::SigmaskHow::SIG_SETMASK,
        Some(&nix::sys::signal::SigSet::empty()),
        None,
    );
    for sig in 1..=libc::SIGRTMAX() {
        if sig == libc::SIGKILL || sig == libc::SIGSTOP {
            continue;
        }
        // SAFETY: SIG_DFL is always a valid disposition and installs no
        // handler of ours; numbers reserved by libc return EINVAL, which is
        // harmless and ignored.
        unsafe { libc::signal(sig, libc::SIG_DFL) };
    }
}

/// `execve(2)`. Only returns on failure.
pub fn execve(path: &OsStr, argv: &[CString], envp: &[CString]) -> io::Error {
    let path = match CString::new(path.as_encoded_bytes()) {
        Ok(p) => p,
        Err(_) => return io::Error::from(io::ErrorKind::InvalidInput),
    };
    match nix::unistd::execve(&path, argv, envp) {
        Err(e) => io::Error::from(e),
        Ok(never) => match never {},
    }
}

/// What [`spawn`] runs, and as whose groups.
pub struct Spawn<'a> {
    pub program: &'a OsStr,
    pub argv: &'a [CString],
    pub envp: &'a [CString],
    /// The account whose groups (primary and supplementary, from the
    /// group database) the child takes before the exec.
    pub user: &'a str,
    pub uid: u32,
    /// stdin from /dev/null (else the caller's, through sudo).
    pub null_stdin: bool,
}

/// Every signal that can be blocked: the waiting parent takes each from
/// its queue, so none kills or stops it while it holds a lock or owes the
/// task's status (faults are still delivered: the kernel forces them).
fn all_signals() -> nix::sys::signal::SigSet {
    nix::sys::signal::SigSet::all()
}

/// The ones passed on to the child: what a caller or its supervisor sends
/// (sudo relays them); not SIGPIPE, SIGXFSZ or SIGXCPU, which the kernel
/// raises against the helper's own doings, nor SIGCHLD.
const FORWARDED: [nix::sys::signal::Signal; 10] = {
    use nix::sys::signal::Signal::*;
    [
        SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGALRM, SIGTSTP, SIGCONT, SIGWINCH,
    ]
};

/// A child of ours, not yet reaped.
pub struct Child(nix::unistd::Pid);

/// Why a child could not exec: the step that failed and its errno, sent
/// through a close-on-exec pipe (nothing arrives when the exec worked).
fn child_failure(step: u8, errno: i32) -> [u8; 5] {
    let e = errno.to_ne_bytes();
    [step, e[0], e[1], e[2], e[3]]
}

/// Fork and exec `s.program` in the child, after it took the groups of
/// `s.user` (root's own groups must not reach a program that becomes the
/// caller) and `PR_SET_NO_NEW_PRIVS` (nothing it execs gains privileges).
/// Every signal stays blocked in the parent, for [`Child::wait_forwarding`];
/// the child starts with none blocked. A child that could not exec is
/// reaped here and its reason returned as the error.
pub fn spawn(s: &Spawn<'_>) -> io::Result<Child> {
    use nix::sys::signal::{sigprocmask, SigSet, SigmaskHow};
    use nix::unistd::{fork, ForkResult};
    let invalid = || io::Error::from(io::ErrorKind::InvalidInput);
    let user = CString::new(s.user).map_err(|_| invalid())?;
    let program = CString::new(s.program.as_encoded_bytes()).map_err(|_| invalid())?;
    let gid = nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(s.uid))
        .ok()
        .flatten()
        .filter(|u| u.name == s.user)
        .map(|u| u.gid)
        .ok_or_else(|| io::Error::other(format!("no passwd entry for {}", s.user)))?;
    let null = if s.null_stdin {
        let flags = nix::fcntl::OFlag::O_RDONLY | nix::fcntl::OFlag::O_CLOEXEC;
        Some(nix::fcntl::open("/dev/null", flags, Mode::empty()).map_err(io::Error::from)?)
    } else {
        None
    };
    let (read, write) =
        nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(io::Error::from)?;
    sigprocmask(SigmaskHow::SIG_BLOCK, Some(&all_signals()), None).map_err(io::Error::from)?;
    // SAFETY: the helper is single-threaded (it starts no thread, and Rust's
    // runtime starts none), so the child may call anything the parent could.
    match unsafe { fork() }.map_err(io::Error::from)? {
        ForkResult::Parent { child } => {
            drop(write);
            let child = Child(child);
            let mut why = [0u8; 5];
            let got = nix::unistd::read(&read, &mut why).unwrap_or(0);
            if got == 0 {
                return Ok(child);
            }
            let _ = child.wait_forwarding();
            let errno = i32::from_ne_bytes([why[1], why[2], why[3], why[4]]);
            let step = match why[0] {
                b'g' => "cannot take the caller's groups",
                b'n' => "cannot set no_new_privs",
                b'i' => "cannot redirect stdin",
                b's' => "cannot unblock signals",
                _ => "cannot execute",
            };
            Err(io::Error::new(
                io::Error::from_raw_os_error(errno).kind(),
                format!("{step}: {}", io::Error::from_raw_os_error(errno)),
            ))
        }
        ForkResult::Child => {
            drop(read);
            let fail = |step: u8, e: nix::errno::Errno| -> ! {
                let _ = nix::unistd::write(&write, &child_failure(step, e as i32));
                // SAFETY: _exit ends the child without running the parent's
                // exit handlers or flushing its buffers a second time.
                unsafe { libc::_exit(127) }
            };
            if let Some(null) = &null {
                if let Err(e) = nix::unistd::dup2_stdin(null) {
                    fail(b'i', e);
                }
            }
            if let Err(e) = nix::unistd::initgroups(&user, gid) {
                fail(b'g', e);
            }
            if let Err(e) = nix::sys::prctl::set_no_new_privs() {
                fail(b'n', e);
            }
            if let Err(e) = sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None) {
                fail(b's', e);
            }
            let e = nix::unistd::execve(&program, s.argv, s.envp).unwrap_err();
            fail(b'e', e)
        }
    }
}

impl Child {
    /// The child's exit code if it ended (128 + signal if killed; 71 if it
    /// cannot be waited for, which only a bug of ours could cause).
    pub fn try_wait(&self) -> Option<u8> {
        use nix::sys::wait::{waitpid, WaitPidFlag};
        match waitpid(self.0, Some(WaitPidFlag::WNOHANG)) {
            Ok(status) => exit_code(status),
            Err(nix::errno::Errno::EINTR) => None,
            Err(_) => Some(unitgate_policy::exit::OS_ERR),
        }
    }

    /// Wait for the child to end, passing each [`FORWARDED`] signal we are
    /// sent on to it; its exit code (128 + signal if killed).
    pub fn wait_forwarding(self) -> u8 {
        let set = all_signals();
        loop {
            if let Some(code) = self.try_wait() {
                return code;
            }
            match set.wait() {
                Ok(sig) if FORWARDED.contains(&sig) => {
                    let _ = nix::sys::signal::kill(self.0, sig);
                }
                _ => {}
            }
        }
    }
}

fn exit_code(status: nix::sys::wait::WaitStatus) -> Option<u8> {
    use nix::sys::wait::WaitStatus;
    match status {
        WaitStatus::Exited(_, code) => Some(code as u8),
        WaitStatus::Signaled(_, sig, _) => Some(128u8.wrapping_add(sig as u8)),
        _ => None,
    }
}
