//! `status`: systemd's view joined with the state directories, drift, and
//! the two renderings (table and the `--json` schema).
//!
//! [`InstanceStatus`] is the one per-instance element of the JSON schema;
//! `status --json` prints `{"app": …, "instances": [InstanceStatus…]}`.

use std::collections::{BTreeMap, BTreeSet};
use std::io::IsTerminal;

use serde::Serialize;

use crate::app::App;
use crate::error::{Error, Result};
use crate::instance::Store;
use crate::systemd::{Detail, Systemd, UnitInfo};

/// The gap between what should be (initialized + enabled) and what is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Drift {
    /// Initialized and enabled, but not running (crash past the restart
    /// limit, OOM kill, manual `systemctl stop`).
    ShouldRunButInactive,
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
            Drift::RunningButNotEnabled => "running-but-not-enabled",
            Drift::UnitWithoutState => "unit-without-state",
            Drift::Failed => "failed",
        }
    }
}

/// One instance, as `status --json` (and later `watch --json`) prints it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InstanceStatus {
    pub instance: String,
    pub unit: String,
    /// The state directory exists (a complete instance).
    pub initialized: bool,
    /// The unit is enabled (starts at boot).
    pub enabled: bool,
    /// systemd's ActiveState: active, inactive, failed, activating, …
    pub active_state: String,
    /// systemd's SubState: running, dead, exited, auto-restart, …
    pub sub_state: String,
    /// Last state change, RFC 3339 UTC (`2024-05-01T12:00:00Z`), or null.
    pub since: Option<String>,
    /// Main process id, null when not running.
    pub main_pid: Option<u32>,
    /// Automatic restarts since the unit was last started by hand.
    pub restarts: Option<u32>,
    /// Memory used by the unit's cgroup, null when unknown.
    pub memory_bytes: Option<u64>,
    pub drift: Option<Drift>,
    #[serde(skip)]
    pub since_usec: Option<u64>,
}

impl InstanceStatus {
    pub fn is_active(&self) -> bool {
        matches!(
            self.active_state.as_str(),
            "active" | "reloading" | "activating"
        )
    }

    /// Joins one unit's state (None: systemd does not know the unit) with
    /// whether its state directory exists.
    pub fn new(
        instance: &str,
        unit: &str,
        initialized: bool,
        info: Option<&UnitInfo>,
    ) -> InstanceStatus {
        let (enabled, active, sub) = match info {
            Some(u) => (u.is_enabled(), u.active_state.clone(), u.sub_state.clone()),
            None => (false, "inactive".to_owned(), "dead".to_owned()),
        };
        let since_usec = info.and_then(|u| u.since_usec);
        InstanceStatus {
            instance: instance.to_owned(),
            unit: unit.to_owned(),
            initialized,
            enabled,
            drift: drift(initialized, enabled, &active),
            active_state: active,
            sub_state: sub,
            since: since_usec.map(rfc3339),
            main_pid: info.map(|u| u.main_pid).filter(|&p| p != 0),
            restarts: info.and_then(|u| u.restarts),
            memory_bytes: info.and_then(|u| u.memory_bytes),
            since_usec,
        }
    }
}

/// Drift from the three facts that define it.
pub fn drift(initialized: bool, enabled: bool, active_state: &str) -> Option<Drift> {
    let running = matches!(
        active_state,
        "active" | "activating" | "reloading" | "deactivating"
    );
    let failed = active_state == "failed";
    if !initialized && (enabled || running || failed) {
        return Some(Drift::UnitWithoutState);
    }
    if failed {
        return Some(Drift::Failed);
    }
    if initialized && enabled && !matches!(active_state, "active" | "activating" | "reloading") {
        return Some(Drift::ShouldRunButInactive);
    }
    if initialized && !enabled && running {
        return Some(Drift::RunningButNotEnabled);
    }
    None
}

/// Status of `names` (validated by the caller), or of every instance: each
/// initialized one and each unit systemd knows that has drifted.
pub fn collect(app: &App, names: Option<&[String]>) -> Result<Vec<InstanceStatus>> {
    collect_with(&Systemd::connect()?, app, names)
}

