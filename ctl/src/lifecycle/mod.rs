//! The commands that change instances, on one path:
//!
//! names → checked ([`App::instances`]) → locks → snapshot → plan →
//! helper calls (batched) → verify (settle a start; retire or rebuild the
//! state of what stopped) → one outcome per instance → report.
//!
//! A command is only its [`plan`]: what to call for which instance and what
//! each must reach. Reading, calling, verifying and reporting are shared, so
//! data goes one way down and one way back, as in the helper's pipeline;
//! `watch --heal` walks the same path under its own locks
//! ([`run_locked`]).

pub mod plan;
mod settle;
pub mod state;

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;

use crate::app::App;
use crate::error::{Error, Result, UnitReport};
use crate::helper::{self, Action};
use crate::lock::Waiter;
use crate::name::InstanceName;
use crate::output::Output;
use crate::snapshot::Snapshot;
use crate::store::{Change, Store};
use crate::systemd::{Detail, Systemd};
use plan::{Decided, Goal, Plan, Verb};

/// What every command runs with.
#[derive(Debug, Clone, Copy)]
pub struct Context<'a> {
    pub app: &'a App,
    pub waiter: Waiter,
    /// How long a started instance must stay up (`--settle`, else the
    /// app's `settle`).
    pub settle: Duration,
    pub out: Output,
}

/// One instance's outcome: what happened, or why it failed.
#[derive(Debug)]
pub struct Outcome {
    pub instance: InstanceName,
    pub result: std::result::Result<&'static str, Error>,
    /// What `reconfigure` changed in its environment file.
    pub changes: Option<Vec<Change>>,
}

pub fn run(cx: &Context<'_>, verb: Verb, names: &[String]) -> Result<()> {
    let names = cx.app.instances(names)?;
    let store = Store::open_or_create(cx.app)?;
    let _locks = cx.waiter.instances(&store, &names)?;
    let outcomes = run_locked(cx, &store, verb, &names)?;
    report(cx.out, outcomes)
}

/// Read, plan, act, verify: the whole command, with the instances' locks
/// already held by the caller. Outcomes come in the order of `names`.
pub fn run_locked(
    cx: &Context<'_>,
    store: &Store<'_>,
    verb: Verb,
    names: &[InstanceName],
) -> Result<Vec<Outcome>> {
    // A command run early in boot waits for the bus as it waits for locks.
    let sd = Systemd::connect(cx.waiter.timeout)?;
    let before = Snapshot::of(store, &sd, names, Detail::States, None)?;
    let plan = plan::make(verb, &before);
    let said = call(cx, &plan)?;
    let mut outcomes: BTreeMap<InstanceName, std::result::Result<&'static str, Error>> = plan
        .decided
        .into_iter()
        .map(|(n, d)| match d {
            Decided::Done(o) => (n, Ok(o)),
            Decided::Failed(e) => (n, Err(e)),
        })
        .collect();
    outcomes.extend(verify(cx, store, &sd, &plan.goals, &said)?);
    Ok(names
        .iter()
        .filter_map(|n| {
            outcomes.remove(n).map(|result| Outcome {
                instance: n.clone(),
                result,
                changes: None,
            })
        })
        .collect())
}

/// The plan's helper calls, in order. A refusal (sudo, the helper) ends the
/// command — every later call would be refused too; a systemctl failure
/// does not: what it said is kept for the instances of that call, whose
/// resulting state then decides.
fn call(cx: &Context<'_>, plan: &Plan) -> Result<BTreeMap<InstanceName, String>> {
    let mut said = BTreeMap::new();
    for (action, names) in &plan.calls {
        let batch: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        if let Some(Error::Systemctl { message, .. }) =
            helper::run(cx.app, *action, &batch, cx.waiter.timeout)?
        {
            for n in names {
                said.entry(n.clone()).or_insert_with(|| message.clone());
            }
        }
    }
    Ok(said)
}

/// Each acted-on instance against its goal: started ones settled, stopped
/// ones checked (a unit its stop left `failed` is reset, so a stopped
/// instance reads as plainly stopped), then the state part of `delete` and
/// `reset` for those that did stop.
fn verify(
    cx: &Context<'_>,
    store: &Store<'_>,
    sd: &Systemd,
    goals: &[(InstanceName, Goal)],
    said: &BTreeMap<InstanceName, String>,
) -> Result<Vec<(InstanceName, std::result::Result<&'static str, Error>)>> {
    let mut out = Vec::with_capacity(goals.len());
    let running: Vec<InstanceName> = goals
        .iter()
        .filter(|(_, g)| matches!(g, Goal::Running(_)))
        .map(|(n, _)| n.clone())
        .collect();
    let mut settled: BTreeMap<InstanceName, std::result::Result<(), UnitReport>> =
        if running.is_empty() {
            BTreeMap::new()
        } else {
            settle::until_running(sd, cx.app, &running, cx.settle)?
                .into_iter()
                .collect()
        };
    let stopping: Vec<InstanceName> = goals
        .iter()
        .filter(|(_, g)| !matches!(g, Goal::Running(_)))
        .map(|(n, _)| n.clone())
        .collect();
    let stopped = read_stopped(cx, store, sd, &stopping)?;
    for (name, goal) in goals {
        let not_reached = |wanted, mut report: UnitReport| {
            report.systemctl = said.get(name).cloned();
            Error::NotRunning {
                instance: name.to_string(),
                wanted,
                report: Box::new(report),
            }
        };
        let result = match goal {
            Goal::Running(done) => match settled.remove(name) {
                Some(Ok(())) => Ok(*done),
                Some(Err(report)) => Err(not_reached("running", report)),
                None => Err(not_reached("running", UnitReport::default())),
            },
            stop_goal => match stopped.get(name) {
                Some(Err(report)) => Err(not_reached("stopped", report.clone())),
                _ => finish_stopped(cx, store, name, *stop_goal),
            },
        };
        out.push((name.clone(), result));
    }
    Ok(out)
}

