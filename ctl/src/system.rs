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
