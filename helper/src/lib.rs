//! unitgate-systemctl: the privileged helper.
//!
//! Runs as root through sudo, validates *app, action, instances* against a
//! root-owned policy, and execs `/usr/bin/systemctl`. Read `pipeline.rs`
//! first: it is the whole privileged path, top to bottom. What it shares
//! with the CLI (names, actions, the policy format, exit codes) is the
//! `unitgate-policy` crate; nothing here is anyone else's to call.
#![deny(unsafe_code)]

mod action;
mod audit;
mod caller;
mod control_dir;
mod enabled;
mod error;
mod guard;
mod limit_pipeline;
mod lock;
mod pipeline;
mod program;
mod running;
mod system;
mod task;
mod task_pipeline;
mod unit_file;

#[cfg(feature = "fuzzing")]
pub mod fuzzing;

use std::ffi::OsString;
use std::process::ExitCode;
use system::process;

/// The binary's entry point: the real process state and the compiled-in
/// paths. Nothing here can be redirected by a flag or an environment variable.
pub fn main() -> ExitCode {
    if let Err(e) = pipeline::sanitize_process() {
        return ExitCode::from(pipeline::refuse(None, &e));
    }
    let args: Vec<OsString> = std::env::args_os().skip(1).collect();
    // The only variables read, ever: the two sudo sets (trusted, see
    // caller.rs for why) and the two doas and pkexec set (which refuse).
    let sudo_uid = std::env::var_os("SUDO_UID");
    let sudo_gid = std::env::var_os("SUDO_GID");
    let doas_user = std::env::var_os("DOAS_USER");
    let pkexec_uid = std::env::var_os("PKEXEC_UID");
    let proc = pipeline::Process {
        args: &args,
        euid: process::euid(),
        invoker: caller::Invoker {
            uid: process::uid(),
            gid: process::gid(),
            sudo_uid: sudo_uid.as_deref(),
            sudo_gid: sudo_gid.as_deref(),
            doas_user: doas_user.as_deref(),
            pkexec_uid: pkexec_uid.as_deref(),
            login_uid: caller::LoginUid::read(),
        },
    };
    ExitCode::from(pipeline::run(&proc, &pipeline::Paths::system()))
}
