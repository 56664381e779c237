//! The user and group databases (NSS), through nix: its lookups grow their
//! buffer on ERANGE up to 1 MiB and no further, which a privileged process
//! needs (an unbounded retry loop is not acceptable there).

use nix::unistd::{getgrouplist, Gid, Group, Uid, User};
use std::ffi::CString;

#[derive(Debug, thiserror::Error)]
pub enum LookupError {
    #[error("uid {0} has no passwd entry")]
    NoSuchUser(u32),
    #[error("the user database: {0}")]
    Database(#[from] nix::Error),
    #[error("the user name is not a C string")]
    BadName,
}

/// A passwd entry, reduced to what unitgate needs.
#[derive(Clone, Debug)]
pub struct Passwd {
    pub name: String,
    pub gid: u32,
}

/// Look up a user by uid. `Ok(None)` means "no such user".
pub fn user_by_uid(uid: u32) -> Result<Option<Passwd>, LookupError> {
    Ok(User::from_uid(Uid::from_raw(uid))?.map(|u| Passwd {
        name: u.name,
        gid: u.gid.as_raw(),
    }))
}

/// The name of group `gid`, or `None` if it has no entry.
pub fn group_name(gid: u32) -> Result<Option<String>, LookupError> {
    Ok(Group::from_gid(Gid::from_raw(gid))?.map(|g| g.name))
}

/// All groups of user `name`, including `gid` itself (`getgrouplist(3)`).
pub fn group_list(name: &str, gid: u32) -> Result<Vec<u32>, LookupError> {
    let c = CString::new(name).map_err(|_| LookupError::BadName)?;
    Ok(getgrouplist(&c, Gid::from_raw(gid))?
        .into_iter()
        .map(Gid::as_raw)
        .collect())
}
