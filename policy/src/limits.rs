//! Bounds both programs apply to one helper call.

/// Most instances one call may name (one systemctl run, one daemon reload).
pub const MAX_INSTANCES: usize = 256;

/// `--wait`: how long a call waits for another call's locks by default, and
/// at most.
pub const DEFAULT_WAIT_SECS: u64 = 30;
pub const MAX_WAIT_SECS: u64 = 3600;
