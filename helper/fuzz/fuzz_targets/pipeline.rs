//! Input: policy text, a NUL byte, then argv elements separated by NUL.
//! Runs the whole judging path (policy parsed from memory, no exec, no
//! locks) and checks the invariants of an accepted call.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use unitgate_helper::audit::{self, Record, Verdict};
use unitgate_helper::caller::Invoker;
use unitgate_helper::error::Error;
use unitgate_helper::pipeline::{judge_with, parse_args, Process, MAX_WAIT_SECS};
use unitgate_helper::{name, policy};

fuzz_target!(|data: &[u8]| {
    let mut parts = data.split(|&b| b == 0);
    let policy_text = parts.next().unwrap_or_default();
    let args: Vec<OsString> = parts.map(|p| OsString::from_vec(p.to_vec())).collect();
    let proc = Process { args: &args, euid: 0, invoker: Invoker::default() };
    let Ok(raw) = parse_args(&args) else { return };
    assert!(raw.wait.as_secs() <= MAX_WAIT_SECS);
    let mut record = Record::default();
    let load = |_: &str| policy::parse(policy_text).map_err(|why| Error::PolicyInvalid { path: "fuzz".into(), why });
    match judge_with(&raw, &proc, &mut record, load) {
        Err(e) => {
            let line = audit::line(&record, Verdict::Refused(e.exit_code(), &e.message()));
            assert!(!line.contains('\n'));
        }
        Ok(plan) => {
            let sep = plan.argv.iter().position(|a| a == "--").unwrap();
            for unit in &plan.argv[sep + 1..] {
                assert!(!unit.starts_with('-'));
                let inst = unit.split_once('@').unwrap().1.strip_suffix(".service").unwrap();
                assert!(name::is_valid_instance(inst));
            }
        }
    }
});
