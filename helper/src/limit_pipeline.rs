//! The privileged path of `limit` (issue #14), top to bottom:
//!
//! judge (root, the app's name, the words, the policy: the caller listed,
//! a `[limits]` table and the actions enable and disable, the instance allowed, each value within its
//! maximum) → lock the unit's slot and the app → the app's limited
//! instances within `max_instances` → audit → set: exec `systemctl
//! set-property -- UNIT CPUQuota=P% MemoryMax=B TasksMax=N` (PID 1 applies
//! them at once and keeps them in /etc/systemd/system.control, so they
//! hold across restarts and reboots); reset: remove the three files PID 1
//! kept for them, then have it re-read the unit files (a daemon-reload,
//! deferred to unitgate-reload.service for a guarded app, as a `disable`'s).
//! A reset cannot be an emptying `set-property`: an empty `TasksMax=`
//! there is `infinity`, not the unit file's value or systemd's default.
//!
//! Only numbers this file formats become properties; the caller's text
//! never does. One instance per call: `set-property` takes one unit.

use crate::audit::{self, Record, Verdict};
use crate::control_dir;
use crate::error::Error;
use crate::guard;
use crate::lock;
use crate::pipeline::{self, Paths, Process};
use crate::task_pipeline::{self, exec, would_exec};
use std::ffi::{OsStr, OsString};
use std::io::Write;
use std::time::Duration;
use unitgate_policy::config::Policy;
use unitgate_policy::instance_limits::Set;
use unitgate_policy::{exit, name, task as grammar};

pub use unitgate_policy::instance_limits::PROPERTIES;

const USAGE: &str = "APP limit (--reset | [--cpu PCT] [--memory SIZE] [--tasks N]) INSTANCE";

/// A `limit` that passed every check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LimitPlan {
    pub app: String,
    pub unit: String,
    /// What to set; `None`: reset all three.
    pub set: Option<Set>,
    pub unit_prefix: String,
    pub max_instances: u32,
}

/// `limit`: from the words after APP `limit`; returns the exit code when
/// not exec'ing.
pub fn limit(
    check: bool,
    wait: Duration,
    app: &OsStr,
    rest: &[OsString],
    proc: &Process<'_>,
    paths: &Paths,
    record: &mut Record,
) -> u8 {
    let plan = match judge_limit_with(app, rest, proc, record, |app| {
        task_pipeline::load(paths, app)
    }) {
        Ok(plan) => plan,
        Err(e) => return pipeline::refuse(Some(record), &e),
    };
    if check {
        if let Err(e) = within_max_limited(&plan, paths) {
            return pipeline::refuse(Some(record), &e);
        }
        audit::send(record, Verdict::Check);
        let line = match plan.set {
            Some(_) => would_exec(&argv(&plan), paths),
            None => format!(
                "would remove {}/{}.d/50-{{{}}}.conf and reload",
                paths.control_dir.display(),
                plan.unit,
                PROPERTIES.join(",")
            ),
        };
        let _ = writeln!(std::io::stdout(), "{line}");
        return exit::OK;
    }
    let units = [plan.unit.clone()];
    let req = lock::Request {
        app: &plan.app,
        units: &units,
        // The app-wide lock: the count below and the directory this call
        // may add cannot interleave with another call's.
        app_wide: true,
        deferred_reload: false,
        wait,
    };
    let _locks = match lock::lock(&paths.lock_parent, &req) {
        Ok(held) => held,
        Err(e) => return pipeline::refuse(Some(record), &e),
    };
    if let Err(e) = within_max_limited(&plan, paths) {
        return pipeline::refuse(Some(record), &e);
    }
    if plan.set.is_some() {
        // The unit's directory is made now, under the lock, so the next
        // call counts it however long PID 1 takes to write into it.
        let made = match control_dir::make(&paths.control_dir, &plan.unit) {
            Ok(made) => made,
            Err(e) => return pipeline::refuse(Some(record), &e),
        };
        audit::send(record, Verdict::Accepted);
        let e = exec(&paths.systemctl, &argv(&plan), true);
        if made {
            control_dir::unmake(&paths.control_dir, &plan.unit);
        }
        return pipeline::refuse(Some(record), &e);
    }
    match reset(&plan, paths, record) {
        Ok(code) => code,
        Err(e) => pipeline::refuse(Some(record), &e),
    }
}

