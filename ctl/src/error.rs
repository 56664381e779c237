//! The one error type of the CLI: every failure travels here as a value and
//! is turned into exactly one stderr line ([`Error::message`]), one exit code
//! ([`Error::code`]) and, under `--json`, one `error` object with a stable
//! `kind` ([`Error::to_json`]).

use std::fmt;
use std::io;

use std::path::Path;
pub use unitgate_policy::escape::quoted;

/// Exit codes (sysexits.h, plus 3 as `systemctl is-active` uses it).
pub mod code {
    pub const OK: u8 = 0;
    /// A systemctl run by the helper failed (its own message is shown).
    pub const FAILED: u8 = 1;
    /// `status NAMES…`: at least one named instance is not running (or
    /// drifted, with `--fail-on-drift`).
    pub const NOT_ACTIVE: u8 = 3;
    /// `start`/`restart`: an instance did not come up, or did not stay up
    /// for the settle window.
    pub const NOT_RUNNING: u8 = 4;
    pub const USAGE: u8 = unitgate_policy::exit::USAGE;
    pub const BAD_NAME: u8 = unitgate_policy::exit::DATA_ERR;
    pub const NO_INSTANCE: u8 = 66;
    pub const UNAVAILABLE: u8 = unitgate_policy::exit::UNAVAILABLE;
    pub const OS_ERR: u8 = unitgate_policy::exit::OS_ERR;
    pub const EXISTS: u8 = 73;
    pub const IO_ERR: u8 = 74;
    pub const BUSY: u8 = 75;
    pub const NO_PERM: u8 = unitgate_policy::exit::NO_PERM;
    pub const CONFIG: u8 = unitgate_policy::exit::CONFIG;
    /// `run`: the task ran past its `--timeout` (as timeout(1) says it).
    pub const TASK_TIMEOUT: u8 = 124;
}

/// Every failure of the CLI, by cause. Its `Display` says what is wrong
/// (one line, untrusted parts escaped); [`Error::hint`] says what to do.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Malformed command line or arguments.
    #[error("{what}")]
    Usage { what: String, hint: String },
    /// An app or instance name that the helper's rules (or the app's
    /// `instance_pattern`) reject.
    #[error("invalid {kind} name '{}'", quoted(name))]
    BadName {
        kind: &'static str,
        name: String,
        rule: String,
    },
    #[error("no such instance '{}'", quoted(instance))]
    NoSuchInstance { instance: String },
    /// Some of the instances named to `status` are not active (no message:
    /// the table already says so, like `systemctl is-active`).
    #[error("some of the instances named are not active")]
    NotActive,
    #[error("instance '{}' already exists", quoted(instance))]
    Exists { instance: String },
    /// A lock could not be taken within `--wait`.
    #[error("{what} is busy: another unitgate command holds its lock (waited {waited_secs} s)")]
    Busy { what: String, waited_secs: u64 },
    /// The caller may not do this (filesystem permission, app callers).
    #[error("{what}")]
    NotPermitted { what: String, hint: String },
    /// Something on a path we were to act on could have been changed by
    /// another account (a planted link, a tree others can write), so
    /// unitgate refuses to act on it.
    #[error("{what}")]
    Insecure { what: String, hint: String },
    /// sudo refused to run the helper for this caller.
    #[error("not permitted by sudo: {detail}")]
    SudoRefused { user: String, detail: String },
    /// The helper ran and refused (its own exit code: 64, 65, 77, 78, 71).
    #[error("the helper refused: {message}")]
    HelperRefused { code: u8, message: String },
    /// systemctl (run by the helper) failed.
    #[error("systemctl failed with exit {code}: {message}")]
    Systemctl { code: i32, message: String },
    /// A started instance did not come up, or did not stay up for the
    /// settle window.
    #[error(
        "{instance} is {}/{}, not {wanted}{}",
        report.active_state,
        report.sub_state,
        report_detail(report)
    )]
    NotRunning {
        instance: String,
        /// What it was meant to be: `running`.
        wanted: &'static str,
        report: Box<UnitReport>,
    },
    /// stdout's reader went away: the command ends quietly (exit 0), as
    /// `head` and `grep -q` expect.
    #[error("stdout was closed")]
    ClosedPipe,
    /// An error the command's own document already shows (a `status` row
    /// of an instance that does not exist): its line on stderr and its
    /// exit code, but no second JSON document.
    #[error(transparent)]
    Shown(Box<Error>),
    /// A command run for the caller (e.g. the install command) failed.
    #[error("{what}")]
    Failed { what: String, hint: String },
    /// Something needed is not installed (helper, sudo, journalctl, D-Bus).
    #[error("{what}")]
    Unavailable { what: String, hint: String },
    /// The app config is missing or invalid.
    #[error("{what}")]
    Config { what: String, hint: String },
    /// A filesystem or OS failure that is not the caller's fault.
    #[error("{what}: {err}")]
    Io { what: String, err: io::Error },
    /// Reading systemd over D-Bus failed.
    #[error("cannot read systemd over D-Bus: {what}")]
    Dbus { what: String },
    /// The system bus was not up (no socket, or nobody listening on it)
    /// for all of `--wait`: a caller early in boot, or `dbus.socket`
    /// stopped. Kind `unavailable`, like any missing service.
    #[error("the system bus is not up: {detail} (waited {waited_secs} s)")]
    NoBus { detail: String, waited_secs: u64 },
    /// `new-app` refused its options or could not write (its own code:
    /// 64 usage, 73 the app directory exists, 74 I/O, 77 a directory
    /// others could change).
    #[error("new-app: {message}")]
    Scaffold { code: u8, message: String },
    /// A task that ended badly (`run` without `--detach`): its exit code
    /// is ours.
    #[error("{what}")]
    Task {
        code: u8,
        task: String,
        what: String,
    },
    /// A `run --scope` task's own exit status (its program, or sudo and the
    /// helper, already said why on stderr).
    #[error("exit status {0}")]
    Exit(u8),
    /// A bulk command where some instances failed; the per-instance lines
    /// have been printed already. Carries the first failure's code.
    #[error("{failed} of {total} instances failed")]
    Partial {
        code: u8,
        failed: usize,
        total: usize,
    },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// How an instance ended up when it was meant to run (or stop): systemd's
