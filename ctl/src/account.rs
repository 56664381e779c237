//! Who the CLI acts as when root runs it.
//!
//! Operators type `sudo unitgate …` out of habit. Root acting inside a tree
//! that a service account controls is the classic confused deputy: the
//! account plants a link, root writes or deletes through it. So before
//! touching an app's state, root becomes whoever controls the state
//! directory — the owner of the topmost directory on its path that is not
//! root's (that account can replace everything below it anyway) — and from
//! then on can do nothing that account could not. When root alone can
//! change the path, root stays root. When a directory on the way is
//! writable by a group or by everyone, nobody in particular controls it and
//! root refuses, saying what to run instead.

use std::ffi::CString;

use nix::unistd::{getresgid, getresuid, initgroups, setresgid, setresuid, Gid, Uid, User};

use crate::app::App;
use crate::error::{Error, Result};
use crate::walk::{self, Control};

/// What of root's environment the account's programs still see (besides
/// `LC_*` and `UNITGATE_*`): how to print, nothing more.
const KEPT_VARS: &[&str] = &["LANG", "LANGUAGE", "TERM", "TZ", "NO_COLOR"];
/// The search path the account's programs get.
const ACCOUNT_PATH: &str = "/usr/local/bin:/usr/bin:/bin";

/// The account root became, if it did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Became {
    pub user: String,
    pub uid: u32,
}

/// As root, become the account that controls `app`'s state directory (see
/// the module documentation). Must run before any thread is started: the
/// process's credentials change for good. A no-op for anyone but root.
pub fn act_for_state_of(app: &App) -> Result<Option<Became>> {
    if !nix::unistd::geteuid().is_root() {
        return Ok(None);
    }
    match walk::control_of(&app.state_dir)? {
        Control::Root => Ok(None),
        Control::User { uid, dir } => become_user(uid, &dir.display().to_string()).map(Some),
        Control::Shared { dir } => Err(Error::Insecure {
            what: format!(
                "the state directory {} is below {}, which a group or everyone can write, so root will not act in it",
                app.state_dir.display(),
                dir.display()
            ),
            hint: "run unitgate as the app's service account instead: sudo -u ACCOUNT unitgate …"
                .into(),
        }),
        Control::Fuse { dir } => Err(fuse_on_the_way(app, &dir)),
    }
}

/// Refuses an app whose state is reached through a FUSE file system: its
/// owner makes up the owners it reports, so whom to act as is unknown.
fn fuse_on_the_way(app: &App, dir: &std::path::Path) -> Error {
    Error::Insecure {
        what: format!(
            "the state directory {} is below {}, on a FUSE file system whose owners mean nothing, so unitgate will not act in it for another account",
            app.state_dir.display(),
            dir.display()
        ),
        hint: "run unitgate as the app's service account instead: sudo -u ACCOUNT unitgate …"
            .into(),
    }
}

/// For a caller who is neither root nor the account that controls `app`'s
/// state directory (an operator): that account's uid, found as root finds
/// it (`walk::control_of`, which stops at that account's directory, often
/// closed to others). The caller's own process must then not open the
/// state (see `handover`). It only chooses whom sudo is asked to run the
/// command as; sudo's rules decide whether it may. A FUSE file system on
/// the way (whose owner can claim to be anyone, the caller included)
/// refuses the caller rather than let them in.
pub fn other_controller_of(app: &App) -> Result<Option<u32>> {
    let me = nix::unistd::geteuid();
    if me.is_root() {
        return Ok(None);
    }
    match walk::control_of(&app.state_dir)? {
        Control::User { uid, .. } if uid != me.as_raw() => Ok(Some(uid)),
        Control::Fuse { dir } => Err(fuse_on_the_way(app, &dir)),
        Control::User { .. } | Control::Root | Control::Shared { .. } => Ok(None),
    }
}

fn become_user(uid: u32, dir: &str) -> Result<Became> {
    let lookup = User::from_uid(Uid::from_raw(uid))
        .map_err(|e| Error::io("cannot read the passwd database", e.into()))?;
    let user = lookup.ok_or_else(|| Error::Insecure {
        what: format!(
            "{dir} belongs to uid {uid}, which has no passwd entry, so root will not act in it"
        ),
        hint: "fix the owner of the app's state directory (deploy/install.sh --app sets it)".into(),
    })?;
    let fail = |what: &str, e: nix::Error| {
        Error::io(
            format!("cannot become {} (the owner of {dir}): {what}", user.name),
            e.into(),
        )
    };
    let name = CString::new(user.name.as_bytes()).map_err(|_| Error::Insecure {
        what: format!("the owner of {dir} has an unusable name"),
        hint: "fix the passwd entry".into(),
    })?;
    // Groups first: after the uid changes we may no longer set them.
    initgroups(&name, user.gid).map_err(|e| fail("initgroups", e))?;
    setresgid(user.gid, user.gid, user.gid).map_err(|e| fail("setresgid", e))?;
    setresuid(user.uid, user.uid, user.uid).map_err(|e| fail("setresuid", e))?;
    verify(user.uid, user.gid).map_err(|e| fail("verify", e))?;
    // Root's working directory may be one the account could not enter; a
    // process of the account's own would give it a way in
    // (/proc/PID/cwd), and the install command runs here.
    nix::unistd::chdir("/").map_err(|e| fail("chdir /", e))?;
    // For the programs we run (the install command): the account's own
    // home and name, and nothing else of root's environment (its tokens,
    // its PATH, its SUDO_* and XDG_* are not the account's to see).
    for (key, _) in std::env::vars_os() {
        let keep = key.to_str().is_some_and(|k| {
            KEPT_VARS.contains(&k) || k.starts_with("LC_") || k.starts_with("UNITGATE_")
        });
        if !keep {
            std::env::remove_var(&key);
        }
    }
    std::env::set_var("PATH", ACCOUNT_PATH);
    std::env::set_var("HOME", &user.dir);
    std::env::set_var("USER", &user.name);
    std::env::set_var("LOGNAME", &user.name);
    Ok(Became {
        user: user.name,
        uid,
    })
}

/// Every id really changed, and root cannot be regained.
fn verify(uid: Uid, gid: Gid) -> nix::Result<()> {
    let u = getresuid()?;
    let g = getresgid()?;
    let all_uid = [u.real, u.effective, u.saved].iter().all(|&x| x == uid);
    let all_gid = [g.real, g.effective, g.saved].iter().all(|&x| x == gid);
    if !all_uid
        || !all_gid
        || setresuid(Uid::from_raw(0), Uid::from_raw(0), Uid::from_raw(0)).is_ok()
    {
        return Err(nix::Error::EPERM);
    }
    Ok(())
}
