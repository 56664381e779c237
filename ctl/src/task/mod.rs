//! Tasks (`run`, `kill`, `tasks`): a program of the app's `[tasks]` list,
//! run as the caller in a transient unit with limits, through the helper's
//! `run` and `kill` (docs/design/tasks.md). A task is named by its id; its
//! unit is `<app>-task-<uid>-<id>.service` (or `.scope`), so the caller's
//! tasks are found by name alone and no one else's ever is.
//!
//! `run` has three ways to end: `--detach` returns once the task started;
//! by default it follows the task over D-Bus ([`follow`]) and exits with
//! its status; `--scope` makes the task this process's descendant
//! ([`scope`]), with our stdio, and it ends when we are told to.

mod follow;
mod list;
mod scope;

use std::ffi::OsString;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;
use unitgate_policy::task::{self as rules, Kind};

use crate::app::App;
use crate::cli::RunArgs;
use crate::error::{code, Error, Result};
use crate::helper;
use crate::output::Output;

pub use list::list;

/// A checked task id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskId(String);

impl TaskId {
    pub fn parse(id: &str) -> Result<TaskId> {
        if rules::is_valid_id(id) {
            Ok(TaskId(id.to_owned()))
        } else {
            Err(Error::BadName {
                kind: "task",
                name: id.to_owned(),
                rule: "task ids are 1-64 of A-Z a-z 0-9 _, starting with a letter or digit".into(),
            })
        }
    }

