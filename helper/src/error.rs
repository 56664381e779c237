//! The one error type. Every refusal is a variant named by its cause, and
//! this file is the only place that turns one into a message and an exit code.

use crate::escape::quoted;
use crate::exit;
use std::io;
use std::path::{Path, PathBuf};

#[derive(Debug)]
pub enum Error {
    /// Malformed command line (the detail says how).
    Usage(String),
    /// An ACTION that is not one of the five.
    UnknownAction(Vec<u8>),
    /// Fewer than 1 or more than 256 instances.
    InstanceCount(usize),
    /// An argument that is not UTF-8.
    NotUtf8(Vec<u8>),
    InvalidApp(Vec<u8>),
    /// An instance failing the built-in rule or the policy's pattern.
    InvalidInstance {
        name: Vec<u8>,
        why: String,
    },
    /// Started setuid/setgid or with file capabilities.
    AtSecure,
    NotRoot {
        euid: u32,
    },
    /// `SUDO_UID`/`SUDO_GID` that is not a plain decimal id.
    BadSudoId {
        var: &'static str,
        value: Vec<u8>,
    },
    UnknownUid(u32),
    /// Root without `SUDO_UID`, but `DOAS_USER` or `PKEXEC_UID` is set.
    NotThroughSudo {
        tool: &'static str,
    },
    /// Real root without `SUDO_UID` whose audit login uid is a user's: su,
    /// doas, pkexec or a setuid wrapper, not sudo.
    RootFromUserSession {
        login_uid: u32,
    },
    /// `/proc/self/loginuid` could not be read or parsed (fails closed).
    LoginUidUnknown(String),
    CallerLookup(io::Error),
    CallerNotAllowed {
        caller: String,
        app: String,
    },
    ActionNotAllowed {
        action: &'static str,
        app: String,
    },
    /// `enable` would take the app past its policy's `max_instances`.
    TooManyEnabled {
        app: String,
        max: u32,
        enabled: usize,
        adding: usize,
    },
    /// A lock was still held by another call at the deadline.
    Busy {
        /// "for demo@x.service", "to enable instances of app demo".
        subject: String,
        lock: PathBuf,
        waited: u64,
    },
    /// A path component does not exist (turned into `PolicyMissing` by the
    /// policy loader, which knows the app).
    NotFound(PathBuf),
    PolicyMissing {
        app: String,
        path: PathBuf,
    },
    /// A file or directory we must trust is not root-owned, is writable by
    /// others, has the wrong type or size, or is a symlink loop.
    Insecure {
        path: PathBuf,
        why: String,
    },
    PolicyUnreadable {
        path: PathBuf,
        err: io::Error,
    },
    PolicyInvalid {
        path: PathBuf,
        why: String,
    },
    SystemctlMissing(PathBuf),
    /// Any other failing system call.
    Os {
        what: String,
        err: io::Error,
    },
}

fn path(p: &Path) -> String {
    quoted(p.as_os_str().as_encoded_bytes())
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
            TooManyEnabled { .. } => exit::NO_PERM,
            Busy { .. } => exit::TEMPFAIL,
            NotFound(_) | PolicyMissing { .. } | Insecure { .. } => exit::CONFIG,
            PolicyUnreadable { .. } | PolicyInvalid { .. } => exit::CONFIG,
            SystemctlMissing(_) => exit::UNAVAILABLE,
            Os { .. } => exit::OS_ERR,
        }
    }

    /// `<what> (<why>)`: the text after `unitgate-systemctl: ` on stderr and
    /// the `reason` of the audit line. Untrusted bytes are always escaped.
    pub fn message(&self) -> String {
        let (what, why) = self.what_why();
        format!("{what} ({why})")
    }

    fn what_why(&self) -> (String, String) {
        use Error::*;
        match self {
            Usage(detail) => ("invalid usage".into(), detail.clone()),
            UnknownAction(a) => (
                format!("unknown action '{}'", quoted(a)),
                "expected enable, disable, restart, reset-failed or show".into(),
            ),
            InstanceCount(n) => (
                "wrong number of instances".into(),
                format!("got {n}, expected 1 to 256"),
            ),
            NotUtf8(arg) => (
                format!("invalid argument '{}'", quoted(arg)),
                "not valid UTF-8".into(),
            ),
            InvalidApp(a) => (
                format!("invalid app name '{}'", quoted(a)),
                "must match [a-z0-9][a-z0-9_-]{0,63}".into(),
            ),
            InvalidInstance { name, why } => (
                format!("invalid instance name '{}'", quoted(name)),
                why.clone(),
            ),
            AtSecure => (
                "refusing to run setuid or setgid".into(),
                "AT_SECURE is set; run through sudo".into(),
            ),
            NotRoot { euid } => (
                "not running as root".into(),
                format!("effective uid {euid}; run through sudo"),
            ),
            BadSudoId { var, value } => (
                "cannot identify caller".into(),
                format!("{var} '{}' is not a decimal id", quoted(value)),
            ),
            UnknownUid(uid) => (
                "cannot identify caller".into(),
                format!("uid {uid} has no passwd entry"),
            ),
            CallerLookup(err) => ("cannot identify caller".into(), err.to_string()),
            NotThroughSudo { tool } => (
                format!("invoked through {tool}"),
                "only sudo is supported; run it with sudo".into(),
            ),
            RootFromUserSession { login_uid } => (
                format!("root from uid {login_uid}'s login session without sudo"),
                "su, doas, pkexec or a wrapper; run it through sudo".into(),
            ),
            LoginUidUnknown(why) => (
                "cannot tell whose login session this root is".into(),
                format!("/proc/self/loginuid: {why}; run it through sudo"),
            ),
            CallerNotAllowed { caller, app } => (
                format!(
                    "caller '{}' may not drive app '{}'",
                    quoted(caller.as_bytes()),
                    quoted(app.as_bytes())
                ),
                "neither the user nor one of its groups is in the policy's callers".into(),
            ),
            ActionNotAllowed { action, app } => (
                format!(
                    "action '{action}' is not allowed for app '{}'",
                    quoted(app.as_bytes())
                ),
                "not in the policy's actions".into(),
            ),
            TooManyEnabled {
                app,
                max,
                enabled,
                adding,
            } => (
                format!(
                    "app {} allows at most {max} enabled instances; {enabled} already enabled, this call would add {adding}",
                    quoted(app.as_bytes())
                ),
                "disable some first, or raise max_instances in its policy".into(),
            ),
            Busy {
                subject,
                lock,
                waited,
            } => (
                format!("busy: waited {waited} s {subject}"),
                format!("another call holds the lock of {}; retry", path(lock)),
            ),
            NotFound(p) => (format!("cannot open {}", path(p)), "not found".into()),
            PolicyMissing { app, path: p } => (
                format!("no policy for app {}", quoted(app.as_bytes())),
                format!("{}: not found", path(p)),
            ),
            Insecure { path: p, why } => {
                (format!("refusing insecure path {}", path(p)), why.clone())
            }
            PolicyUnreadable { path: p, err } => {
                (format!("cannot read policy {}", path(p)), err.to_string())
            }
            PolicyInvalid { path: p, why } => (format!("invalid policy {}", path(p)), why.clone()),
            SystemctlMissing(p) => (
                format!("systemctl not found at {}", path(p)),
                "cannot execute it".into(),
            ),
            Os { what, err } => (what.clone(), err.to_string()),
        }
    }
}
