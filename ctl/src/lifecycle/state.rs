//! The commands whose work is the state directory: `init`, and
//! `reconfigure` (which may then restart what changed, on the shared
//! path).

use std::collections::BTreeMap;

use crate::app::PORT_VAR;
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
    // The instance's own `--set` values: those asked for a new one, those
    // it was made with for an existing one (which keeps them), so that a
    // caller sees whether the instance is the one it asked for.
    let (created, kept, outcome) = match store.init(&name, &sets, || cx.waiter.app(&store)) {
        Ok(c) => (c, sets.clone(), "initialized"),
        Err(Error::Exists { .. }) if exist_ok => {
            let env = store.environment(&name)?;
            let port = env.as_ref().and_then(|e| e.port());
            let kept = env.map(|e| e.sets(app)).unwrap_or_default();
            let dir = app.instance_dir(&name);
            (Created { dir, port }, kept, "exists")
        }
        Err(e) => return Err(e),
    };
    // PORT is the port (`port`), not a value of its own, where the app
    // allocates ports.
    let own: BTreeMap<&str, &str> = kept
        .iter()
        .filter(|(k, _)| created.port.is_none() || k != PORT_VAR)
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    if cx.out.json {
        return cx.out.json(&serde_json::json!({
            "instance": name,
            "dir": created.dir,
            "port": created.port,
            "set": own,
            "outcome": outcome,
        }));
    }
    let port = created
        .port
        .map(|p| format!(" (port {p})"))
        .unwrap_or_default();
    if outcome == "initialized" {
        return cx.out.text(&format!(
            "{name}: initialized in {}{port}\n",
            created.dir.display()
        ));
    }
    let differing = differing_sets(&sets, created.port, &own);
    let kept = if differing.is_empty() {
        String::new()
    } else {
        format!("; it keeps its own {}", differing.join(", "))
    };
    cx.out.text(&format!(
        "{name}: exists in {}{port}{kept}\n",
        created.dir.display()
    ))
}

/// The `--set` values asked for that an existing instance has otherwise,
/// as `K="ITS" (not "ASKED")`.
fn differing_sets(
    asked: &[(String, String)],
    port: Option<u16>,
    own: &BTreeMap<&str, &str>,
) -> Vec<String> {
    let mut asked_last: BTreeMap<&str, &str> = BTreeMap::new();
    for (k, v) in asked {
        asked_last.insert(k, v);
    }
    let port = port.map(|p| p.to_string());
    asked_last
        .into_iter()
        .filter_map(|(k, v)| {
            let has = match (&port, k == PORT_VAR) {
                (Some(p), true) => Some(p.as_str()),
                _ => own.get(k).copied(),
            };
            (has != Some(v)).then(|| {
                let has = has.map_or("nothing".to_string(), |h| format!("{h:?}"));
                format!("{k}={has} (not {v:?})")
            })
        })
        .collect()
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

#[cfg(test)]
mod tests {
    use super::*;

    fn asked(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn an_existing_instance_names_each_value_it_has_otherwise() {
        let own = BTreeMap::from([("MAP", "c1m1"), ("MODE", "slow")]);
        let differing = differing_sets(
            &asked(&[
                ("MAP", "c2m2"),
                ("MODE", "slow"),
                ("NEW", "x"),
                ("PORT", "27050"),
            ]),
            Some(27015),
            &own,
        );
        assert_eq!(
            differing,
            [
                r#"MAP="c1m1" (not "c2m2")"#,
                r#"NEW=nothing (not "x")"#,
                r#"PORT="27015" (not "27050")"#
            ]
        );
    }

    #[test]
    fn the_last_of_a_repeated_value_is_the_one_asked_for() {
        let own = BTreeMap::from([("MAP", "b")]);
        let asked = asked(&[("MAP", "a"), ("MAP", "b")]);
        assert!(differing_sets(&asked, None, &own).is_empty());
    }
}
