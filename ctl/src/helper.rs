//! Invoking the privileged helper, and telling its failures apart.
//!
//! The helper is found next to our own install
//! (`<dir of unitgate>/../libexec/unitgate/unitgate-systemctl`), never
//! through `PATH`. It always runs as
//! `sudo -n -- <helper> --wait SECONDS APP ACTION INSTANCE...`, root
//! included: the helper trusts no elevation but sudo's (a root shell
//! reached through su or doas is told so), and sudo tells it who called.
//! Instances are sent in batches of at most [`MAX_BATCH`] (the helper's
//! limit), so a bulk `start` of 500 instances is two calls, not 500.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::app::App;
use crate::error::{code, Error, Result};

/// Most instances the helper accepts per call.
pub const MAX_BATCH: usize = unitgate_policy::limits::MAX_INSTANCES;
pub const SUDO: &str = "/usr/bin/sudo";
const HELPER_NAME: &str = "unitgate-systemctl";

/// The helper's own actions (and their command-line names).
pub use unitgate_policy::action::Action;

/// Where the helper is installed relative to this executable.
pub fn helper_path() -> Result<PathBuf> {
    let exe =
        std::env::current_exe().map_err(|e| Error::io("cannot find the unitgate executable", e))?;
    let exe = exe.canonicalize().unwrap_or(exe);
    let prefix = exe
        .parent()
        .and_then(|bin| bin.parent())
        .ok_or_else(|| Error::Unavailable {
            what: format!("cannot derive the install prefix from {}", exe.display()),
            hint: "install unitgate with deploy/install.sh".into(),
        })?;
    Ok(prefix.join("libexec/unitgate").join(HELPER_NAME))
}

/// How one helper call ended.
#[derive(Debug)]
pub struct Outcome {
    pub status: i32,
    pub stderr: String,
}

/// Runs `action` on `instances` in batches of [`MAX_BATCH`]. Stops at the
/// first refused batch (sudo or helper refusal: the rest would be refused
/// too); a systemctl failure in one batch does not stop the others (the
/// caller checks each instance's resulting state). Returns the first
/// systemctl failure, if any.
/// `wait` bounds how long the helper waits for a unit lock another call
/// holds (it then exits 75, busy).
pub fn run(
    app: &App,
    action: Action,
    instances: &[String],
    wait: Duration,
) -> Result<Option<Error>> {
    refuse_no_new_privs()?;
    let helper = installed_helper()?;
    let mut first_failure = None;
    for batch in instances.chunks(MAX_BATCH) {
        let out = call(&helper, app, action, batch, wait)?;
        if out.status == 0 {
            continue;
        }
        // Only a failure needs our user name (for a sudo refusal's hint).
        match classify(&out, &current_user_name()) {
            Ok(()) => {}
            Err(e @ Error::Systemctl { .. }) => {
                first_failure.get_or_insert(e);
            }
            Err(e) => return Err(e),
        }
    }
    Ok(first_failure)
}

/// sudo cannot raise the privileges of a process with `no_new_privs` set;
/// it would fail with a message about setuid bits. Said plainly instead.
fn refuse_no_new_privs() -> Result<()> {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let set = status
        .lines()
        .find_map(|l| l.strip_prefix("NoNewPrivs:"))
        .is_some_and(|v| v.trim() == "1");
    if !set {
        return Ok(());
    }
    Err(Error::NotPermitted {
        what: "sudo cannot work in this process: it runs with no_new_privs set (NoNewPrivileges=yes, or a setting that implies it, in the unit that started it)".into(),
        hint: "let the calling unit gain privileges: no NoNewPrivileges=, and none of the settings systemd.exec(5) says imply it for a non-root User= (SystemCallFilter=, RestrictNamespaces=, ProtectKernelTunables=, ...)".into(),
    })
}

/// `sudo -n -- <helper> --wait SECONDS APP`, the words after it to be
/// added. The child starts with no signal blocked, whatever we block (a
/// waiting `run --scope` blocks several): sudo-rs would otherwise never
/// hear of its own child's end.
fn sudo_helper(helper: &PathBuf, app: &App, wait: Duration) -> Command {
    let mut cmd = Command::new(SUDO);
    cmd.arg("-n").arg("--").arg(helper);
    cmd.arg("--wait").arg(
        wait.as_secs()
            .min(unitgate_policy::limits::MAX_WAIT_SECS)
            .to_string(),
    );
    cmd.arg(&app.name);
    crate::system::with_signals_unblocked(&mut cmd);
    cmd
}

