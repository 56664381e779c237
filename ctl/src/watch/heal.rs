//! `watch --heal`: start again instances that should run but don't.
//!
//! An instance is a candidate when it is initialized and enabled (the
//! operator wants it running: `unitgate stop` disables, so a stopped-on-
//! purpose instance is never one) and its unit is `inactive` or `failed`.
//! Each candidate is healed at most once per back-off window, which starts
//! at [`FIRST_WINDOW`] and doubles with every heal up to [`MAX_WINDOW`]; it
//! shrinks back once the instance has stayed up for a whole window.
//!
//! A heal runs in a thread of its own (so a slow start never delays the
//! stream): it takes each instance's lock without waiting (a concurrent
//! `unitgate stop`/`start` wins; the instance is tried again later), then
//! walks the lifecycle commands' own path with the heal plan: re-read under
//! the locks (still initialized, enabled, down and with no job queued),
//! `reset-failed` the failed, `enable --now`, and settle — a heal counts as
//! started only once the instance stays up, as `unitgate start` does.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::mpsc::Sender;
use std::time::{Duration, Instant};

use super::Ev;
use crate::app::App;
use crate::error::Error;
use crate::lifecycle::{self, plan::Verb, Context};
use crate::lock::Waiter;
use crate::name::InstanceName;
use crate::output::Output;
use crate::snapshot::Instance;
use crate::store::Store;

pub const FIRST_WINDOW: Duration = Duration::from_secs(10);
pub const MAX_WINDOW: Duration = Duration::from_secs(600);
/// How soon to try again when another command held the instance's lock:
/// soon enough to heal right after it, slow enough not to spin on the lock.
pub const BUSY_RETRY: Duration = Duration::from_secs(1);
/// How long a heal's helper call waits for a unit lock held by a raw
/// helper call (the CLI's own commands are excluded by the instance locks),
/// and its connect for a system bus that is not up (a heal in its own
/// thread; one that fails is tried again next round).
const HELPER_WAIT: Duration = Duration::from_secs(10);

/// How one heal ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Started: the unit is active (or activating) afterwards.
    Started,
    /// Tried, and the unit is still not active (or the helper failed).
    Failed(String),
    /// Not tried: another command holds the instance's lock.
    Busy,
    /// Not tried: under the lock it no longer needed healing (stopped on
    /// purpose meanwhile, a job is running, it came back by itself).
    NotNeeded,
}

#[derive(Debug, Default)]
struct Record {
    attempts: u32,
    window: Duration,
    not_before: Option<Instant>,
    up_since: Option<Instant>,
}

#[derive(Debug, Default)]
pub struct Healer {
    records: HashMap<InstanceName, Record>,
    in_flight: BTreeSet<InstanceName>,
}

impl Healer {
    /// Updates an instance's back-off from its current state.
    pub fn observe(&mut self, i: &Instance, now: Instant) {
        let Some(rec) = self.records.get_mut(&i.name) else {
            return;
        };
        if i.is_running() && i.drift().is_none() {
            let up = *rec.up_since.get_or_insert(now);
            if now.duration_since(up) >= rec.window {
                self.records.remove(&i.name);
            }
        } else {
            rec.up_since = None;
        }
    }

    pub fn forget(&mut self, instance: &InstanceName) {
        self.records.remove(instance);
    }

    pub fn busy(&self) -> bool {
        !self.in_flight.is_empty()
    }

    /// Candidates due now, and when the next one not yet due will be.
    pub fn due<'a>(
        &self,
        instances: impl Iterator<Item = &'a Instance>,
        now: Instant,
    ) -> (Vec<InstanceName>, Option<Instant>) {
        let mut due = Vec::new();
        let mut next: Option<Instant> = None;
        for i in instances {
            if !i.wants_heal() || self.in_flight.contains(&i.name) {
                continue;
            }
            match self.records.get(&i.name).and_then(|r| r.not_before) {
                Some(t) if t > now => next = Some(next.map_or(t, |n| n.min(t))),
                _ => due.push(i.name.clone()),
            }
        }
        (due, next)
    }

    /// Runs a heal of `names` in a thread; its outcome comes back as
    /// `Ev::Healed`.
    pub fn dispatch(&mut self, app: &App, names: Vec<InstanceName>, tx: &Sender<Ev>) {
        self.in_flight.extend(names.iter().cloned());
        let (app, tx) = (app.clone(), tx.clone());
        std::thread::Builder::new()
            .name("watch-heal".into())
            .spawn(move || {
                let outcomes = heal(&app, &names);
                let _ = tx.send(Ev::Healed(outcomes));
            })
            .expect("spawning a thread");
    }

    /// Books a finished heal; returns (attempt number, back-off until the
    /// next one) for the heals that were tried.
    pub fn finished(
        &mut self,
        instance: &InstanceName,
        outcome: &Outcome,
        now: Instant,
    ) -> Option<(u32, Duration)> {
        self.in_flight.remove(instance);
        match outcome {
            Outcome::NotNeeded => return None,
            Outcome::Busy => {
                // Not an attempt: the other command wins, we look again.
                let rec = self.records.entry(instance.clone()).or_default();
                rec.not_before = Some(now + BUSY_RETRY);
                return None;
            }
            Outcome::Started | Outcome::Failed(_) => {}
        }
        let rec = self.records.entry(instance.clone()).or_default();
        if rec.window.is_zero() {
            rec.window = FIRST_WINDOW;
        }
        rec.attempts += 1;
        let wait = rec.window;
        rec.not_before = Some(now + wait);
        rec.up_since = None;
        rec.window = (rec.window * 2).min(MAX_WINDOW);
        Some((rec.attempts, wait))
    }
}