/// own account of it, for the error of a start or restart that did not
/// stick.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct UnitReport {
    pub active_state: String,
    pub sub_state: String,
    /// systemd's `Result` of the last run: `exit-code`, `signal`,
    /// `core-dump`, `timeout`, `start-limit-hit`, `oom-kill`, …
    pub result: Option<String>,
    /// The main process's exit status, when it exited.
    pub exit_status: Option<i32>,
    /// The signal that killed the main process, when one did.
    pub signal: Option<String>,
    /// Automatic restarts systemd made during the wait.
    pub restarts: Option<u32>,
    /// The unit's last journal lines, when the caller may read the journal.
    pub journal: Vec<String>,
    /// What systemctl said, when the call itself failed.
    pub systemctl: Option<String>,
}

impl Error {
    pub fn code(&self) -> u8 {
        match self {
            Error::Usage { .. } => code::USAGE,
            Error::BadName { .. } => code::BAD_NAME,
            Error::NoSuchInstance { .. } => code::NO_INSTANCE,
            Error::NotActive => code::NOT_ACTIVE,
            Error::Exists { .. } => code::EXISTS,
            Error::Busy { .. } => code::BUSY,
            Error::NotPermitted { .. } | Error::Insecure { .. } | Error::SudoRefused { .. } => {
                code::NO_PERM
            }
            Error::HelperRefused { code, .. } => *code,
            Error::Systemctl { .. } | Error::Failed { .. } => code::FAILED,
            Error::NotRunning { .. } => code::NOT_RUNNING,
            Error::Unavailable { .. } | Error::Dbus { .. } | Error::NoBus { .. } => {
                code::UNAVAILABLE
            }
            Error::Config { .. } => code::CONFIG,
            Error::Io { err, .. } => match err.kind() {
                io::ErrorKind::PermissionDenied => code::NO_PERM,
                _ => code::IO_ERR,
            },
            Error::Partial { code, .. } => *code,
            Error::Task { code, .. } | Error::Exit(code) => *code,
            Error::Scaffold { code, .. } => *code,
            Error::ClosedPipe => code::OK,
            Error::Shown(e) => e.code(),
        }
    }

