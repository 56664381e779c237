//! The system log, facility authpriv (where sudo and su log too). Through
//! libc: nix's facilities stop at `LOG_AUTH`, and authpriv is where an
//! audit trail of who asked root for what belongs.

use std::ffi::CString;

/// Open the log connection with our fixed identity and the pid in every line.
pub fn open() {
    // SAFETY: the ident is a `'static` C string, as openlog requires (glibc
    // keeps the pointer, not a copy).
    unsafe {
        libc::openlog(
            c"unitgate-systemctl".as_ptr(),
            libc::LOG_PID,
            libc::LOG_AUTHPRIV,
        )
    };
}

/// Log one line. The text is passed as an argument to a constant `"%s"`
/// format, never as the format itself.
pub fn log(warning: bool, line: &str) {
    let level = if warning {
        libc::LOG_WARNING
    } else {
        libc::LOG_NOTICE
    };
    // The audit line is escaped ASCII, so it has no NUL; be safe anyway.
    let text = CString::new(line.replace('\0', "\\x00")).unwrap_or_default();
    // SAFETY: both the format and the argument are valid NUL-terminated
    // strings for the duration of the call, and "%s" consumes exactly one.
    unsafe { libc::syslog(libc::LOG_AUTHPRIV | level, c"%s".as_ptr(), text.as_ptr()) };
}
