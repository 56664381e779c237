//! The privileged path of a task (docs/design/tasks.md), top to bottom:
//!
//! `run`: judge (root, names, request, policy, caller: never root, the
//! command listed and root's alone) → build the systemd-run argv → lock
//! the app's tasks → the id free, the running ones counted against
//! `max_running` → audit → fork systemd-run (as the caller's groups, no
//! new privileges) → let the lock go once the task's own cgroup exists (or
//! systemd-run ended) → wait for systemd-run, passing on every signal sudo
//! relays: for a service it returns once the task started, for a scope it
//! is the task.
//!
//! `kill`: judge → the caller's own tasks among those running → audit →
//! exec `systemctl stop`.
//!
//! The first steps (sanitizing the process, the options before APP) are
//! `pipeline.rs`'s; it hands calls whose action is `run` or `kill` here.

use crate::audit::{self, Record, Verdict};
use crate::caller::{self, Caller};
use crate::error::Error;
use crate::pipeline::{self, Paths, Process, EXEC_ENV};
use crate::system::fs::Held;
use crate::system::process;
use crate::task::{self, RunRequest, Started};
use crate::{lock, program, running};
use std::ffi::{CString, OsStr, OsString};
use std::io::Write;
use std::time::Duration;
use unitgate_policy::config::{self as policy, Policy};
use unitgate_policy::escape::shell_word;
use unitgate_policy::task::{Kind, Limits, TaskPolicy};
use unitgate_policy::{exit, name};

/// A `run` that passed every check.
#[derive(Clone, Debug)]
pub struct RunPlan {
    pub app: String,
    pub kind: Kind,
    pub started: Started,
    pub max_running: u64,
    /// The caller, whose groups a scope's process takes.
    pub caller: Caller,
}

/// A `kill` that passed every check: the unit bases of its tasks.
#[derive(Clone, Debug)]
pub struct KillPlan {
    pub app: String,
    pub bases: Vec<String>,
}

/// `run`: from the words after APP `run`; returns the exit code when not
/// exec'ing.
pub fn run(
    check: bool,
    wait: Duration,
    app: &OsStr,
    rest: &[OsString],
    proc: &Process<'_>,
    paths: &Paths,
    record: &mut Record,
) -> u8 {
    let plan = match judge_run(app, rest, proc, paths, record) {
        Ok(plan) => plan,
        Err(e) => return pipeline::refuse(Some(record), &e),
    };
    if check {
        if let Err(e) = within_max_running(&plan, paths) {
            return pipeline::refuse(Some(record), &e);
        }
        audit::send(record, Verdict::Check);
        let _ = writeln!(
            std::io::stdout(),
            "{}",
            would_exec(&plan.started.argv, paths)
        );
        return exit::OK;
    }
    let held = match lock::tasks(&paths.lock_parent, &plan.app, wait) {
        Ok(held) => held,
        Err(e) => return pipeline::refuse(Some(record), &e),
    };
    // Checked under the app's task lock, held until the new task's cgroup
    // exists, so two calls cannot both see room for one more (or both
    // take one id).
    if let Err(e) = id_free(&plan, paths).and_then(|()| within_max_running(&plan, paths)) {
        return pipeline::refuse(Some(record), &e);
    }
    audit::send(record, Verdict::Accepted);
    start(&plan, paths, held, record)
}

/// Every check of a `run`, in order. Fills `record` as facts become known.
pub fn judge_run(
    app: &OsStr,
    rest: &[OsString],
    proc: &Process<'_>,
    paths: &Paths,
    record: &mut Record,
) -> Result<RunPlan, Error> {
    let trusted = |command: &str| program::check_trusted(&paths.policy_root, command);
    judge_run_with(app, rest, proc, record, |app| load(paths, app), trusted)
}

