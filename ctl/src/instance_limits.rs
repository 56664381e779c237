//! `limit`: an instance's CPU, memory and task limits, through the
//! helper's `limit` (systemd's `set-property`: applied at once, kept by
//! PID 1 in `/etc/systemd/system.control/<unit>.d/50-<Property>.conf`
//! across restarts and reboots). `status` shows what is kept there, and
//! `delete` resets it.

use std::ffi::OsString;
use std::path::Path;
use std::time::Duration;

use serde::Serialize;
use unitgate_policy::instance_limits::CONTROL_DIR;
use unitgate_policy::task as grammar;

use crate::app::App;
use crate::error::{Error, Result};
use crate::helper;
use crate::lifecycle::{self, Outcome};
use crate::lock::Waiter;
use crate::name::InstanceName;
use crate::output::Output;
use crate::store::Store;

/// What `limit` asks for; `reset` clears all three.
#[derive(Debug, Default, Clone)]
pub struct Request {
    pub cpu: Option<String>,
    pub memory: Option<String>,
    pub tasks: Option<String>,
    pub reset: bool,
}

/// An instance's limits as kept by PID 1 (`status`); each `None` when
/// none is kept.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Kept {
    pub cpu_percent: Option<u64>,
    pub memory_bytes: Option<u64>,
    pub tasks: Option<u64>,
}

impl Kept {
    /// `cpu 50%, memory 512M, tasks 8` (the set ones), for the table.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if let Some(c) = self.cpu_percent {
            parts.push(format!("cpu {c}%"));
        }
        if let Some(m) = self.memory_bytes {
            parts.push(format!("memory {}", crate::status::human_bytes(m)));
        }
        if let Some(t) = self.tasks {
            parts.push(format!("tasks {t}"));
        }
        parts.join(", ")
    }
}

/// `unitgate limit INSTANCE… (--reset | --cpu/--memory/--tasks)`.
pub fn run(app: &App, names: &[String], req: &Request, waiter: Waiter, out: Output) -> Result<()> {
    let names = app.instances(names)?;
    let words = helper_words(app, req)?;
    let store = Store::open_or_create(app)?;
    // As every command on these instances: a `delete` resetting their
    // limits does not interleave with this.
    let _locks = waiter.instances(&store, &names)?;
    let mut outcomes = Vec::with_capacity(names.len());
    for name in names {
        let result = if store.exists(name.as_str()) {
            limit_one(app, &name, &words, waiter.timeout).map(|()| {
                if req.reset {
                    "limits reset"
                } else {
                    "limited"
                }
            })
        } else {
            Err(Error::NoSuchInstance {
                instance: name.to_string(),
            })
        };
        // sudo's refusal would refuse every other call too; the helper's
        // may be this instance's alone (max_instances, a busy lock).
        if let Err(Error::SudoRefused { .. }) = &result {
            return result.map(|_| ());
        }
        outcomes.push(Outcome {
            instance: name,
            result,
            changes: None,
        });
    }
    lifecycle::report(out, outcomes)
}

/// `delete`'s part: the instance's kept limits reset, if any is kept (else
/// no helper call is made).
pub fn forget(app: &App, name: &InstanceName, wait: Duration) -> Result<()> {
    // Kept ones go even where root removed `[limits]` since; an app whose
    // callers may not enable and disable may not reset (the helper says so).
    if !app.policy.callers_may_stop() || kept(&app.unit(name)) == Kept::default() {
        return Ok(());
    }
    let words = vec![OsString::from("limit"), "--reset".into()];
    limit_one(app, name, &words, wait)
}

/// The limits kept for `unit` (all `None` when none are).
pub fn kept(unit: &str) -> Kept {
    kept_in(Path::new(CONTROL_DIR), unit)
}

/// The limits kept for each of `units` (`None` for one without any), at
/// the cost of one directory listing plus a read for each limited unit.
pub fn kept_of<'u>(units: impl Iterator<Item = &'u str>) -> Vec<Option<Kept>> {
    let dir = Path::new(CONTROL_DIR);
    let listed: std::collections::HashSet<std::ffi::OsString> = std::fs::read_dir(dir)
        .map(|rd| rd.filter_map(|e| e.ok().map(|e| e.file_name())).collect())
        .unwrap_or_default();
    units
        .map(|u| {
            if !listed.contains(std::ffi::OsStr::new(&format!("{u}.d"))) {
                return None;
            }
            Some(kept_in(dir, u)).filter(|k| *k != Kept::default())
        })
        .collect()
}

fn kept_in(dir: &Path, unit: &str) -> Kept {
    let d = dir.join(format!("{unit}.d"));
    let read = |prop: &str| setting(&d.join(format!("50-{prop}.conf")), prop);
    Kept {
        cpu_percent: read("CPUQuota").and_then(|v| percent(&v)),
        memory_bytes: read("MemoryMax").and_then(|v| v.parse().ok()),
        tasks: read("TasksMax").and_then(|v| v.parse().ok()),
    }
}

