//! Who is calling.
//!
//! Only sudo (or sudo-rs, which sets the same variables) is trusted to say.
//! Through sudo, the caller is `SUDO_UID` (with `SUDO_GID` as its primary
//! group). Those variables are trustworthy only because the shipped sudoers
//! rule has no `SETENV`: sudo resets the environment and sets them itself,
//! so a caller cannot choose them. `SUDO_USER` is deliberately not read; the
//! name comes from the passwd database.
//!
//! Without `SUDO_UID` the process is judged as its real uid, and real root
//! must prove it is not a user who got root some other way (doas, pkexec,
//! su, a setuid wrapper), none of which the policy's `callers` can govern:
//! `DOAS_USER` or `PKEXEC_UID` in the environment (set by those tools, never
//! by sudo, which resets the environment) refuses, and so does an audit login
//! uid (`/proc/self/loginuid`, set by the kernel at login and kept across
//! su, doas, pkexec and sudo) belonging to anyone but root. Console or ssh
//! root logins have login uid 0, services and cron jobs have none.
//!
//! Root in a `sudo -s` shell still carries that sudo's `SUDO_UID`, so it is
//! judged as the user who ran sudo (failing closed), not as root.
//!
//! No other variable is looked at. The reads happen in `lib.rs::main`.

use crate::error::Error;
use crate::system::fs;
use nix::fcntl::OFlag;
use std::ffi::OsStr;
use std::io::Read;
use std::path::Path;
pub use unitgate_policy::caller::Caller;
use unitgate_policy::users::LookupError;

/// Where the kernel keeps the audit login uid of the calling process.
pub const LOGINUID_PATH: &str = "/proc/self/loginuid";

/// The audit login uid, as `/proc/self/loginuid` shows it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum LoginUid {
    /// `4294967295`: no login session (services, cron, early boot). The
    /// default only so that non-privileged users of [`Invoker`] (the CLI,
    /// tests, the fuzz target) need not read it; `lib.rs::main` always does.
    #[default]
    Unset,
    Uid(u32),
    /// Unreadable or malformed: root's origin is unknown, which fails closed.
    Unknown(String),
}

impl LoginUid {
    /// Read it from the kernel; any failure is `Unknown` (and fails closed
    /// for root without sudo), including a kernel built without audit.
    pub fn read() -> LoginUid {
        let flags = OFlag::O_RDONLY | OFlag::O_CLOEXEC | OFlag::O_NOFOLLOW;
        let fd = match fs::open(Path::new(LOGINUID_PATH), flags) {
            Ok(fd) => fd,
            Err(e) => return LoginUid::Unknown(e.to_string()),
        };
        let mut bytes = Vec::new();
        match std::fs::File::from(fd).take(32).read_to_end(&mut bytes) {
            Ok(_) => LoginUid::parse(&bytes),
            Err(e) => LoginUid::Unknown(e.to_string()),
        }
    }

    /// Parse the file's content: decimal digits, optionally one newline.
    pub fn parse(bytes: &[u8]) -> LoginUid {
        let digits = bytes.strip_suffix(b"\n").unwrap_or(bytes);
        let plain =
            !digits.is_empty() && digits.len() <= 10 && digits.iter().all(u8::is_ascii_digit);
        let value = std::str::from_utf8(digits)
            .ok()
            .filter(|_| plain)
            .and_then(|t| t.parse::<u32>().ok());
        match value {
            Some(u32::MAX) => LoginUid::Unset,
            Some(uid) => LoginUid::Uid(uid),
            None => LoginUid::Unknown(format!(
                "unexpected content '{}'",
                unitgate_policy::escape::quoted(bytes)
            )),
        }
    }
}

/// What the process knows about its invoker: real ids, the sudo variables,
/// the variables doas and pkexec set, and the audit login uid.
#[derive(Clone, Debug, Default)]
pub struct Invoker<'a> {
    pub uid: u32,
    pub gid: u32,
    pub sudo_uid: Option<&'a OsStr>,
    pub sudo_gid: Option<&'a OsStr>,
    pub doas_user: Option<&'a OsStr>,
    pub pkexec_uid: Option<&'a OsStr>,
    pub login_uid: LoginUid,
}

