//! An operator's command, run as the app's account.
//!
//! Operators (humans listed in an app's `callers`, usually as an `@group`)
//! drive instances whose state belongs to the app's service account. If
//! their own process opened that state, the account could steer it with
//! links or swapped entries, and act as the operator. So the whole command
//! runs as the account instead, through a sudo rule the app's installer
//! writes for the groups in its `operators=` (`%GROUP ALL=(ACCOUNT)
//! NOPASSWD: PREFIX/bin/unitgate`), and the operator's process only copies
//! its output (`relay`: a session of its own, pipes and `/dev/null`, control
//! characters dropped). The account's process never gets the operator's
//! terminal: one in the account's hands could be written to, or have
//! keystrokes pushed into it (`TIOCSTI`).

use std::ffi::OsString;
use std::process::{Command, Stdio};
use std::time::Duration;

use nix::sys::signal::{kill, sigprocmask, SigSet, SigmaskHow, Signal};
use nix::unistd::{Pid, Uid, User};

use crate::app::App;
use crate::error::{Error, Result};
use crate::helper::SUDO;
use crate::relay;
use crate::system;

/// How long the account's command has to end once the operator's was told
/// to: then the operator gets their prompt back whatever it does.
const ENDING_GRACE: Duration = Duration::from_secs(5);

/// What ends the operator's command, passed on to the account's.
const ENDING: [Signal; 4] = [
    Signal::SIGTERM,
    Signal::SIGINT,
    Signal::SIGHUP,
    Signal::SIGQUIT,
];

/// Runs this same command as `account` (the owner of `app`'s state) and
/// ends as it does. `app_given`: whether `--app` is among the arguments
/// already (otherwise it is added: sudo clears `UNITGATE_APP`).
pub fn run_as(account: u32, app: &App, app_given: bool) -> Result<()> {
    let user = account_of(account, app)?;
    let exe =
        std::env::current_exe().map_err(|e| Error::io("cannot find the unitgate executable", e))?;
    check_allowed(&user.name, &exe, &app.name)?;
    let ending = block_ending_signals()?;
    let running = relay::spawn(
        command_as(&user.name, &exe, app, app_given),
        relay::Out::Stdout,
    )
    .map_err(|e| Error::io(format!("cannot run {SUDO}"), e))?;
    let told = pass_on(
        ending,
        Pid::from_raw(i32::try_from(running.id()).unwrap_or(i32::MAX)),
    );
    let status = running
        .wait_to_end()
        .map_err(|e| Error::io(format!("cannot wait for {SUDO}"), e))?;
    if let Some(sig) = told.get() {
        system::die_by(*sig);
    }
    crate::error::exit_of(status)
}

fn account_of(uid: u32, app: &App) -> Result<User> {
    User::from_uid(Uid::from_raw(uid))
        .ok()
        .flatten()
        .ok_or_else(|| Error::NotPermitted {
            what: format!(
                "the state of app '{}' belongs to uid {uid}, which has no passwd entry",
                app.name
            ),
            hint: "fix the owner of the app's state directory (deploy/install.sh --app sets it)"
                .into(),
        })
}

/// `sudo -n -u ACCOUNT -- unitgate …`: this command's arguments, and
/// nothing of the operator's for the account to read in /proc — not the
/// directory they are in (a way into a tree closed to the account), not
/// their environment (sudo keeps DISPLAY, XAUTHORITY, KRB5CCNAME), not a
/// descriptor they left open.
fn command_as(account: &str, exe: &std::path::Path, app: &App, app_given: bool) -> Command {
    // The output comes through `relay`, which drops control characters:
    // colour would arrive as debris, so the account's process writes none.
    // `--for-operator`: it reads no cache the account could have forged.
    let mut args: Vec<OsString> = vec!["--color=never".into(), "--for-operator".into()];
    if !app_given {
        args.extend(["--app".into(), app.name.clone().into()]);
    }
    args.extend(without_our_options(std::env::args_os().skip(1)));
    let mut cmd = Command::new(SUDO);
    cmd.args(["-n", "-u", account, "--"])
        .arg(exe)
        .args(&args)
        .current_dir("/")
        .env_clear()
        .envs(kept_environment());
    system::with_signals_unblocked(&mut cmd);
    system::with_only_std_fds(&mut cmd);
    cmd
}

