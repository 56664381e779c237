//! systemd's view of one unit, parsed once: its active and sub state as
//! enums, so every question about it ("is it up?", "is it crash-looping?")
//! is answered in one place.

/// systemd's `ActiveState`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Active {
    Active,
    Reloading,
    #[default]
    Inactive,
    Failed,
    Activating,
    Deactivating,
    Maintenance,
    Refreshing,
    /// A state this version does not know (kept for display).
    Other(String),
}

impl Active {
    pub fn parse(s: &str) -> Active {
        match s {
            "active" => Active::Active,
            "reloading" => Active::Reloading,
            "inactive" => Active::Inactive,
            "failed" => Active::Failed,
            "activating" => Active::Activating,
            "deactivating" => Active::Deactivating,
            "maintenance" => Active::Maintenance,
            "refreshing" => Active::Refreshing,
            other => Active::Other(other.to_owned()),
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            Active::Active => "active",
            Active::Reloading => "reloading",
            Active::Inactive => "inactive",
            Active::Failed => "failed",
            Active::Activating => "activating",
            Active::Deactivating => "deactivating",
            Active::Maintenance => "maintenance",
            Active::Refreshing => "refreshing",
            Active::Other(s) => s,
        }
    }

    /// Nothing runs and nothing is about to: `inactive` or `failed`.
    pub fn is_down(&self) -> bool {
        matches!(self, Active::Inactive | Active::Failed)
    }
}

/// systemd's `SubState` (for services), the states unitgate acts on.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Sub {
    Running,
    #[default]
    Dead,
    Exited,
    /// Waiting to be restarted after the main process failed.
    AutoRestart,
    Failed,
    Other(String),
}

impl Sub {
    pub fn parse(s: &str) -> Sub {
        match s {
            "running" => Sub::Running,
            "dead" => Sub::Dead,
            "exited" => Sub::Exited,
            "auto-restart" => Sub::AutoRestart,
            "failed" => Sub::Failed,
            other => Sub::Other(other.to_owned()),
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            Sub::Running => "running",
            Sub::Dead => "dead",
            Sub::Exited => "exited",
            Sub::AutoRestart => "auto-restart",
            Sub::Failed => "failed",
            Sub::Other(s) => s,
        }
    }
}

/// What systemd knows about one unit. Units systemd has not loaded (never
/// started, not enabled) are absent from a `Systemd::units` map.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UnitInfo {
    pub unit: String,
    pub load_state: String,
    pub active: Active,
    pub sub: Sub,
    /// `enabled`, `disabled`, `linked`, … (None when unknown).
    pub unit_file_state: Option<String>,
    pub main_pid: u32,
    pub restarts: Option<u32>,
    /// Last state change, µs since the epoch.
    pub since_usec: Option<u64>,
    pub memory_bytes: Option<u64>,
    /// The unit's cgroup, relative to the cgroup root.
    pub control_group: Option<String>,
    /// Id of the job queued for the unit (a start or stop in progress), 0
    /// when none.
    pub job_id: u32,
}

impl UnitInfo {
    /// `enabled` (or `enabled-runtime`): will start at boot.
    pub fn is_enabled(&self) -> bool {
        matches!(
            self.unit_file_state.as_deref(),
            Some("enabled" | "enabled-runtime")
        )
    }

    /// Stopped for good: not enabled and inactive (what `stop` and
    /// `delete` must reach; anything else still needs a `disable --now`).
    pub fn is_stopped(&self) -> bool {
        !self.is_enabled() && self.active == Active::Inactive
    }

    /// Up and serving: active (or reloading) with its main process running.
    /// For a `Type=notify` service, active means it said it is ready.
    pub fn is_running(&self) -> bool {
        matches!(self.active, Active::Active | Active::Reloading)
            && matches!(self.sub, Sub::Running | Sub::Exited | Sub::Other(_))
    }

    /// Up or on its way up (a start job or an automatic restart pending).
    pub fn is_up_or_starting(&self) -> bool {
        matches!(
            self.active,
            Active::Active | Active::Reloading | Active::Activating | Active::Refreshing
        )
    }

    /// Its main process keeps dying and systemd keeps restarting it.
    pub fn is_crash_looping(&self) -> bool {
        self.sub == Sub::AutoRestart
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_round_trip_and_unknown_ones_are_kept() {
        for s in [
            "active",
            "reloading",
            "inactive",
            "failed",
            "activating",
            "deactivating",
            "maintenance",
            "refreshing",
            "something-new",
        ] {
            assert_eq!(Active::parse(s).as_str(), s);
        }
        for s in [
            "running",
            "dead",
            "exited",
            "auto-restart",
            "failed",
            "start-pre",
        ] {
            assert_eq!(Sub::parse(s).as_str(), s);
        }
    }

    #[test]
    fn running_means_active_with_its_process_up() {
        let u = |a: &str, s: &str| UnitInfo {
            active: Active::parse(a),
            sub: Sub::parse(s),
            ..Default::default()
        };
        assert!(u("active", "running").is_running());
        assert!(u("active", "exited").is_running(), "a oneshot that remains");
        assert!(!u("activating", "start").is_running(), "not ready yet");
        assert!(!u("activating", "auto-restart").is_running());
        assert!(u("activating", "auto-restart").is_crash_looping());
        assert!(u("activating", "auto-restart").is_up_or_starting());
        assert!(!u("failed", "failed").is_up_or_starting());
    }
}