/// Every check of a `limit`, the policy loader passed in (the fuzz target
/// has no policy file). Fills `record` as facts become known.
pub fn judge_limit_with(
    app: &OsStr,
    rest: &[OsString],
    proc: &Process<'_>,
    record: &mut Record,
    load_policy: impl FnOnce(&str) -> Result<Policy, Error>,
) -> Result<LimitPlan, Error> {
    let (app, caller) = task_pipeline::who(app, proc, record)?;
    let (set, instance) = parse_limit(rest)?;
    record.instances = vec![instance.as_bytes().to_vec()];
    record.task = Some(fields(set));
    let policy = load_policy(app)?;
    pipeline::allowed_caller(&policy, &caller?, app)?;
    // A reset needs no `[limits]`: limits kept from before root removed
    // the table can still go.
    if !policy.callers_may_stop() || set.is_some() && policy.limits.is_none() {
        return Err(Error::NoLimits(app.to_owned()));
    }
    if !policy.allows_instance(instance) {
        return Err(Error::InvalidInstance {
            name: instance.as_bytes().to_vec(),
            why: "does not match the app's instance_pattern".into(),
        });
    }
    if let (Some(set), Some(maxima)) = (set, policy.limits) {
        maxima.check(set).map_err(Error::AboveMaximum)?;
    }
    Ok(LimitPlan {
        app: app.to_owned(),
        unit: format!("{}@{instance}.service", policy.unit_prefix),
        set,
        unit_prefix: policy.unit_prefix,
        max_instances: policy.max_instances,
    })
}

/// The words after `limit`: `--reset`, or each of `--cpu`, `--memory`,
/// `--tasks` at most once with its value (at least one), then the
/// instance, last and alone.
pub fn parse_limit(args: &[OsString]) -> Result<(Option<Set>, &str), Error> {
    let usage = |why: String| Error::Usage(format!("{why}; usage: {USAGE}"));
    let Some((instance, flags)) = args
        .split_last()
        .filter(|(i, _)| !i.as_encoded_bytes().starts_with(b"-"))
    else {
        return Err(usage("no instance (it comes last)".into()));
    };
    let instance = instance
        .to_str()
        .ok_or_else(|| Error::NotUtf8(instance.as_encoded_bytes().to_vec()))?;
    if !name::is_valid_instance(instance) {
        return Err(Error::InvalidInstance {
            name: instance.as_bytes().to_vec(),
            why: "must match [A-Za-z0-9][A-Za-z0-9_-]{0,63}".into(),
        });
    }
    if flags.len() == 1 && flags[0] == "--reset" {
        return Ok((None, instance));
    }
    let mut set = Set::default();
    let mut rest = flags;
    while let Some((flag, tail)) = rest.split_first() {
        type Parse = fn(&str) -> Result<u64, String>;
        let (what, slot, parse): (&'static str, &mut Option<u64>, Parse) = match flag.to_str() {
            Some("--cpu") => ("--cpu", &mut set.cpu_percent, grammar::parse_cpu),
            Some("--memory") => ("--memory", &mut set.memory, grammar::parse_size),
            Some("--tasks") => ("--tasks", &mut set.tasks, grammar::parse_tasks),
            _ => return Err(usage(format!("unknown or misplaced word {}", shown(flag)))),
        };
        let Some((value, tail)) = tail.split_first() else {
            return Err(usage(format!("{} without a value", shown(flag))));
        };
        let value = value
            .to_str()
            .ok_or_else(|| Error::NotUtf8(value.as_encoded_bytes().to_vec()))?;
        if slot.is_some() {
            return Err(usage(format!("{} given twice", shown(flag))));
        }
        *slot = Some(parse(value).map_err(|why| Error::InvalidTask {
            what,
            value: value.as_bytes().to_vec(),
            why,
        })?);
        rest = tail;
    }
    if set.is_empty() {
        return Err(usage("nothing to set (give a limit, or --reset)".into()));
    }
    Ok((Some(set), instance))
}

