//! The commands that change instances: `init`, `start`, `stop`, `restart`,
//! `delete`, and the app-wide `install`.
//!
//! Each holds the locks of all its instances (taken in sorted order) for
//! its whole duration, makes at most a few batched helper calls, and then
//! reads every instance's resulting state back from systemd to report per
//! instance.

use std::collections::BTreeMap;
use std::process::Command;
use std::time::Instant;

use serde::Serialize;

use crate::app::App;
use crate::error::{Error, Result};
use crate::helper::{self, Action};
use crate::instance::{self, Store};
use crate::lock::Waiter;
use crate::relay;
use crate::systemd::{Detail, Systemd, UnitInfo};

/// One instance's outcome in a bulk command.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct InstanceResult {
    pub instance: String,
    pub ok: bool,
    /// What happened: `started`, `already running`, `stopped`, `deleted`, …
    pub outcome: String,
    /// Why it failed (one line), null when ok.
    pub error: Option<String>,
    /// The exit code this failure alone would have had (0 when ok).
    pub code: u8,
}

impl InstanceResult {
    fn ok(instance: &str, outcome: &str) -> Self {
        InstanceResult {
            instance: instance.into(),
            ok: true,
            outcome: outcome.into(),
            error: None,
            code: 0,
        }
    }

    fn failed(instance: &str, err: &Error) -> Self {
        InstanceResult {
            instance: instance.into(),
            ok: false,
            outcome: "failed".into(),
            error: err.message(),
            code: err.code(),
        }
    }
}

#[derive(Serialize)]
struct ResultsJson<'a> {
    results: &'a [InstanceResult],
}

/// Prints per-instance results and turns them into the command's outcome:
/// the first failure's code (in argument order). A single failed instance
/// in human mode is reported as that error alone.
pub fn report(results: Vec<InstanceResult>, json: bool, single_error: Option<Error>) -> Result<()> {
    let failed: Vec<&InstanceResult> = results.iter().filter(|r| !r.ok).collect();
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&ResultsJson { results: &results }).expect("plain data")
        );
    } else if let (1, Some(e)) = (results.len(), single_error) {
        if failed.len() == 1 {
            return Err(e);
        }
        println!("{}: {}", results[0].instance, results[0].outcome);
        return Ok(());
    } else {
        for r in &results {
            match &r.error {
                None => println!("{}: {}", r.instance, r.outcome),
                Some(e) => println!("{}: failed: {e}", r.instance),
            }
        }
    }
    match failed.first() {
        None => Ok(()),
        Some(first) => Err(Error::Partial {
            code: first.code,
            failed: failed.len(),
            total: results.len(),
        }),
    }
}

/// Validates every name before anything is touched; one bad name rejects
/// the whole command (exit 65), like the helper does.
pub fn check_names(app: &App, names: &[String]) -> Result<Vec<String>> {
    let mut out: Vec<String> = Vec::with_capacity(names.len());
    for n in names {
        app.check_instance(n)?;
        if !out.contains(n) {
            out.push(n.clone());
        }
    }
    Ok(out)
}

fn units_of(app: &App, names: &[String]) -> Vec<String> {
    names.iter().filter_map(|n| app.unit(n)).collect()
}

/// systemd's state of each named instance's unit (absent: not loaded).
fn states(sd: &Systemd, app: &App, names: &[String]) -> Result<BTreeMap<String, UnitInfo>> {
    if names.is_empty() {
        return Ok(BTreeMap::new());
    }
    let units = sd.units(&units_of(app, names), Detail::States, None)?;
    Ok(units
        .into_iter()
        .filter_map(|(u, info)| app.instance_of(&u).map(|i| (i.to_owned(), info)))
        .collect())
}

fn helper_or_fail(
    app: &App,
    waiter: Waiter,
    action: Action,
    names: &[String],
) -> Result<Option<Error>> {
    if names.is_empty() {
        return Ok(None);
    }
    helper::run(app, action, names, waiter.timeout)
}

