//! The judging path for the fuzzer (`helper/fuzz`, built with the
//! `fuzzing` feature): the only way in from outside besides `main`.

use crate::audit::{self, Record, Verdict};
use crate::caller::Invoker;
use crate::error::Error;
use crate::pipeline::{judge_with, parse_args, Process};
use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use unitgate_policy::limits::MAX_WAIT_SECS;
use unitgate_policy::{config, name};

/// Input: policy text, a NUL byte, then argv elements separated by NUL.
/// Runs the whole judging path (policy parsed from memory, no exec, no
/// locks) and checks the invariants of an accepted call; panics on a
/// violation (which is what the fuzzer looks for).
pub fn check_judging(data: &[u8]) {
    let mut parts = data.split(|&b| b == 0);
    let policy_text = parts.next().unwrap_or_default();
    let args: Vec<OsString> = parts.map(|p| OsString::from_vec(p.to_vec())).collect();
    let proc = Process {
        args: &args,
        euid: 0,
        invoker: Invoker::default(),
    };
    let Ok(raw) = parse_args(&args) else { return };
    assert!(raw.wait.as_secs() <= MAX_WAIT_SECS);
    let mut record = Record::default();
    let load = |_: &str| {
        config::parse(policy_text).map_err(|why| {
            Error::Policy(config::LoadError::Invalid {
                path: "fuzz".into(),
                why,
            })
        })
    };
    match judge_with(&raw, &proc, &mut record, load) {
        Err(e) => {
            let line = audit::line(&record, Verdict::Refused(e.exit_code(), &e.to_string()));
            assert!(!line.contains('\n'));
        }
        Ok(plan) => {
            let sep = plan
                .argv
                .iter()
                .position(|a| a == "--")
                .expect("a -- before the units");
            for unit in &plan.argv[sep + 1..] {
                assert!(!unit.starts_with('-'));
                let inst = unit
                    .split_once('@')
                    .and_then(|(_, rest)| rest.strip_suffix(".service"))
                    .expect("<prefix>@<instance>.service");
                assert!(name::is_valid_instance(inst));
            }
        }
    }
}
