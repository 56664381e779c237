//! `status`: a [`Snapshot`] rendered — the JSON element of each instance
//! (the `--json` schema, `docs/schema/status.schema.json`) and the table.
//!
//! [`InstanceStatus`] is the one per-instance element; `status --json`
//! prints `{"app": …, "instances": [InstanceStatus…]}` and `watch --json`
//! the same element with event fields.

use std::time::Duration;

use serde::Serialize;

use crate::app::App;
use crate::error::{Error, Result};
use crate::output::Output;
pub use crate::snapshot::Drift;
use crate::snapshot::{Instance, Snapshot};
use crate::store::Store;
use crate::systemd::{Detail, Systemd};

/// One instance, as `status --json` (and `watch --json`) prints it.
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
    pub fn of(i: &Instance) -> InstanceStatus {
        let u = i.unit_state.as_ref();
        InstanceStatus {
            instance: i.name.to_string(),
            unit: i.unit.clone(),
            initialized: i.initialized,
            enabled: i.enabled(),
            active_state: i.active().as_str().to_owned(),
            sub_state: u.map_or("dead", |u| u.sub.as_str()).to_owned(),
            since: u.and_then(|u| u.since_usec).map(rfc3339),
            main_pid: u.map(|u| u.main_pid).filter(|&p| p != 0),
            restarts: u.and_then(|u| u.restarts),
            memory_bytes: u.and_then(|u| u.memory_bytes),
            drift: i.drift(),
            since_usec: u.and_then(|u| u.since_usec),
        }
    }
}

/// `status [NAME…] [--fail-on-drift]`.
///
/// Exit status: with names, 66 if one is no instance at all, 3 if one is
/// not running (a crash loop included); with `--fail-on-drift`, 3 if any
/// instance listed has drifted. Waits up to `bus_wait` (`--wait`) for the
/// system bus, for a caller early in boot.
pub fn run(
    app: &App,
    out: Output,
    bus_wait: Duration,
    names: &[String],
    fail_on_drift: bool,
) -> Result<()> {
    let names = if names.is_empty() {
        None
    } else {
        Some(app.instances(names)?)
    };
    let store = Store::open(app)?;
    let sd = Systemd::connect(bus_wait)?;
    // A caller who cannot write `.locks/` just does not cache.
    let cache = store.lock_dir().ok();
    let snapshot = match &names {
        Some(ns) => Snapshot::of(&store, &sd, ns, Detail::Full, cache.as_ref())?,
        None => Snapshot::all(&store, &sd, Detail::Full, cache.as_ref())?,
    };
    let rows: Vec<InstanceStatus> = snapshot.instances.iter().map(InstanceStatus::of).collect();
    let limits = crate::instance_limits::kept_of(rows.iter().map(|r| r.unit.as_str()));
    if out.json {
        let instances: Vec<StatusRow<'_>> = rows
            .iter()
            .zip(&limits)
            .map(|(status, limits)| StatusRow {
                status,
                limits: *limits,
            })
            .collect();
        out.json(&StatusJson {
            app: &app.name,
            instances: &instances,
        })?;
    } else {
        let mut text = render_table(&rows, now_usec(), use_colour());
        text.push_str(&limits_lines(&rows, &limits));
        out.text(&text)?;
    }
    if names.is_some() {
        if let Some(i) = snapshot.instances.iter().find(|i| !i.exists()) {
            return Err(Error::Shown(Box::new(Error::NoSuchInstance {
                instance: i.name.to_string(),
            })));
        }
        if snapshot
            .instances
            .iter()
            .any(|i| !i.is_running() || i.is_crash_looping())
        {
            return Err(Error::NotActive);
        }
    }
    if fail_on_drift && rows.iter().any(|r| r.drift.is_some()) {
        return Err(Error::NotActive);
    }
    Ok(())
}

#[derive(Serialize)]
struct StatusJson<'a> {
    app: &'a str,
    instances: &'a [StatusRow<'a>],
}

/// An instance as `status --json` prints it: the element `watch` shares,
/// and the limits `limit` set (null when none).
#[derive(Serialize)]
struct StatusRow<'a> {
    #[serde(flatten)]
    status: &'a InstanceStatus,
    limits: Option<crate::instance_limits::Kept>,
}

/// Under the table, one line per instance with limits `limit` set:
/// `limits: web1: cpu 50%, memory 512.0M`.
fn limits_lines(
    rows: &[InstanceStatus],
    limits: &[Option<crate::instance_limits::Kept>],
) -> String {
    rows.iter()
        .zip(limits)
        .filter_map(|(r, l)| l.map(|l| format!("limits: {}: {}\n", r.instance, l.describe())))
        .collect()
}

/// Whether the table is coloured: `--color`, else a terminal, never
/// under a non-empty `NO_COLOR` or with `TERM=dumb` (see `output`).
pub fn use_colour() -> bool {
    crate::output::colour()
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::name::InstanceName;
    use crate::unit::{Active, Sub, UnitInfo};
    use std::collections::BTreeSet;

    fn inst(name: &str, initialized: bool, active: &str, file_state: Option<&str>) -> Instance {
        Instance {
            name: InstanceName::checked(name),
            unit: format!("demo@{name}.service"),
            initialized,
            has_trash: false,
            unit_state: Some(UnitInfo {
                unit: format!("demo@{name}.service"),
                load_state: "loaded".into(),
                active: Active::parse(active),
                sub: Sub::parse(if active == "active" {
                    "running"
                } else {
                    "dead"
                }),
                unit_file_state: file_state.map(str::to_owned),
                main_pid: if active == "active" { 42 } else { 0 },
                restarts: Some(0),
                since_usec: Some(1_714_564_800_000_000),
                memory_bytes: Some(1 << 20),
                control_group: None,
                job_id: 0,
            }),
        }
    }

    #[test]
    fn json_schema_has_every_field_with_its_type() {
        let mut b = inst("b", true, "inactive", None);
        b.unit_state = None;
        let rows = [
            InstanceStatus::of(&inst("a", true, "active", Some("enabled"))),
            InstanceStatus::of(&b),
        ];
        let limited = crate::instance_limits::Kept {
            cpu_percent: Some(50),
            memory_bytes: None,
            tasks: Some(8),
        };
        let instances = [
            StatusRow {
                status: &rows[0],
                limits: Some(limited),
            },
            StatusRow {
                status: &rows[1],
                limits: None,
            },
        ];
        let v: serde_json::Value = serde_json::to_value(StatusJson {
            app: "demo",
            instances: &instances,
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
                "drift",
                "limits"
            ]
            .into_iter()
            .collect()
        );
        assert_eq!(
            a["limits"],
            serde_json::json!({"cpu_percent": 50, "memory_bytes": null, "tasks": 8})
        );
        assert!(v["instances"][1]["limits"].is_null());
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
        assert_eq!(b["sub_state"], "dead");
        let drifted = InstanceStatus::of(&inst("c", true, "inactive", Some("enabled")));
        assert_eq!(
            serde_json::to_value(&drifted).unwrap()["drift"],
            "should-run-but-inactive"
        );
    }

    #[test]
    fn table_has_no_colour_unless_asked() {
        let rows = vec![InstanceStatus::of(&inst(
            "a",
            true,
            "failed",
            Some("enabled"),
        ))];
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
}