/// A per-instance error explaining a state that is not what was asked.
fn not_reached(
    instance: &str,
    info: Option<&UnitInfo>,
    wanted: &str,
    call_err: &Option<Error>,
) -> Error {
    let (active, sub) = info
        .map(|u| (u.active_state.as_str(), u.sub_state.as_str()))
        .unwrap_or(("inactive", "dead"));
    let detail = match call_err {
        Some(Error::Systemctl { message, .. }) => format!("; systemctl said: {message}"),
        _ => String::new(),
    };
    Error::Systemctl {
        code: 1,
        message: format!(
            "{instance} is {active}/{sub}, not {wanted}{detail} (see `unitgate logs {instance}`)"
        ),
    }
}

pub fn init(app: &App, waiter: Waiter, name: &str, sets: &[String], json: bool) -> Result<()> {
    app.check_instance(name)?;
    let sets = sets
        .iter()
        .map(|s| instance::parse_set(s))
        .collect::<Result<Vec<_>>>()?;
    let store = Store::open_or_create(app)?;
    let _lock = waiter.instance(&store, name)?;
    let created = store.init(name, &sets, || waiter.app(&store))?;
    if json {
        let v = serde_json::json!({"instance": name, "dir": created.dir, "port": created.port});
        println!("{}", serde_json::to_string_pretty(&v).expect("plain data"));
    } else {
        match created.port {
            Some(p) => println!(
                "{name}: initialized in {} (port {p})",
                created.dir.display()
            ),
            None => println!("{name}: initialized in {}", created.dir.display()),
        }
    }
    Ok(())
}

/// `start`: `enable --now` in one batched call; running+enabled instances
/// are a no-op; `failed` ones (e.g. at their start limit) are reset first.
pub fn start(app: &App, waiter: Waiter, names: &[String], json: bool) -> Result<()> {
    let names = check_names(app, names)?;
    let store = Store::open_or_create(app)?;
    let _locks = waiter.instances(&store, &names)?;
    let sd = Systemd::connect()?;
    let before = states(&sd, app, &names)?;
    let mut out = Outcomes::default();
    let (mut reset, mut enable) = (Vec::new(), Vec::new());
    for n in &names {
        if !store.exists(n) {
            out.missing(n);
            continue;
        }
        match before.get(n) {
            Some(u)
                if u.is_enabled() && matches!(u.active_state.as_str(), "active" | "reloading") =>
            {
                out.ok(n, "already running");
            }
            Some(u) if u.active_state == "failed" => {
                reset.push(n.clone());
                enable.push(n.clone());
            }
            _ => enable.push(n.clone()),
        }
    }
    helper_or_fail(app, waiter, Action::ResetFailed, &reset)?;
    let call_err = helper_or_fail(app, waiter, Action::Enable, &enable)?;
    let after = states(&sd, app, &enable)?;
    for n in &enable {
        let info = after.get(n);
        if info.is_some_and(|u| u.is_enabled() && u.is_active()) {
            out.ok(n, "started");
        } else {
            let e = not_reached(n, info, "active", &call_err);
            out.fail(n, e);
        }
    }
    out.report(&names, json)
}

/// `stop`: `disable --now`; a unit left `failed` by its stop is reset so a
/// stopped instance reads as plainly stopped.
pub fn stop(app: &App, waiter: Waiter, names: &[String], json: bool) -> Result<()> {
    let names = check_names(app, names)?;
    let store = Store::open_or_create(app)?;
    let _locks = waiter.instances(&store, &names)?;
    let sd = Systemd::connect()?;
    let before = states(&sd, app, &names)?;
    let mut out = Outcomes::default();
    let mut disable = Vec::new();
    for n in &names {
        let info = before.get(n);
        let running = info.is_some_and(|u| !u.is_stopped());
        if !store.exists(n) && !running {
            out.missing(n);
        } else if !running {
            out.ok(n, "already stopped");
        } else {
            disable.push(n.clone());
        }
    }
    let call_err = helper_or_fail(app, waiter, Action::Disable, &disable)?;
    let after = settle(&sd, app, waiter, &disable)?;
    for n in &disable {
        let info = after.get(n);
        if info.map_or(true, UnitInfo::is_stopped) {
            out.ok(n, "stopped");
        } else {
            let e = not_reached(n, info, "stopped", &call_err);
            out.fail(n, e);
        }
    }
    out.report(&names, json)
}

