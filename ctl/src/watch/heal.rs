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
//! `unitgate stop`/`start` wins; the instance is tried again later),
//! re-reads the candidates under their locks (still initialized, enabled,
//! inactive/failed and with no job queued), then does what `unitgate start`
//! does through the helper, batched: `reset-failed` for the failed ones,
//! then `enable` (`enable --now`).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::mpsc::Sender;
use std::time::{Duration, Instant};

use super::Ev;
use crate::app::App;
use crate::error::{Error, Result};
use crate::helper::{self, Action};
use crate::instance::Store;
use crate::lock::Waiter;
use crate::status::InstanceStatus;
use crate::systemd::{Detail, Systemd};

pub const FIRST_WINDOW: Duration = Duration::from_secs(10);
pub const MAX_WINDOW: Duration = Duration::from_secs(600);
/// How soon to try again when another command held the instance's lock:
/// soon enough to heal right after it, slow enough not to spin on the lock.
pub const BUSY_RETRY: Duration = Duration::from_secs(1);
/// How long a heal's helper call waits for a unit lock held by a raw
/// helper call (the CLI's own commands are excluded by the instance locks).
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
    records: HashMap<String, Record>,
    in_flight: BTreeSet<String>,
}

pub fn wants_heal(st: &InstanceStatus) -> bool {
    st.initialized && st.enabled && matches!(st.active_state.as_str(), "inactive" | "failed")
}

impl Healer {
    /// Updates an instance's back-off from its current state.
    pub fn observe(&mut self, st: &InstanceStatus, now: Instant) {
        let Some(rec) = self.records.get_mut(&st.instance) else {
            return;
        };
        if st.is_active() && st.drift.is_none() {
            let up = *rec.up_since.get_or_insert(now);
            if now.duration_since(up) >= rec.window {
                self.records.remove(&st.instance);
            }
        } else {
            rec.up_since = None;
        }
    }

    pub fn forget(&mut self, instance: &str) {
        self.records.remove(instance);
    }

    pub fn busy(&self) -> bool {
        !self.in_flight.is_empty()
    }

