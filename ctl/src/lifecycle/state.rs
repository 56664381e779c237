//! The commands whose work is the state directory: `init`, and
//! `reconfigure` (which may then restart what changed, on the shared
//! path).

use crate::error::{Error, Result};
use crate::lifecycle::{plan::Verb, report, run_locked, Context, Outcome};
use crate::name::InstanceName;
use crate::snapshot::Snapshot;
use crate::store::{self, Change, Created, Store};
use crate::systemd::{Detail, Systemd};

/// `init NAME [--set K=V]… [--exist-ok]`: builds the instance aside and
/// renames it into place. With `exist_ok` an existing instance is a
/// success ("exists"), left as it is.
pub fn init(cx: &Context<'_>, name: &str, sets: &[String], exist_ok: bool) -> Result<()> {
    let app = cx.app;
    let name = app.instance(name)?;
    let sets = sets
        .iter()
        .map(|s| store::parse_set(s))
        .collect::<Result<Vec<_>>>()?;
    let store = Store::open_or_create(app)?;
    let _lock = cx.waiter.instance(&store, &name)?;
    let (created, outcome) = match store.init(&name, &sets, || cx.waiter.app(&store)) {
        Ok(c) => (c, "initialized"),
        Err(Error::Exists { .. }) if exist_ok => {
            let port = store.environment(&name)?.and_then(|e| e.port());
            let dir = app.instance_dir(&name);
            (Created { dir, port }, "exists")
        }
        Err(e) => return Err(e),
    };
    if cx.out.json {
        return cx.out.json(&serde_json::json!({
            "instance": name,
            "dir": created.dir,
            "port": created.port,
            "outcome": outcome,
        }));
    }
    let port = created
        .port
        .map(|p| format!(" (port {p})"))
        .unwrap_or_default();
    let verb = if outcome == "exists" {
        "exists"
    } else {
        "initialized"
    };
    cx.out.text(&format!(
        "{name}: {verb} in {}{port}\n",
        created.dir.display()
    ))
}

/// `reconfigure [NAME…] [--restart]`: renders the environment files again
/// from the app config as it is now (ports and `--set` values kept) and
/// says what changed; with `restart`, restarts the changed instances that
/// run.
pub fn reconfigure(cx: &Context<'_>, names: &[String], restart: bool) -> Result<()> {
    let app = cx.app;
    let store = Store::open_or_create(app)?;
    let names: Vec<InstanceName> = if names.is_empty() {
        store.list()?
    } else {
        app.instances(names)?
    };
    let _locks = cx.waiter.instances(&store, &names)?;
    let mut outcomes: Vec<Outcome> = Vec::with_capacity(names.len());
    let mut changed = Vec::new();
    for name in &names {
        let result = match store.reconfigure(name) {
            Ok(changes) if changes.is_empty() => Ok("unchanged"),
            Ok(changes) => {
                changed.push(name.clone());
                outcomes.push(Outcome {
                    instance: name.clone(),
                    result: Ok("reconfigured"),
                    changes: Some(changes),
                });
                continue;
            }
            Err(e) => Err(e),
        };
        outcomes.push(Outcome {
            instance: name.clone(),
            result,
            changes: None,
        });
    }
    if restart && !changed.is_empty() {
        let sd = Systemd::connect(cx.waiter.timeout)?;
        let running: Vec<InstanceName> = Snapshot::of(&store, &sd, &changed, Detail::States, None)?
            .instances
            .into_iter()
            .filter(|i| i.unit_state.as_ref().is_some_and(|u| u.is_up_or_starting()))
            .map(|i| i.name)
            .collect();
        for restarted in run_locked(cx, &store, Verb::Restart, &running)? {
            if let Some(o) = outcomes
                .iter_mut()
                .find(|o| o.instance == restarted.instance)
            {
                o.result = restarted.result.map(|_| "reconfigured and restarted");
            }
        }
    }
    report(cx.out, outcomes)
}

/// `MODE: fast -> slow, MAP: +c1, OLD: -x`.
pub fn summary(changes: &[Change]) -> String {
    changes
        .iter()
        .map(|c| match (&c.old, &c.new) {
            (Some(o), Some(n)) => format!("{}: {o} -> {n}", c.name),
            (None, Some(n)) => format!("{}: +{n}", c.name),
            (Some(o), None) => format!("{}: -{o}", c.name),
            (None, None) => c.name.clone(),
        })
        .collect::<Vec<_>>()
        .join(", ")
}
