//! The user and group database (NSS): getpwuid_r, getgrgid_r, getgrouplist.

use std::ffi::{CStr, CString};
use std::io;

/// A passwd entry, reduced to what the helper needs.
#[derive(Clone, Debug)]
pub struct Passwd {
    pub name: CString,
    pub gid: u32,
}

/// Largest buffer we let NSS ask for: large group entries need a lot, but an
/// unbounded retry loop is not acceptable in a privileged process.
const MAX_BUF: usize = 1 << 20;

/// Runs one `get*_r` lookup with a caller-owned string buffer, growing the
/// buffer on ERANGE up to [`MAX_BUF`]. `call` gets the buffer, copies out
/// what it found before returning, and returns the call's error code.
fn nss_lookup(mut call: impl FnMut(&mut [u8]) -> libc::c_int) -> io::Result<()> {
    let mut buf = vec![0u8; 1024];
    loop {
        let rc = call(&mut buf);
        if rc == libc::ERANGE && buf.len() < MAX_BUF {
            buf.resize(buf.len() * 4, 0);
            continue;
        }
        if rc != 0 {
            return Err(io::Error::from_raw_os_error(rc));
        }
        return Ok(());
    }
}

/// Look up a user by uid. `Ok(None)` means "no such user".
pub fn user_by_uid(uid: u32) -> io::Result<Option<Passwd>> {
    let mut entry = None;
    nss_lookup(|buf| {
        let mut pwd = std::mem::MaybeUninit::<libc::passwd>::uninit();
        let mut result: *mut libc::passwd = std::ptr::null_mut();
        // SAFETY: every pointer refers to live, writable memory of the stated
        // size; getpwuid_r writes strings only into `buf`.
        let rc = unsafe {
            libc::getpwuid_r(
                uid,
                pwd.as_mut_ptr(),
                buf.as_mut_ptr().cast(),
                buf.len(),
                &mut result,
            )
        };
        if rc == 0 && !result.is_null() {
            // SAFETY: `result` is non-null, so `pwd` was filled in and its
            // `pw_name` points at a NUL-terminated string inside `buf`,
            // copied out before `buf` can change.
            entry = Some(unsafe {
                let pwd = pwd.assume_init();
                Passwd {
                    name: CStr::from_ptr(pwd.pw_name).to_owned(),
                    gid: pwd.pw_gid,
                }
            });
        }
        rc
    })?;
    Ok(entry)
}

/// The name of group `gid`, or `None` if it has no entry.
pub fn group_name(gid: u32) -> io::Result<Option<CString>> {
    let mut name = None;
    nss_lookup(|buf| {
        let mut grp = std::mem::MaybeUninit::<libc::group>::uninit();
        let mut result: *mut libc::group = std::ptr::null_mut();
        // SAFETY: as for getpwuid_r above.
        let rc = unsafe {
            libc::getgrgid_r(
                gid,
                grp.as_mut_ptr(),
                buf.as_mut_ptr().cast(),
                buf.len(),
                &mut result,
            )
        };
        if rc == 0 && !result.is_null() {
            // SAFETY: `result` is non-null, so `gr_name` points at a
            // NUL-terminated string inside `buf`, copied out at once.
            name = Some(unsafe { CStr::from_ptr(grp.assume_init().gr_name).to_owned() });
        }
        rc
    })?;
    Ok(name)
}

/// All groups of user `name`, including `gid` itself (`getgrouplist(3)`).
pub fn group_list(name: &CStr, gid: u32) -> io::Result<Vec<u32>> {
    let mut groups: Vec<libc::gid_t> = vec![0; 64];
    loop {
        let mut n = libc::c_int::try_from(groups.len()).unwrap_or(libc::c_int::MAX);
        // SAFETY: `name` is NUL-terminated; `groups` has room for `n` gids and
        // getgrouplist writes at most that many, updating `n`.
        let rc = unsafe { libc::getgrouplist(name.as_ptr(), gid, groups.as_mut_ptr(), &mut n) };
        let n = usize::try_from(n).unwrap_or(0);
        if rc >= 0 {
            groups.truncate(n);
            return Ok(groups);
        }
        // -1 means "too small"; n now holds the required count.
        if n <= groups.len() || n > MAX_BUF {
            return Err(io::Error::from_raw_os_error(libc::ERANGE));
        }
        groups.resize(n, 0);
    }
}