/// In a session of its own, sudo hears no keyboard signal and no hangup of
/// the operator's terminal: they are passed on, or an interrupted `watch`
/// would run on as the account. Blocked before any thread or child exists,
/// so none is lost; one ignored here (`nohup`, a script's `&`) stays
/// ignored.
fn block_ending_signals() -> Result<SigSet> {
    let mut ending = SigSet::empty();
    for sig in ENDING.into_iter().filter(|s| !system::is_ignored(*s)) {
        ending.add(sig);
    }
    sigprocmask(SigmaskHow::SIG_BLOCK, Some(&ending), None)
        .map_err(|e| Error::io("cannot block signals", e.into()))?;
    Ok(ending)
}

/// Told to end: the signal goes on to sudo (which relays it to the
/// command), and the account's command gets the time to end and say so,
/// its output still copied; then this process ends by that signal, as it
/// would have without us, whatever the account's process does with its
/// pipes. The signal, once one came.
fn pass_on(ending: SigSet, sudo: Pid) -> std::sync::Arc<std::sync::OnceLock<Signal>> {
    let told = std::sync::Arc::new(std::sync::OnceLock::<Signal>::new());
    let heard = std::sync::Arc::clone(&told);
    std::thread::spawn(move || {
        if let Ok(sig) = ending.wait() {
            let _ = heard.set(sig);
            let _ = kill(sudo, sig);
            std::thread::sleep(ENDING_GRACE);
            system::die_by(sig);
        }
    });
    told
}

/// The operator's environment the account's command gets: how to print.
fn kept_environment() -> Vec<(OsString, OsString)> {
    let mut kept: Vec<(OsString, OsString)> = std::env::vars_os()
        .filter(|(k, _)| {
            k.to_str()
                .is_some_and(|k| matches!(k, "LANG" | "LANGUAGE" | "TZ") || k.starts_with("LC_"))
        })
        .collect();
    kept.push(("PATH".into(), "/usr/local/bin:/usr/bin:/bin".into()));
    kept
}

/// Whether sudo lets the caller run `exe` as `account` without a password
/// (`sudo -n -l`, which runs nothing); a refusal says what to ask for.
fn check_allowed(account: &str, exe: &std::path::Path, app: &str) -> Result<()> {
    let allowed = Command::new(SUDO)
        .args(["-n", "-l", "-u", account, "--"])
        .arg(exe)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if allowed {
        return Ok(());
    }
    Err(Error::NotPermitted {
        what: format!(
            "the state of app '{app}' belongs to its account {account}: an operator's commands run as {account}, and sudo does not let you run {} as {account}",
            exe.display()
        ),
        hint: format!(
            "ask an administrator to list one of your groups in operators= of the app's install.conf and re-run deploy/install.sh --app, or run it as {account}"
        ),
    })
}

/// The arguments without what the handover sets itself, before a `--`: a
/// `--color` choice (`--color=never` goes first) and `--for-operator`
/// (either given twice would be a usage error).
fn without_our_options(args: impl IntoIterator<Item = OsString>) -> Vec<OsString> {
    let mut kept = Vec::new();
    let mut args = args.into_iter();
    while let Some(a) = args.next() {
        match a.to_str() {
            Some("--") => {
                kept.push(a);
                kept.extend(args);
                break;
            }
            Some("--color") => {
                args.next();
            }
            Some(s) if s.starts_with("--color=") || s == "--for-operator" => {}
            _ => kept.push(a),
        }
    }
    kept
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn our_own_options_are_dropped_before_the_end_of_options_only() {
        let args = |a: &[&str]| a.iter().map(OsString::from).collect::<Vec<_>>();
        assert_eq!(
            without_our_options(args(&["status", "--color", "always", "--json"])),
            args(&["status", "--json"])
        );
        assert_eq!(
            without_our_options(args(&["--color=always", "--for-operator", "status"])),
            args(&["status"])
        );
        assert_eq!(
            without_our_options(args(&["init", "a", "--", "--color"])),
            args(&["init", "a", "--", "--color"])
        );
    }
}