    /// A stable name of the cause, for programs (`error.kind` under
    /// `--json`); the message may change, this may not.
    pub fn kind(&self) -> &'static str {
        match self {
            Error::Usage { .. } => "usage",
            Error::BadName { .. } => "bad-name",
            Error::NoSuchInstance { .. } => "no-such-instance",
            Error::NotActive => "not-active",
            Error::Exists { .. } => "exists",
            Error::Busy { .. } => "busy",
            Error::NotPermitted { .. } => "not-permitted",
            Error::Insecure { .. } => "insecure",
            Error::SudoRefused { .. } => "sudo-refused",
            Error::HelperRefused { .. } => "helper-refused",
            Error::Systemctl { .. } => "systemctl-failed",
            Error::NotRunning { wanted, .. } if *wanted == "running" => "not-running",
            Error::NotRunning { .. } => "not-stopped",
            Error::Failed { .. } => "command-failed",
            Error::Unavailable { .. } | Error::NoBus { .. } => "unavailable",
            Error::Config { .. } => "config",
            Error::Io { .. } => "io",
            Error::Dbus { .. } => "dbus",
            Error::Scaffold { .. } => "new-app",
            Error::Partial { .. } => "partial",
            Error::Task { .. } => "task-failed",
            Error::Exit(_) => "exit",
            Error::ClosedPipe => "closed-pipe",
            Error::Shown(e) => e.kind(),
        }
    }

    /// What to do about it; `None` for errors already reported another way
    /// (the status table, per-instance lines, a closed pipe).
    pub fn hint(&self) -> Option<String> {
        let s = |x: &str| Some(x.to_owned());
        match self {
            Error::Usage { hint, .. }
            | Error::NotPermitted { hint, .. }
            | Error::Insecure { hint, .. }
            | Error::Unavailable { hint, .. }
            | Error::Failed { hint, .. }
            | Error::Config { hint, .. } => Some(hint.clone()),
            Error::BadName { rule, .. } => Some(rule.clone()),
            Error::NoSuchInstance { instance } => Some(format!(
                "create it with `unitgate init {}`, or see `unitgate status`",
                quoted(instance)
            )),
            Error::Exists { instance } => Some(format!(
                "pick another name, or `unitgate delete {}` first",
                quoted(instance)
            )),
            Error::Busy { .. } => s("retry, or raise --wait"),
            Error::SudoRefused { user, .. } => Some(format!(
                "add {user} to group unitgate: `usermod -aG unitgate {user}`, then log in again"
            )),
            Error::HelperRefused { code, .. } => s(match *code {
                code::NO_PERM => "ask an administrator to add you to the app's `callers`",
                code::CONFIG => "an administrator must fix the app config in /etc/unitgate/apps/",
                code::BAD_NAME => "instance names must match the app's instance_pattern",
                code::UNAVAILABLE => "install systemd's systemctl at /usr/bin/systemctl",
                code::BUSY => "another call holds the unit's lock, or the app runs its most tasks at once; retry, or raise --wait",
                code::EXISTS => "pick another --name, or `unitgate kill` that task first",
                _ => "this is a bug in unitgate if it repeats; please report it",
            }),
            Error::Systemctl { .. } => s("see `unitgate status` and `unitgate logs INSTANCE`"),
            Error::NotRunning { instance, .. } => Some(format!("see `unitgate logs {instance}`")),
            Error::Io { err, .. } if err.raw_os_error() == Some(libc::EROFS) => s(
                "the file system is read-only here: if unitgate runs in a systemd unit with ProtectSystem=, add the app's state directory to that unit's ReadWritePaths=",
            ),
            Error::Io { err, .. } if err.kind() == io::ErrorKind::PermissionDenied => s(
                "run unitgate as the app's service account, and make sure it may access that path",
            ),
            Error::Io { .. } => s("check the disk and the state directory, then retry"),
            Error::Dbus { .. } => s("is systemd running and the system bus reachable?"),
            Error::NoBus { .. } => s(
                "is dbus.socket started? a unit that runs unitgate at boot needs After=dbus.socket; or raise --wait",
            ),
            Error::Scaffold { .. } => s("see `unitgate new-app --help`"),
            Error::Partial { .. } => s("see the lines above"),
            Error::Task { task, .. } => Some(format!("see `unitgate logs --task {task}`")),
            Error::Exit(_) => None,
            Error::Shown(e) => e.hint(),
            Error::NotActive | Error::ClosedPipe => None,
        }
    }

    /// What is wrong, and what to do about it; `None` for errors already
    /// reported another way.
    pub fn parts(&self) -> Option<(String, String)> {
        self.hint().map(|hint| (self.to_string(), hint))
    }

    /// The one line printed after `unitgate: ` — what is wrong, then in
    /// parentheses what to do. `None` for errors already reported.
    pub fn message(&self) -> Option<String> {
        self.parts().map(|(what, hint)| format!("{what} ({hint})"))
    }

    /// Whether `--json` output needs an `{"error": …}` document for it:
    /// not when the command's own document already tells (bulk results,
    /// a status table) or there is nothing to tell.
    pub fn needs_document(&self) -> bool {
        self.parts().is_some() && !matches!(self, Error::Partial { .. } | Error::Shown(_))
    }

    /// The `error` object of `--json` output.
    pub fn to_json(&self) -> serde_json::Value {
        let (message, hint) = self.parts().unwrap_or_default();
        let mut v = serde_json::json!({
            "kind": self.kind(),
            "code": self.code(),
            "message": message,
            "hint": hint,
        });
        if let Error::NotRunning { report, .. } = self {
            v["unit"] = serde_json::to_value(report).unwrap_or_default();
        }
        v
    }

    pub fn io(what: impl Into<String>, err: io::Error) -> Error {
        Error::Io {
            what: what.into(),
            err,
        }
    }

    pub fn io_path(verb: &str, path: &Path, err: io::Error) -> Error {
        Error::Io {
            what: format!("cannot {verb} {}", path.display()),
            err,
        }
    }

    pub fn usage(what: impl Into<String>, hint: impl Into<String>) -> Error {
        Error::Usage {
            what: what.into(),
            hint: hint.into(),
        }
    }

    pub fn config(path: &Path, what: impl fmt::Display) -> Error {
        Error::Config {
            what: format!("{}: {what}", path.display()),
            hint: "an administrator must fix the app config (see `man unitgate`, CONFIGURATION)"
                .into(),
        }
    }
}