/// [`judge_run`] with the policy loader and the program check passed in
/// (the fuzz target has neither a policy file nor the programs).
pub fn judge_run_with(
    app: &OsStr,
    rest: &[OsString],
    proc: &Process<'_>,
    record: &mut Record,
    load_policy: impl FnOnce(&str) -> Result<Policy, Error>,
    trusted_command: impl FnOnce(&str) -> Result<(), Error>,
) -> Result<RunPlan, Error> {
    let (app, caller) = who(app, proc, record)?;
    let req = task::parse_run(rest)?;
    record.instances = vec![req.id.as_bytes().to_vec()];
    let policy = load_policy(app)?;
    let caller = caller?;
    pipeline::allowed_caller(&policy, &caller, app)?;
    let tasks = tasks_of(&policy, app)?;
    not_root(&caller)?;
    allowed_command(tasks, &req, app)?;
    trusted_command(&req.command)?;
    let limits = tasks.limits(req.asked).map_err(Error::AboveMaximum)?;
    let started = task::start_argv(app, caller.uid, &req, &limits);
    record.task = Some(task_fields(&started.unit, &req, &limits));
    Ok(RunPlan {
        app: app.to_owned(),
        kind: req.kind,
        started,
        max_running: tasks.max_running,
        caller,
    })
}

/// `kill`: from the task ids after APP `kill`.
pub fn kill(
    check: bool,
    app: &OsStr,
    rest: &[OsString],
    proc: &Process<'_>,
    paths: &Paths,
    record: &mut Record,
) -> u8 {
    let plan = match judge_kill(app, rest, proc, paths, record) {
        Ok(plan) => plan,
        Err(e) => return pipeline::refuse(Some(record), &e),
    };
    let units = running_units(&plan, paths);
    if check {
        audit::send(record, Verdict::Check);
        let line = match &units {
            Some(units) => would_exec(&stop_argv(units), paths),
            None => "would exec nothing: no such task is running".to_owned(),
        };
        let _ = writeln!(std::io::stdout(), "{line}");
        return exit::OK;
    }
    audit::send(record, Verdict::Accepted);
    let Some(units) = units else {
        // Nothing to stop is not an error: the task may have just ended.
        let _ = writeln!(
            std::io::stderr(),
            "unitgate-systemctl: no such task of app {} is running",
            plan.app
        );
        return exit::OK;
    };
    let e = exec(&paths.systemctl, &stop_argv(&units), true);
    pipeline::refuse(Some(record), &e)
}

/// Every check of a `kill`: only names with the caller's own uid are ever
/// formed, so another caller's or another app's task cannot be named.
pub fn judge_kill(
    app: &OsStr,
    rest: &[OsString],
    proc: &Process<'_>,
    paths: &Paths,
    record: &mut Record,
) -> Result<KillPlan, Error> {
    let (app, caller) = who(app, proc, record)?;
    let ids = task::parse_kill(rest)?;
    record.instances = ids.iter().map(|i| i.as_bytes().to_vec()).collect();
    let policy = load(paths, app)?;
    let caller = caller?;
    pipeline::allowed_caller(&policy, &caller, app)?;
    tasks_of(&policy, app)?;
    not_root(&caller)?;
    let base = |id: &String| unitgate_policy::task::unit_base(app, caller.uid, id);
    Ok(KillPlan {
        app: app.to_owned(),
        bases: ids.iter().map(base).collect(),
    })
}

// ------------------------------------------------------------------ steps

pub(crate) fn load(paths: &Paths, app: &str) -> Result<Policy, Error> {
    policy::load(&paths.policy_root, &paths.policy_dir, app).map_err(Error::Policy)
}

