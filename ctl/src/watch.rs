//! `unitgate watch [--heal] [--interval SECONDS]`: the app's instances as a
//! stream of changes.
//!
//! Prints the full state once, then one element per instance whenever
//! anything that matters about it changes (initialized, enabled,
//! active/sub state, drift, main PID, restarts): with `--json` one JSON
//! object per line (the `status --json` element plus `event`, `time` and
//! `previous`; schema in docs/watch.md), else readable lines.
//!
//! Event-driven with a safety net: systemd's D-Bus signals ([`bus`]) and
//! inotify on the state directory and on systemd's link directories
//! ([`sources`]) only say *which* instances to re-read; the main loop
//! drains whatever is pending, re-reads those instances with a constant
//! number of D-Bus calls, and reports what differs from what it last saw
//! — so a change is reported once, however many signals announced it.
//! Everything is re-read every `--interval` too, because signals can be
//! lost, and a unit systemd unloaded sends none. Memory is the last state
//! of each instance, nothing per event.
//!
//! Exits 0 on SIGINT/SIGTERM/SIGHUP and when stdout's reader goes away
//! (EPIPE on a write, or POLLERR on fd 1 while idle).

mod bus;
mod heal;
mod sources;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::app::App;
use crate::error::{Error, Result};
use crate::lifecycle::Context;
use crate::name::InstanceName;
use crate::output::{note, Output};
use crate::snapshot::{Instance, Snapshot};
use crate::status::{self, InstanceStatus};
use crate::store::Store;
use crate::systemd::{Detail, Systemd};

pub use heal::{FIRST_WINDOW as HEAL_FIRST_WINDOW, MAX_WINDOW as HEAL_MAX_WINDOW};

#[derive(Debug, Clone, Copy)]
pub struct Options {
    pub heal: bool,
    /// Full re-read period (the safety net).
    pub interval: Duration,
}

/// What the sources tell the main loop.
#[derive(Debug)]
pub(crate) enum Ev {
    /// Re-read this instance.
    Dirty(InstanceName),
    /// Re-read everything.
    All,
    /// Unit files changed: re-read enablement (from disk) now.
    UnitFiles,
    /// The signal connection is (again) subscribed.
    BusUp { reconnected: bool },
    /// The signal connection ended or could not be made (why, and the
    /// delay before the next attempt).
    BusDown(String, Duration),
    /// A heal finished.
    Healed(Vec<(InstanceName, heal::Outcome)>),
    /// Stop: a signal, or stdout closed.
    Quit,
}

/// Above this many dirty instances a full re-read (which reuses the status
/// cache) is cheaper than asking each one.
const FULL_READ_ABOVE: usize = 32;
/// After the first event, how long to gather more before re-reading.
const SETTLE: Duration = Duration::from_millis(5);

pub fn run(cx: &Context<'_>, opts: Options) -> Result<()> {
    let app = cx.app;
    sources::block_quit_signals();
    let (tx, rx) = mpsc::channel();
    sources::spawn_signals(tx.clone());
    sources::spawn_stdout_watch(tx.clone());
    sources::spawn_state_dir_watch(app.clone(), tx.clone());
    sources::spawn_enable_links_watch(app.clone(), tx.clone());
    bus::spawn(app.clone(), tx.clone());
    let mut w = Watcher {
        app,
        opts,
        tx,
        out: Out { out: cx.out },
        sd: None,
        known: BTreeMap::new(),
        healer: heal::Healer::default(),
        bus_down: false,
        read_failures: BTreeSet::new(),
    };
    match w.run(&rx) {
        Ok(()) | Err(Stop::Quit) => Ok(()),
        Err(Stop::Error(e)) => Err(e),
    }
}

enum Stop {
    /// A clean end: a signal, or nobody reads stdout any more.
    Quit,
    Error(Error),
}

impl From<Error> for Stop {
    fn from(e: Error) -> Stop {
        Stop::Error(e)
    }
}

/// What to re-read.
#[derive(Debug, Default)]
struct Scope {
    all: bool,
    names: BTreeSet<InstanceName>,
    /// Enablement and state directories only (no systemd call).
    files: bool,
}