/// Which of `names` are stopped for good; a unit left `failed` by its stop
/// gets a `reset-failed` first.
fn read_stopped(
    cx: &Context<'_>,
    store: &Store<'_>,
    sd: &Systemd,
    names: &[InstanceName],
) -> Result<BTreeMap<InstanceName, std::result::Result<(), UnitReport>>> {
    if names.is_empty() {
        return Ok(BTreeMap::new());
    }
    let mut snap = Snapshot::of(store, sd, names, Detail::States, None)?;
    let failed: Vec<String> = snap
        .instances
        .iter()
        .filter(|i| i.active() == crate::unit::Active::Failed)
        .map(|i| i.name.to_string())
        .collect();
    if !failed.is_empty() {
        helper::run(cx.app, Action::ResetFailed, &failed, cx.waiter.timeout)?;
        snap = Snapshot::of(store, sd, names, Detail::States, None)?;
    }
    Ok(snap
        .instances
        .into_iter()
        .map(|i| {
            let result = if i.is_stopped() {
                Ok(())
            } else {
                Err(UnitReport {
                    active_state: i.active().as_str().to_owned(),
                    sub_state: i
                        .unit_state
                        .as_ref()
                        .map_or("dead", |u| u.sub.as_str())
                        .to_owned(),
                    ..Default::default()
                })
            };
            (i.name, result)
        })
        .collect())
}

/// The state part of a goal reached by stopping (for `delete`, first the
/// limits `limit` set: a later instance of the name starts without them).
fn finish_stopped(
    cx: &Context<'_>,
    store: &Store<'_>,
    name: &InstanceName,
    goal: Goal,
) -> std::result::Result<&'static str, Error> {
    match goal {
        Goal::Stopped(done) => Ok(done),
        Goal::Retired => crate::instance_limits::forget(cx.app, name, cx.waiter.timeout)
            .and_then(|()| store.retire(name))
            .map(|_| "deleted"),
        Goal::Rebuilt => store.rebuild(name).map(|_| "reset"),
        Goal::Running(_) => unreachable!("started instances are settled, not stopped"),
    }
}

/// ` (MODE: fast -> slow)` after a reconfigured instance.
fn changed(o: &Outcome) -> String {
    match &o.changes {
        Some(c) if !c.is_empty() => format!(" ({})", state::summary(c)),
        _ => String::new(),
    }
}

/// One instance's result as `--json` prints it.
#[derive(Serialize)]
struct ResultJson<'a> {
    instance: &'a str,
    ok: bool,
    outcome: &'a str,
    /// The error object (as `{"error": …}` of a failed command), or null.
    error: Option<serde_json::Value>,
    /// The exit code this instance alone would have had (0 when ok).
    code: u8,
    /// `reconfigure`: the variables that changed.
    #[serde(skip_serializing_if = "Option::is_none")]
    changes: Option<&'a [Change]>,
}

/// Prints the outcomes and turns them into the command's result: the first
/// failure's code (in argument order). A command on one instance that
/// failed is reported as that error alone.
pub fn report(out: Output, outcomes: Vec<Outcome>) -> Result<()> {
    let first_code = outcomes
        .iter()
        .find_map(|o| o.result.as_ref().err().map(Error::code));
    let failed = outcomes.iter().filter(|o| o.result.is_err()).count();
    let total = outcomes.len();
    if out.json {
        let results: Vec<ResultJson<'_>> = outcomes
            .iter()
            .map(|o| ResultJson {
                instance: o.instance.as_str(),
                ok: o.result.is_ok(),
                outcome: o.result.as_ref().unwrap_or(&"failed"),
                error: o.result.as_ref().err().map(Error::to_json),
                code: o.result.as_ref().err().map_or(0, Error::code),
                changes: o.changes.as_deref(),
            })
            .collect();
        out.json(&serde_json::json!({ "results": results }))?;
    } else if let [single] = &outcomes[..] {
        return match &single.result {
            Ok(o) => out.text(&format!("{}: {o}{}\n", single.instance, changed(single))),
            Err(_) => {
                let mut outcomes = outcomes;
                Err(outcomes.remove(0).result.unwrap_err())
            }
        };
    } else {
        let mut text = String::new();
        for o in &outcomes {
            match &o.result {
                Ok(done) => text.push_str(&format!("{}: {done}{}\n", o.instance, changed(o))),
                Err(e) => text.push_str(&format!(
                    "{}: failed: {}\n",
                    o.instance,
                    e.message().unwrap_or_default()
                )),
            }
        }
        out.text(&text)?;
    }
    match first_code {
        None => Ok(()),
        Some(code) => Err(Error::Partial {
            code,
            failed,
            total,
        }),
    }
}