/// The heal itself (in its own thread): the instances it can lock now,
/// down `unitgate start`'s path with the heal plan.
fn heal(app: &App, names: &[InstanceName]) -> Vec<(InstanceName, Outcome)> {
    let failed_all = |e: &Error| {
        let m = message(e);
        names
            .iter()
            .map(|n| (n.clone(), Outcome::Failed(m.clone())))
            .collect()
    };
    let store = match Store::open_or_create(app) {
        Ok(s) => s,
        Err(e) => return failed_all(&e),
    };
    let nowait = Waiter {
        timeout: Duration::ZERO,
    };
    let mut out: BTreeMap<InstanceName, Outcome> = BTreeMap::new();
    let mut locks = Vec::new();
    let mut locked = Vec::new();
    let mut sorted: Vec<&InstanceName> = names.iter().collect();
    sorted.sort();
    for n in sorted {
        match nowait.instance(&store, n) {
            Ok(l) => {
                locks.push(l);
                locked.push(n.clone());
            }
            Err(Error::Busy { .. }) => {
                out.insert(n.clone(), Outcome::Busy);
            }
            Err(e) => {
                out.insert(n.clone(), Outcome::Failed(message(&e)));
            }
        }
    }
    let cx = Context {
        app,
        waiter: Waiter {
            timeout: HELPER_WAIT,
        },
        settle: app.settle,
        out: Output { json: false },
    };
    match lifecycle::run_locked(&cx, &store, Verb::Heal, &locked) {
        Ok(outcomes) => {
            for o in outcomes {
                let outcome = match o.result {
                    Ok("not needed") => Outcome::NotNeeded,
                    Ok(_) => Outcome::Started,
                    Err(e) => Outcome::Failed(message(&e)),
                };
                out.insert(o.instance, outcome);
            }
        }
        Err(e) => {
            let m = message(&e);
            for n in &locked {
                out.insert(n.clone(), Outcome::Failed(m.clone()));
            }
        }
    }
    drop(locks);
    names
        .iter()
        .map(|n| (n.clone(), out.remove(n).unwrap_or(Outcome::NotNeeded)))
        .collect()
}

fn message(e: &Error) -> String {
    e.message().unwrap_or_else(|| format!("{e:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn st(name: &str, init: bool, enabled: bool, active: &str) -> Instance {
        Instance {
            name: InstanceName::checked(name),
            unit: format!("demo@{name}.service"),
            initialized: init,
            has_trash: false,
            unit_state: Some(crate::unit::UnitInfo {
                active: crate::unit::Active::parse(active),
                sub: crate::unit::Sub::parse(if active == "active" {
                    "running"
                } else {
                    "dead"
                }),
                unit_file_state: Some(if enabled { "enabled" } else { "disabled" }.into()),
                ..Default::default()
            }),
        }
    }

    fn a() -> InstanceName {
        InstanceName::checked("a")
    }

    #[test]
    fn back_off_doubles_up_to_the_cap_and_resets_after_a_good_run() {
        let mut h = Healer::default();
        let t0 = Instant::now();
        let down = [st("a", true, true, "failed")];
        assert_eq!(h.due(down.iter(), t0).0, vec![a()]);
        h.in_flight.insert(a());
        assert!(h.due(down.iter(), t0).0.is_empty(), "in flight");
        assert_eq!(
            h.finished(&a(), &Outcome::Failed("x".into()), t0),
            Some((1, FIRST_WINDOW))
        );
        let (due, next) = h.due(down.iter(), t0 + Duration::from_secs(1));
        assert!(due.is_empty());
        assert_eq!(next, Some(t0 + FIRST_WINDOW));
        let mut t = t0;
        let mut waits = Vec::new();
        for _ in 0..10 {
            t += Duration::from_secs(10_000);
            assert_eq!(h.due(down.iter(), t).0, vec![a()]);
            waits.push(h.finished(&a(), &Outcome::Started, t).unwrap().1.as_secs());
        }
        assert_eq!(waits, [20, 40, 80, 160, 320, 600, 600, 600, 600, 600]);
        // Busy or not needed: no attempt booked; busy retries after a pause.
        assert_eq!(h.finished(&a(), &Outcome::NotNeeded, t), None);
        t += Duration::from_secs(10_000);
        assert_eq!(h.finished(&a(), &Outcome::Busy, t), None);
        let (due, next) = h.due(down.iter(), t);
        assert!(due.is_empty(), "retried at once after busy");
        assert_eq!(next, Some(t + BUSY_RETRY));
        assert_eq!(h.due(down.iter(), t + BUSY_RETRY).0, vec![a()]);
        // Up for a whole window: back to the first window.
        let up = st("a", true, true, "active");
        h.observe(&up, t);
        h.observe(&up, t + MAX_WINDOW);
        assert!(h.records.is_empty());
        assert_eq!(
            h.finished(&a(), &Outcome::Started, t).unwrap().1,
            FIRST_WINDOW
        );
    }
}
