//! Exit codes (sysexits.h), shared with the `unitgate` CLI.
//!
//! Any other code comes from systemctl itself: the helper execs it, so its
//! exit status is the helper's.

/// Success (also: `--check` found the call acceptable).
pub const OK: u8 = 0;
/// Malformed command line: wrong number of arguments, unknown option or action.
pub const USAGE: u8 = 64;
/// Invalid app or instance name (including non-UTF-8 arguments).
pub const DATA_ERR: u8 = 65;
/// `/usr/bin/systemctl` does not exist.
pub const UNAVAILABLE: u8 = 69;
/// An unexpected operating-system failure (e.g. taking a lock, exec).
pub const OS_ERR: u8 = 71;
/// A task of that id is running already (`run`).
pub const CANT_CREAT: u8 = 73;
/// Busy: a lock another call holds was not free within `--wait`; retry.
pub const TEMPFAIL: u8 = 75;
/// Not permitted: caller not allowed, action not allowed, not root, setuid,
/// not run through sudo, the app's `max_instances` reached.
pub const NO_PERM: u8 = 77;
/// Policy missing, invalid or insecure; insecure lock directory.
pub const CONFIG: u8 = 78;
