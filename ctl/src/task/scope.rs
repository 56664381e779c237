//! `run --scope`: the task is our descendant (sudo, the helper, then the
//! program in its scope) with our stdin, stdout and stderr, and it ends
//! when we are told to end. A signal a supervisor sends us (TERM, INT,
//! HUP, QUIT) is passed to sudo, but sudo (not sudo-rs) relays none that
//! comes from its parent's process group (ours: it takes them for keyboard
//! signals the command got already), so we also stop the task's scope
//! through the helper's `kill`, which needs no relay. If our parent dies
//! without a word (a BEAM killed outright), the kernel sends us SIGTERM
//! (`PR_SET_PDEATHSIG`; it fires when the parent *thread* ends) and the
//! same happens. Our exit status is the task's.

use std::ffi::OsString;
use std::time::Duration;

use nix::sys::signal::{kill, sigprocmask, SigSet, SigmaskHow, Signal};
use nix::unistd::Pid;

use crate::app::App;
use crate::error::{exit_of, Error, Result};
use crate::helper;

const RELAYED: [Signal; 4] = [
    Signal::SIGTERM,
    Signal::SIGINT,
    Signal::SIGHUP,
    Signal::SIGQUIT,
];

pub fn run(app: &App, id: &str, words: &[OsString], wait: Duration) -> Result<()> {
    let parent = nix::unistd::getppid();
    nix::sys::prctl::set_pdeathsig(Signal::SIGTERM)
        .map_err(|e| Error::io("cannot ask to be told of our parent's end", e.into()))?;
    let mut set = SigSet::empty();
    for s in RELAYED {
        set.add(s);
    }
    set.add(Signal::SIGCHLD);
    // Blocked before the child exists, so none is lost; the child starts
    // with none blocked.
    sigprocmask(SigmaskHow::SIG_BLOCK, Some(&set), None)
        .map_err(|e| Error::io("cannot block signals", e.into()))?;
    let mut cmd = helper::task_command(app, words, wait)?;
    let mut child = cmd
        .spawn()
        .map_err(|e| Error::io(format!("cannot run {}", helper::SUDO), e))?;
    let pid = Pid::from_raw(i32::try_from(child.id()).unwrap_or(i32::MAX));
    let wait_for_end = |child: &mut std::process::Child| {
        child
            .try_wait()
            .map_err(|e| Error::io("cannot wait for sudo", e))
    };
    // Our parent ended before we could ask to hear of it: end the task.
    let mut asked = (nix::unistd::getppid() != parent).then_some(Signal::SIGTERM);
    while asked.is_none() {
        if let Some(status) = wait_for_end(&mut child)? {
            return exit_of(status);
        }
        match set.wait() {
            Ok(Signal::SIGCHLD) | Err(_) => {}
            Ok(sig) => asked = Some(sig),
        }
    }
    // Told to stop. The scope may not exist yet (the helper waits for the
    // app's task lock, or systemd is creating it), so the stop is asked
    // again every second until the task has ended; the signal goes to sudo
    // too, which relays it where it can (sudo-rs does; sudo drops what
    // comes from its parent's process group).
    let _ = asked.map(|sig| kill(pid, sig));
    loop {
        stop_scope(app, id, wait);
        for _ in 0..10 {
            if let Some(status) = wait_for_end(&mut child)? {
                return exit_of(status);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// `kill ID` through the helper; its failure (the task may be gone
/// already) changes nothing: the task's end is still awaited.
fn stop_scope(app: &App, id: &str, wait: Duration) {
    let words: Vec<OsString> = vec!["kill".into(), id.into()];
    let _ = helper::task(app, &words, wait);
}