/// Root, then the caller (identified now so refusals name it; allowed or
/// not once the policy is read), then the app's name.
pub(crate) fn who<'a>(
    app: &'a OsStr,
    proc: &Process<'_>,
    record: &mut Record,
) -> Result<(&'a str, Result<Caller, Error>), Error> {
    if proc.euid != 0 {
        return Err(Error::NotRoot { euid: proc.euid });
    }
    let caller = caller::identify(&proc.invoker);
    if let Ok(c) = &caller {
        record.caller = Some(c.name.clone());
        record.uid = c.uid.to_string().into_bytes();
    }
    let bytes = app.as_encoded_bytes();
    let app = app.to_str().ok_or_else(|| Error::NotUtf8(bytes.to_vec()))?;
    if !name::is_valid_app(app) {
        return Err(Error::InvalidApp(bytes.to_vec()));
    }
    Ok((app, caller))
}

fn tasks_of<'p>(policy: &'p Policy, app: &str) -> Result<&'p TaskPolicy, Error> {
    policy
        .tasks
        .as_ref()
        .ok_or_else(|| Error::NoTasks(app.to_owned()))
}

/// A task runs as its caller; a caller who is root (sudo from root, or
/// root itself) would get a root task, which is systemd-run's business.
fn not_root(caller: &Caller) -> Result<(), Error> {
    if caller.uid == 0 {
        Err(Error::RootTask)
    } else {
        Ok(())
    }
}

/// The command: listed by the policy, and in a spelling nothing on its way
/// can read as more than a path (no `$`, `%`, `\`, `;`, quotes).
fn allowed_command(tasks: &TaskPolicy, req: &RunRequest, app: &str) -> Result<(), Error> {
    let plain = req
        .command
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"/._+-".contains(&b));
    if plain && tasks.allows_command(&req.command) {
        Ok(())
    } else {
        Err(Error::CommandNotAllowed {
            command: req.command.as_bytes().to_vec(),
            app: app.to_owned(),
        })
    }
}

/// The audit line's task part: unit, mode, limits and command.
fn task_fields(unit: &str, req: &RunRequest, l: &Limits) -> String {
    let mode = match req.kind {
        Kind::Service => "service",
        Kind::Scope => "scope",
    };
    format!(
        "task={} mode={mode} cpu={}% memory={} tasks={} timeout={} command={} args={} env={}",
        unitgate_policy::escape::field(unit.as_bytes()),
        l.cpu_percent,
        l.memory,
        l.tasks,
        l.runtime_secs,
        unitgate_policy::escape::field(req.command.as_bytes()),
        req.args.len(),
        if req.env.is_empty() {
            "-".to_owned()
        } else {
            let keys: Vec<&str> = req.env.iter().map(|(k, _)| k.as_str()).collect();
            keys.join(",")
        }
    )
}

fn within_max_running(plan: &RunPlan, paths: &Paths) -> Result<(), Error> {
    let running = running::of_app(&paths.cgroup_fs, &plan.app)?.len();
    if (running as u64) < plan.max_running {
        Ok(())
    } else {
        Err(Error::TooManyTasks {
            app: plan.app.clone(),
            max: plan.max_running,
            running,
        })
    }
}

/// The units of `plan`'s tasks that run now; `None` if none does.
fn running_units(plan: &KillPlan, paths: &Paths) -> Option<Vec<String>> {
    let units: Vec<String> = plan
        .bases
        .iter()
        .flat_map(|b| {
            let kinds = running::kinds_of(&paths.cgroup_fs, b);
            kinds.into_iter().map(move |k| format!("{b}{}", k.suffix()))
        })
        .collect();
    (!units.is_empty()).then_some(units)
}

/// No task of this id runs, as a service or a scope: one id, one task.
fn id_free(plan: &RunPlan, paths: &Paths) -> Result<(), Error> {
    if running::kinds_of(&paths.cgroup_fs, &plan.started.base).is_empty() {
        Ok(())
    } else {
        Err(Error::TaskInUse(plan.started.base.clone()))
    }
}

fn stop_argv(units: &[String]) -> Vec<String> {
    let fixed = ["systemctl", "--no-pager", "--no-ask-password", "stop", "--"];
    fixed
        .iter()
        .map(|s| (*s).to_owned())
        .chain(units.iter().cloned())
        .collect()
}

