//! Every libc call the helper makes, each wrapped exactly once.
//!
//! Nothing outside this module contains `unsafe`. Each wrapper turns the C
//! convention (-1 + errno, out-parameters, NUL-terminated strings) into a Rust
//! `Result` so that the rest of the helper is ordinary safe code.

pub mod fs;
pub mod process;
pub mod syslog;
pub mod users;

use std::ffi::{CString, OsStr};
use std::io;
use std::os::unix::ffi::OsStrExt;

/// Convert a path component or name to a C string; an interior NUL is an
/// `InvalidInput` error rather than a panic.
pub fn cstring(s: &OsStr) -> io::Result<CString> {
    CString::new(s.as_bytes()).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))
}

/// Map a libc return value of -1 to the current `errno`.
fn check(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}