/// `: exit status 127`, `: killed by SIGKILL`, `; systemd: start-limit-hit`.
fn report_detail(r: &UnitReport) -> String {
    let mut out = String::new();
    if let Some(sig) = &r.signal {
        out.push_str(&format!("; killed by {sig}"));
    } else if let Some(st) = r.exit_status.filter(|&s| s != 0) {
        out.push_str(&format!("; the main process exited with status {st}"));
    }
    if let Some(res) = r.result.as_deref().filter(|&r| r != "success") {
        out.push_str(&format!("; systemd's result: {res}"));
    }
    if let Some(n) = r.restarts.filter(|&n| n > 0) {
        out.push_str(&format!("; restarted {n} times"));
    }
    if let Some(m) = &r.systemctl {
        out.push_str(&format!("; systemctl said: {m}"));
    }
    out
}

/// Another program's end as ours, when we ran it on the caller's behalf
/// and it has said why already (a `run --scope` task, sudo and the helper;
/// an operator's command run as the account): its status, or 128 plus the
/// signal that killed it, as a shell reports it.
pub fn exit_of(status: std::process::ExitStatus) -> Result<()> {
    use std::os::unix::process::ExitStatusExt;
    let code = match (status.code(), status.signal()) {
        (Some(0), _) => return Ok(()),
        (Some(c), _) => u8::try_from(c).unwrap_or(1),
        (None, Some(sig)) => 128u8.saturating_add(u8::try_from(sig).unwrap_or(127)),
        (None, None) => 1,
    };
    Err(Error::Exit(code))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_follow_the_spec() {
        let cases: Vec<(Error, u8)> = vec![
            (Error::usage("x", "y"), 64),
            (
                Error::BadName {
                    kind: "instance",
                    name: "a/b".into(),
                    rule: "r".into(),
                },
                65,
            ),
            (
                Error::NoSuchInstance {
                    instance: "a".into(),
                },
                66,
            ),
            (
                Error::Exists {
                    instance: "a".into(),
                },
                73,
            ),
            (
                Error::Busy {
                    what: "instance a".into(),
                    waited_secs: 1,
                },
                75,
            ),
            (
                Error::SudoRefused {
                    user: "u".into(),
                    detail: "d".into(),
                },
                77,
            ),
            (
                Error::HelperRefused {
                    code: 78,
                    message: "m".into(),
                },
                78,
            ),
            (
                Error::Systemctl {
                    code: 5,
                    message: "m".into(),
                },
                1,
            ),
            (Error::NotActive, 3),
            (
                Error::NoBus {
                    detail: "No such file or directory".into(),
                    waited_secs: 0,
                },
                69,
            ),
            (
                Error::io("x", io::Error::from(io::ErrorKind::PermissionDenied)),
                77,
            ),
        ];
        for (err, code) in cases {
            assert_eq!(err.code(), code, "{err:?}");
        }
    }

    #[test]
    fn messages_are_one_line_and_say_what_to_do() {
        let errs = [
            Error::BadName {
                kind: "instance",
                name: "a\nb".into(),
                rule: "r".into(),
            },
            Error::SudoRefused {
                user: "web".into(),
                detail: "a password is required".into(),
            },
            Error::Busy {
                what: "instance a".into(),
                waited_secs: 30,
            },
        ];
        for e in errs {
            let m = e.message().unwrap();
            assert!(!m.contains('\n'), "{m}");
            assert!(m.ends_with(')'), "{m}");
        }
    }

    #[test]
    fn untrusted_names_are_escaped_in_the_one_line() {
        let e = Error::NoSuchInstance {
            instance: "a\n\u{1b}[31mb".into(),
        };
        let m = e.message().unwrap();
        assert!(!m.contains('\n') && !m.contains('\u{1b}'), "{m}");
        assert!(m.starts_with("no such instance 'a\\x0a\\x1b[31mb'"), "{m}");
    }
}