    /// A new id: `t` and the time in microseconds, then our pid, so two
    /// runs of one caller never pick the same.
    pub fn generate() -> TaskId {
        let micros = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_micros());
        TaskId(format!("t{micros}_{}", std::process::id()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The unit this task runs as, for the calling user.
    pub fn unit(&self, app: &App, kind: Kind) -> String {
        format!("{}{}", self.base(app), kind.suffix())
    }

    /// A glob of its units of either kind (for journalctl's `--unit`).
    pub fn units_glob(&self, app: &App) -> String {
        format!("{}.*", self.base(app))
    }

    fn base(&self, app: &App) -> String {
        rules::unit_base(&app.name, nix::unistd::getuid().as_raw(), &self.0)
    }
}

/// What `run` prints: at once with `--detach`, at the end otherwise.
#[derive(Debug, Serialize)]
pub struct RunReport {
    pub task: String,
    pub unit: String,
    /// `running` (detached), or how it ended: systemd's `Result`
    /// (`success`, `exit-code`, `signal`, `timeout`, `oom-kill`, …).
    pub result: String,
    pub exit_status: Option<i32>,
    pub signal: Option<String>,
}

/// `unitgate run`.
pub fn run(app: &App, args: &RunArgs, wait: Duration, out: Output) -> Result<()> {
    let id = match &args.name {
        Some(name) => TaskId::parse(name)?,
        None => TaskId::generate(),
    };
    if args.scope && out.json {
        // The program's own output is our stdout: no document can follow.
        return Err(Error::usage(
            "--json does not apply to `run --scope`: the task's output is this command's",
            "run it without --json, or without --scope",
        ));
    }
    let words = helper_words(&id, args)?;
    if args.scope {
        return scope::run(app, id.as_str(), &words, wait);
    }
    let unit = id.unit(app, Kind::Service);
    // Listening before the task exists: its end cannot pass unseen.
    let watch = if args.detach {
        None
    } else {
        Some(follow::Watch::start(&unit)?)
    };
    let started = helper::task_answer(app, &words, wait);
    let Some(watch) = watch else {
        started.map_err(|e| helper::task_error(&words, e))?;
        let report = RunReport {
            task: id.0,
            unit,
            result: "running".into(),
            exit_status: None,
            signal: None,
        };
        return print(out, &report, &format!("{}\n", report.task));
    };
    let end = match started {
        Ok(()) => watch.until_end(),
        // A program that fails at once can end before its start job does,
        // and systemd-run then reports a failed start: the task's own end
        // says more, where systemd has told it.
        Err(e @ Error::Systemctl { .. }) => match watch.end_so_far() {
            Ok(Some(end)) => Ok(end),
            _ => return Err(helper::task_error(&words, e)),
        },
        Err(e) => return Err(e),
    };
    // The task runs on whatever happens to our view of it: say which.
    let end = end.map_err(|e| Error::Failed {
        what: format!("lost track of task {}: {e}", id.as_str()),
        hint: format!(
            "it may still run: see `unitgate tasks` and `unitgate logs --task {}`",
            id.as_str()
        ),
    })?;
    let report = RunReport {
        task: id.0,
        unit,
        result: end.result.clone(),
        exit_status: end.exit_status,
        signal: end.signal.clone(),
    };
    if out.json {
        out.json(&report)?;
    }
    match end.exit_code() {
        0 => Ok(()),
        status => {
            let e = Error::Task {
                code: status,
                what: format!("task {} {}", report.task, end.describe()),
                task: report.task,
            };
            Err(if out.json {
                Error::Shown(Box::new(e))
            } else {
                e
            })
        }
    }
}

/// `unitgate kill ID...`.
pub fn kill(app: &App, ids: &[String], wait: Duration, out: Output) -> Result<()> {
    let ids = ids
        .iter()
        .map(|i| TaskId::parse(i))
        .collect::<Result<Vec<_>>>()?;
    let mut words: Vec<OsString> = vec!["kill".into()];
    words.extend(ids.iter().map(|i| OsString::from(i.as_str())));
    helper::task(app, &words, wait)?;
    let killed: Vec<&str> = ids.iter().map(TaskId::as_str).collect();
    let text: String = killed.iter().map(|i| format!("{i}: stopped\n")).collect();
    print(out, &serde_json::json!({ "stopped": killed }), &text)
}

fn print(out: Output, value: &impl Serialize, text: &str) -> Result<()> {
    if out.json {
        out.json(value)
    } else {
        out.text(text)
    }
}

/// The helper's `run ...` words for this request, each limit checked
/// against the shared grammar first (64 here, rather than the helper's).
fn helper_words(id: &TaskId, args: &RunArgs) -> Result<Vec<OsString>> {
    let mut words: Vec<OsString> = vec!["run".into()];
    if args.scope {
        words.push("--scope".into());
    }
    words.extend(["--name".into(), OsString::from(id.as_str())]);
    type Parse = fn(&str) -> Result<u64, String>;
    let limits: [(&str, &Option<String>, Parse); 4] = [
        ("--cpu", &args.cpu, rules::parse_cpu),
        ("--memory", &args.memory, rules::parse_size),
        ("--tasks", &args.tasks, rules::parse_tasks),
        ("--timeout", &args.timeout, rules::parse_secs),
    ];
    for (flag, value, parse) in limits {
        if let Some(v) = value {
            parse(v).map_err(|why| {
                Error::usage(format!("{flag}: {why}"), "see `unitgate run --help`")
            })?;
            words.extend([flag.into(), v.into()]);
        }
    }
    for pair in &args.env {
        words.extend(["--env".into(), pair.into()]);
    }
    words.push("--".into());
    words.extend(args.command.iter().cloned());
    Ok(words)
}

/// The exit code of a task that ended as `result` with `exit_status` or
/// `signal`: 124 for its timeout (as timeout(1)); 128 + the signal that
/// killed it (137 for the kernel's OOM kill), even where systemd counts
/// the end a success (SIGTERM, SIGINT, SIGHUP and SIGPIPE are clean exits
/// of a service); else its own status.
pub fn exit_code(result: &str, exit_status: Option<i32>, signal: Option<i32>) -> u8 {
    match (result, exit_status, signal) {
        ("timeout", ..) => code::TASK_TIMEOUT,
        ("oom-kill", ..) => 128 + 9,
        (_, _, Some(sig)) => 128u8.saturating_add(u8::try_from(sig).unwrap_or(127)),
        ("success", ..) => code::OK,
        (_, Some(status), _) => u8::try_from(status)
            .ok()
            .filter(|s| *s != 0)
            .unwrap_or(code::FAILED),
        _ => code::FAILED,
    }
}
