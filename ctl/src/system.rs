//! The process settings std cannot make and nix cannot make safely. Every
//! other system call goes through nix at its call site; this module is the
//! crate's only `unsafe` (the crate root denies it elsewhere).
#![allow(unsafe_code)]

use std::os::unix::process::CommandExt;

use nix::sys::resource::{getrlimit, setrlimit, Resource};

/// Makes `cmd`'s child start a session of its own (`setsid` between fork
/// and exec): it has no controlling terminal, so it cannot reach ours.
/// std offers a process group (`process_group`), not a session.
pub fn in_new_session(cmd: &mut std::process::Command) {
    // SAFETY: the closure only calls setsid(2), which is async-signal-safe,
    // allocates nothing and touches nothing of the parent's memory, as a
    // pre_exec closure must.
    unsafe {
        cmd.pre_exec(|| nix::unistd::setsid().map(drop).map_err(Into::into));
    }
}

/// Makes `cmd`'s child start with no signal blocked, whatever we block:
/// a blocked mask survives fork and exec, and a program that does not
/// reset it (sudo-rs does not) would never hear of its own child's end.
pub fn with_signals_unblocked(cmd: &mut std::process::Command) {
    // SAFETY: the closure only calls sigprocmask(2) (pthread_sigmask),
    // which is async-signal-safe, allocates nothing and touches nothing of
    // the parent's memory, as a pre_exec closure must.
    unsafe {
        cmd.pre_exec(|| {
            nix::sys::signal::sigprocmask(
                nix::sys::signal::SigmaskHow::SIG_SETMASK,
                Some(&nix::sys::signal::SigSet::empty()),
                None,
            )
            .map_err(Into::into)
        });
    }
}

/// Lifts the soft limit on open files to the hard one: a watcher or a
/// batch of thousands of instances holds a descriptor per directory.
pub fn raise_fd_limit() {
    if let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) {
        if soft < hard {
            let _ = setrlimit(Resource::RLIMIT_NOFILE, hard, hard);
        }
    }
}

/// Makes `cmd`'s child start with only stdin, stdout and stderr open: std
/// closes none of the descriptors it inherits without close-on-exec, and a
/// program run as another account must not get ours.
pub fn with_only_std_fds(cmd: &mut std::process::Command) {
    // SAFETY: the closure only calls close_range(2), a system call that is
    // async-signal-safe, allocates nothing and touches nothing of the
    // parent's memory, as a pre_exec closure must. CLOSE_RANGE_CLOEXEC
    // leaves them open until the exec, so std's own error pipe still works.
    unsafe {
        cmd.pre_exec(|| {
            if libc::close_range(
                3,
                libc::c_uint::MAX,
                libc::CLOSE_RANGE_CLOEXEC as libc::c_int,
            ) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// Whether `sig` is ignored (`SIG_IGN`), as `nohup` and a shell's `&`
/// leave hangups and interrupts: what is ignored must stay so.
pub fn is_ignored(sig: nix::sys::signal::Signal) -> bool {
    let mut old = std::mem::MaybeUninit::<libc::sigaction>::zeroed();
    // SAFETY: a null new action only reads the current one into `old`,
    // which is zeroed and large enough.
    let rc = unsafe { libc::sigaction(sig as libc::c_int, std::ptr::null(), old.as_mut_ptr()) };
    // SAFETY: sigaction filled it on success; zeroed memory is a valid
    // sigaction otherwise, and then it is not read.
    rc == 0 && unsafe { old.assume_init() }.sa_sigaction == libc::SIG_IGN
}

/// Ends this process by `sig` itself, its default action restored and
/// unblocked: a shell that ran us then sees the signal, not an exit
/// status (bash stops a loop on a child's SIGINT only so).
pub fn die_by(sig: nix::sys::signal::Signal) -> ! {
    use nix::sys::signal::{raise, sigprocmask, SigHandler, SigSet, SigmaskHow};
    // SAFETY: SIG_DFL is no handler of ours: nothing runs in signal context.
    let _ = unsafe { nix::sys::signal::signal(sig, SigHandler::SigDfl) };
    let mut set = SigSet::empty();
    set.add(sig);
    let _ = sigprocmask(SigmaskHow::SIG_UNBLOCK, Some(&set), None);
    let _ = raise(sig);
    std::process::exit(128 + sig as i32)
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::sys::signal::{signal, SigHandler, Signal};

    #[test]
    fn an_ignored_signal_is_told_from_one_left_to_its_default() {
        // SAFETY: SIG_IGN and SIG_DFL are no handlers of ours.
        unsafe {
            signal(Signal::SIGUSR1, SigHandler::SigIgn).unwrap();
            signal(Signal::SIGUSR2, SigHandler::SigDfl).unwrap();
        }
        assert!(is_ignored(Signal::SIGUSR1));
        assert!(!is_ignored(Signal::SIGUSR2));
    }
}