pub fn collect_with(
    sd: &Systemd,
    app: &App,
    names: Option<&[String]>,
) -> Result<Vec<InstanceStatus>> {
    let patterns: Vec<String> = match names {
        Some(ns) => ns.iter().filter_map(|n| app.unit(n)).collect(),
        None => vec![app.unit_glob()],
    };
    let store = Store::open(app)?;
    let units = if patterns.is_empty() {
        BTreeMap::new()
    } else {
        // A caller who cannot write `.locks/` just does not cache.
        let cache = store.lock_dir().ok();
        sd.units(&patterns, Detail::Full, cache.as_ref())?
    };
    let on_disk: BTreeSet<String> = match names {
        Some(ns) => ns.iter().filter(|n| store.exists(n)).cloned().collect(),
        None => store.list()?.into_iter().collect(),
    };
    let mut by_instance: BTreeMap<String, &UnitInfo> = BTreeMap::new();
    for (unit, info) in &units {
        if let Some(inst) = app.instance_of(unit) {
            by_instance.insert(inst.to_owned(), info);
        }
    }
    let wanted: Vec<String> = match names {
        Some(ns) => {
            let mut v: Vec<String> = ns.to_vec();
            let mut seen = BTreeSet::new();
            v.retain(|n| seen.insert(n.clone()));
            v
        }
        None => on_disk
            .iter()
            .chain(by_instance.keys())
            .cloned()
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect(),
    };
    let mut out = Vec::with_capacity(wanted.len());
    for inst in wanted {
        let Some(unit) = app.unit(&inst) else {
            continue;
        };
        let st = InstanceStatus::new(
            &inst,
            &unit,
            on_disk.contains(&inst),
            by_instance.get(&inst).copied(),
        );
        // Listing everything: a unit without state is only interesting when
        // it drifted (an inactive leftover a `delete` already stopped is not
        // an instance).
        if names.is_none() && !st.initialized && st.drift.is_none() {
            continue;
        }
        out.push(st);
    }
    Ok(out)
}

/// Whether a named instance exists in any sense (state, or a unit that
/// systemd runs or would start).
pub fn is_known(st: &InstanceStatus) -> bool {
    st.initialized || st.enabled || st.active_state != "inactive"
}

#[derive(Serialize)]
struct StatusJson<'a> {
    app: &'a str,
    instances: &'a [InstanceStatus],
}

pub fn to_json(app: &App, rows: &[InstanceStatus]) -> String {
    serde_json::to_string_pretty(&StatusJson {
        app: &app.name,
        instances: rows,
    })
    .expect("plain data serializes")
}

/// Colour on a terminal only, never under `NO_COLOR`.
pub fn use_colour() -> bool {
    std::env::var_os("NO_COLOR").is_none() && std::io::stdout().is_terminal()
}