/// Resolve the invoker to a user and its groups.
pub fn identify(inv: &Invoker<'_>) -> Result<Caller, Error> {
    // Before SUDO_UID: a doas or pkexec that passes the caller's environment
    // on could also pass a forged SUDO_UID, and sudo never sets these two.
    if inv.doas_user.is_some() {
        return Err(Error::NotThroughSudo { tool: "doas" });
    }
    if inv.pkexec_uid.is_some() {
        return Err(Error::NotThroughSudo { tool: "pkexec" });
    }
    let (uid, gid) = match inv.sudo_uid {
        Some(v) => (
            parse_id("SUDO_UID", v)?,
            inv.sudo_gid.map(|g| parse_id("SUDO_GID", g)).transpose()?,
        ),
        None if inv.uid == 0 => return real_root(&inv.login_uid),
        None => (inv.uid, Some(inv.gid)),
    };
    Caller::lookup(uid, gid).map_err(|e| match e {
        LookupError::NoSuchUser(uid) => Error::UnknownUid(uid),
        other => Error::CallerLookup(other),
    })
}

/// Real root without sudo: only from root's own login session or from no
/// session at all.
fn real_root(login_uid: &LoginUid) -> Result<Caller, Error> {
    match login_uid {
        LoginUid::Unset | LoginUid::Uid(0) => Ok(Caller {
            name: "root".into(),
            uid: 0,
            groups: Vec::new(),
        }),
        LoginUid::Uid(uid) => Err(Error::RootFromUserSession { login_uid: *uid }),
        LoginUid::Unknown(why) => Err(Error::LoginUidUnknown(why.clone())),
    }
}

/// A uid/gid as sudo writes it: plain decimal, no sign, no leading zero,
/// no whitespace, below `u32::MAX` (which means "no id" to the kernel).
pub fn parse_id(var: &'static str, value: &OsStr) -> Result<u32, Error> {
    let bytes = value.as_encoded_bytes();
    let bad = || Error::BadSudoId {
        var,
        value: bytes.to_vec(),
    };
    let plain = !bytes.is_empty() && bytes.len() <= 10 && bytes.iter().all(u8::is_ascii_digit);
    if !plain || (bytes.len() > 1 && bytes[0] == b'0') {
        return Err(bad());
    }
    let text = std::str::from_utf8(bytes).map_err(|_| bad())?;
    text.parse::<u32>()
        .ok()
        .filter(|&id| id != u32::MAX)
        .ok_or_else(bad)
}

#[cfg(test)]
mod tests {
    use super::*;
    use unitgate_policy::caller::CallerRule;
    use unitgate_policy::exit;

    fn inv<'a>(sudo_uid: Option<&'a str>, sudo_gid: Option<&'a str>) -> Invoker<'a> {
        Invoker {
            uid: 0,
            gid: 0,
            sudo_uid: sudo_uid.map(OsStr::new),
            sudo_gid: sudo_gid.map(OsStr::new),
            ..Invoker::default()
        }
    }

    #[test]
    fn root_without_sudo_is_root() {
        let c = identify(&inv(None, None)).unwrap();
        assert_eq!((c.name.as_str(), c.uid), ("root", 0));
        assert!(c.is_allowed(&[]));
    }

    #[test]
    fn strict_ids() {
        for good in ["0", "1", "1001", "4294967294"] {
            assert!(parse_id("SUDO_UID", OsStr::new(good)).is_ok(), "{good}");
        }
        for bad in [
            "",
            " 1",
            "1 ",
            "+1",
            "-1",
            "01",
            "1e3",
            "0x10",
            "4294967295",
            "99999999999",
            "1\n",
            "١",
        ] {
            let err = parse_id("SUDO_UID", OsStr::new(bad)).unwrap_err();
            assert_eq!(err.exit_code(), exit::NO_PERM, "{bad:?}");
        }
    }

    #[test]
    fn garbage_sudo_uid_is_refused() {
        let err = identify(&inv(Some("1;rm"), None)).unwrap_err();
        assert_eq!(err.exit_code(), exit::NO_PERM);
        assert!(
            err.to_string().contains("SUDO_UID '1;rm'"),
            "{}",
            err.to_string()
        );
        let err = identify(&inv(Some("1"), Some("x"))).unwrap_err();
        assert!(err.to_string().contains("SUDO_GID"), "{}", err.to_string());
    }

    #[test]
    fn unknown_uid_is_refused() {
        let err = identify(&inv(Some("3999999999"), None)).unwrap_err();
        assert!(matches!(err, Error::UnknownUid(3999999999)), "{err:?}");
        assert_eq!(err.exit_code(), exit::NO_PERM);
    }

    #[test]
    fn sudo_user_by_name_and_group() {
        // `daemon` (uid 1) and group `nogroup` exist on Debian-like systems.
        let c = identify(&inv(Some("1"), Some("65534"))).unwrap();
        assert_eq!((c.name.as_str(), c.uid), ("daemon", 1));
        assert!(c.groups.iter().any(|g| g == "nogroup"), "{:?}", c.groups);
        assert!(c.is_allowed(&[CallerRule::User("daemon".into())]));
        assert!(c.is_allowed(&[CallerRule::Group("nogroup".into())]));
        assert!(!c.is_allowed(&[
            CallerRule::User("alice".into()),
            CallerRule::Group("wheel".into())
        ]));
        assert!(!c.is_allowed(&[]));
    }

