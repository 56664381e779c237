//! Who is calling.
//!
//! Through sudo, the caller is `SUDO_UID` (with `SUDO_GID` as its primary
//! group). Those variables are trustworthy only because the shipped sudoers
//! rule has no `SETENV`: sudo resets the environment and sets them itself,
//! so a caller cannot choose them. `SUDO_USER` is deliberately not read; the
//! name comes from the passwd database. No other variable is looked at.

use crate::error::Error;
use crate::policy::CallerRule;
use crate::system::users;
use std::ffi::OsStr;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Caller {
    pub name: String,
    pub uid: u32,
    /// Names of the primary and supplementary groups.
    pub groups: Vec<String>,
}

/// What the process knows about its invoker: real ids and the two sudo vars.
#[derive(Clone, Debug, Default)]
pub struct Invoker<'a> {
    pub uid: u32,
    pub gid: u32,
    pub sudo_uid: Option<&'a OsStr>,
    pub sudo_gid: Option<&'a OsStr>,
}

impl Caller {
    /// Root may always drive every app; anyone else must be listed by name
    /// or through one of their groups.
    pub fn is_allowed(&self, rules: &[CallerRule]) -> bool {
        self.uid == 0
            || rules.iter().any(|r| match r {
                CallerRule::User(u) => *u == self.name,
                CallerRule::Group(g) => self.groups.contains(g),
            })
    }
}

/// Resolve the invoker to a user and its groups.
pub fn identify(inv: &Invoker<'_>) -> Result<Caller, Error> {
    let (uid, gid) = match inv.sudo_uid {
        // Root without sudo: nothing to look up.
        None if inv.uid == 0 => {
            return Ok(Caller {
                name: "root".into(),
                uid: 0,
                groups: Vec::new(),
            })
        }
        None => (inv.uid, Some(inv.gid)),
        Some(v) => (
            parse_id("SUDO_UID", v)?,
            inv.sudo_gid.map(|g| parse_id("SUDO_GID", g)).transpose()?,
        ),
    };
    let pw = users::user_by_uid(uid)
        .map_err(Error::CallerLookup)?
        .ok_or(Error::UnknownUid(uid))?;
    let gid = gid.unwrap_or(pw.gid);
    let mut groups = Vec::new();
    for g in users::group_list(&pw.name, gid).map_err(Error::CallerLookup)? {
        // A group whose entry cannot be read (e.g. a member list larger
        // than our 1 MiB limit) only cannot grant access: the caller may
        // still be allowed by name or by another group.
        if let Ok(Some(name)) = users::group_name(g) {
            groups.push(String::from_utf8_lossy(name.as_bytes()).into_owned());
        }
    }
    Ok(Caller {
        name: String::from_utf8_lossy(pw.name.as_bytes()).into_owned(),
        uid,
        groups,
    })
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
    use crate::exit;

    fn inv<'a>(sudo_uid: Option<&'a str>, sudo_gid: Option<&'a str>) -> Invoker<'a> {
        Invoker {
            uid: 0,
            gid: 0,
            sudo_uid: sudo_uid.map(OsStr::new),
            sudo_gid: sudo_gid.map(OsStr::new),
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
            err.message().contains("SUDO_UID '1;rm'"),
            "{}",
            err.message()
        );
        let err = identify(&inv(Some("1"), Some("x"))).unwrap_err();
        assert!(err.message().contains("SUDO_GID"), "{}", err.message());
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
}
