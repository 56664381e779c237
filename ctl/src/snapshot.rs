//! One look at an app's instances: what makes an instance — a valid name,
//! its state directory, its unit's state in systemd — joined in one place,
//! and every judgement about it (running? stopped for good? drifted?)
//! made here, once. `status`, `watch`, `--heal` and every lifecycle
//! command read a [`Snapshot`] and decide from it.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use crate::app::App;
use crate::dirfd::DirFd;
use crate::error::Result;
use crate::name::InstanceName;
use crate::store::Store;
use crate::systemd::{Detail, Systemd};
use crate::unit::{Active, UnitInfo};

/// The gap between what should be (initialized + enabled ⇒ running) and
/// what is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Drift {
    /// Initialized and enabled, but not running (crash past the restart
    /// limit, OOM kill, manual `systemctl stop`).
    ShouldRunButInactive,
    /// Its main process keeps dying and systemd keeps restarting it.
    CrashLoop,
    /// Running, but not enabled: will not come back after a reboot.
    RunningButNotEnabled,
    /// The unit is enabled or running but its state directory is gone
    /// (e.g. a crashed `delete`, or a state dir removed by hand).
    UnitWithoutState,
    /// systemd reports the unit `failed`.
    Failed,
}

impl Drift {
    pub fn as_str(self) -> &'static str {
        match self {
            Drift::ShouldRunButInactive => "should-run-but-inactive",
            Drift::CrashLoop => "crash-loop",
            Drift::RunningButNotEnabled => "running-but-not-enabled",
            Drift::UnitWithoutState => "unit-without-state",
            Drift::Failed => "failed",
        }
    }
}

/// One instance as the snapshot saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instance {
    pub name: InstanceName,
    pub unit: String,
    /// `<state_dir>/<name>/` is a directory: a complete instance.
    pub initialized: bool,
    /// A `delete` that crashed left the instance's trash behind.
    pub has_trash: bool,
    /// systemd's state; `None` when it neither has the unit loaded nor
    /// enabled (as good as inactive/dead).
    pub unit_state: Option<UnitInfo>,
}

impl Instance {
    pub fn new(
        app: &App,
        name: InstanceName,
        store: &Store<'_>,
        unit_state: Option<UnitInfo>,
    ) -> Self {
        Instance {
            unit: app.unit(&name),
            initialized: store.exists(name.as_str()),
            has_trash: store.has_trash(name.as_str()),
            name,
            unit_state,
        }
    }

    pub fn enabled(&self) -> bool {
        self.unit_state.as_ref().is_some_and(UnitInfo::is_enabled)
    }

    pub fn active(&self) -> Active {
        self.unit_state
            .as_ref()
            .map_or(Active::Inactive, |u| u.active.clone())
    }

    /// Up and serving (see [`UnitInfo::is_running`]).
    pub fn is_running(&self) -> bool {
        self.unit_state.as_ref().is_some_and(UnitInfo::is_running)
    }

    /// Not enabled and inactive: nothing runs and nothing will at boot.
    pub fn is_stopped(&self) -> bool {
        self.unit_state.as_ref().map_or(true, UnitInfo::is_stopped)
    }

    pub fn is_crash_looping(&self) -> bool {
        self.unit_state
            .as_ref()
            .is_some_and(UnitInfo::is_crash_looping)
    }

    /// An instance in any sense: state on disk, or a unit that systemd
    /// runs, would start at boot, or reports failed.
    pub fn exists(&self) -> bool {
        self.initialized || self.has_trash || !self.is_stopped() || self.active() == Active::Failed
    }

    pub fn drift(&self) -> Option<Drift> {
        let active = self.active();
        let enabled = self.enabled();
        let live = !active.is_down();
        let failed = active == Active::Failed;
        if !self.initialized && (enabled || live || failed) {
            return Some(Drift::UnitWithoutState);
        }
        if failed {
            return Some(Drift::Failed);
        }
        if self.initialized && self.is_crash_looping() {
            return Some(Drift::CrashLoop);
        }
        let up = self
            .unit_state
            .as_ref()
            .is_some_and(UnitInfo::is_up_or_starting);
        if self.initialized && enabled && !up {
            return Some(Drift::ShouldRunButInactive);
        }
        if self.initialized && !enabled && live {
            return Some(Drift::RunningButNotEnabled);
        }
        None
    }

    /// What `watch --heal` starts again: meant to run (initialized and
    /// enabled), down, and nothing queued for it.
    pub fn wants_heal(&self) -> bool {
        self.initialized
            && self.enabled()
            && self.active().is_down()
            && self.unit_state.as_ref().map_or(0, |u| u.job_id) == 0
    }
}

/// A look at some or all instances of an app, in a stable order.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub instances: Vec<Instance>,
}