/// The value of the last `PROP=` line of a file PID 1 wrote (it is small:
/// a comment, a section line, one setting).
fn setting(file: &Path, prop: &str) -> Option<String> {
    let text = std::fs::read_to_string(file).ok()?;
    let head = format!("{prop}=");
    text.lines()
        .rev()
        .find_map(|l| l.strip_prefix(&head))
        .map(str::to_owned)
        .filter(|v| !v.is_empty())
}

/// `50%` or `50.00%` (as systemd writes it) in whole percent (a quota root
/// set below 1% reads 0).
fn percent(v: &str) -> Option<u64> {
    let n = v.strip_suffix('%')?;
    let whole = n.split_once('.').map_or(n, |(w, _)| w);
    whole.parse().ok()
}

fn limit_one(app: &App, name: &InstanceName, words: &[OsString], wait: Duration) -> Result<()> {
    let mut words = words.to_vec();
    words.push(OsString::from(name.as_str()));
    helper::task_answer(app, &words, wait).map_err(|e| match e {
        Error::Systemctl { code, message } => Error::Failed {
            what: format!("systemctl failed with exit {code}: {message}"),
            hint: format!("see `systemctl status {}`", app.unit(name)),
        },
        other => other,
    })
}

/// `limit [--cpu P] [--memory S] [--tasks N] | --reset`, each value
/// checked by the shared grammar and against the app's `[limits]` here
/// first (the helper checks again).
fn helper_words(app: &App, req: &Request) -> Result<Vec<OsString>> {
    let given = [&req.cpu, &req.memory, &req.tasks]
        .iter()
        .any(|v| v.is_some());
    if req.reset == given {
        return Err(Error::usage(
            "give --reset, or at least one of --cpu, --memory and --tasks",
            "see `unitgate limit --help`",
        ));
    }
    let mut words: Vec<OsString> = vec!["limit".into()];
    if req.reset && app.policy.callers_may_stop() {
        // Also where root removed `[limits]`: what was kept can still go.
        words.push("--reset".into());
        return Ok(words);
    }
    let Some(max) = app.policy.limits.filter(|_| app.policy.callers_may_stop()) else {
        return Err(Error::NotPermitted {
            what: format!("app {} allows no instance limits", app.name),
            hint: "its policy needs a [limits] table, and enable and disable among its actions \
                   (see docs/helper.md)"
                .into(),
        });
    };
    type Parse = fn(&str) -> std::result::Result<u64, String>;
    let limits: [(&str, &Option<String>, Parse, u64); 3] = [
        ("--cpu", &req.cpu, grammar::parse_cpu, max.max_cpu_percent),
        ("--memory", &req.memory, grammar::parse_size, max.max_memory),
        ("--tasks", &req.tasks, grammar::parse_tasks, max.max_tasks),
    ];
    for (flag, value, parse, most) in limits {
        let Some(v) = value else { continue };
        let n = parse(v)
            .map_err(|why| Error::usage(format!("{flag}: {why}"), "see `unitgate limit --help`"))?;
        if n > most {
            return Err(Error::NotPermitted {
                what: format!("{flag} {v} is above app {}'s maximum ({most})", app.name),
                hint: "ask for less, or root raises it in the policy's [limits]".into(),
            });
        }
        words.extend([flag.into(), v.into()]);
    }
    Ok(words)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kept_limits_read_as_pid_1_writes_them() {
        let t = std::env::temp_dir().join(format!("unitgate-kept-{}", std::process::id()));
        let d = t.join("demo@a.service.d");
        std::fs::create_dir_all(&d).unwrap();
        let file = |p: &str, v: &str| {
            let text = format!("# This is a drop-in unit file extension, created via \"systemctl set-property\"\n# or an equivalent operation. Do not edit.\n[Service]\n{p}={v}\n");
            std::fs::write(d.join(format!("50-{p}.conf")), text).unwrap();
        };
        file("CPUQuota", "50.00%");
        file("MemoryMax", "536870912");
        assert_eq!(
            kept_in(&t, "demo@a.service"),
            Kept {
                cpu_percent: Some(50),
                memory_bytes: Some(512 << 20),
                tasks: None
            }
        );
        assert_eq!(
            kept_in(&t, "demo@a.service").describe(),
            "cpu 50%, memory 512.0M"
        );
        file("TasksMax", "");
        file("CPUQuota", "");
        assert_eq!(kept_in(&t, "demo@a.service").cpu_percent, None);
        assert_eq!(kept_in(&t, "demo@b.service"), Kept::default());
        std::fs::remove_dir_all(&t).unwrap();
    }

    #[test]
    fn percents_read_whole() {
        assert_eq!(percent("50%"), Some(50));
        assert_eq!(percent("150.00%"), Some(150));
        assert_eq!(percent("50"), None);
        assert_eq!(percent("x%"), None);
    }
}
