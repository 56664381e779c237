//! The system calls the helper makes, each wrapped once.
//!
//! Most go through nix, whose wrappers are safe. The few nix does not cover
//! — `getauxval(AT_SECURE)`, `close_range`, the dispositions of every
//! signal up to `SIGRTMAX`, asking whether a raw descriptor is open, and
//! syslog's authpriv facility — use libc directly. This is the only module
//! of the helper allowed `unsafe` (`#![deny(unsafe_code)]` at the crate
//! root enforces it); every `unsafe` block says why it is sound.
#![allow(unsafe_code)]

pub mod fs;
pub mod process;
pub mod syslog;
