//! `unitgate tasks`: the caller's tasks of the app that systemd has loaded,
//! with their limits and use, read over D-Bus (one `ListUnitsByPatterns`,
//! then one `GetAll` per task: at most the app's `max_running`).

use std::collections::HashMap;

use serde::Serialize;
use unitgate_policy::task::{self as rules};
use zbus::zvariant::{OwnedObjectPath, OwnedValue};

use crate::app::App;
use crate::error::{Error, Result};
use crate::output::Output;

use crate::systemd::{dbus_err, DEST as SYSTEMD, MANAGER, PATH as SYSTEMD_PATH, PROPS, SERVICE};

/// One task, as `tasks --json` lists it.
#[derive(Debug, Serialize)]
pub struct Task {
    pub task: String,
    pub unit: String,
    /// `service` or `scope`.
    pub kind: &'static str,
    pub active_state: String,
    pub sub_state: String,
    /// Limits as systemd holds them (`null`: none).
    pub cpu_quota_percent: Option<u64>,
    pub memory_max: Option<u64>,
    pub tasks_max: Option<u64>,
    pub runtime_max_secs: Option<u64>,
    pub memory_current: Option<u64>,
}

type Listed = (
    String,
    String,
    String,
    String,
    String,
    String,
    OwnedObjectPath,
    u32,
    String,
    OwnedObjectPath,
);

fn dbus(what: &'static str) -> impl FnOnce(zbus::Error) -> Error {
    move |e| dbus_err(what, e)
}

pub fn list(app: &App, out: Output) -> Result<()> {
    let uid = nix::unistd::getuid().as_raw();
    let base = rules::unit_base(&app.name, uid, "");
    let patterns = [format!("{base}*.service"), format!("{base}*.scope")];
    let conn =
        crate::systemd::connect_system_bus().map_err(dbus("connecting to the system bus"))?;
    let states: [&str; 0] = [];
    let reply = conn
        .call_method(
            Some(SYSTEMD),
            SYSTEMD_PATH,
            Some(MANAGER),
            "ListUnitsByPatterns",
            &(&states[..], &patterns[..]),
        )
        .map_err(dbus("ListUnitsByPatterns"))?;
    let listed: Vec<Listed> = reply
        .body()
        .deserialize()
        .map_err(dbus("ListUnitsByPatterns"))?;
    let mut tasks = Vec::new();
    for (unit, _, _, active, sub, _, path, ..) in listed {
        let Some((a, u, id, kind)) = rules::parse_unit(&unit) else {
            continue;
        };
        if a != app.name || u != uid {
            continue;
        }
        let iface = match kind {
            rules::Kind::Service => SERVICE,
            rules::Kind::Scope => "org.freedesktop.systemd1.Scope",
        };
        let props: HashMap<String, OwnedValue> = conn
            .call_method(
                Some(SYSTEMD),
                path.as_str(),
                Some(PROPS),
                "GetAll",
                &(iface,),
            )
            .and_then(|r| r.body().deserialize())
            .unwrap_or_default();
        let num = |k: &str| {
            props
                .get(k)
                .and_then(|v| u64::try_from(v.try_clone().ok()?).ok())
                .filter(|&n| n != u64::MAX)
        };
        tasks.push(Task {
            task: id.to_owned(),
            unit: unit.clone(),
            kind: match kind {
                rules::Kind::Service => "service",
                rules::Kind::Scope => "scope",
            },
            active_state: active,
            sub_state: sub,
            // CPUQuotaPerSecUSec: CPU time per second; 10 ms is 1 %.
            cpu_quota_percent: num("CPUQuotaPerSecUSec").map(|us| us / 10_000),
            memory_max: num("MemoryMax"),
            tasks_max: num("TasksMax"),
            runtime_max_secs: num("RuntimeMaxUSec").map(|us| us / 1_000_000),
            memory_current: num("MemoryCurrent"),
        });
    }
    tasks.sort_by(|a, b| a.task.cmp(&b.task));
    if out.json {
        return out.json(&serde_json::json!({ "tasks": tasks }));
    }
    out.text(&table(&tasks))
}

fn table(tasks: &[Task]) -> String {
    let mut s = format!(
        "{:<24} {:<8} {:<20} {:>6} {:>12} {:>6} {:>9}\n",
        "TASK", "KIND", "STATE", "CPU%", "MEMORY_MAX", "TASKS", "TIMEOUT"
    );
    let opt = |v: Option<u64>| v.map_or_else(|| "-".to_owned(), |n| n.to_string());
    for t in tasks {
        s.push_str(&format!(
            "{:<24} {:<8} {:<20} {:>6} {:>12} {:>6} {:>9}\n",
            t.task,
            t.kind,
            format!("{}/{}", t.active_state, t.sub_state),
            opt(t.cpu_quota_percent),
            opt(t.memory_max),
            opt(t.tasks_max),
            opt(t.runtime_max_secs)
        ));
    }
    s
}