pub fn render_table(rows: &[InstanceStatus], now_usec: u64, colour: bool) -> String {
    let header = [
        "INSTANCE", "INIT", "ENABLED", "STATE", "SINCE", "PID", "RESTARTS", "MEMORY", "DRIFT",
    ];
    let mut table: Vec<[String; 9]> = Vec::with_capacity(rows.len());
    for r in rows {
        table.push([
            r.instance.clone(),
            yes_no(r.initialized).into(),
            yes_no(r.enabled).into(),
            format!("{}/{}", r.active_state, r.sub_state),
            r.since_usec
                .map(|t| ago(now_usec, t))
                .unwrap_or_else(|| "-".into()),
            r.main_pid
                .map(|p| p.to_string())
                .unwrap_or_else(|| "-".into()),
            r.restarts
                .map(|n| n.to_string())
                .unwrap_or_else(|| "-".into()),
            r.memory_bytes
                .map(human_bytes)
                .unwrap_or_else(|| "-".into()),
            r.drift
                .map(|d| d.as_str().to_owned())
                .unwrap_or_else(|| "-".into()),
        ]);
    }
    let mut widths = header.map(str::len);
    for row in &table {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let line = |cells: &[String], colours: &[Option<&str>], out: &mut String| {
        let mut s = String::new();
        for (i, cell) in cells.iter().enumerate() {
            let pad = widths[i] - cell.chars().count();
            let last = i + 1 == cells.len();
            match colours.get(i).copied().flatten() {
                Some(c) if colour => s.push_str(&format!("\x1b[{c}m{cell}\x1b[0m")),
                _ => s.push_str(cell),
            }
            if !last {
                s.push_str(&" ".repeat(pad + 2));
            }
        }
        out.push_str(s.trim_end());
        out.push('\n');
    };
    let head: Vec<String> = header.iter().map(|s| s.to_string()).collect();
    line(&head, &[Some("1"); 9], &mut out);
    for (row, r) in table.iter().zip(rows) {
        let state = match r.active_state.as_str() {
            "active" => Some("32"),
            "failed" => Some("31"),
            "activating" | "deactivating" | "reloading" => Some("33"),
            _ => None,
        };
        let drift = r
            .drift
            .map(|d| if d == Drift::Failed { "31" } else { "33" });
        line(
            row,
            &[None, None, None, state, None, None, None, None, drift],
            &mut out,
        );
    }
    out
}

fn yes_no(b: bool) -> &'static str {
    if b {
        "yes"
    } else {
        "no"
    }
}

pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "K", "M", "G", "T"];
    let mut v = n as f64;
    let mut i = 0;
    while v >= 1024.0 && i + 1 < UNITS.len() {
        v /= 1024.0;
        i += 1;
    }
    if i == 0 {
        format!("{n}B")
    } else {
        format!("{v:.1}{}", UNITS[i])
    }
}

/// `5s ago`, `3min ago`, `2h ago`, `4d ago`.
pub fn ago(now_usec: u64, then_usec: u64) -> String {
    let s = now_usec.saturating_sub(then_usec) / 1_000_000;
    match s {
        0..=59 => format!("{s}s ago"),
        60..=3599 => format!("{}min ago", s / 60),
        3600..=86399 => format!("{}h ago", s / 3600),
        _ => format!("{}d ago", s / 86400),
    }
}

pub fn now_usec() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