    /// Candidates due now, and when the next one not yet due will be.
    pub fn due<'a>(
        &self,
        states: impl Iterator<Item = &'a InstanceStatus>,
        now: Instant,
    ) -> (Vec<String>, Option<Instant>) {
        let mut due = Vec::new();
        let mut next: Option<Instant> = None;
        for st in states {
            if !wants_heal(st) || self.in_flight.contains(&st.instance) {
                continue;
            }
            match self.records.get(&st.instance).and_then(|r| r.not_before) {
                Some(t) if t > now => next = Some(next.map_or(t, |n| n.min(t))),
                _ => due.push(st.instance.clone()),
            }
        }
        (due, next)
    }

    /// Runs a heal of `names` in a thread; its outcome comes back as
    /// `Ev::Healed`.
    pub fn dispatch(&mut self, app: &App, names: Vec<String>, tx: &Sender<Ev>) {
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
        instance: &str,
        outcome: &Outcome,
        now: Instant,
    ) -> Option<(u32, Duration)> {
        self.in_flight.remove(instance);
        match outcome {
            Outcome::NotNeeded => return None,
            Outcome::Busy => {
                // Not an attempt: the other command wins, we look again.
                let rec = self.records.entry(instance.to_owned()).or_default();
                rec.not_before = Some(now + BUSY_RETRY);
                return None;
            }
            Outcome::Started | Outcome::Failed(_) => {}
        }
        let rec = self.records.entry(instance.to_owned()).or_default();
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

/// The heal itself (in its own thread).
fn heal(app: &App, names: &[String]) -> Vec<(String, Outcome)> {
    let mut out: BTreeMap<String, Outcome> = BTreeMap::new();
    let nowait = Waiter {
        timeout: Duration::ZERO,
    };
    let store = match Store::open_or_create(app) {
        Ok(s) => s,
        Err(e) => {
            let m = message(&e);
            return names
                .iter()
                .map(|n| (n.clone(), Outcome::Failed(m.clone())))
                .collect();
        }
    };
    let mut locks = Vec::new();
    let mut locked = Vec::new();
    let mut sorted: Vec<&String> = names.iter().collect();
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
    if !locked.is_empty() {
        match heal_locked(&store, &locked) {
            Ok(res) => out.extend(res),
            Err(e) => {
                let m = message(&e);
                for n in &locked {
                    out.insert(n.clone(), Outcome::Failed(m.clone()));
                }
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

fn heal_locked(store: &Store<'_>, names: &[String]) -> Result<Vec<(String, Outcome)>> {
    let app = store.app;
    let units: Vec<String> = names.iter().filter_map(|n| app.unit(n)).collect();
    // Fresh states, enablement and queued jobs, under the locks.
    let states = Systemd::connect()?.units(&units, Detail::States, None)?;
    let mut results = Vec::new();
    let (mut reset, mut go) = (Vec::new(), Vec::new());
    for n in names {
        let Some(unit) = app.unit(n) else { continue };
        let info = states.get(&unit);
        let active = info.map_or("inactive", |u| u.active_state.as_str());
        let still = store.exists(n)
            && info.is_some_and(|u| u.is_enabled() && u.job_id == 0)
            && matches!(active, "inactive" | "failed");
        if !still {
            results.push((n.clone(), Outcome::NotNeeded));
            continue;
        }
        if active == "failed" {
            reset.push(n.clone());
        }
        go.push(n.clone());
    }
    if go.is_empty() {
        return Ok(results);
    }
    if !reset.is_empty() {
        helper::run(app, Action::ResetFailed, &reset, HELPER_WAIT)?;
    }
    let call_err = helper::run(app, Action::Enable, &go, HELPER_WAIT)?;
    let go_units: Vec<String> = go.iter().filter_map(|n| app.unit(n)).collect();
    let after = Systemd::connect()?.units(&go_units, Detail::States, None)?;
    for n in go {
        let info = app.unit(&n).and_then(|u| after.get(&u));
        let outcome = match info {
            Some(u) if u.is_active() => Outcome::Started,
            Some(u) => Outcome::Failed(format!(
                "still {}/{}{}",
                u.active_state,
                u.sub_state,
                call_err
                    .as_ref()
                    .map(|e| format!("; {}", message(e)))
                    .unwrap_or_default()
            )),
            None => Outcome::Failed(
                call_err
                    .as_ref()
                    .map(message)
                    .unwrap_or_else(|| "the unit is not loaded".into()),
            ),
        };
        results.push((n, outcome));
    }
    Ok(results)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn st(name: &str, init: bool, enabled: bool, active: &str) -> InstanceStatus {
        let mut s = InstanceStatus::new(name, &format!("demo@{name}.service"), init, None);
        s.enabled = enabled;
        s.active_state = active.into();
        s.drift = crate::status::drift(init, enabled, active);
        s
    }

    #[test]
    fn only_initialized_enabled_and_down_instances_are_candidates() {
        assert!(wants_heal(&st("a", true, true, "inactive")));
        assert!(wants_heal(&st("a", true, true, "failed")));
        assert!(
            !wants_heal(&st("a", true, false, "inactive")),
            "stopped on purpose"
        );
        assert!(!wants_heal(&st("a", false, true, "inactive")), "no state");
        assert!(!wants_heal(&st("a", true, true, "activating")));
        assert!(
            !wants_heal(&st("a", true, true, "deactivating")),
            "a stop job runs"
        );
        assert!(!wants_heal(&st("a", true, true, "active")));
    }

    #[test]
    fn back_off_doubles_up_to_the_cap_and_resets_after_a_good_run() {
        let mut h = Healer::default();
        let t0 = Instant::now();
        let down = [st("a", true, true, "failed")];
        assert_eq!(h.due(down.iter(), t0).0, vec!["a"]);
        h.in_flight.insert("a".into());
        assert!(h.due(down.iter(), t0).0.is_empty(), "in flight");
        assert_eq!(
            h.finished("a", &Outcome::Failed("x".into()), t0),
            Some((1, FIRST_WINDOW))
        );
        let (due, next) = h.due(down.iter(), t0 + Duration::from_secs(1));
        assert!(due.is_empty());
        assert_eq!(next, Some(t0 + FIRST_WINDOW));
        let mut t = t0;
        let mut waits = Vec::new();
        for _ in 0..10 {
            t += Duration::from_secs(10_000);
            assert_eq!(h.due(down.iter(), t).0, vec!["a"]);
            waits.push(h.finished("a", &Outcome::Started, t).unwrap().1.as_secs());
        }
        assert_eq!(waits, [20, 40, 80, 160, 320, 600, 600, 600, 600, 600]);
        // Busy or not needed: no attempt booked; busy retries after a pause.
        assert_eq!(h.finished("a", &Outcome::NotNeeded, t), None);
        t += Duration::from_secs(10_000);
        assert_eq!(h.finished("a", &Outcome::Busy, t), None);
        let (due, next) = h.due(down.iter(), t);
        assert!(due.is_empty(), "retried at once after busy");
        assert_eq!(next, Some(t + BUSY_RETRY));
        assert_eq!(h.due(down.iter(), t + BUSY_RETRY).0, vec!["a"]);
        // Up for a whole window: back to the first window.
        let up = st("a", true, true, "active");
        h.observe(&up, t);
        h.observe(&up, t + MAX_WINDOW);
        assert!(h.records.is_empty());
        assert_eq!(
            h.finished("a", &Outcome::Started, t).unwrap().1,
            FIRST_WINDOW
        );
    }
}