    #[test]
    fn sudo_gid_defaults_to_passwd_group() {
        let c = identify(&inv(Some("1"), None)).unwrap();
        assert!(c.groups.iter().any(|g| g == "daemon"), "{:?}", c.groups);
        assert!(!c.groups.iter().any(|g| g == "nogroup"), "{:?}", c.groups);
    }

    #[test]
    fn root_through_sudo_is_allowed() {
        let c = identify(&inv(Some("0"), Some("0"))).unwrap();
        assert_eq!(c.name, "root");
        assert!(c.is_allowed(&[]));
    }

    /// The identity rules as a table: who ran it (real uid, environment,
    /// login uid) → caller name, or a piece of the refusal (always 77).
    #[test]
    fn identity_table() {
        use LoginUid::{Uid, Unset};
        let plain = |uid, login_uid| Invoker {
            uid,
            gid: uid,
            login_uid,
            ..Invoker::default()
        };
        let sudo = |sudo_uid, login_uid| Invoker {
            sudo_uid: Some(OsStr::new(sudo_uid)),
            login_uid,
            ..Invoker::default()
        };
        let doas = |sudo_uid: Option<&'static str>| Invoker {
            sudo_uid: sudo_uid.map(OsStr::new),
            doas_user: Some(OsStr::new("alice")),
            login_uid: Uid(1000),
            ..Invoker::default()
        };
        let pkexec = |sudo_uid: Option<&'static str>| Invoker {
            sudo_uid: sudo_uid.map(OsStr::new),
            pkexec_uid: Some(OsStr::new("1000")),
            ..Invoker::default()
        };
        let unknown = LoginUid::Unknown("gone".into());
        let rows: Vec<(&str, Invoker<'_>, Result<&str, &str>)> = vec![
            ("root service or cron", plain(0, Unset), Ok("root")),
            ("root console or ssh login", plain(0, Uid(0)), Ok("root")),
            (
                "root via su from uid 1000",
                plain(0, Uid(1000)),
                Err("root from uid 1000's"),
            ),
            (
                "root, loginuid unreadable",
                plain(0, unknown),
                Err("loginuid: gone"),
            ),
            ("doas", doas(None), Err("invoked through doas")),
            (
                "doas passing a forged SUDO_UID",
                doas(Some("0")),
                Err("through doas"),
            ),
            ("pkexec", pkexec(None), Err("invoked through pkexec")),
            (
                "pkexec passing a forged SUDO_UID",
                pkexec(Some("0")),
                Err("through pkexec"),
            ),
            (
                "sudo from a service account",
                sudo("1", Unset),
                Ok("daemon"),
            ),
            (
                "sudo from a login session",
                sudo("1", Uid(1000)),
                Ok("daemon"),
            ),
            (
                "root's own sudo from uid 1000's session",
                sudo("0", Uid(1000)),
                Ok("root"),
            ),
            (
                "root in a `sudo -s` shell of daemon",
                sudo("1", Uid(1)),
                Ok("daemon"),
            ),
            ("not root, no sudo", plain(1, Uid(1)), Ok("daemon")),
        ];
        for (what, inv, want) in rows {
            match (identify(&inv), want) {
                (Ok(c), Ok(name)) => assert_eq!(c.name, name, "{what}"),
                (Err(e), Err(msg)) => {
                    assert_eq!(e.exit_code(), exit::NO_PERM, "{what}");
                    assert!(e.to_string().contains(msg), "{what}: {}", e);
                    assert!(e.to_string().contains("sudo"), "{what}: {}", e);
                }
                (got, want) => panic!("{what}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn login_uid_parsing() {
        assert_eq!(LoginUid::parse(b"4294967295"), LoginUid::Unset);
        assert_eq!(LoginUid::parse(b"0"), LoginUid::Uid(0));
        assert_eq!(LoginUid::parse(b"1000"), LoginUid::Uid(1000));
        assert_eq!(LoginUid::parse(b"1000\n"), LoginUid::Uid(1000));
        for bad in [
            &b""[..],
            b"-1",
            b" 0",
            b"0 ",
            b"1e3",
            b"4294967296",
            b"x",
            b"\n",
            b"1\n\n",
        ] {
            assert!(
                matches!(LoginUid::parse(bad), LoginUid::Unknown(_)),
                "{bad:?}"
            );
        }
        // This process's own value parses wherever the kernel has audit.
        if Path::new(LOGINUID_PATH).exists() {
            let read = LoginUid::read();
            assert!(!matches!(read, LoginUid::Unknown(_)), "{read:?}");
        }
    }
}