impl Scope {
    fn is_empty(&self) -> bool {
        !self.all && !self.files && self.names.is_empty()
    }
}

struct Watcher<'a> {
    app: &'a App,
    opts: Options,
    tx: Sender<Ev>,
    out: Out,
    sd: Option<Systemd>,
    /// The last state seen of each instance (what `status` would list).
    known: BTreeMap<InstanceName, Instance>,
    healer: heal::Healer,
    bus_down: bool,
    /// While reads fail: each cause already said on stderr (one line per
    /// cause, so a bus that goes from "closed" to "not up" is told, and a
    /// cause that persists is not repeated). Empty while reads succeed.
    read_failures: BTreeSet<String>,
}

/// When the loop has something to do that no event brings.
struct Timers {
    /// The periodic full re-read (`--interval`).
    next_full: Instant,
    /// After a failed read: not before this.
    retry_at: Option<Instant>,
    /// The healer's next round, when one is due.
    heal_at: Option<Instant>,
}

impl Timers {
    fn wake(&self) -> Instant {
        [self.retry_at, self.heal_at]
            .into_iter()
            .flatten()
            .fold(self.next_full, Instant::min)
    }
}

impl Watcher<'_> {
    /// Subscribe, print the first snapshot, then turn each gathered burst
    /// of events (or a timer) into one re-read and its changes.
    fn run(&mut self, rx: &Receiver<Ev>) -> Result<(), Stop> {
        let mut pending = self.await_subscription(rx)?;
        self.first_snapshot(rx)?;
        let mut timers = Timers {
            next_full: Instant::now() + self.opts.interval,
            retry_at: None,
            heal_at: None,
        };
        self.heal_round(&mut timers.heal_at);
        loop {
            self.gather(rx, &mut pending, timers.wake())?;
            let now = Instant::now();
            if now >= timers.next_full {
                pending.all = true;
            }
            if let Some(retry_at) = timers.retry_at.filter(|t| now < *t) {
                // Still backing off after a failed read: keep gathering,
                // sleeping until the retry time instead of spinning.
                if !pending.is_empty() {
                    if let Ok(ev) = rx.recv_timeout(retry_at.saturating_duration_since(now)) {
                        self.handle(ev, &mut pending)?;
                    }
                }
                continue;
            }
            if timers.heal_at.is_some_and(|t| now >= t) {
                timers.heal_at = None;
                self.heal_round(&mut timers.heal_at);
            }
            if !pending.is_empty() {
                let scope = std::mem::take(&mut pending);
                self.reread(&scope, &mut pending, &mut timers)?;
            }
        }
    }

    /// Waits (up to 5 s) until the signal connection is subscribed or known
    /// to be down, so no change can fall between the snapshot and the first
    /// signal. Returns what arrived meanwhile.
    fn await_subscription(&mut self, rx: &Receiver<Ev>) -> Result<Scope, Stop> {
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut pending = Scope::default();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(Ev::BusUp { .. }) | Err(_) => return Ok(pending),
                Ok(ev @ Ev::BusDown(..)) => {
                    self.handle(ev, &mut pending)?;
                    return Ok(pending);
                }
                Ok(ev) => self.handle(ev, &mut pending)?,
            }
        }
    }

    /// Reads every instance (retrying with backoff until systemd answers or
    /// a quit arrives) and prints the first snapshot.
    fn first_snapshot(&mut self, rx: &Receiver<Ev>) -> Result<(), Stop> {
        let mut backoff = Duration::from_millis(100);
        let rows = loop {
            match self.read_all() {
                Ok(rows) => break rows,
                Err(e) => {
                    warn(&format!(
                        "cannot read systemd's state ({}); retrying",
                        e.message().unwrap_or_default()
                    ));
                    if let Ok(Ev::Quit) = rx.recv_timeout(backoff) {
                        return Err(Stop::Quit);
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
            }
        };
        let now_usec = status::now_usec();
        self.out.initial(&rows, now_usec)?;
        for r in rows {
            self.known.insert(r.name.clone(), r);
        }
        self.out.synced(self.known.len(), now_usec)?;
        Ok(())
    }

    /// Collects events into `pending`: when nothing is pending, waits for
    /// one (or `wake`) and then the rest of its burst (SETTLE); always
    /// takes what is already queued.
    fn gather(
        &mut self,
        rx: &Receiver<Ev>,
        pending: &mut Scope,
        wake: Instant,
    ) -> Result<(), Stop> {
        if pending.is_empty() {
            match rx.recv_timeout(wake.saturating_duration_since(Instant::now())) {
                Ok(ev) => {
                    self.handle(ev, pending)?;
                    let until = Instant::now() + SETTLE;
                    loop {
                        match rx.recv_timeout(until.saturating_duration_since(Instant::now())) {
                            Ok(ev) => self.handle(ev, pending)?,
                            Err(RecvTimeoutError::Timeout) => break,
                            Err(RecvTimeoutError::Disconnected) => return Err(Stop::Quit),
                        }
                    }
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => return Err(Stop::Quit),
            }
        }
        while let Ok(ev) = rx.try_recv() {
            self.handle(ev, pending)?;
        }
        Ok(())
    }

    /// Re-reads `scope` and prints what changed. A D-Bus failure (systemd
    /// re-executing, the bus restarting) is not the end: everything is read
    /// again once it answers, after a short wait.
    fn reread(
        &mut self,
        scope: &Scope,
        pending: &mut Scope,
        timers: &mut Timers,
    ) -> Result<(), Stop> {
        match self.refresh(scope) {
            Ok(()) => {
                timers.retry_at = None;
                if !self.read_failures.is_empty() {
                    self.read_failures.clear();
                    warn("reading systemd's state again");
                }
                if scope.all {
                    timers.next_full = Instant::now() + self.opts.interval;
                }
                timers.heal_at = None;
                self.heal_round(&mut timers.heal_at);
                Ok(())
            }
            Err(Stop::Error(e)) if matches!(e, Error::Dbus { .. } | Error::NoBus { .. }) => {
                self.sd = None;
                let wait = if self.read_failures.is_empty() {
                    Duration::from_millis(100)
                } else {
                    Duration::from_secs(1)
                };
                let why = e.message().unwrap_or_default();
                if !self.read_failures.contains(&why) {
                    warn(&format!("cannot read systemd's state ({why}); retrying"));
                    self.read_failures.insert(why);
                }
                pending.all = true;
                timers.retry_at = Some(Instant::now() + wait);
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    fn handle(&mut self, ev: Ev, pending: &mut Scope) -> Result<(), Stop> {
        match ev {
            Ev::Dirty(n) => {
                if !pending.all {
                    pending.names.insert(n);
                    if pending.names.len() > FULL_READ_ABOVE {
                        pending.all = true;
                        pending.names.clear();
                    }
                }
            }
            Ev::All => {
                pending.all = true;
                pending.names.clear();
            }
            Ev::UnitFiles => pending.files = true,
            Ev::BusUp { reconnected } => {
                if reconnected {
                    warn("reconnected to the system bus");
                    self.sd = None;
                }
                self.bus_down = false;
                pending.all = true;
                pending.names.clear();
            }
            Ev::BusDown(why, retry) => {
                if !self.bus_down {
                    warn(&format!(
                        "lost the system bus ({why}); reconnecting with back-off, \
                         re-reading every {}s meanwhile",
                        self.opts.interval.as_secs()
                    ));
                } else {
                    warn(&format!(
                        "still no system bus ({why}); next attempt in {:.1}s",
                        retry.as_secs_f64()
                    ));
                }
                self.bus_down = true;
                self.sd = None;
            }
            Ev::Healed(outcomes) => {
                let now = Instant::now();
                let usec = status::now_usec();
                for (name, outcome) in outcomes {
                    if let Some((attempt, wait)) = self.healer.finished(&name, &outcome, now) {
                        let unit = self.app.unit(&name);
                        self.out
                            .heal(name.as_str(), &unit, &outcome, attempt, wait, usec)?;
                    }
                    pending.names.insert(name);
                }
            }
            Ev::Quit => return Err(Stop::Quit),
        }
        Ok(())
    }

    /// The reader's connection, through the one waiting connect but with no
    /// wait of its own: a bus that is not up is retried by the loop (first
    /// snapshot, re-read), which stays responsive to a quit meanwhile.
    fn systemd(&mut self) -> Result<&Systemd> {
        if self.sd.is_none() {
            self.sd = Some(Systemd::connect(Duration::ZERO)?);
        }
        Ok(self.sd.as_ref().expect("just set"))
    }

    /// Every instance, as `status` lists them (with the status cache).
    fn read_all(&mut self) -> Result<Vec<Instance>> {
        let store = Store::open(self.app)?;
        let cache = store.lock_dir().ok();
        Ok(Snapshot::all(&store, self.systemd()?, Detail::Full, cache.as_ref())?.instances)
    }

    /// The named instances; those that are no instance (no state, nothing
    /// running or enabled) are left out, as `status` leaves them out.
    fn read_named(&mut self, names: &BTreeSet<InstanceName>) -> Result<Vec<Instance>> {
        let store = Store::open(self.app)?;
        let names: Vec<InstanceName> = names.iter().cloned().collect();
        // No status cache here: it holds every running unit, and writing
        // back a subset would empty it for the next full read.
        let snap = Snapshot::of(&store, self.systemd()?, &names, Detail::Full, None)?;
        Ok(snap
            .instances
            .into_iter()
            .filter(|i| i.initialized || i.drift().is_some())
            .collect())
    }

    fn refresh(&mut self, scope: &Scope) -> Result<(), Stop> {
        if scope.files {
            self.refresh_files()?;
            if !scope.all && scope.names.is_empty() {
                return Ok(());
            }
        }
        let (rows, names): (Vec<Instance>, BTreeSet<InstanceName>) = if scope.all {
            let rows = self.read_all()?;
            let mut names: BTreeSet<InstanceName> = self.known.keys().cloned().collect();
            names.extend(rows.iter().map(|r| r.name.clone()));
            (rows, names)
        } else {
            (self.read_named(&scope.names)?, scope.names.clone())
        };
        self.apply(rows, names)
    }

    /// Enablement (the `enable` symlinks) and state directories, straight
    /// from disk, joined with the last unit states seen: reports an
    /// enable/disable at once, before the daemon reload that follows it
    /// (systemd answers nothing while it reloads).
    fn refresh_files(&mut self) -> Result<(), Stop> {
        let app = self.app;
        let enabled = crate::systemd::enabled_units(&[app.unit_glob()]);
        let on_disk: BTreeSet<InstanceName> = Store::open(app)?.list()?.into_iter().collect();
        let mut rows = Vec::new();
        let mut names = BTreeSet::new();
        let mut unknown = BTreeSet::new();
        for (name, old) in &self.known {
            let en = enabled.get(&old.unit).copied();
            let init = on_disk.contains(name);
            if en.is_some() != old.enabled() || init != old.initialized {
                let mut new = old.clone();
                new.initialized = init;
                let state = new.unit_state.get_or_insert_with(Default::default);
                state.unit_file_state = Some(en.unwrap_or("disabled").to_owned());
                names.insert(name.clone());
                if new.initialized || new.drift().is_some() {
                    rows.push(new);
                }
            }
        }
        for unit in enabled.keys() {
            if let Some(inst) = app.instance_of(unit) {
                if !self.known.contains_key(&inst) {
                    unknown.insert(inst);
                }
            }
        }
        self.apply(rows, names)?;
        if !unknown.is_empty() {
            // Newly enabled units we have never seen: ask systemd.
            let rows = self.read_named(&unknown)?;
            self.apply(rows, unknown)?;
        }
        Ok(())
    }

    /// Reports the difference between `rows` (the fresh state of the
    /// instances in `names` that exist) and what was seen last.
    fn apply(&mut self, rows: Vec<Instance>, names: BTreeSet<InstanceName>) -> Result<(), Stop> {
        let usec = status::now_usec();
        let now = Instant::now();
        let mut fresh: BTreeMap<InstanceName, Instance> =
            rows.into_iter().map(|r| (r.name.clone(), r)).collect();
        for name in names {
            let new = fresh.remove(&name);
            let old = self.known.get(&name);
            match (old, new) {
                (None, None) => {}
                (None, Some(new)) => {
                    self.out
                        .change("change", &InstanceStatus::of(&new), None, usec)?;
                    self.healer.observe(&new, now);
                    self.known.insert(name, new);
                }
                (Some(old), Some(new)) => {
                    let (was, is) = (InstanceStatus::of(old), InstanceStatus::of(&new));
                    if differs(&was, &is) {
                        self.out.change("change", &is, Some(&was), usec)?;
                    }
                    self.healer.observe(&new, now);
                    self.known.insert(name, new);
                }
                (Some(_), None) => {
                    let old = self.known.remove(&name).expect("present");
                    let gone = Instance {
                        initialized: false,
                        has_trash: false,
                        unit_state: None,
                        ..old.clone()
                    };
                    let (was, is) = (InstanceStatus::of(&old), InstanceStatus::of(&gone));
                    self.out.change("removed", &is, Some(&was), usec)?;
                    self.healer.forget(&name);
                }
            }
        }
        Ok(())
    }

    fn heal_round(&mut self, heal_at: &mut Option<Instant>) {
        if !self.opts.heal || self.healer.busy() {
            return;
        }
        let (due, next) = self.healer.due(self.known.values(), Instant::now());
        *heal_at = next;
        if !due.is_empty() {
            self.healer.dispatch(self.app, due, &self.tx);
        }
    }
}

/// Whether a change is worth a line: everything but the figures that move
/// on their own (memory) or only with a state change (since).
fn differs(a: &InstanceStatus, b: &InstanceStatus) -> bool {
    a.initialized != b.initialized
        || a.enabled != b.enabled
        || a.active_state != b.active_state
        || a.sub_state != b.sub_state
        || a.drift != b.drift
        || a.main_pid != b.main_pid
        || a.restarts != b.restarts
}

fn warn(msg: &str) {
    note(&format!("unitgate: watch: {msg}"));
}

/// µs since the epoch → `YYYY-MM-DDTHH:MM:SS.uuuuuuZ`.
pub fn rfc3339_usec(usec: u64) -> String {
    let s = status::rfc3339(usec);
    format!("{}.{:06}Z", s.trim_end_matches('Z'), usec % 1_000_000)
}

#[derive(Serialize)]
struct ChangeJson<'a> {
    event: &'a str,
    time: String,
    #[serde(flatten)]
    status: &'a InstanceStatus,
    previous: Option<&'a InstanceStatus>,
}

#[derive(Serialize)]
struct HealJson<'a> {
    event: &'static str,
    time: String,
    instance: &'a str,
    unit: &'a str,
    result: &'static str,
    error: Option<&'a str>,
    attempt: u32,
    next_heal_after_secs: u64,
}

/// Writes the stream; a closed pipe means nobody reads any more.
struct Out {
    out: Output,
}

impl Out {
    fn write(&self, text: &str) -> Result<(), Stop> {
        match self.out.text(text) {
            Ok(()) => Ok(()),
            Err(Error::ClosedPipe) => Err(Stop::Quit),
            Err(e) => Err(Stop::Error(e)),
        }
    }

    fn initial(&self, instances: &[Instance], usec: u64) -> Result<(), Stop> {
        let rows: Vec<InstanceStatus> = instances.iter().map(InstanceStatus::of).collect();
        if self.out.json {
            let mut s = String::new();
            for r in &rows {
                s.push_str(&line(&ChangeJson {
                    event: "initial",
                    time: rfc3339_usec(usec),
                    status: r,
                    previous: None,
                }));
            }
            self.write(&s)
        } else {
            self.write(&status::render_table(&rows, usec, status::use_colour()))
        }
    }

    fn synced(&self, n: usize, usec: u64) -> Result<(), Stop> {
        if self.out.json {
            self.write(&line(&serde_json::json!({
                "event": "synced",
                "time": rfc3339_usec(usec),
                "instances": n,
            })))
        } else {
            self.write(&format!(
                "{} watching {n} instance(s); changes follow\n",
                rfc3339_usec(usec)
            ))
        }
    }

    fn change(
        &self,
        event: &str,
        st: &InstanceStatus,
        previous: Option<&InstanceStatus>,
        usec: u64,
    ) -> Result<(), Stop> {
        if self.out.json {
            return self.write(&line(&ChangeJson {
                event,
                time: rfc3339_usec(usec),
                status: st,
                previous,
            }));
        }
        let state = |s: &InstanceStatus| format!("{}/{}", s.active_state, s.sub_state);
        let mut text = format!("{} {}: ", rfc3339_usec(usec), st.instance);
        match (event, previous) {
            ("removed", Some(p)) => text.push_str(&format!("removed (was {})", state(p))),
            (_, Some(p)) if state(p) != state(st) => {
                text.push_str(&format!("{} -> {}", state(p), state(st)))
            }
            _ => text.push_str(&state(st)),
        }
        if event != "removed" {
            text.push_str(&format!(
                ", {}, {}",
                if st.initialized {
                    "initialized"
                } else {
                    "no state"
                },
                if st.enabled { "enabled" } else { "not enabled" },
            ));
            if let Some(pid) = st.main_pid {
                text.push_str(&format!(", pid {pid}"));
            }
            match st.drift {
                Some(d) => text.push_str(&format!(", drift: {}", d.as_str())),
                None if previous.is_some_and(|p| p.drift.is_some()) => {
                    text.push_str(", drift resolved")
                }
                None => {}
            }
        }
        text.push('\n');
        self.write(&text)
    }

    fn heal(
        &self,
        instance: &str,
        unit: &str,
        outcome: &heal::Outcome,
        attempt: u32,
        wait: Duration,
        usec: u64,
    ) -> Result<(), Stop> {
        let (result, error) = match outcome {
            heal::Outcome::Started => ("started", None),
            heal::Outcome::Failed(e) => ("failed", Some(e.as_str())),
            heal::Outcome::Busy => ("busy", None),
            heal::Outcome::NotNeeded => ("not-needed", None),
        };
        if self.out.json {
            return self.write(&line(&HealJson {
                event: "heal",
                time: rfc3339_usec(usec),
                instance,
                unit,
                result,
                error,
                attempt,
                next_heal_after_secs: wait.as_secs(),
            }));
        }
        self.write(&format!(
            "{} {instance}: heal #{attempt}: {result}{}; next heal not before {}s\n",
            rfc3339_usec(usec),
            error.map(|e| format!(": {e}")).unwrap_or_default(),
            wait.as_secs()
        ))
    }
}

fn line<T: Serialize>(v: &T) -> String {
    // Plain data (strings, numbers, options): encoding cannot fail.
    let mut s = serde_json::to_string(v).unwrap_or_default();
    s.push('\n');
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_has_microseconds() {
        assert_eq!(
            rfc3339_usec(1_714_564_800_123_456),
            "2024-05-01T12:00:00.123456Z"
        );
        assert_eq!(
            rfc3339_usec(1_714_564_800_000_007),
            "2024-05-01T12:00:00.000007Z"
        );
    }

    #[test]
    fn change_line_is_the_status_element_plus_event_time_previous() {
        let i = Instance {
            name: crate::name::InstanceName::checked("a"),
            unit: "demo@a.service".into(),
            initialized: true,
            has_trash: false,
            unit_state: None,
        };
        let a = InstanceStatus::of(&i);
        let mut enabled = i.clone();
        enabled.unit_state = Some(crate::unit::UnitInfo {
            unit_file_state: Some("enabled".into()),
            ..Default::default()
        });
        let b = InstanceStatus::of(&enabled);
        let v: serde_json::Value = serde_json::from_str(&line(&ChangeJson {
            event: "change",
            time: rfc3339_usec(1),
            status: &b,
            previous: Some(&a),
        }))
        .unwrap();
        let mut keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
        keys.sort();
        assert_eq!(
            keys,
            [
                "active_state",
                "drift",
                "enabled",
                "event",
                "initialized",
                "instance",
                "main_pid",
                "memory_bytes",
                "previous",
                "restarts",
                "since",
                "sub_state",
                "time",
                "unit"
            ]
        );
        assert_eq!(v["drift"], "should-run-but-inactive");
        assert_eq!(v["previous"]["enabled"], false);
        assert!(v["previous"]["drift"].is_null());
        assert!(differs(&a, &b));
        let mut c = b.clone();
        c.memory_bytes = Some(1);
        assert!(!differs(&b, &c), "memory alone is no change");
    }
}