/// `systemctl … set-property -- UNIT PROP=VALUE…` of the values a set
/// gives (none for a reset, which sets nothing).
pub fn argv(plan: &LimitPlan) -> Vec<String> {
    let set = plan.set.unwrap_or_default();
    let props = [
        set.cpu_percent.map(|p| format!("CPUQuota={p}%")),
        set.memory.map(|b| format!("MemoryMax={b}")),
        set.tasks.map(|n| format!("TasksMax={n}")),
    ];
    [
        "systemctl",
        "--no-pager",
        "--no-ask-password",
        "set-property",
        "--",
        &plan.unit,
    ]
    .into_iter()
    .map(str::to_owned)
    .chain(props.into_iter().flatten())
    .collect()
}

// ------------------------------------------------------------------ steps

fn shown(word: &OsStr) -> String {
    unitgate_policy::escape::quoted(word.as_encoded_bytes())
}

/// The audit line's part for a limit: what it sets.
fn fields(set: Option<Set>) -> String {
    let Some(set) = set else {
        return "limits=reset".into();
    };
    let v = |x: Option<u64>| x.map_or_else(|| "-".to_owned(), |n| n.to_string());
    format!(
        "cpu={}% memory={} tasks={}",
        v(set.cpu_percent),
        v(set.memory),
        v(set.tasks)
    )
}

/// Each instance with kept properties is a directory in /etc that PID 1
/// reads at every load of its unit: no more of them than the app may have
/// instances. A unit that has one already, or a reset, adds none.
fn within_max_limited(plan: &LimitPlan, paths: &Paths) -> Result<(), Error> {
    if plan.set.is_none() || control_dir::has(&paths.control_dir, &plan.unit)? {
        return Ok(());
    }
    let limited = control_dir::units_of(&paths.control_dir, &plan.unit_prefix)?.len();
    if limited < plan.max_instances as usize {
        Ok(())
    } else {
        Err(Error::TooManyLimited {
            app: plan.app.clone(),
            max: plan.max_instances,
            limited,
        })
    }
}

/// Remove what PID 1 kept for the unit's limits, then have it re-read the
/// unit files so a loaded unit has its own values again: deferred for a
/// guarded app (its reload unit paces reloads), else `daemon-reload` now.
/// Nothing kept: nothing to do, and no reload.
fn reset(plan: &LimitPlan, paths: &Paths, record: &mut Record) -> Result<u8, Error> {
    let deferred = guard::installed(&paths.unit_dir, &plan.unit_prefix)?;
    if !control_dir::remove(&paths.control_dir, &plan.unit, &PROPERTIES)? {
        // None of the three files was there (root's own properties may be):
        // nothing to re-read, so no reload a caller could repeat at will.
        audit::send(record, Verdict::Accepted);
        return Ok(exit::OK);
    }
    record.reload = Some(if deferred { "deferred" } else { "now" });
    audit::send(record, Verdict::Accepted);
    if deferred {
        lock::mark_reload_pending(&paths.lock_parent)?;
        return Ok(exit::OK);
    }
    let reload = [
        "systemctl",
        "--no-pager",
        "--no-ask-password",
        "daemon-reload",
    ]
    .map(str::to_owned);
    Err(exec(&paths.systemctl, &reload, true))
}

#[cfg(test)]
#[path = "limit_tests.rs"]
mod tests;
