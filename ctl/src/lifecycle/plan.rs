//! What each lifecycle command does, decided from a snapshot alone: which
//! helper calls to make for which instances, what each acted-on instance
//! must reach, and the outcome of those that need nothing. Pure functions,
//! so every command's decisions are tested without a system.

use crate::error::Error;
use crate::helper::Action;
use crate::name::InstanceName;
use crate::snapshot::{Instance, Snapshot};

/// A command that changes instances.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verb {
    /// Enable and start (survives reboot).
    Start,
    /// Stop and disable.
    Stop,
    /// Restart the running, start the others.
    Restart,
    /// Stop, then remove the state. With `missing_ok`, an instance that
    /// does not exist is a success ("already deleted").
    Delete { missing_ok: bool },
    /// Stop, then rebuild the state from the skeleton, keeping the port and
    /// `--set` values.
    Reset,
    /// `watch --heal`: start again what should run but does not.
    Heal,
}

/// What an acted-on instance must reach, and what to call it then.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Goal {
    /// Up and staying up (settled): "started", "restarted".
    Running(&'static str),
    /// Stopped and disabled: "stopped".
    Stopped(&'static str),
    /// Stopped, then its state directory retired: "deleted".
    Retired,
    /// Stopped, then its state rebuilt: "reset".
    Rebuilt,
}

/// An outcome known without acting.
#[derive(Debug)]
pub enum Decided {
    Done(&'static str),
    Failed(Error),
}

#[derive(Debug, Default)]
pub struct Plan {
    pub decided: Vec<(InstanceName, Decided)>,
    /// Helper calls, in the order they are made (each batched).
    pub calls: Vec<(Action, Vec<InstanceName>)>,
    pub goals: Vec<(InstanceName, Goal)>,
}

impl Plan {
    fn done(&mut self, i: &Instance, outcome: &'static str) {
        self.decided.push((i.name.clone(), Decided::Done(outcome)));
    }

    fn missing(&mut self, i: &Instance) {
        let e = Error::NoSuchInstance {
            instance: i.name.to_string(),
        };
        self.decided.push((i.name.clone(), Decided::Failed(e)));
    }

    fn call(&mut self, action: Action, i: &Instance) {
        match self.calls.iter_mut().find(|(a, _)| *a == action) {
            Some((_, names)) => names.push(i.name.clone()),
            None => self.calls.push((action, vec![i.name.clone()])),
        }
    }

    fn aim(&mut self, i: &Instance, goal: Goal) {
        self.goals.push((i.name.clone(), goal));
    }

    /// Calls ordered as the commands need them: resets before starts, so a
    /// unit at its start limit can start.
    fn ordered(mut self) -> Plan {
        let rank = |a: &Action| match a {
            Action::ResetFailed => 0,
            Action::Disable => 1,
            Action::Restart => 2,
            Action::Enable => 3,
            Action::Show => 4,
        };
        self.calls.sort_by_key(|(a, _)| rank(a));
        self
    }
}

pub fn make(verb: Verb, snapshot: &Snapshot) -> Plan {
    let mut plan = Plan::default();
    for i in &snapshot.instances {
        match verb {
            Verb::Start => start(&mut plan, i),
            Verb::Stop => stop(&mut plan, i),
            Verb::Restart => restart(&mut plan, i),
            Verb::Delete { missing_ok } => delete(&mut plan, i, missing_ok),
            Verb::Reset => reset(&mut plan, i),
            Verb::Heal => heal(&mut plan, i),
        }
    }
    plan.ordered()
}

/// `enable --now` for all that do not already run enabled; a failed unit
/// (e.g. at its start limit) is reset first.
fn start(plan: &mut Plan, i: &Instance) {
    if !i.initialized {
        return plan.missing(i);
    }
    if i.enabled() && i.is_running() && !i.is_crash_looping() {
        return plan.done(i, "already running");
    }
    if i.active() == crate::unit::Active::Failed {
        plan.call(Action::ResetFailed, i);
    }
    plan.call(Action::Enable, i);
    plan.aim(i, Goal::Running("started"));
}

/// `disable --now` for all that run or are enabled.
fn stop(plan: &mut Plan, i: &Instance) {
    if i.is_stopped() {
        return if i.initialized {
            plan.done(i, "already stopped")
        } else {
            plan.missing(i)
        };
    }
    plan.call(Action::Disable, i);
    plan.aim(i, Goal::Stopped("stopped"));
}

/// A running instance is restarted (the helper's `restart` is systemd's
/// try-restart: it never starts anything); any other is started as
/// `start` does (enabled too, a failed one reset first), so `restart`
/// never leaves a running-but-not-enabled drift.
fn restart(plan: &mut Plan, i: &Instance) {
    if !i.initialized {
        return plan.missing(i);
    }
    if i.active() == crate::unit::Active::Failed {
        plan.call(Action::ResetFailed, i);
    }
    let up = i.unit_state.as_ref().is_some_and(|u| u.is_up_or_starting());
    if up && !i.is_crash_looping() {
        plan.call(Action::Restart, i);
        if !i.enabled() {
            plan.call(Action::Enable, i);
        }
        plan.aim(i, Goal::Running("restarted"));
    } else {
        plan.call(Action::Enable, i);
        plan.aim(i, Goal::Running("started"));
    }
}

/// Stop what runs, then retire the state (also finishing what a crashed
/// delete left: trash, or a unit whose state is already gone).
fn delete(plan: &mut Plan, i: &Instance, missing_ok: bool) {
    if !i.exists() {
        return if missing_ok {
            plan.done(i, "already deleted")
        } else {
            plan.missing(i)
        };
    }
    if !i.is_stopped() {
        plan.call(Action::Disable, i);
    }
    plan.aim(i, Goal::Retired);
}

fn reset(plan: &mut Plan, i: &Instance) {
    if !i.initialized {
        return plan.missing(i);
    }
    if !i.is_stopped() {
        plan.call(Action::Disable, i);
    }
    plan.aim(i, Goal::Rebuilt);
}

/// What `start` does, for those that still want healing now that their
/// locks are held (stopped on purpose meanwhile, a job queued, or back by
/// themselves: not needed).
fn heal(plan: &mut Plan, i: &Instance) {
    if !i.wants_heal() {
        return plan.done(i, "not needed");
    }
    start(plan, i);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::unit::{Active, Sub, UnitInfo};

    fn inst(name: &str, initialized: bool, state: Option<(&str, &str, bool)>) -> Instance {
        Instance {
            name: InstanceName::checked(name),
            unit: format!("demo@{name}.service"),
            initialized,
            has_trash: false,
            unit_state: state.map(|(a, s, enabled)| UnitInfo {
                active: Active::parse(a),
                sub: Sub::parse(s),
                unit_file_state: Some(if enabled { "enabled" } else { "disabled" }.into()),
                ..Default::default()
            }),
        }
    }

    fn plan(verb: Verb, instances: Vec<Instance>) -> Plan {
        make(verb, &Snapshot { instances })
    }

    fn calls(p: &Plan) -> Vec<(Action, Vec<&str>)> {
        p.calls
            .iter()
            .map(|(a, ns)| (*a, ns.iter().map(InstanceName::as_str).collect()))
            .collect()
    }

    fn decided(p: &Plan) -> Vec<(&str, String)> {
        p.decided
            .iter()
            .map(|(n, d)| {
                let what = match d {
                    Decided::Done(o) => (*o).to_owned(),
                    Decided::Failed(e) => e.kind().to_owned(),
                };
                (n.as_str(), what)
            })
            .collect()
    }

    #[test]
    fn start_enables_what_does_not_run_and_resets_the_failed_first() {
        let p = plan(
            Verb::Start,
            vec![
                inst("up", true, Some(("active", "running", true))),
                inst("off", true, None),
                inst("bad", true, Some(("failed", "failed", true))),
                inst("loop", true, Some(("activating", "auto-restart", true))),
                inst("gone", false, None),
            ],
        );
        assert_eq!(
            calls(&p),
            [
                (Action::ResetFailed, vec!["bad"]),
                (Action::Enable, vec!["off", "bad", "loop"])
            ]
        );
        assert_eq!(
            decided(&p),
            [
                ("up", "already running".into()),
                ("gone", "no-such-instance".into())
            ]
        );
        assert!(p.goals.iter().all(|(_, g)| *g == Goal::Running("started")));
    }

    #[test]
    fn stop_disables_what_runs_or_would_start_at_boot() {
        let p = plan(
            Verb::Stop,
            vec![
                inst("up", true, Some(("active", "running", true))),
                inst("enabled-only", true, Some(("inactive", "dead", true))),
                inst("off", true, None),
                inst("orphan", false, Some(("active", "running", false))),
                inst("gone", false, None),
            ],
        );
        assert_eq!(
            calls(&p),
            [(Action::Disable, vec!["up", "enabled-only", "orphan"])]
        );
        assert_eq!(
            decided(&p),
            [
                ("off", "already stopped".into()),
                ("gone", "no-such-instance".into())
            ]
        );
    }

    #[test]
    fn restart_restarts_the_running_and_starts_the_rest() {
        let p = plan(
            Verb::Restart,
            vec![
                inst("up", true, Some(("active", "running", true))),
                inst("unenabled", true, Some(("active", "running", false))),
                inst("off", true, None),
                inst("loop", true, Some(("activating", "auto-restart", true))),
            ],
        );
        assert_eq!(
            calls(&p),
            [
                (Action::Restart, vec!["up", "unenabled"]),
                (Action::Enable, vec!["unenabled", "off", "loop"])
            ]
        );
        let goal = |n: &str| p.goals.iter().find(|(g, _)| g.as_str() == n).unwrap().1;
        assert_eq!(goal("up"), Goal::Running("restarted"));
        assert_eq!(goal("off"), Goal::Running("started"));
    }

    #[test]
    fn delete_finishes_what_a_crash_left_and_missing_ok_converges() {
        let mut trash = inst("trash", false, None);
        trash.has_trash = true;
        let instances = || {
            vec![
                inst("up", true, Some(("active", "running", true))),
                inst("off", true, None),
                inst("orphan", false, Some(("inactive", "dead", true))),
                trash.clone(),
                inst("gone", false, None),
            ]
        };
        let p = plan(Verb::Delete { missing_ok: false }, instances());
        assert_eq!(calls(&p), [(Action::Disable, vec!["up", "orphan"])]);
        assert_eq!(p.goals.len(), 4);
        assert_eq!(decided(&p), [("gone", "no-such-instance".into())]);
        let p = plan(Verb::Delete { missing_ok: true }, instances());
        assert_eq!(decided(&p), [("gone", "already deleted".into())]);
    }

    #[test]
    fn heal_leaves_alone_what_no_longer_needs_it() {
        let p = plan(
            Verb::Heal,
            vec![
                inst("down", true, Some(("failed", "failed", true))),
                inst(
                    "stopped-on-purpose",
                    true,
                    Some(("inactive", "dead", false)),
                ),
                inst("back", true, Some(("active", "running", true))),
            ],
        );
        assert_eq!(
            calls(&p),
            [
                (Action::ResetFailed, vec!["down"]),
                (Action::Enable, vec!["down"])
            ]
        );
        assert_eq!(
            decided(&p),
            [
                ("stopped-on-purpose", "not needed".into()),
                ("back", "not needed".into())
            ]
        );
    }
}
