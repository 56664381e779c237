//! The one error type. Every refusal is a variant named by its cause, with
//! its message (`<what> (<why>)`, the text after `unitgate-systemctl: ` on
//! stderr and the `reason` of the audit line) in its `#[error]`, every
//! untrusted byte escaped; `exit_code` is the only place that maps a cause
//! to an exit code.

use std::io;
use std::path::{Path, PathBuf};
use unitgate_policy::escape::quoted;
use unitgate_policy::{config, exit, trusted};

fn path(p: &Path) -> String {
    quoted(p.as_os_str().as_encoded_bytes())
}

fn q(bytes: &[u8]) -> String {
    quoted(bytes)
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Malformed command line (the detail says how).
    #[error("invalid usage ({0})")]
    Usage(String),
    /// An ACTION that is not one the helper knows.
    #[error("unknown action '{}' (expected enable, disable, restart, reset-failed, show, run, kill or limit)", q(.0))]
    UnknownAction(Vec<u8>),
    /// Fewer than 1 or more than 256 instances.
    #[error("wrong number of instances (got {0}, expected 1 to 256)")]
    InstanceCount(usize),
    /// An argument that is not UTF-8.
    #[error("invalid argument '{}' (not valid UTF-8)", q(.0))]
    NotUtf8(Vec<u8>),
    #[error("invalid app name '{}' (must match [a-z0-9][a-z0-9_-]{{0,63}})", q(.0))]
    InvalidApp(Vec<u8>),
    /// An instance failing the built-in rule or the policy's pattern.
    #[error("invalid instance name '{}' ({why})", q(name))]
    InvalidInstance { name: Vec<u8>, why: String },
    /// Started setuid/setgid or with file capabilities.
    #[error("refusing to run setuid or setgid (AT_SECURE is set; run through sudo)")]
    AtSecure,
    #[error("not running as root (effective uid {euid}; run through sudo)")]
    NotRoot { euid: u32 },
    /// `SUDO_UID`/`SUDO_GID` that is not a plain decimal id.
    #[error("cannot identify caller ({var} '{}' is not a decimal id)", q(value))]
    BadSudoId { var: &'static str, value: Vec<u8> },
    #[error("cannot identify caller (uid {0} has no passwd entry)")]
    UnknownUid(u32),
    /// Root without `SUDO_UID`, but `DOAS_USER` or `PKEXEC_UID` is set.
    #[error("invoked through {tool} (only sudo is supported; run it with sudo)")]
    NotThroughSudo { tool: &'static str },
    /// Real root without `SUDO_UID` whose audit login uid is a user's: su,
    /// doas, pkexec or a setuid wrapper, not sudo.
    #[error("root from uid {login_uid}'s login session without sudo (su, doas, pkexec or a wrapper; run it through sudo)")]
    RootFromUserSession { login_uid: u32 },
    /// `/proc/self/loginuid` could not be read or parsed (fails closed).
    #[error("cannot tell whose login session this root is (/proc/self/loginuid: {0}; run it through sudo)")]
    LoginUidUnknown(String),
    #[error("cannot identify caller ({0})")]
    CallerLookup(unitgate_policy::users::LookupError),
    #[error("caller '{}' may not drive app '{}' (neither the user nor one of its groups is in the policy's callers)", q(caller.as_bytes()), q(app.as_bytes()))]
    CallerNotAllowed { caller: String, app: String },
    #[error("action '{action}' is not allowed for app '{}' (not in the policy's actions)", q(app.as_bytes()))]
    ActionNotAllowed { action: &'static str, app: String },
    /// `enable` would take the app past its policy's `max_instances`.
    #[error("app {} allows at most {max} enabled instances; {enabled} already enabled, this call would add {adding} (disable some first, or raise max_instances in its policy)", q(app.as_bytes()))]
    TooManyEnabled {
        app: String,
        max: u32,
        enabled: usize,
        adding: usize,
    },
    /// A lock was still held by another call at the deadline.
    #[error(
        "busy: waited {waited} s {subject} (another call holds the lock of {}; retry)",
        path(lock)
    )]
    Busy {
        /// "for demo@x.service", "to enable instances of app demo".
        subject: String,
        lock: PathBuf,
        waited: u64,
    },
    /// The template's unit files changed while the call waited for its
    /// locks, so how it enables is no longer what was judged.
    #[error("the unit files of {}@.service changed during the call; retry", q(.0.as_bytes()))]
    Changed(String),
    /// The app's policy is missing, untrustworthy or invalid.
    #[error(transparent)]
    Policy(#[from] config::LoadError),
    /// A directory we must trust (the lock or unit directories) is not.
    #[error(transparent)]
    Untrusted(#[from] trusted::Error),
    /// systemctl or systemd-run is not where it must be.
    #[error("{} not found (cannot execute it)", path(.0))]
    ProgramMissing(PathBuf),
    /// A task id, `--env` pair or argument of `run`/`kill` that fails its
    /// rule.
    #[error("invalid {what} '{}' ({why})", q(value))]
    InvalidTask {
        what: &'static str,
        value: Vec<u8>,
        why: String,
    },
    /// `run`/`kill` of an app whose policy has no `[tasks]`.
    #[error("app '{}' runs no tasks (its policy has no [tasks] table)", q(.0.as_bytes()))]
    NoTasks(String),
    #[error("command '{}' is not one app '{}' may run (not in its [tasks] commands)", q(command), q(app.as_bytes()))]
    CommandNotAllowed { command: Vec<u8>, app: String },
    /// The command's file, or a directory above it, is not root's alone.
    #[error(
        "command '{}' is not a program only root can change ({why})",
        q(command)
    )]
    UntrustedCommand { command: Vec<u8>, why: String },
    /// A task of this id (service or scope) is running already.
    #[error("task '{}' is running already (pick another --name, or kill it first)", q(.0.as_bytes()))]
    TaskInUse(String),
    /// The child that runs systemd-run could not become the caller's or
    /// exec it.
    #[error("{0}")]
    Spawn(String),
    /// `limit` of an app whose policy has no `[limits]`, or does not allow
    /// `enable` and `disable`.
    #[error("app '{}' allows no instance limits (its policy needs a [limits] table, and enable and disable among its actions)", q(.0.as_bytes()))]
    NoLimits(String),
    /// `limit` would give one more instance kept properties than the app
    /// may have instances.
    #[error("app {} allows limits on at most {max} instances and {limited} have them (reset some with `limit --reset`, or raise max_instances)", q(app.as_bytes()))]
    TooManyLimited {
        app: String,
        max: u32,
        limited: usize,
    },
    /// A limit above the app's maximum.
    #[error("limit not allowed ({0})")]
    AboveMaximum(String),
    /// A task would run as root: tasks run as their caller, and root has
    /// systemd-run.
    #[error("tasks run as their caller, and the caller is root (run systemd-run directly)")]
    RootTask,
    /// `max_running` tasks of the app are running already.
    #[error("app '{}' runs at most {max} tasks at once and {running} are running (retry when one ends)", q(app.as_bytes()))]
    TooManyTasks {
        app: String,
        max: u64,
        running: usize,
    },
    /// Any other failing system call.
    #[error("{what} ({err})")]
    Os { what: String, err: io::Error },
}

impl Error {
    pub fn exit_code(&self) -> u8 {
        use Error::*;
        match self {
            Usage(_) | UnknownAction(_) | InstanceCount(_) => exit::USAGE,
            NotUtf8(_) | InvalidApp(_) | InvalidInstance { .. } => exit::DATA_ERR,
            AtSecure | NotRoot { .. } | BadSudoId { .. } | UnknownUid(_) | CallerLookup(_) => {
                exit::NO_PERM
            }
            NotThroughSudo { .. } | RootFromUserSession { .. } | LoginUidUnknown(_) => {
                exit::NO_PERM
            }
            CallerNotAllowed { .. } | ActionNotAllowed { .. } => exit::NO_PERM,
            TooManyEnabled { .. } | TooManyLimited { .. } | NoLimits(_) => exit::NO_PERM,
            Busy { .. } | Changed(_) => exit::TEMPFAIL,
            Policy(_) | Untrusted(_) => exit::CONFIG,
            ProgramMissing(_) => exit::UNAVAILABLE,
            InvalidTask { .. } => exit::DATA_ERR,
            NoTasks(_) | CommandNotAllowed { .. } | AboveMaximum(_) | RootTask => exit::NO_PERM,
            UntrustedCommand { .. } => exit::NO_PERM,
            TaskInUse(_) => exit::CANT_CREAT,
            Spawn(_) => exit::OS_ERR,
            TooManyTasks { .. } => exit::TEMPFAIL,
            Os { .. } => exit::OS_ERR,
        }
    }
}
