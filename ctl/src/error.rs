//! The one error type of the CLI: every failure travels here as a value and
//! is turned into exactly one stderr line and one exit code by [`Error::code`]
//! and [`Error::message`].

use std::fmt;
use std::io;
use std::path::Path;

/// Exit codes (sysexits.h, plus 3 as `systemctl is-active` uses it).
pub mod code {
    pub const OK: u8 = 0;
    /// A systemctl run by the helper failed (its own message is shown).
    pub const FAILED: u8 = 1;
    /// `status NAMES…`: at least one named instance is not active.
    pub const NOT_ACTIVE: u8 = 3;
    pub const USAGE: u8 = unitgate_helper::exit::USAGE;
    pub const BAD_NAME: u8 = unitgate_helper::exit::DATA_ERR;
    pub const NO_INSTANCE: u8 = 66;
    pub const UNAVAILABLE: u8 = unitgate_helper::exit::UNAVAILABLE;
    pub const OS_ERR: u8 = unitgate_helper::exit::OS_ERR;
    pub const EXISTS: u8 = 73;
    pub const IO_ERR: u8 = 74;
    pub const BUSY: u8 = 75;
    pub const NO_PERM: u8 = unitgate_helper::exit::NO_PERM;
    pub const CONFIG: u8 = unitgate_helper::exit::CONFIG;
}

