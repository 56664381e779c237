//! Who may drive an app: the policy's `callers` rules and the caller they
//! are judged against. How the helper learns who its caller is (sudo's
//! variables) is its own; the rules are shared, so the CLI can tell a caller
//! the policy does not list before it touches anything.

/// Who may drive the app: a user name, or every member of a group.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CallerRule {
    User(String),
    Group(String),
}

/// A user and its groups, as the user database says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Caller {
    pub name: String,
    pub uid: u32,
    /// Names of the primary and supplementary groups.
    pub groups: Vec<String>,
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

    /// The user with `uid` and its groups (`gid` as its primary group),
    /// from the passwd and group databases. A group whose entry cannot be
    /// read only cannot grant access: the caller may still be allowed by
    /// name or by another group.
    pub fn lookup(uid: u32, gid: Option<u32>) -> Result<Caller, crate::users::LookupError> {
        let pw =
            crate::users::user_by_uid(uid)?.ok_or(crate::users::LookupError::NoSuchUser(uid))?;
        let gid = gid.unwrap_or(pw.gid);
        let groups = crate::users::group_list(&pw.name, gid)?
            .into_iter()
            .filter_map(|g| crate::users::group_name(g).ok().flatten())
            .collect();
        Ok(Caller {
            name: pw.name,
            uid,
            groups,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listed_by_name_or_group_and_root_always() {
        let c = Caller {
            name: "daemon".into(),
            uid: 1,
            groups: vec!["nogroup".into()],
        };
        assert!(c.is_allowed(&[CallerRule::User("daemon".into())]));
        assert!(c.is_allowed(&[CallerRule::Group("nogroup".into())]));
        assert!(!c.is_allowed(&[
            CallerRule::User("alice".into()),
            CallerRule::Group("wheel".into())
        ]));
        assert!(!c.is_allowed(&[]));
        let root = Caller {
            name: "root".into(),
            uid: 0,
            groups: vec![],
        };
        assert!(root.is_allowed(&[]));
    }

    #[test]
    fn a_known_user_is_found_with_its_groups() {
        // `daemon` (uid 1) and group `nogroup` exist on Debian-like systems.
        let c = Caller::lookup(1, Some(65534)).unwrap();
        assert_eq!((c.name.as_str(), c.uid), ("daemon", 1));
        assert!(c.groups.iter().any(|g| g == "nogroup"), "{:?}", c.groups);
        let c = Caller::lookup(1, None).unwrap();
        assert!(c.groups.iter().any(|g| g == "daemon"), "{:?}", c.groups);
        assert!(matches!(
            Caller::lookup(3_999_999_999, None),
            Err(crate::users::LookupError::NoSuchUser(3_999_999_999))
        ));
    }
}