/// After a disable: reset units that ended up `failed`, then read states.
fn settle(
    sd: &Systemd,
    app: &App,
    waiter: Waiter,
    names: &[String],
) -> Result<BTreeMap<String, UnitInfo>> {
    let after = states(sd, app, names)?;
    let failed: Vec<String> = names
        .iter()
        .filter(|n| after.get(*n).is_some_and(|u| u.active_state == "failed"))
        .cloned()
        .collect();
    if failed.is_empty() {
        return Ok(after);
    }
    helper_or_fail(app, waiter, Action::ResetFailed, &failed)?;
    states(sd, app, names)
}

/// `restart`: a running instance is restarted (the helper's `restart` is
/// systemd's try-restart: it never starts anything); any other is started
/// the way `start` does (enabled too, a failed one reset first), so
/// `restart` never leaves a running-but-not-enabled drift.
pub fn restart(app: &App, waiter: Waiter, names: &[String], json: bool) -> Result<()> {
    let names = check_names(app, names)?;
    let store = Store::open_or_create(app)?;
    let _locks = waiter.instances(&store, &names)?;
    let sd = Systemd::connect()?;
    let before = states(&sd, app, &names)?;
    let mut out = Outcomes::default();
    let (mut reset, mut restart, mut start) = (Vec::new(), Vec::new(), Vec::new());
    for n in &names {
        if !store.exists(n) {
            out.missing(n);
            continue;
        }
        let info = before.get(n);
        if info.is_some_and(|u| u.active_state == "failed") {
            reset.push(n.clone());
        }
        if info.is_some_and(UnitInfo::is_active) {
            restart.push(n.clone());
        } else {
            start.push(n.clone());
        }
    }
    helper_or_fail(app, waiter, Action::ResetFailed, &reset)?;
    let restart_err = helper_or_fail(app, waiter, Action::Restart, &restart)?;
    let start_err = helper_or_fail(app, waiter, Action::Enable, &start)?;
    let call_err = restart_err.or(start_err);
    let touched: Vec<String> = restart.iter().chain(&start).cloned().collect();
    let after = states(&sd, app, &touched)?;
    for n in &touched {
        let info = after.get(n);
        if info.is_some_and(|u| u.is_active()) {
            let outcome = if start.contains(n) {
                "started"
            } else {
                "restarted"
            };
            out.ok(n, outcome);
        } else {
            let e = not_reached(n, info, "active", &call_err);
            out.fail(n, e);
        }
    }
    out.report(&names, json)
}

/// `delete`: stop (`disable --now`), then retire the state directory.
/// Each step is idempotent, so re-running finishes what a crash interrupted.
pub fn delete(app: &App, waiter: Waiter, names: &[String], json: bool) -> Result<()> {
    let names = check_names(app, names)?;
    let store = Store::open_or_create(app)?;
    let _locks = waiter.instances(&store, &names)?;
    let sd = Systemd::connect()?;
    let before = states(&sd, app, &names)?;
    let mut out = Outcomes::default();
    let (mut disable, mut retire) = (Vec::new(), Vec::new());
    for n in &names {
        let info = before.get(n);
        let live = info.is_some_and(|u| !u.is_stopped());
        if !live && !store.exists(n) && !store.has_trash(n) {
            out.missing(n);
            continue;
        }
        if live {
            disable.push(n.clone());
        }
        retire.push(n.clone());
    }
    let call_err = helper_or_fail(app, waiter, Action::Disable, &disable)?;
    let after = settle(&sd, app, waiter, &disable)?;
    for n in &retire {
        let info = after.get(n);
        if info.is_some_and(|u| !u.is_stopped()) {
            let e = not_reached(n, info, "stopped", &call_err);
            out.fail(n, e);
            continue;
        }
        match store.retire(n) {
            Ok(_) => {
                out.ok(n, "deleted");
            }
            Err(e) => {
                out.fail(n, e);
            }
        }
    }
    out.report(&names, json)
}