#[derive(Debug)]
pub enum Error {
    /// Malformed command line or arguments.
    Usage {
        what: String,
        hint: String,
    },
    /// An app or instance name that the helper's rules (or the app's
    /// `instance_pattern`) reject.
    BadName {
        kind: &'static str,
        name: String,
        rule: String,
    },
    NoSuchInstance {
        instance: String,
    },
    /// Some of the instances named to `status` are not active (no message:
    /// the table already says so, like `systemctl is-active`).
    NotActive,
    Exists {
        instance: String,
    },
    /// A lock could not be taken within `--wait`.
    Busy {
        what: String,
        waited_secs: u64,
    },
    /// The caller may not do this (filesystem permission, app callers).
    NotPermitted {
        what: String,
        hint: String,
    },
    /// Something on a path we were to act on could have been changed by
    /// another account (a planted link, a tree others can write), so
    /// unitgate refuses to act on it.
    Insecure {
        what: String,
        hint: String,
    },
    /// sudo refused to run the helper for this caller.
    SudoRefused {
        user: String,
        detail: String,
    },
    /// The helper ran and refused (its own exit code: 64, 65, 77, 78, 71).
    HelperRefused {
        code: u8,
        message: String,
    },
    /// systemctl (run by the helper) failed.
    Systemctl {
        code: i32,
        message: String,
    },
    /// A command run for the caller (e.g. the install command) failed.
    Failed {
        what: String,
        hint: String,
    },
    /// Something needed is not installed (helper, sudo, journalctl, D-Bus).
    Unavailable {
        what: String,
        hint: String,
    },
    /// The app config is missing or invalid.
    Config {
        what: String,
        hint: String,
    },
    /// A filesystem or OS failure that is not the caller's fault.
    Io {
        what: String,
        err: io::Error,
    },
    /// Reading systemd over D-Bus failed.
    Dbus {
        what: String,
    },
    /// `new-app` refused its options or could not write (its own code:
    /// 64 usage, 73 the app directory exists, 74 I/O).
    Scaffold {
        code: u8,
        message: String,
    },
    /// A bulk command where some instances failed; the per-instance lines
    /// have been printed already. Carries the first failure's code.
    Partial {
        code: u8,
        failed: usize,
        total: usize,
    },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

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
            Error::Unavailable { .. } | Error::Dbus { .. } => code::UNAVAILABLE,
            Error::Config { .. } => code::CONFIG,
            Error::Io { err, .. } => match err.kind() {
                io::ErrorKind::PermissionDenied => code::NO_PERM,
                _ => code::IO_ERR,
            },
            Error::Partial { code, .. } => *code,
            Error::Scaffold { code, .. } => *code,
        }
    }

    /// The one line printed after `unitgate: ` — what is wrong, then in
    /// parentheses what to do. `None` for errors already reported.
    pub fn message(&self) -> Option<String> {
        Some(match self {
            Error::Usage { what, hint } => format!("{what} ({hint})"),
            Error::BadName { kind, name, rule } => {
                format!("invalid {kind} name '{}' ({rule})", shown(name))
            }
            Error::NoSuchInstance { instance } => format!(
                "no such instance '{}' (create it with `unitgate init {}`, or see `unitgate status`)",
                shown(instance),
                shown(instance)
            ),
            Error::NotActive => return None,
            Error::Exists { instance } => format!(
                "instance '{}' already exists (pick another name, or `unitgate delete {}` first)",
                shown(instance),
                shown(instance)
            ),
            Error::Busy { what, waited_secs } => format!(
                "{what} is busy: another unitgate command holds its lock (waited {waited_secs} s; retry, or raise --wait)"
            ),
            Error::NotPermitted { what, hint } | Error::Insecure { what, hint } => {
                format!("{what} ({hint})")
            }
            Error::SudoRefused { user, detail } => format!(
                "not permitted by sudo: {} (add {user} to group unitgate: `usermod -aG unitgate {user}`, then log in again)",
                detail
            ),
            Error::HelperRefused { code, message } => {
                let hint = match *code {
                    code::NO_PERM => "ask an administrator to add you to the app's `callers`",
                    code::CONFIG => "an administrator must fix the app config in /etc/unitgate/apps/",
                    code::BAD_NAME => "instance names must match the app's instance_pattern",
                    code::UNAVAILABLE => "install systemd's systemctl at /usr/bin/systemctl",
                    code::BUSY => "another call holds the unit's lock; retry, or raise --wait",
                    _ => "this is a bug in unitgate if it repeats; please report it",
                };
                format!("the helper refused: {message} ({hint})")
            }
            Error::Systemctl { code, message } => format!(
                "systemctl failed with exit {code}: {message} (see `unitgate status` and `unitgate logs INSTANCE`)"
            ),
            Error::Unavailable { what, hint } | Error::Failed { what, hint } => format!("{what} ({hint})"),
            Error::Config { what, hint } => format!("{what} ({hint})"),
            Error::Io { what, err } => match err.kind() {
                io::ErrorKind::PermissionDenied => format!(
                    "{what}: {err} (run unitgate as the app's service account, and make sure it may access that path)"
                ),
                _ => format!("{what}: {err} (check the disk and the state directory, then retry)"),
            },
            Error::Dbus { what } => format!(
                "cannot read systemd over D-Bus: {what} (is systemd running and the system bus reachable?)"
            ),
            Error::Partial { failed, total, .. } => {
                format!("{failed} of {total} instances failed (see the lines above)")
            }
            Error::Scaffold { message, .. } => {
                format!("new-app: {message} (see `unitgate new-app --help`)")
            }
        })
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

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.message() {
            Some(m) => f.write_str(&m),
            None => write!(f, "exit {}", self.code()),
        }
    }
}

/// A user-supplied string made printable on one line: control characters
/// and non-ASCII are escaped, and long input is truncated.
pub fn shown(s: &str) -> String {
    const MAX: usize = 80;
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i >= MAX {
            out.push('…');
            break;
        }
        if c.is_ascii_graphic() || c == ' ' {
            out.push(c);
        } else {
            out.extend(c.escape_default());
        }
    }
    out
}

impl From<crate::scaffold::Error> for Error {
    fn from(e: crate::scaffold::Error) -> Error {
        Error::Scaffold {
            code: e.code,
            message: e.message,
        }
    }
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
    fn shown_escapes_and_truncates() {
        assert_eq!(shown("a\nb"), "a\\nb");
        assert_eq!(shown(&"x".repeat(100)).chars().count(), 81);
    }
}