/// `--check` output: the program and its argv[1..], shell-quoted.
pub(crate) fn would_exec(argv: &[String], paths: &Paths) -> String {
    let exe = if argv[0] == "systemctl" {
        &paths.systemctl
    } else {
        &paths.systemd_run
    };
    let rest: Vec<String> = argv.iter().skip(1).map(|a| shell_word(a)).collect();
    format!(
        "would exec: {} {}",
        shell_word(&exe.to_string_lossy()),
        rest.join(" ")
    )
}

pub(crate) fn cstrings(v: &[String]) -> Result<Vec<CString>, Error> {
    v.iter()
        .map(|s| CString::new(s.as_bytes()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| Error::Os {
            what: "cannot build argv".into(),
            err: std::io::ErrorKind::InvalidInput.into(),
        })
}

/// The fixed environment of everything the helper execs.
pub(crate) fn exec_env() -> Result<Vec<CString>, Error> {
    cstrings(&EXEC_ENV.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>())
}

/// Exec `program` with the fixed environment (stdin from /dev/null when
/// `null_stdin`). Returns only on failure.
pub(crate) fn exec(program: &std::path::Path, argv: &[String], null_stdin: bool) -> Error {
    if null_stdin {
        if let Err(e) = pipeline::stdin_from_null() {
            return e;
        }
    }
    let (argv, envp) = match (cstrings(argv), exec_env()) {
        (Ok(a), Ok(e)) => (a, e),
        (Err(e), _) | (_, Err(e)) => return e,
    };
    let err = process::execve(program.as_os_str(), &argv, &envp);
    if err.kind() == std::io::ErrorKind::NotFound {
        Error::ProgramMissing(program.to_path_buf())
    } else {
        Error::Os {
            what: format!("cannot execute {}", program.display()),
            err,
        }
    }
}

/// Fork systemd-run; the lock goes once the task's own unit has its
/// cgroup (the kernel's proof that it counts) or systemd-run ended; then
/// systemd-run's exit is ours: for a service once the task started, for a
/// scope when the task ends (128 + signal for a killed task).
fn start(plan: &RunPlan, paths: &Paths, held: Held, record: &Record) -> u8 {
    let (argv, envp) = match (cstrings(&plan.started.argv), exec_env()) {
        (Ok(a), Ok(e)) => (a, e),
        (Err(e), _) | (_, Err(e)) => return pipeline::refuse(Some(record), &e),
    };
    // The lock is ours to let go of once the task counts, not the child's.
    if let Err(err) = crate::system::fs::close_on_exec(&held) {
        let what = "cannot mark the task lock close-on-exec".into();
        return pipeline::refuse(Some(record), &Error::Os { what, err });
    }
    let spawn = process::Spawn {
        program: paths.systemd_run.as_os_str(),
        argv: &argv,
        envp: &envp,
        user: &plan.caller.name,
        uid: plan.caller.uid,
        // A scope's program is the caller's, with the caller's stdin.
        null_stdin: plan.kind == Kind::Service,
    };
    let child = match process::spawn(&spawn) {
        Ok(child) => child,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            let e = Error::ProgramMissing(paths.systemd_run.clone());
            return pipeline::refuse(Some(record), &e);
        }
        Err(err) => {
            let e = Error::Spawn(format!(
                "cannot start {}: {err}",
                paths.systemd_run.display()
            ));
            return pipeline::refuse(Some(record), &e);
        }
    };
    let cgroup = running::unit_dir(&paths.cgroup_fs, &plan.started.unit);
    let mut backoff = Duration::from_millis(1);
    loop {
        if let Some(code) = child.try_wait() {
            return code;
        }
        if cgroup.is_dir() {
            break;
        }
        std::thread::sleep(backoff);
        backoff = (backoff * 2).min(lock::MAX_BACKOFF);
    }
    drop(held);
    child.wait_forwarding()
}