/// The per-instance outcomes of a bulk command as they become known, then
/// reported in argument order.
#[derive(Default)]
struct Outcomes {
    results: BTreeMap<String, InstanceResult>,
    first_err: Option<Error>,
}

impl Outcomes {
    fn ok(&mut self, instance: &str, outcome: &str) {
        let r = InstanceResult::ok(instance, outcome);
        self.results.insert(instance.to_owned(), r);
    }

    fn fail(&mut self, instance: &str, e: Error) {
        let r = InstanceResult::failed(instance, &e);
        self.results.insert(instance.to_owned(), r);
        self.first_err.get_or_insert(e);
    }

    fn missing(&mut self, instance: &str) {
        let e = Error::NoSuchInstance {
            instance: instance.to_owned(),
        };
        self.fail(instance, e);
    }

    fn report(mut self, names: &[String], json: bool) -> Result<()> {
        let ordered = names
            .iter()
            .filter_map(|n| self.results.remove(n))
            .collect();
        report(ordered, json, self.first_err)
    }
}

/// `install`: the app's install command, run as the caller with the
/// app-wide lock held, output streamed as it comes.
pub fn install(app: &App, waiter: Waiter, force: bool, json: bool) -> Result<()> {
    let Some(argv) = &app.install_command else {
        if json {
            println!(
                "{}",
                serde_json::json!({"installed": false, "reason": "no install_command"})
            );
        } else {
            println!("{}: no install_command configured; nothing to do", app.name);
        }
        return Ok(());
    };
    // The install command is the app's own code: it runs as the caller,
    // never as root (root would leave root-owned files the service account
    // cannot update, and would run app code with every privilege). Root
    // got here only if root alone controls the state directory.
    if nix::unistd::geteuid().is_root() {
        return Err(Error::NotPermitted {
            what: "`unitgate install` does not run the install command as root".into(),
            hint: "run it as the app's service account, e.g. `sudo -u ACCOUNT unitgate install`"
                .into(),
        });
    }
    crate::walk::check_program(std::path::Path::new(&argv[0]), "install_command")?;
    let store = Store::open_or_create(app)?;
    let _lock = waiter.app(&store)?;
    let began = Instant::now();
    if !json {
        eprintln!("unitgate: installing {}: {}", app.name, argv.join(" "));
    }
    let mut cmd = Command::new(&argv[0]);
    cmd.args(&argv[1..])
        .env("UNITGATE_APP", &app.name)
        .env("UNITGATE_STATE_DIR", &app.state_dir)
        .env("UNITGATE_FORCE", if force { "1" } else { "0" });
    // With --json, stdout is for the JSON document; the command's goes to stderr.
    let to = if json {
        relay::Out::Stderr
    } else {
        relay::Out::Stdout
    };
    let running = relay::spawn(cmd, to).map_err(|e| Error::Config {
        what: format!("cannot run install_command {}: {e}", argv[0]),
        hint: format!("fix install_command in {}", app.config_path.display()),
    })?;
    // Downloads such as SteamCMD's can be silent for minutes.
    let status = running
        .wait(PROGRESS_EVERY, || {
            eprintln!(
                "unitgate: installing {}: still running after {:.0} s",
                app.name,
                began.elapsed().as_secs_f64()
            )
        })
        .map_err(|e| Error::io("waiting for the install command", e))?;
    let secs = began.elapsed().as_secs_f64();
    if !status.success() {
        let how = match status.code() {
            Some(c) => format!("exit {c}"),
            None => "a signal".to_owned(),
        };
        return Err(Error::Failed {
            what: format!(
                "the install command {} failed with {how} after {secs:.1} s",
                argv[0]
            ),
            hint: "fix what it printed above, then re-run `unitgate install`".into(),
        });
    }
    if json {
        println!(
            "{}",
            serde_json::json!({"installed": true, "seconds": secs})
        );
    } else {
        eprintln!("unitgate: installed {} in {secs:.1} s", app.name);
    }
    Ok(())
}

/// How often a long install says it is still working.
const PROGRESS_EVERY: std::time::Duration = std::time::Duration::from_secs(15);