impl Snapshot {
    /// The named instances, in the order given (duplicates once).
    pub fn of(
        store: &Store<'_>,
        sd: &Systemd,
        names: &[InstanceName],
        detail: Detail,
        cache: Option<&DirFd>,
    ) -> Result<Snapshot> {
        let app = store.app;
        let units: Vec<String> = names.iter().map(|n| app.unit(n)).collect();
        let mut states = if units.is_empty() {
            BTreeMap::new()
        } else {
            sd.units(&units, detail, cache)?
        };
        let mut seen = BTreeSet::new();
        let instances = names
            .iter()
            .filter(|n| seen.insert((*n).clone()))
            .map(|n| {
                let state = states.remove(&app.unit(n));
                Instance::new(app, n.clone(), store, state)
            })
            .collect();
        Ok(Snapshot { instances })
    }

    /// Every instance there is: each initialized one, and each unit of the
    /// app systemd knows that has drifted (an inactive leftover a `delete`
    /// already stopped is not an instance), sorted by name.
    pub fn all(
        store: &Store<'_>,
        sd: &Systemd,
        detail: Detail,
        cache: Option<&DirFd>,
    ) -> Result<Snapshot> {
        let app = store.app;
        let mut states = sd.units(&[app.unit_glob()], detail, cache)?;
        let survey = store.survey()?;
        let mut names = survey.instances.clone();
        names.extend(states.keys().filter_map(|u| app.instance_of(u)));
        let instances = names
            .into_iter()
            .map(|n| Instance {
                unit: app.unit(&n),
                initialized: survey.instances.contains(&n),
                has_trash: survey.trash.contains(n.as_str()),
                unit_state: states.remove(&app.unit(&n)),
                name: n,
            })
            .filter(|i| i.initialized || i.drift().is_some())
            .collect();
        Ok(Snapshot { instances })
    }

    pub fn get(&self, name: &str) -> Option<&Instance> {
        self.instances.iter().find(|i| i.name.as_str() == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::unit::Sub;

    fn inst(initialized: bool, enabled: bool, active: &str, sub: &str) -> Instance {
        Instance {
            name: InstanceName::checked("a"),
            unit: "demo@a.service".into(),
            initialized,
            has_trash: false,
            unit_state: Some(UnitInfo {
                active: Active::parse(active),
                sub: Sub::parse(sub),
                unit_file_state: Some(if enabled { "enabled" } else { "disabled" }.into()),
                ..Default::default()
            }),
        }
    }

    #[test]
    fn drift_kinds() {
        let d = |i: bool, e: bool, a: &str, s: &str| inst(i, e, a, s).drift();
        assert_eq!(d(true, true, "active", "running"), None);
        assert_eq!(d(true, false, "inactive", "dead"), None);
        assert_eq!(d(false, false, "inactive", "dead"), None);
        assert_eq!(
            d(true, true, "inactive", "dead"),
            Some(Drift::ShouldRunButInactive)
        );
        assert_eq!(
            d(true, true, "deactivating", "stop"),
            Some(Drift::ShouldRunButInactive)
        );
        assert_eq!(
            d(true, false, "active", "running"),
            Some(Drift::RunningButNotEnabled)
        );
        assert_eq!(
            d(false, true, "active", "running"),
            Some(Drift::UnitWithoutState)
        );
        assert_eq!(
            d(false, true, "inactive", "dead"),
            Some(Drift::UnitWithoutState)
        );
        assert_eq!(
            d(false, false, "active", "running"),
            Some(Drift::UnitWithoutState)
        );
        assert_eq!(d(true, true, "failed", "failed"), Some(Drift::Failed));
        assert_eq!(d(true, false, "failed", "failed"), Some(Drift::Failed));
        assert_eq!(
            d(true, true, "activating", "start"),
            None,
            "a start job runs"
        );
        assert_eq!(
            d(true, true, "activating", "auto-restart"),
            Some(Drift::CrashLoop),
            "cycling is not starting"
        );
    }

    #[test]
    fn an_unknown_unit_is_stopped_and_only_state_makes_it_exist() {
        let mut i = inst(false, false, "inactive", "dead");
        i.unit_state = None;
        assert!(i.is_stopped() && !i.exists() && i.drift().is_none());
        i.initialized = true;
        assert!(i.exists());
        let failed = inst(false, false, "failed", "failed");
        assert!(failed.exists());
    }

    #[test]
    fn heal_wants_meant_to_run_down_and_idle() {
        assert!(inst(true, true, "inactive", "dead").wants_heal());
        assert!(inst(true, true, "failed", "failed").wants_heal());
        assert!(
            !inst(true, false, "inactive", "dead").wants_heal(),
            "stopped on purpose"
        );
        assert!(
            !inst(false, true, "inactive", "dead").wants_heal(),
            "no state"
        );
        assert!(
            !inst(true, true, "activating", "auto-restart").wants_heal(),
            "systemd is on it"
        );
        assert!(
            !inst(true, true, "deactivating", "stop").wants_heal(),
            "a stop job runs"
        );
        let mut queued = inst(true, true, "inactive", "dead");
        queued.unit_state.as_mut().unwrap().job_id = 7;
        assert!(!queued.wants_heal());
    }
}
