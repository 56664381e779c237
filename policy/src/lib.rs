//! What unitgate's two programs agree on: the privileged helper
//! (`unitgate-systemctl`) and the CLI (`unitgate`) both judge names,
//! actions and callers by this crate, read the same policy format with the
//! same parser, and speak the same exit codes.
//!
//! It runs inside the root binary, so it stays small: nix (the user
//! database, descriptor-relative file calls), regex (the policy's
//! `instance_pattern`) and thiserror; no `unsafe` of its own.
#![forbid(unsafe_code)]

pub mod action;
pub mod caller;
pub mod config;
pub mod escape;
pub mod exit;
pub mod instance_limits;
pub mod limits;
pub mod name;
pub mod task;
pub mod toml;
pub mod trusted;
pub mod users;

#[cfg(any(test, feature = "testutil"))]
pub mod testutil;