/// `sudo -n -- <helper> --wait SECONDS APP WORDS...` for a task's `run`
/// or `kill` (WORDS starts with the action), with our stdio.
pub fn task_command(app: &App, words: &[std::ffi::OsString], wait: Duration) -> Result<Command> {
    refuse_no_new_privs()?;
    let mut cmd = sudo_helper(&installed_helper()?, app, wait);
    cmd.args(words);
    Ok(cmd)
}

/// A task's `run` (without `--scope`) or `kill`: the helper's answer, its
/// refusals told apart as for instances; a failure of what the helper
/// ran (systemd-run, systemctl stop) is 1 with its message.
pub fn task(app: &App, words: &[std::ffi::OsString], wait: Duration) -> Result<()> {
    task_answer(app, words, wait).map_err(|e| task_error(words, e))
}

/// The helper's answer to a task's words, a failure of what it ran left
/// as [`Error::Systemctl`] for the caller to look into.
pub fn task_answer(app: &App, words: &[std::ffi::OsString], wait: Duration) -> Result<()> {
    let mut cmd = task_command(app, words, wait)?;
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let out = cmd.output().map_err(|e| sudo_error(&e))?;
    let out = Outcome {
        status: out.status.code().unwrap_or(-1),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    classify(&out, &current_user_name())
}

/// The error [`task`] reports for a [`task_answer`] error.
pub fn task_error(words: &[std::ffi::OsString], e: Error) -> Error {
    match e {
        Error::Systemctl { code, message } => Error::Failed {
            what: format!(
                "the helper's {} failed with exit {code}: {message}",
                words[0].to_string_lossy()
            ),
            hint: "see `unitgate tasks`, and the task's journal".into(),
        },
        other => other,
    }
}

fn installed_helper() -> Result<PathBuf> {
    let helper = helper_path()?;
    if !helper.exists() {
        return Err(Error::Unavailable {
            what: format!("the helper {} is not installed", helper.display()),
            hint: "install unitgate with deploy/install.sh".into(),
        });
    }
    Ok(helper)
}

fn sudo_error(e: &std::io::Error) -> Error {
    match e.kind() {
        std::io::ErrorKind::NotFound => Error::Unavailable {
            what: format!("{SUDO} is not installed"),
            hint: "install sudo (apt-get install sudo), then deploy/install.sh".into(),
        },
        _ => Error::io(
            format!("cannot run {SUDO}"),
            std::io::Error::new(e.kind(), e.to_string()),
        ),
    }
}

fn call(
    helper: &PathBuf,
    app: &App,
    action: Action,
    batch: &[String],
    wait: Duration,
) -> Result<Outcome> {
    let mut cmd = sudo_helper(helper, app, wait);
    cmd.arg(action.name()).args(batch);
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let out = cmd.output().map_err(|e| sudo_error(&e))?;
    Ok(Outcome {
        status: out.status.code().unwrap_or(-1),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    })
}

/// How sudo's own messages start: sudo's, and sudo-rs's.
const SUDO_PREFIXES: [&str; 2] = ["sudo:", "sudo-rs:"];

/// Tells a sudo refusal, a helper refusal and a systemctl failure apart.
///
/// - sudo refuses with exit 1 and a line starting `sudo:` (sudo-rs, which
///   may be `/usr/bin/sudo`, as on Ubuntu 25.10: `sudo-rs:`);
/// - the helper refuses with 64, 65, 69, 71, 73 (a task id in use), 75
///   (busy), 77 or 78 and one line starting `unitgate-systemctl:`;
/// - anything else non-zero is systemctl's own failure.
pub fn classify(out: &Outcome, user: &str) -> Result<()> {
    if out.status == 0 {
        return Ok(());
    }
    let lines: Vec<&str> = out
        .stderr
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let sudo_line = lines
        .iter()
        .find_map(|l| SUDO_PREFIXES.iter().find_map(|p| l.strip_prefix(p)));
    if let Some(detail) = sudo_line {
        if out.status == 1 {
            return Err(Error::SudoRefused {
                user: user.to_owned(),
                detail: detail.trim().to_owned(),
            });
        }
    }
    let helper_line = lines
        .iter()
        .find_map(|l| l.strip_prefix("unitgate-systemctl:"))
        .map(str::trim);
    if let Some(message) = helper_line {
        let status = u8::try_from(out.status).unwrap_or(code::OS_ERR);
        if [
            code::USAGE,
            code::BAD_NAME,
            code::UNAVAILABLE,
            code::OS_ERR,
            code::BUSY,
            code::NO_PERM,
            code::CONFIG,
            code::EXISTS,
        ]
        .contains(&status)
        {
            return Err(Error::HelperRefused {
                code: status,
                message: message.to_owned(),
            });
        }
    }
    if out.status < 0 {
        return Err(Error::Systemctl {
            code: out.status,
            message: "killed by a signal".into(),
        });
    }
    let message = lines
        .iter()
        .rev()
        .take(3)
        .rev()
        .copied()
        .collect::<Vec<_>>()
        .join(" / ");
    Err(Error::Systemctl {
        code: out.status,
        message: if message.is_empty() {
            "no message".into()
        } else {
            crate::error::quoted(&message)
        },
    })
}

pub fn current_user_name() -> String {
    crate::app::caller()
        .map(|c| c.name)
        .unwrap_or_else(|_| "this user".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn out(status: i32, stderr: &str) -> Outcome {
        Outcome {
            status,
            stderr: stderr.into(),
        }
    }

    #[test]
    fn sudo_refusal_is_77_and_says_to_join_the_group() {
        let e = classify(&out(1, "sudo: a password is required\n"), "web").unwrap_err();
        assert_eq!(e.code(), 77);
        let m = e.message().unwrap();
        assert!(
            m.contains("not permitted by sudo") && m.contains("usermod -aG unitgate web"),
            "{m}"
        );
    }

    /// sudo-rs (0.2.5 on Debian 13) words its refusals its own way, after
    /// its own name: as `/usr/bin/sudo` they are still sudo's refusals.
    #[test]
    fn sudo_rs_refusals_are_sudo_refusals() {
        for text in [
            "sudo-rs: I'm sorry web. I'm afraid I can't do that\n",
            "sudo-rs: interactive authentication is required\n",
        ] {
            let e = classify(&out(1, text), "web").unwrap_err();
            assert_eq!(e.code(), 77, "{text}");
            let m = e.message().unwrap();
            assert!(m.contains("not permitted by sudo: "), "{m}");
            assert!(!m.contains("sudo-rs:"), "the prefix is not repeated: {m}");
            assert!(m.contains("usermod -aG unitgate web"), "{m}");
        }
        // systemctl's own lines never start with either name.
        let e = classify(&out(1, "Failed to start demo@a.service\n"), "web").unwrap_err();
        assert_eq!(e.code(), 1);
    }

    #[test]
    fn helper_refusals_keep_their_code_and_message() {
        for (code, text) in [
            (
                77,
                "unitgate-systemctl: caller 'bob' may not drive app 'demo' (neither ...)",
            ),
            (
                78,
                "unitgate-systemctl: invalid policy /etc/unitgate/apps/demo.toml (line 3)",
            ),
            (65, "unitgate-systemctl: invalid instance name 'x.y' (...)"),
            (64, "unitgate-systemctl: invalid usage (...)"),
        ] {
            let e = classify(&out(code, text), "web").unwrap_err();
            assert_eq!(i32::from(e.code()), code);
            let m = e.message().unwrap();
            assert!(m.starts_with("the helper refused:"), "{m}");
        }
    }

    #[test]
    fn systemctl_failures_are_1_even_when_systemctl_exits_1() {
        let e = classify(&out(1, "Job for demo@a.service failed because the control process exited with error code.\n"), "web")
            .unwrap_err();
        assert_eq!(e.code(), 1);
        assert!(e.message().unwrap().starts_with("systemctl failed"));
        // A systemctl exit that collides with a helper code, without the
        // helper's prefix, is still systemctl's.
        assert_eq!(
            classify(&out(77, "Failed to enable unit\n"), "web")
                .unwrap_err()
                .code(),
            1
        );
        assert!(classify(&out(0, "Created symlink ...\n"), "web").is_ok());
    }
}
