//! The judging path for the fuzzer (`helper/fuzz`, built with the
//! `fuzzing` feature): the only way in from outside besides `main`.

use crate::audit::{self, Record, Verdict};
use crate::caller::Invoker;
use crate::error::Error;
use crate::limit_pipeline::{argv as limit_argv, judge_limit_with, PROPERTIES};
use crate::pipeline::{judge_with, parse_args, Process};
use crate::task_pipeline::judge_run_with;
use std::ffi::OsStr;
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
    if args.get(1).is_some_and(|a| a == "run") {
        return check_task(policy_text, &args);
    }
    if args.get(1).is_some_and(|a| a == "limit") {
        return check_limit(policy_text, &args);
    }
    let Ok(raw) = parse_args(&args) else { return };
    assert!(raw.wait.as_secs() <= MAX_WAIT_SECS);
    let mut record = Record::default();
    let load = |_: &str| policy_of(policy_text);
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

/// `APP run ...` from the caller uid 1 (`daemon`, on every system): the
/// whole judging of a task, and the invariants of an accepted one: only
/// our own options before `--`, each property one of the fixed forms, the
/// unit name splitting back to the app, uid 1 and the id, every argument
/// of a service with each `$` doubled (so systemd expands none).
fn check_task(policy_text: &[u8], args: &[OsString]) {
    let proc = from_daemon(args);
    let mut record = Record::default();
    let load = |_: &str| policy_of(policy_text);
    let plan = match judge_run_with(&args[0], &args[2..], &proc, &mut record, load, |_| Ok(())) {
        Err(e) => {
            let line = audit::line(&record, Verdict::Refused(e.exit_code(), &e.to_string()));
            assert!(!line.contains('\n'));
            return;
        }
        Ok(plan) => plan,
    };
    let line = audit::line(&record, Verdict::Accepted);
    assert!(!line.contains('\n'));
    let argv = &plan.started.argv;
    let sep = argv
        .iter()
        .position(|a| a == "--")
        .expect("a -- before the command");
    for a in &argv[1..sep] {
        assert!(a.starts_with("--") && !a.contains('\n'), "{a}");
        if let Some(p) = a.strip_prefix("--property=") {
            let (key, value) = p.split_once('=').expect("K=V");
            assert!(key.bytes().all(|b| b.is_ascii_alphabetic()), "{p}");
            assert!(
                value
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'%' || b == b'-'),
                "{p}"
            );
        }
    }
    let (app, uid, id, kind) =
        unitgate_policy::task::parse_unit(&plan.started.unit).expect("a task unit name");
    assert_eq!((app, uid, kind), (plan.app.as_str(), 1, plan.kind));
    assert!(record.instances == [id.as_bytes().to_vec()]);
    if plan.kind == unitgate_policy::task::Kind::Service {
        for a in &argv[sep + 2..] {
            assert!(!a.replace("$$", "").contains('$'), "{a}");
        }
    }
}

/// `APP limit ...` from the caller uid 1: the whole judging, and the
/// invariants of an accepted one: one `<prefix>@<instance>.service` after
/// `--`, then only `CPUQuota=N%`, `MemoryMax=N`, `TasksMax=N` (none for a
/// reset), each within the policy's `[limits]`.
fn check_limit(policy_text: &[u8], args: &[OsString]) {
    let proc = from_daemon(args);
    let mut record = Record::default();
    let load = |_: &str| policy_of(policy_text);
    let plan = match judge_limit_with(&args[0], &args[2..], &proc, &mut record, load) {
        Err(e) => {
            let line = audit::line(&record, Verdict::Refused(e.exit_code(), &e.to_string()));
            assert!(!line.contains('\n'));
            return;
        }
        Ok(plan) => plan,
    };
    assert!(!audit::line(&record, Verdict::Accepted).contains('\n'));
    // A reset is accepted without `[limits]`; a set never is.
    let limits = config::parse(policy_text)
        .expect("accepted under a valid policy")
        .limits;
    let argv = limit_argv(&plan);
    let sep = argv
        .iter()
        .position(|a| a == "--")
        .expect("a -- before the unit");
    assert_eq!(argv[sep - 1], "set-property");
    let inst = argv[sep + 1]
        .split_once('@')
        .and_then(|(_, rest)| rest.strip_suffix(".service"))
        .expect("<prefix>@<instance>.service");
    assert!(name::is_valid_instance(inst));
    for a in &argv[sep + 2..] {
        let (key, value) = a.split_once('=').expect("K=V");
        assert!(PROPERTIES.contains(&key), "{a}");
        assert!(plan.set.is_some(), "a reset sets nothing: {a}");
        let maxima = limits.expect("a set only under [limits]");
        let n: u64 = value.trim_end_matches('%').parse().expect("a number");
        let max = match key {
            "CPUQuota" => maxima.max_cpu_percent,
            "MemoryMax" => maxima.max_memory,
            _ => maxima.max_tasks,
        };
        assert!(n >= 1 && n <= max, "{a}");
    }
}

/// The policy text parsed as the helper would read it from its file.
fn policy_of(text: &[u8]) -> Result<config::Policy, Error> {
    config::parse(text).map_err(|why| {
        Error::Policy(config::LoadError::Invalid {
            path: "fuzz".into(),
            why,
        })
    })
}

/// A call through sudo from uid 1 (`daemon`, on every system).
fn from_daemon(args: &[OsString]) -> Process<'_> {
    Process {
        args,
        euid: 0,
        invoker: Invoker {
            sudo_uid: Some(OsStr::new("1")),
            ..Invoker::default()
        },
    }
}