/// µs since the epoch → `YYYY-MM-DDTHH:MM:SSZ`.
pub fn rfc3339(usec: u64) -> String {
    let secs = usec / 1_000_000;
    let (days, rem) = ((secs / 86400) as i64, secs % 86400);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// `status NAMES…` exit status: 66 if one is unknown, 3 if one is not active.
pub fn named_outcome(rows: &[InstanceStatus]) -> Result<()> {
    if let Some(r) = rows.iter().find(|r| !is_known(r)) {
        return Err(Error::NoSuchInstance {
            instance: r.instance.clone(),
        });
    }
    if rows.iter().any(|r| !r.is_active()) {
        return Err(Error::NotActive);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(active: &str, file_state: Option<&str>) -> UnitInfo {
        UnitInfo {
            unit: "demo@a.service".into(),
            load_state: "loaded".into(),
            active_state: active.into(),
            sub_state: if active == "active" {
                "running".into()
            } else {
                "dead".into()
            },
            unit_file_state: file_state.map(str::to_owned),
            main_pid: if active == "active" { 42 } else { 0 },
            restarts: Some(0),
            since_usec: Some(1_714_564_800_000_000),
            memory_bytes: Some(1 << 20),
            control_group: None,
            job_id: 0,
        }
    }

    #[test]
    fn drift_kinds() {
        assert_eq!(drift(true, true, "active"), None);
        assert_eq!(drift(true, false, "inactive"), None);
        assert_eq!(drift(false, false, "inactive"), None);
        assert_eq!(
            drift(true, true, "inactive"),
            Some(Drift::ShouldRunButInactive)
        );
        assert_eq!(
            drift(true, true, "deactivating"),
            Some(Drift::ShouldRunButInactive)
        );
        assert_eq!(
            drift(true, false, "active"),
            Some(Drift::RunningButNotEnabled)
        );
        assert_eq!(drift(false, true, "active"), Some(Drift::UnitWithoutState));
        assert_eq!(
            drift(false, true, "inactive"),
            Some(Drift::UnitWithoutState)
        );
        assert_eq!(drift(false, false, "active"), Some(Drift::UnitWithoutState));
        assert_eq!(drift(true, true, "failed"), Some(Drift::Failed));
        assert_eq!(drift(true, false, "failed"), Some(Drift::Failed));
        assert_eq!(
            drift(true, true, "activating"),
            None,
            "auto-restart is still trying"
        );
    }

    #[test]
    fn json_schema_has_every_field_with_its_type() {
        let rows = vec![
            InstanceStatus::new(
                "a",
                "demo@a.service",
                true,
                Some(&info("active", Some("enabled"))),
            ),
            InstanceStatus::new("b", "demo@b.service", true, None),
        ];
        let v: serde_json::Value = serde_json::to_value(StatusJson {
            app: "demo",
            instances: &rows,
        })
        .unwrap();
        assert_eq!(v["app"], "demo");
        let a = &v["instances"][0];
        let keys: BTreeSet<&str> = a.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            [
                "instance",
                "unit",
                "initialized",
                "enabled",
                "active_state",
                "sub_state",
                "since",
                "main_pid",
                "restarts",
                "memory_bytes",
                "drift"
            ]
            .into_iter()
            .collect()
        );
        assert_eq!(a["instance"], "a");
        assert_eq!(a["unit"], "demo@a.service");
        assert_eq!(a["initialized"], true);
        assert_eq!(a["enabled"], true);
        assert_eq!(a["active_state"], "active");
        assert_eq!(a["sub_state"], "running");
        assert_eq!(a["since"], "2024-05-01T12:00:00Z");
        assert_eq!(a["main_pid"], 42);
        assert_eq!(a["memory_bytes"], 1 << 20);
        assert!(a["drift"].is_null());
        let b = &v["instances"][1];
        assert!(b["main_pid"].is_null());
        assert_eq!(b["active_state"], "inactive");
        let drifted = InstanceStatus::new(
            "c",
            "demo@c.service",
            true,
            Some(&info("inactive", Some("enabled"))),
        );
        assert_eq!(
            serde_json::to_value(&drifted).unwrap()["drift"],
            "should-run-but-inactive"
        );
    }

    #[test]
    fn table_has_no_colour_unless_asked() {
        let rows = vec![InstanceStatus::new(
            "a",
            "demo@a.service",
            true,
            Some(&info("failed", Some("enabled"))),
        )];
        let plain = render_table(&rows, 1_714_564_860_000_000, false);
        assert!(!plain.contains('\x1b'));
        assert!(
            plain.contains("failed/dead") && plain.contains("1min ago") && plain.contains("1.0M"),
            "{plain}"
        );
        assert!(render_table(&rows, 0, true).contains("\x1b[31m"));
    }

    #[test]
    fn timestamps() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400_000_000), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_714_564_800_123_456), "2024-05-01T12:00:00Z");
        assert_eq!(ago(10_000_000, 4_000_000), "6s ago");
        assert_eq!(human_bytes(512), "512B");
        assert_eq!(human_bytes(3 << 30), "3.0G");
    }

    #[test]
    fn named_outcomes() {
        let active = InstanceStatus::new(
            "a",
            "demo@a.service",
            true,
            Some(&info("active", Some("enabled"))),
        );
        let stopped = InstanceStatus::new("b", "demo@b.service", true, None);
        let unknown = InstanceStatus::new("c", "demo@c.service", false, None);
        assert!(named_outcome(std::slice::from_ref(&active)).is_ok());
        assert_eq!(
            named_outcome(&[active.clone(), stopped])
                .unwrap_err()
                .code(),
            3
        );
        assert_eq!(named_outcome(&[active, unknown]).unwrap_err().code(), 66);
    }
}
